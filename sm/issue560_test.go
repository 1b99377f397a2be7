package sm

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"golang.org/x/sys/cpu"
)

// child560Env marks the child process of TestIssue560WithoutSafeEnv.
const child560Env = "ONECARD_SM_ISSUE560_CHILD"

// issue560Report is what the child prints, as one JSON line after a marker.
type issue560Report struct {
	GODEBUG  string // the child's GODEBUG (must be empty)
	AESNI    string // the child's FORCE_SM4BLOCK_AESNI (must be empty)
	ADX      bool   // cpu.X86.HasADX as the child sees it
	BMI2     bool   // cpu.X86.HasBMI2 (gmsm takes the fast path only with both)
	Parsed   bool   // the #560 public key parsed
	Control  bool   // a fresh signature verified with the same code path
	Accepted bool   // the #560 signature verified
}

const issue560Marker = "ISSUE560-REPORT "

// issue560Child is the child side of TestIssue560WithoutSafeEnv, run from
// TestMain before any re-exec: it prints one report line and exits.
func issue560Child() {
	rep := issue560Report{
		GODEBUG: os.Getenv("GODEBUG"),
		AESNI:   os.Getenv("FORCE_SM4BLOCK_AESNI"),
		ADX:     cpu.X86.HasADX,
		BMI2:    cpu.X86.HasBMI2,
	}
	pub, err := ParsePublicKeyDER(mustHex(Issue560PublicKey))
	if err == nil {
		rep.Parsed = true
		rep.Accepted = VerifyDigest(pub, make([]byte, 32), mustHex(Issue560Signature))
	}
	if k, err := GenerateKey(nil); err == nil {
		e := SM3([]byte("control"))
		if sig, err := SignDigest(k, e[:]); err == nil {
			rep.Control = VerifyDigest(k.PublicKey(), e[:], sig)
		}
	}
	line, _ := json.Marshal(rep)
	fmt.Printf("%s%s\n", issue560Marker, line)
	os.Exit(0)
}

// TestIssue560WithoutSafeEnv documents trap 1 of gm-crypto.md: it runs this
// test binary again WITHOUT GODEBUG/FORCE_SM4BLOCK_AESNI and with the
// re-exec disabled (ONECARD_SAFEENV_REEXEC=1), and checks that the valid
// #560 signature is rejected there if the CPU has BMI2/ADX (accepted
// otherwise), while TestIssue560Vector shows it verifies in the safe
// environment. The child reports its environment, CPU flags, that the key
// parsed and that a control signature verified, so a rejection for another
// reason cannot pass.
func TestIssue560WithoutSafeEnv(t *testing.T) {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		switch name {
		case "GODEBUG", "FORCE_SM4BLOCK_AESNI", "ONECARD_SAFEENV_REEXEC", child560Env:
			continue
		}
		env = append(env, kv)
	}
	env = append(env, "ONECARD_SAFEENV_REEXEC=1", child560Env+"=1")
	cmd := exec.Command(os.Args[0])
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	var rep issue560Report
	_, after, found := bytes.Cut(out, []byte(issue560Marker))
	if !found {
		t.Fatalf("child printed no report:\n%s", out)
	}
	line, _, _ := bytes.Cut(after, []byte("\n"))
	if err := json.Unmarshal(line, &rep); err != nil {
		t.Fatalf("child report %q: %v", line, err)
	}
	t.Logf("child without safe env: %+v", rep)
	if rep.GODEBUG != "" || rep.AESNI != "" {
		t.Fatalf("child ran with GODEBUG=%q FORCE_SM4BLOCK_AESNI=%q; want both unset", rep.GODEBUG, rep.AESNI)
	}
	if !rep.Parsed || !rep.Control {
		t.Fatalf("child could not parse the key or verify a control signature: %+v", rep)
	}
	// In this (safe) process x/sys/cpu honours GODEBUG=cpu.adx=off: the
	// setting is in force here.
	if cpu.X86.HasADX {
		t.Errorf("cpu.X86.HasADX is true in the safe environment (GODEBUG=%q)", os.Getenv("GODEBUG"))
	}
	if rep.ADX && rep.BMI2 {
		if rep.Accepted {
			t.Error("CPU has BMI2/ADX but the #560 vector verified without GODEBUG=cpu.adx=off: " +
				"the upstream bug looks fixed; revisit internal/safeenv and gm-crypto.md")
		}
	} else if !rep.Accepted {
		t.Error("CPU lacks BMI2/ADX, yet the valid #560 signature was rejected")
	}
}
