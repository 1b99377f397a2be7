package serial

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
	"time"

	bugst "go.bug.st/serial"

	"github.com/onecard-hub/onecard/reader"
	"github.com/onecard-hub/onecard/reader/serial/profile"
)

// Port is the part of go.bug.st/serial.Port the link layer uses. A read
// timeout must make Read return (0, nil), as go.bug.st/serial does.
type Port interface {
	io.ReadWriteCloser
	SetReadTimeout(t time.Duration) error
	ResetInputBuffer() error
}

// pollSlice bounds one blocking Read so that context cancellation is seen
// promptly even without a context deadline.
const pollSlice = 100 * time.Millisecond

// errShort marks a frame cut short by the inter-character timeout.
var errShort = errors.New("frame cut short")

// line wraps a Port with a pushback buffer, deadlines and error mapping.
type line struct {
	port Port
	buf  []byte // received, not yet consumed
	rbuf [512]byte
	gone error // set once the port failed; every later call returns it
}

// fail records a fatal port error.
func (l *line) fail(op string, err error) error {
	if l.gone == nil {
		l.gone = fmt.Errorf("%s: %v: %w", op, err, reader.ErrReaderGone)
	}
	return l.gone
}

// isGone reports whether err means the device is unusable.
func isGone(err error) bool {
	var pe *bugst.PortError
	if errors.As(err, &pe) {
		return true // PortClosed, and anything else at this stage
	}
	return errors.Is(err, syscall.EIO) || errors.Is(err, syscall.ENXIO) || errors.Is(err, syscall.ENODEV) ||
		errors.Is(err, os.ErrClosed) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrClosedPipe)
}

// ctxError turns a context error into one that also wraps reader.ErrTimeout
// when a deadline passed.
func ctxError(what string, err error) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s: %w (%w)", what, reader.ErrTimeout, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// fill reads at least one byte into l.buf before deadline. It returns an
// error wrapping reader.ErrTimeout when the deadline passes,
// reader.ErrReaderGone when the port fails, or the context's error.
func (l *line) fill(ctx context.Context, deadline time.Time, what string) error {
	if l.gone != nil {
		return l.gone
	}
	for {
		if err := ctx.Err(); err != nil {
			return ctxError(what, err)
		}
		d := time.Until(deadline)
		if d <= 0 {
			return fmt.Errorf("%s: %w", what, reader.ErrTimeout)
		}
		if d > pollSlice {
			d = pollSlice
		}
		if err := l.port.SetReadTimeout(d); err != nil {
			return l.fail("set read timeout", err)
		}
		start := time.Now()
		n, err := l.port.Read(l.rbuf[:])
		if n > 0 {
			l.buf = append(l.buf, l.rbuf[:n]...)
			return nil
		}
		if err != nil {
			// PortClosed, EIO (unplugged, pty master closed) and any
			// other read error leave the line unusable.
			return l.fail("read", err)
		}
		// (0, nil) is go.bug.st/serial's timeout. A port that returns it
		// at once must not make us spin.
		if time.Since(start) < d/2 {
			select {
			case <-ctx.Done():
			case <-time.After(d / 2):
			}
		}
	}
}

func (l *line) write(b []byte) error {
	if l.gone != nil {
		return l.gone
	}
	for len(b) > 0 {
		n, err := l.port.Write(b)
		if err != nil {
			return l.fail("write", err)
		}
		if n <= 0 {
			return l.fail("write", io.ErrShortWrite)
		}
		b = b[n:]
	}
	return nil
}

// discard drops buffered and pending input before a new command.
func (l *line) discard() error {
	l.buf = l.buf[:0]
	if l.gone != nil {
		return l.gone
	}
	if err := l.port.ResetInputBuffer(); err != nil && isGone(err) {
		return l.fail("reset input", err)
	}
	return nil
}

// readControl waits for one of the control bytes in want, skipping up to
// maxGarbage other bytes.
func (l *line) readControl(ctx context.Context, timeout time.Duration, maxGarbage int, want ...byte) (byte, error) {
	deadline := time.Now().Add(timeout)
	skipped := 0
	for {
		for len(l.buf) == 0 {
			if err := l.fill(ctx, deadline, "wait for ACK"); err != nil {
				return 0, err
			}
		}
		c := l.buf[0]
		l.buf = l.buf[1:]
		if bytes.IndexByte(want, c) >= 0 {
			return c, nil
		}
		if skipped++; skipped > maxGarbage {
			return 0, fmt.Errorf("wait for ACK: %d unexpected bytes: %w", skipped, ErrProtocol)
		}
	}
}

// readFrame reads one frame: it waits up to first for the start byte,
// skipping (at most maxGarbage) bytes that cannot begin a frame, then cuts
// the frame by its length field with interChar between bytes. A false
// start (impossible length, missing end marker) is skipped as garbage. It
// returns the frame, or an error wrapping profile.ErrBadChecksum or
// errShort (the link layer asks again), reader.ErrTimeout, ErrProtocol or
// reader.ErrReaderGone.
func (l *line) readFrame(ctx context.Context, f *profile.Framing, first, interChar time.Duration, maxGarbage int) (profile.Frame, error) {
	deadline := time.Now().Add(first)
	skipped := 0
	skip := func(n int) error {
		l.buf = l.buf[n:]
		if skipped += n; skipped > maxGarbage {
			return fmt.Errorf("read frame: no frame in %d bytes: %w", skipped, ErrProtocol)
		}
		return nil
	}
	for {
		for len(l.buf) == 0 {
			if err := l.fill(ctx, deadline, "wait for response"); err != nil {
				return profile.Frame{}, err
			}
		}
		i := bytes.IndexByte(l.buf, f.Start[0])
		if i < 0 {
			i = len(l.buf)
		}
		if err := skip(i); err != nil {
			return profile.Frame{}, err
		}
		if len(l.buf) == 0 {
			continue
		}
		// A frame has started: the inter-character timer runs from here.
		need := f.HeaderLen()
		total := 0
		for {
			for len(l.buf) < need {
				if err := l.fill(ctx, time.Now().Add(interChar), "read frame"); err != nil {
					if errors.Is(err, reader.ErrTimeout) && ctx.Err() == nil {
						l.buf = l.buf[:0]
						return profile.Frame{}, fmt.Errorf("read frame: %w", errShort)
					}
					return profile.Frame{}, err
				}
			}
			if total != 0 {
				break
			}
			n, err := f.FrameLen(l.buf)
			if err != nil {
				break // false start
			}
			total, need = n, n
		}
		if total == 0 {
			if err := skip(1); err != nil {
				return profile.Frame{}, err
			}
			continue
		}
		fr, n, err := f.Decode(l.buf[:total])
		switch {
		case err == nil:
			l.buf = l.buf[n:]
			return fr, nil
		case errors.Is(err, profile.ErrBadChecksum):
			l.buf = l.buf[total:]
			return profile.Frame{}, err
		default: // bad end marker: a false start
			if err := skip(1); err != nil {
				return profile.Frame{}, err
			}
		}
	}
}
