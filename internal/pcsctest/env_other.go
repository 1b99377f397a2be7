//go:build !linux

package pcsctest

import (
	"runtime"
	"testing"
)

// Env is a running private pcscd with vpcd readers (Linux only).
type Env struct {
	Slots   []Slot
	ConfDir string
	LogPath string
}

// Start fails the test: the harness needs Linux with pcscd 1.9 and
// vsmartcard-vpcd (run make deps on a Linux machine).
func Start(tb testing.TB, _ Options) *Env {
	tb.Helper()
	tb.Fatalf("pcsctest: needs Linux with pcscd and vsmartcard-vpcd, not %s (run make deps on Linux)", runtime.GOOS)
	return nil
}

// Stop does nothing outside Linux.
func (e *Env) Stop(testing.TB) {}

// Restart does nothing outside Linux.
func (e *Env) Restart(testing.TB) {}

// PID returns 0 outside Linux.
func (e *Env) PID() int { return 0 }

// Log returns "" outside Linux.
func (e *Env) Log() string { return "" }
