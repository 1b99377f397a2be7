//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package serial

import (
	"testing"

	"golang.org/x/sys/unix"
)

// TestPTYMasterCloseOnExec: the pty master (re-opened by pollable with
// dup, which clears close-on-exec) is not inherited by processes the
// emulator's owner starts.
func TestPTYMasterCloseOnExec(t *testing.T) {
	p, err := OpenPTY()
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	sc, err := p.Master().SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var flags int
	var ferr error
	if err := sc.Control(func(fd uintptr) { flags, ferr = unix.FcntlInt(fd, unix.F_GETFD, 0) }); err != nil {
		t.Fatal(err)
	}
	if ferr != nil {
		t.Fatal(ferr)
	}
	if flags&unix.FD_CLOEXEC == 0 {
		t.Fatalf("pty master flags %#x: FD_CLOEXEC not set", flags)
	}
}
