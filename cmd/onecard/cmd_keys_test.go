package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/onecard-hub/onecard/sm"
)

// keysRun runs "onecard keys ARGS..." in-process and returns the exit
// code, stdout and stderr.
func keysRun(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), append([]string{"keys"}, args...), &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

func TestKeysUsage(t *testing.T) {
	for _, tt := range []struct {
		args []string
		code int
	}{
		{nil, 2},
		{[]string{"nope"}, 2},
		{[]string{"help"}, 0},
		{[]string{"gen", "-h"}, 0},
		{[]string{"gen", "extra"}, 2},
		{[]string{"gen", "--bogus"}, 2},
		{[]string{"gen", "--out", ""}, 2},
		{[]string{"selftest", "extra"}, 2},
	} {
		code, _, stderr := keysRun(t, tt.args...)
		if code != tt.code {
			t.Errorf("keys %q: exit %d, want %d (stderr %q)", tt.args, code, tt.code, stderr)
		}
	}
}

func TestKeysGen(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "keys.json")
	code, stdout, stderr := keysRun(t, "gen", "--out", out, "--label", "lab-1")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	fi, err := os.Stat(out)
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "windows" && fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %04o, want 0600", fi.Mode().Perm())
	}
	data, _ := os.ReadFile(out)
	if !bytes.Contains(data, []byte(`"warning": "TEST KEYS - NOT FOR PRODUCTION"`)) {
		t.Errorf("file not marked as test keys:\n%s", data)
	}
	ks, err := sm.LoadKeySet(out)
	if err != nil {
		t.Fatalf("LoadKeySet: %v", err)
	}
	want, _ := sm.TestKeySet("lab-1")
	if !ks.IsTest() || ks.Label() != "lab-1" || !ks.TerminalPublicKey().Equal(want.TerminalPublicKey()) {
		t.Errorf("loaded set: test %v label %q", ks.IsTest(), ks.Label())
	}
	for _, s := range []string{sm.TestKeysWarning, out, "terminal SM2 public key: " + want.TerminalPublicKey().String()} {
		if !strings.Contains(stdout, s) {
			t.Errorf("stdout lacks %q:\n%s", s, stdout)
		}
	}
	// Nothing private on stdout: no master key and not the file body.
	for _, name := range sm.KeyNames {
		for _, alg := range []sm.Alg{sm.AlgSM4, sm.Alg3DES} {
			m, _ := ks.Master(alg, name)
			if strings.Contains(strings.ToLower(stdout), hex.EncodeToString(m)) {
				t.Fatalf("stdout shows the %v %s key", alg, name)
			}
		}
	}
	if strings.Contains(stdout, `"private"`) {
		t.Fatal("stdout shows the key file")
	}

	// No overwrite without --force; the file is untouched.
	code, _, stderr = keysRun(t, "gen", "--out", out)
	if code != 1 || !strings.Contains(stderr, "--force") {
		t.Errorf("second gen: exit %d, stderr %q; want 1 mentioning --force", code, stderr)
	}
	if again, _ := os.ReadFile(out); !bytes.Equal(again, data) {
		t.Error("refused gen changed the file")
	}
	// --force with random keys replaces it.
	code, stdout, stderr = keysRun(t, "gen", "--out", out, "--force")
	if code != 0 || !strings.Contains(stdout, "random") {
		t.Fatalf("gen --force: exit %d, %s %s", code, stdout, stderr)
	}
	ks2, err := sm.LoadKeySet(out)
	if err != nil || ks2.TerminalPublicKey().Equal(ks.TerminalPublicKey()) {
		t.Errorf("gen --force did not write a new random key set (%v)", err)
	}
	if runtime.GOOS != "windows" {
		// A key file others can read is refused, even with --force.
		if err := os.Chmod(out, 0o644); err != nil {
			t.Fatal(err)
		}
		if code, _, stderr := keysRun(t, "gen", "--out", out, "--force"); code != 1 || !strings.Contains(stderr, "chmod 600") {
			t.Errorf("gen --force over a 0644 file: exit %d, %q", code, stderr)
		}
	}
}

// buildOnecard compiles this command into a temporary directory.
func buildOnecard(t *testing.T) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("go tool not found: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "onecard")
	if runtime.GOOS == "windows" {
		bin += ".exe"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, goBin, "build", "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// envWithout returns os.Environ minus the named variables.
func envWithout(names ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		drop := false
		for _, n := range names {
			drop = drop || name == n
		}
		if !drop {
			env = append(env, kv)
		}
	}
	return env
}

// TestKeysSelftestBinary builds onecard and runs "onecard keys selftest"
// with GODEBUG and FORCE_SM4BLOCK_AESNI removed from the environment: it
// passes only because main re-executes itself with them (safeenv.Ensure),
// which the "ok environment" line proves. With the re-exec disabled the
// same binary must fail (the environment check, and on BMI2/ADX CPUs the
// #560 vector).
func TestKeysSelftestBinary(t *testing.T) {
	bin := buildOnecard(t)
	unsafeEnv := envWithout("GODEBUG", "FORCE_SM4BLOCK_AESNI", "ONECARD_SAFEENV_REEXEC")

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "keys", "selftest")
	cmd.Env = unsafeEnv
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("onecard keys selftest: %v\n%s", err, out)
	}
	for _, want := range []string{"ok    environment has GODEBUG=cpu.adx=off FORCE_SM4BLOCK_AESNI=1",
		"ok    SM2 issue #560 vector", "ok    SM3 \"abc\"", "ok    3DES PBOC purchase", ", 0 failed"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(string(out), "FAIL") {
		t.Errorf("selftest reported a failure:\n%s", out)
	}

	cmd = exec.CommandContext(ctx, bin, "keys", "selftest")
	cmd.Env = append(unsafeEnv, "ONECARD_SAFEENV_REEXEC=1")
	out, err = cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("selftest without re-exec: %v, want exit 1\n%s", err, out)
	}
	if !strings.Contains(string(out), "FAIL  environment lacks") {
		t.Errorf("selftest without re-exec does not report the environment:\n%s", out)
	}
}
