// Package pcsctest runs a private pcscd with vsmartcard's vpcd driver for
// tests (internal/pcscd, bound to a testing.TB), so simulated cards (see
// reader/virtual.VPCD) can be driven through the real PC/SC stack.
//
// Usage:
//
//	env := pcsctest.Start(t, pcsctest.Options{})      // pcscd with one vpcd reader
//	bridge := virtual.NewVPCD(virtual.VPCDOptions{Addr: env.Slots[0].Addr, Card: card})
//	go bridge.Run(ctx)
//	// ... scard.EstablishContext(); ctx.Connect(env.Slots[0].Name, ...)
//
// Start takes the machine-wide pcscd lock (test binaries of different
// packages run by `go test ./...` in parallel take turns), refuses a pcscd
// it did not start, and fails the test (never skips) when pcscd or the
// vpcd driver is missing, with the hint "run make deps". t.Cleanup stops
// pcscd, removes its files and releases the lock; pcscd's log is printed
// when the test failed. See internal/pcscd for the readers, slots and
// ports.
package pcsctest

import (
	"context"
	"testing"

	"github.com/onecard-hub/onecard/internal/pcscd"
)

// Constants of the harness (internal/pcscd's).
const (
	LockPath     = pcscd.LockPath
	DriverPath   = pcscd.DriverPath
	RunDir       = pcscd.RunDir
	FirstChannel = pcscd.FirstChannel
	MaxReaders   = pcscd.MaxReaders
)

// Options configures Start (Owner defaults to the test's name).
type Options = pcscd.Options

// Slot is one virtual card slot of the private pcscd.
type Slot = pcscd.Slot

// Env is a running private pcscd with vpcd readers.
type Env struct {
	*pcscd.Daemon
}

// Start starts pcscd with Options.Readers vpcd readers and waits until
// they are listed; everything is undone by tb.Cleanup. It fails the test
// when pcscd is missing, when a foreign pcscd runs, or when pcscd does
// not come up in time.
func Start(tb testing.TB, opts Options) *Env {
	tb.Helper()
	if opts.Owner == "" {
		opts.Owner = "test " + tb.Name()
	}
	d, err := pcscd.Start(context.Background(), opts)
	if err != nil {
		tb.Fatalf("pcsctest: %v (run make deps if something is not installed)", err)
	}
	tb.Cleanup(func() {
		if tb.Failed() {
			tb.Logf("pcsctest: pcscd log %s:\n%s", d.LogPath, d.LogTail(64<<10))
		}
		d.Close()
	})
	return &Env{d}
}

// Stop stops pcscd (SIGTERM, then SIGKILL) and waits for it to exit; the
// lock stays held. Clients then get scard.ErrNoService.
func (e *Env) Stop(tb testing.TB) {
	tb.Helper()
	e.Daemon.Stop()
}

// Restart stops pcscd if it runs and starts it again with the same
// configuration, waiting until the readers are listed. Cards connected
// through vpcd lose their connection and have to redial.
func (e *Env) Restart(tb testing.TB) {
	tb.Helper()
	if err := e.Daemon.Restart(); err != nil {
		tb.Fatalf("pcsctest: %v", err)
	}
}

// WaitCard waits until the PC/SC reader name reports a card present
// (present = true) or empty; see pcscd.WaitCard.
var WaitCard = pcscd.WaitCard
