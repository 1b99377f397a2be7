package record

import (
	"os"
	"testing"

	"github.com/onecard-hub/onecard/internal/safeenv"
)

// TestMain re-executes the test binary with the GM crypto environment
// (GODEBUG=cpu.adx=off, FORCE_SM4BLOCK_AESNI=1) the product runs with.
func TestMain(m *testing.M) {
	safeenv.Ensure()
	os.Exit(m.Run())
}
