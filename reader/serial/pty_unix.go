//go:build unix

package serial

import (
	"os"

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
	if err := sc.Control(func(fd uintptr) { nfd, derr = unix.Dup(int(fd)) }); err != nil {
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
