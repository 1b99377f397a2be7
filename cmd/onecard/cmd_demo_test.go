package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestDemoOnce builds onecard and runs "onecard demo --once", with the
// cards behind pcscd (the default where pcscd is installed) and in
// process: every step is printed, with the story's figures, the hub's
// report totals, masked personal data, and nothing is left behind.
func TestDemoOnce(t *testing.T) {
	bin := buildOnecard(t)
	type mode struct {
		name  string
		args  []string
		cards string // what step 2 says
	}
	modes := []mode{{"sim", []string{"--listen", "127.0.0.1:0", "--readers", "sim"}, "in an in-process reader"}}
	if runtime.GOOS == "linux" {
		// As make demo runs it: pcscd is installed (make deps), so the
		// cards go behind it.
		modes = append(modes, mode{"default", nil, "behind pcscd via vpcd"})
	}
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			var stdout, stderr bytes.Buffer
			cmd := exec.CommandContext(ctx, bin, append([]string{"demo", "--once"}, m.args...)...)
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Run(); err != nil {
				t.Fatalf("onecard demo --once: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
			}
			out := stdout.String()
			for _, want := range []*regexp.Regexp{
				regexp.MustCompile(`\[ 1/10\] hub +ws://127\.0\.0\.1:\d+/sync`),
				regexp.MustCompile(`opening balance of card 330100…AF5D8 in fund medical: 1200\.00 CNY`),
				regexp.MustCompile(`\[ 2/10\] cards .*` + regexp.QuoteMeta(m.cards)),
				regexp.MustCompile(`\[ 3/10\] enrolment +terminal 330100000001: .*enrolled \(pending\), approved by the operator \(active\)`),
				regexp.MustCompile(`\[ 4/10\] agent +kiosk API ws://127\.0\.0\.1:\d+/v1/ws \(page http://127\.0\.0\.1:\d+/kiosk/\).*hub connected`),
				regexp.MustCompile(`\[ 5/10\] identity +阿\*+ · 650\*{13}26 · card \*{5}5432 · generation 3, .* · genuine: true \(psam\)`),
				regexp.MustCompile(`\[ 6/10\] pay +12\.34 CNY at pharmacy-01 \(fund medical\).*balance 1200\.00 → 1187\.66`),
				regexp.MustCompile(`TAC [0-9A-F]{8}, terminal 330100000001 seq \d+, card-done; progress reading → writing → syncing`),
				regexp.MustCompile(`\[ 7/10\] load +hub: programme subsidy-2026 \(fund subsidy\) created, funded 10000\.00 CNY, 200\.00 CNY granted`),
				regexp.MustCompile(`load of 200\.00 CNY authorised online by the hub .*balance 1187\.66 → 1387\.66`),
				regexp.MustCompile(`\[ 8/10\] certify +pension-2026: authenticated card, PIN verified, the card's SM2 signature`),
				regexp.MustCompile(`\[ 9/10\] sync +journal: 3 records cleared .*hub: 3 accepted, 0 rejected`),
				regexp.MustCompile(`hub books for card 330100…AF5D8: medical 1187\.66 CNY, subsidy 200\.00 CNY`),
				regexp.MustCompile(`\[10/10\] report +the hub's clearing report of \d{8}`),
				// The report's totals.
				regexp.MustCompile(`pharmacy-01 +medical +1 +12\.34`),
				regexp.MustCompile(`total +1 +12\.34`),
				regexp.MustCompile(`subsidy-2026 +subsidy +10000\.00 +200\.00 +200\.00 +1`),
				regexp.MustCompile(`330100000001 +1 +12\.34 +1 +200\.00 +1 +match`),
				regexp.MustCompile(`demo complete \(--once\)`),
			} {
				if !want.MatchString(out) {
					t.Errorf("output lacks %s", want)
				}
			}
			for _, secret := range []*regexp.Regexp{
				regexp.MustCompile(`650102199208154026`), regexp.MustCompile(`B98765432`),
				regexp.MustCompile(`买买提`), regexp.MustCompile(`\b123456\b`), // name, ID number, card number, PIN
			} {
				if secret.MatchString(out + stderr.String()) {
					t.Errorf("output shows %s unmasked", secret)
				}
			}
			if t.Failed() {
				t.Logf("stdout:\n%s\nstderr:\n%s", out, stderr.String())
			}
			// The temporary directory is gone, and so is the demo's pcscd.
			if m := regexp.MustCompile(`bbolt store (\S+)/hub\.db`).FindStringSubmatch(out); m == nil {
				t.Error("output does not name the hub's store")
			} else if _, err := os.Stat(m[1]); !os.IsNotExist(err) {
				t.Errorf("demo directory %s left behind (%v)", m[1], err)
			}
			if runtime.GOOS == "linux" {
				if pids := demoPCSCDs(); len(pids) > 0 {
					t.Errorf("the demo's pcscd still runs: %v", pids)
				}
			}
		})
	}
}

// demoPCSCDs lists running pcscd processes started by a demo.
func demoPCSCDs() []string {
	ents, _ := os.ReadDir("/proc")
	var out []string
	for _, e := range ents {
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil {
			continue
		}
		cmdline := strings.ReplaceAll(string(b), "\x00", " ")
		if strings.Contains(cmdline, "pcscd") && strings.Contains(cmdline, "onecard-pcsctest-demo-") {
			stat, _ := os.ReadFile("/proc/" + e.Name() + "/stat")
			if i := bytes.LastIndexByte(stat, ')'); i > 0 && i+2 < len(stat) && (stat[i+2] == 'Z' || stat[i+2] == 'X') {
				continue // a zombie is gone
			}
			out = append(out, e.Name()+": "+cmdline)
		}
	}
	return out
}

// TestDemoUsage: bad command lines are usage errors (exit 2) before
// anything starts.
func TestDemoUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"demo", "--readers", "usb"}, "--readers"},
		{[]string{"demo", "--listen", "0.0.0.0:17300"}, "loopback"},
		{[]string{"demo", "--listen", "localhost:17300"}, "loopback"},
		{[]string{"demo", "extra"}, "unexpected arguments"},
		{[]string{"demo", "--no-such-flag"}, "no-such-flag"},
		{[]string{"demo", "--dir", "."}, "not empty"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run(context.Background(), tc.args, &stdout, &stderr); code != 2 {
				t.Errorf("exit %d, want 2; stderr %q", code, stderr.String())
			}
			if !strings.Contains(stderr.String(), tc.want) {
				t.Errorf("stderr %q lacks %q", stderr.String(), tc.want)
			}
			if stdout.Len() != 0 {
				t.Errorf("stdout %q, want nothing", stdout.String())
			}
		})
	}
}
