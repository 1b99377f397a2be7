//go:build !linux

package pcscd

import (
	"context"
	"fmt"
	"runtime"
)

// Daemon is a running private pcscd (Linux only).
type Daemon struct {
	Slots   []Slot
	Dir     string
	ConfDir string
	LogPath string
}

// Start fails: the daemon needs Linux with pcscd 1.9 and vsmartcard-vpcd.
func Start(context.Context, Options) (*Daemon, error) {
	return nil, fmt.Errorf("%w: a private pcscd needs Linux with pcscd and vsmartcard-vpcd, not %s", ErrNotInstalled, runtime.GOOS)
}

// Stop does nothing outside Linux.
func (d *Daemon) Stop() {}

// Restart does nothing outside Linux.
func (d *Daemon) Restart() error { return nil }

// Close does nothing outside Linux.
func (d *Daemon) Close() {}

// PID returns 0 outside Linux.
func (d *Daemon) PID() int { return 0 }

// Log returns "" outside Linux.
func (d *Daemon) Log() string { return "" }

// LogTail returns "" outside Linux.
func (d *Daemon) LogTail(int) string { return "" }
