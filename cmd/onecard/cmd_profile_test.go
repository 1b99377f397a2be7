package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func runOnecard(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestProfileCheck(t *testing.T) {
	dir := filepath.Join("..", "..", "firmware-profiles")
	good := filepath.Join(dir, "crt591.yaml")
	data, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	badText := strings.Replace(string(data), "    psam*: {select: true, cm: 0x52, pm: 0x31}", "    psam9: {select: true, cm: 0x52, pm: 0x31}", 1)
	if badText == string(data) {
		t.Fatal("mutation anchor missing")
	}
	bad := filepath.Join(t.TempDir(), "crt591-bad.yaml")
	if err := os.WriteFile(bad, []byte(badText), 0o644); err != nil {
		t.Fatal(err)
	}
	badLine := strings.Count(badText[:strings.Index(badText, "psam9:")], "\n") + 1

	cases := []struct {
		name     string
		args     []string
		code     int
		stdout   []string
		noStdout string
	}{
		{"all shipped profiles", []string{"profile", "check", filepath.Join(dir, "crt310.yaml"), good, filepath.Join(dir, "ict3q8.yaml")}, 0,
			[]string{filepath.Join(dir, "crt310.yaml") + ": ok (36 test frames)", good + ": ok (", filepath.Join(dir, "ict3q8.yaml") + ": ok ("}, "invalid"},
		{"a broken profile", []string{"profile", "check", good, bad}, 1,
			[]string{good + ": ok (", bad + ":" + strconv.Itoa(badLine) + ": ops.power_off.psam9: unknown slot psam9"}, bad + ": ok"},
		{"missing file", []string{"profile", "check", filepath.Join(dir, "nope.yaml")}, 1, []string{"nope.yaml: load profile"}, ""},
		{"no file", []string{"profile", "check"}, 2, nil, ""},
		{"unknown subcommand", []string{"profile", "frob"}, 2, nil, ""},
		{"list", []string{"profile", "list"}, 0, []string{"creator-crt310-v3", "creator-crt591-m", "sankyo-ict3q8", "ack_then_response"}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, out, errOut := runOnecard(t, c.args...)
			if code != c.code {
				t.Errorf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, c.code, out, errOut)
			}
			for _, want := range c.stdout {
				if !strings.Contains(out, want) {
					t.Errorf("stdout lacks %q:\n%s", want, out)
				}
			}
			if c.noStdout != "" && strings.Contains(out, c.noStdout) {
				t.Errorf("stdout has %q:\n%s", c.noStdout, out)
			}
		})
	}
}
