//go:build unix

package serial

import (
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// pollable re-opens f's descriptor in non-blocking mode so that the Go
// runtime poller manages it (creack/pty's ioctls leave it blocking, and a
// blocking read cannot be interrupted by Close or a deadline).
func pollable(f *os.File) (*os.File, error) {
	sc, err := f.SyscallConn()
	if err != nil {
		return nil, err
	}
	var nfd int
	var derr error
	// dup clears close-on-exec: set it again (under ForkLock, as package
	// os does) so that processes the caller starts do not inherit the
	// master. An inherited master keeps the pty open after Close and lets
	// every child hold the line.
	dup := func(fd uintptr) {
		syscall.ForkLock.RLock()
		defer syscall.ForkLock.RUnlock()
		if nfd, derr = unix.Dup(int(fd)); derr == nil {
			syscall.CloseOnExec(nfd)
		}
	}
	if err := sc.Control(dup); err != nil {
		return nil, err
	}
	if derr != nil {
		return nil, derr
	}
	name := f.Name()
	_ = f.Close()
	if err := unix.SetNonblock(nfd, true); err != nil {
		_ = unix.Close(nfd)
		return nil, err
	}
	return os.NewFile(uintptr(nfd), name), nil
}
