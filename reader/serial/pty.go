package serial

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"

	"github.com/creack/pty"
)

// PTY is a pseudo-terminal pair: the emulator serves the master side, the
// host opens Path (the slave device, e.g. /dev/pts/3) like any serial port.
// A pty does not enforce baud rate or parity.
type PTY struct {
	// Path is the device the host side opens.
	Path string

	master *os.File
	slave  *os.File // kept open so master reads do not fail before the host opens Path

	closeOnce sync.Once
	done      chan struct{} // closed when ServePTY's goroutine ends
	serveErr  error
}

// OpenPTY allocates a pty pair (github.com/creack/pty; Linux, macOS, BSD).
// The master is made pollable, so closing it interrupts a blocked read.
func OpenPTY() (*PTY, error) {
	m, s, err := pty.Open()
	if err != nil {
		return nil, fmt.Errorf("open pty: %w", err)
	}
	pm, err := pollable(m)
	if err != nil {
		_ = s.Close()
		return nil, fmt.Errorf("open pty: %w", err)
	}
	return &PTY{Path: s.Name(), master: pm, slave: s}, nil
}

// Master returns the master side (the emulator's end of the line).
func (p *PTY) Master() *os.File { return p.master }

// CloseMaster closes the master side only: the host's next read or write
// fails as if the device were unplugged.
func (p *PTY) CloseMaster() error { return p.master.Close() }

// Close closes both sides and, for a pty from ServePTY, waits for the
// emulator to stop.
func (p *PTY) Close() error {
	var err error
	p.closeOnce.Do(func() {
		err = errors.Join(ignoreClosed(p.master.Close()), ignoreClosed(p.slave.Close()))
		if p.done != nil {
			<-p.done
		}
	})
	return err
}

func ignoreClosed(err error) error {
	if errors.Is(err, os.ErrClosed) {
		return nil
	}
	return err
}

// ServePTY allocates a pty and serves the emulator on its master in a
// goroutine until ctx ends or the pty is closed. Open the returned
// PTY.Path on the host side; Close the PTY when done.
func (e *Emulator) ServePTY(ctx context.Context) (*PTY, error) {
	p, err := OpenPTY()
	if err != nil {
		return nil, err
	}
	p.done = make(chan struct{})
	go func() {
		defer close(p.done)
		p.serveErr = e.Serve(ctx, p.master)
	}()
	return p, nil
}
