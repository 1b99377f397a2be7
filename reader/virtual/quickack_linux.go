//go:build linux

package virtual

import (
	"net"
	"syscall"
)

// quickAcker re-arms TCP_QUICKACK on a connection. Linux clears the flag
// after it sends an ACK, so it is set again before every read: vpcd writes
// a frame's length and payload as two segments, and with delayed ACKs
// (Nagle on vpcd's side waiting for our ACK) every APDU would stall ~40 ms.
type quickAcker struct{ rc syscall.RawConn }

func newQuickAcker(c net.Conn) quickAcker {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return quickAcker{}
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return quickAcker{}
	}
	return quickAcker{rc: rc}
}

// arm sets TCP_QUICKACK; errors (a closed socket, a non-TCP conn) are
// ignored because the flag is only a latency optimisation.
func (q quickAcker) arm() {
	if q.rc == nil {
		return
	}
	_ = q.rc.Control(func(fd uintptr) {
		_ = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_QUICKACK, 1)
	})
}
