package sm

import (
	"os"
	"testing"

	"github.com/onecard-hub/onecard/internal/safeenv"
)

// TestMain runs the tests the way the product runs: when the environment
// lacks GODEBUG=cpu.adx=off or FORCE_SM4BLOCK_AESNI=1, safeenv.Ensure
// re-executes this test binary with them (the child's output and exit code
// become ours), exactly as cmd/onecard's main does. Setting
// ONECARD_SAFEENV_REEXEC disables the re-exec; TestIssue560WithoutSafeEnv
// uses that (and ONECARD_SM_ISSUE560_CHILD) to run a child in the unsafe
// environment on purpose.
func TestMain(m *testing.M) {
	if os.Getenv(child560Env) == "1" {
		issue560Child() // does not return
	}
	safeenv.Ensure()
	os.Exit(m.Run())
}
