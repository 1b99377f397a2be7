package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"path/filepath"
	"strings"
	"testing"

	"github.com/onecard-hub/onecard/terminal/journal"
)

func payCmd(ctx context.Context, args []string, stdin io.Reader, out, errb *bytes.Buffer) error {
	return runPay(ctx, args, stdin, out, errb)
}

func loadCmd(ctx context.Context, args []string, stdin io.Reader, out, errb *bytes.Buffer) error {
	return runLoad(ctx, args, stdin, out, errb)
}

func certifyCmd(ctx context.Context, args []string, stdin io.Reader, out, errb *bytes.Buffer) error {
	return runCertify(ctx, args, stdin, out, errb)
}

func TestPayLoadCertifyCommands(t *testing.T) {
	dir := termCards(t)
	psam := filepath.Join(dir, "psam.yaml")
	jp := filepath.Join(dir, "journal.db")
	for _, file := range []string{"ssc-gen2.yaml", "ssc-gen3.yaml"} {
		card := filepath.Join(dir, file)
		spec := cardSpec(t, dir, file)
		t.Run(file, func(t *testing.T) {
			base := []string{"--sim", card, "--psam", psam, "--journal", jp, "--pin-stdin"}
			out, errOut, err := runCmd(t, payCmd, "123456\n", append(base, "--amount", "12.34", "--merchant", "HOSP-1")...)
			if err != nil {
				t.Fatalf("pay: %v\n%s", err, errOut)
			}
			if !strings.Contains(out, "pay #") || !strings.Contains(out, "card-done") || !strings.Contains(out, "12.34") || !strings.Contains(errOut, "TEST key set") {
				t.Errorf("pay output:\n%s\n%s", out, errOut)
			}
			if got := cardState(t, card).Balance(); got != spec.Purse.Balance-1234 {
				t.Errorf("balance after pay %d", got)
			}
			// Wrong PIN: national -51 with the tries left.
			_, errOut, err = runCmd(t, payCmd, "000000\n", append(base, "--amount", "1")...)
			if err == nil || !strings.Contains(errOut, "national code -51") {
				t.Errorf("wrong PIN: %v %q", err, errOut)
			}
			// Insufficient balance.
			_, errOut, err = runCmd(t, payCmd, "123456\n", append(base, "--amount", "99999")...)
			if err == nil || !strings.Contains(errOut, "-37889") {
				t.Errorf("insufficient balance: %v %q", err, errOut)
			}
			out, errOut, err = runCmd(t, loadCmd, "", append(base, "--amount", "200", "--programme", "SUBSIDY")...)
			if err != nil {
				t.Fatalf("load: %v\n%s", err, errOut)
			}
			if !strings.Contains(out, "load #") || cardState(t, card).Balance() != spec.Purse.Balance-1234+20000 {
				t.Errorf("load output:\n%s", out)
			}
			out, errOut, err = runCmd(t, certifyCmd, "123456\n", append(base, "--programme", "PENSION")...)
			if err != nil {
				t.Fatalf("certify: %v\n%s", err, errOut)
			}
			if !strings.Contains(out, "certify #") || (spec.Generation == 3) != strings.Contains(out, "card signed") {
				t.Errorf("certify output:\n%s", out)
			}
		})
	}
	// The journal holds every record: 2 cards × (pay, declined pay, load,
	// certify), each final.
	j, err := journal.Open(jp, &journal.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	es, err := j.List(0, 0)
	if err != nil {
		t.Fatal(err)
	}
	states := map[journal.State]int{}
	for _, e := range es {
		states[e.State]++
	}
	if len(es) != 8 || states[journal.CardDone] != 6 || states[journal.Failed] != 2 {
		t.Errorf("journal states %v (%d records)", states, len(es))
	}
}

func TestMoneyCommandUsage(t *testing.T) {
	dir := termCards(t)
	card, psam := filepath.Join(dir, "ssc-gen2.yaml"), filepath.Join(dir, "psam.yaml")
	for _, tc := range []struct {
		name string
		f    func(context.Context, []string, io.Reader, *bytes.Buffer, *bytes.Buffer) error
		args []string
	}{
		{"pay no amount", payCmd, []string{"--sim", card, "--psam", psam}},
		{"pay bad amount", payCmd, []string{"--sim", card, "--psam", psam, "--amount", "1.234"}},
		{"pay zero", payCmd, []string{"--sim", card, "--psam", psam, "--amount", "0"}},
		{"pay negative", payCmd, []string{"--sim", card, "--psam", psam, "--amount", "-5"}},
		{"pay pin flag", payCmd, []string{"--sim", card, "--psam", psam, "--amount", "1", "--pin", "123456"}},
		{"pay bad purse", payCmd, []string{"--sim", card, "--psam", psam, "--amount", "1", "--purse", "x"}},
		{"pay bad terminal id", payCmd, []string{"--sim", card, "--psam", psam, "--amount", "1", "--terminal-id", "12"}},
		{"load no programme", loadCmd, []string{"--sim", card, "--psam", psam, "--amount", "1"}},
		{"load no terminal", loadCmd, []string{"--sim", card, "--amount", "1", "--programme", "P"}},
		{"certify extra", certifyCmd, []string{"--sim", card, "extra"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := runCmd(t, tc.f, "", tc.args...)
			var ue usageError
			if !errors.As(err, &ue) {
				t.Errorf("err %v, want a usage error", err)
			}
		})
	}
	// No PIN source: a clear error, not a hang.
	_, _, err := runCmd(t, payCmd, "", "--sim", card, "--psam", psam, "--amount", "1", "--journal", filepath.Join(dir, "j.db"))
	if err == nil || !strings.Contains(err.Error(), "--pin-stdin") {
		t.Errorf("pay without a PIN source: %v", err)
	}
}

func TestParseYuan(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want uint32
		ok   bool
	}{
		{"12.34", 1234, true}, {"5", 500, true}, {"0.01", 1, true}, {"0.1", 10, true}, {"21474836.47", 2147483647, true},
		{"0", 0, false}, {"0.00", 0, false}, {"1.234", 0, false}, {"1.", 0, false}, {".5", 0, false}, {"-1", 0, false},
		{"1e3", 0, false}, {"21474836.48", 0, false}, {"", 0, false}, {"1,5", 0, false},
	} {
		got, err := parseYuan(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("parseYuan(%q) = %d, %v", tc.in, got, err)
		}
	}
}
