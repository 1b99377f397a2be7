package serial

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/onecard-hub/onecard/reader"
	"github.com/onecard-hub/onecard/reader/serial/profile"
)

// memPort is a scripted Port: each Read returns the next chunk; when the
// chunks run out it returns err, or (0, nil) at once when err is nil — the
// worst case of go.bug.st/serial's timeout behaviour.
type memPort struct {
	mu      sync.Mutex
	chunks  [][]byte
	err     error
	reads   int
	written bytes.Buffer
}

func (m *memPort) Read(p []byte) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.reads++
	if len(m.chunks) == 0 {
		return 0, m.err
	}
	n := copy(p, m.chunks[0])
	if m.chunks[0] = m.chunks[0][n:]; len(m.chunks[0]) == 0 {
		m.chunks = m.chunks[1:]
	}
	return n, nil
}

func (m *memPort) Write(p []byte) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.written.Write(p)
}

func (m *memPort) Close() error                       { return nil }
func (m *memPort) SetReadTimeout(time.Duration) error { return nil }
func (m *memPort) ResetInputBuffer() error            { return nil }

func framingOf(t testing.TB, name string) *profile.Framing {
	return &loadProfile(t, name).Framing
}

func TestSerialReadFrame(t *testing.T) {
	f := framingOf(t, "crt310.yaml")
	good := mustHex("02 00 05 31 30 4B 30 30 03 4E")
	cases := []struct {
		name   string
		chunks [][]byte
		err    error
		want   error // nil: frame decodes to good's text
	}{
		{"whole", [][]byte{good}, nil, nil},
		{"byte by byte", split(good, 1), nil, nil},
		{"garbage and a false start first", [][]byte{mustHex("FF 00 13"), mustHex("02 FF FF 7E 02"), good}, nil, nil},
		{"ETX inside the data", [][]byte{mustHex("02 00 07 37 31 59 03 03 02 03 03 58")}, nil, nil},
		{"bad checksum", [][]byte{mustHex("02 00 05 31 30 4B 30 30 03 4F")}, nil, profile.ErrBadChecksum},
		{"cut short", [][]byte{good[:6]}, nil, errShort},
		{"silence", nil, nil, reader.ErrTimeout},
		{"garbage beyond the bound", [][]byte{bytes.Repeat([]byte{0xFF}, 300)}, nil, ErrProtocol},
		{"unplugged", [][]byte{good[:3]}, syscall.EIO, reader.ErrReaderGone},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			port := &memPort{chunks: c.chunks, err: c.err}
			l := &line{port: port}
			start := time.Now()
			fr, err := l.readFrame(context.Background(), f, 60*time.Millisecond, 30*time.Millisecond, 256)
			if c.want == nil {
				if err != nil {
					t.Fatalf("readFrame: %v", err)
				}
				if c.name != "ETX inside the data" && !bytes.Equal(fr.Text, good[3:8]) {
					t.Fatalf("text % X", fr.Text)
				}
				return
			}
			if !errors.Is(err, c.want) {
				t.Fatalf("readFrame: %v, want %v", err, c.want)
			}
			// (0, nil) reads must not spin: a few dozen at most, however
			// fast the port returns them.
			if port.reads > 100 {
				t.Errorf("%d reads in %v", port.reads, time.Since(start))
			}
		})
	}
}

func TestSerialLineGoneIsSticky(t *testing.T) {
	port := &memPort{err: syscall.EIO}
	l := &line{port: port}
	if err := l.fill(context.Background(), time.Now().Add(time.Second), "read"); !errors.Is(err, reader.ErrReaderGone) {
		t.Fatalf("fill: %v", err)
	}
	reads := port.reads
	if err := l.write([]byte{1}); !errors.Is(err, reader.ErrReaderGone) {
		t.Errorf("write after loss: %v", err)
	}
	if _, err := l.readControl(context.Background(), time.Second, 10, 0x06); !errors.Is(err, reader.ErrReaderGone) || port.reads != reads {
		t.Errorf("readControl after loss: %v (reads %d → %d)", err, reads, port.reads)
	}
}

func TestSerialReadControl(t *testing.T) {
	l := &line{port: &memPort{chunks: [][]byte{{0x00, 0xFF, 0x15}}}}
	c, err := l.readControl(context.Background(), 50*time.Millisecond, 8, 0x06, 0x15)
	if err != nil || c != 0x15 {
		t.Errorf("readControl = %02X, %v", c, err)
	}
	l = &line{port: &memPort{chunks: [][]byte{bytes.Repeat([]byte{0}, 20)}}}
	if _, err := l.readControl(context.Background(), 50*time.Millisecond, 8, 0x06); !errors.Is(err, ErrProtocol) {
		t.Errorf("garbage instead of ACK: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	l = &line{port: &memPort{}}
	if _, err := l.readControl(ctx, time.Second, 8, 0x06); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}

func split(b []byte, n int) [][]byte {
	var out [][]byte
	for len(b) > n {
		out = append(out, b[:n])
		b = b[n:]
	}
	return append(out, b)
}

// FuzzReadFrame drives the stream reader with arbitrary bytes, cut into
// arbitrary chunks, for each shipped framing. It must return a frame or a
// classified error, never panic or hang.
func FuzzReadFrame(f *testing.F) {
	var framings []*profile.Framing
	for i, n := range shipped {
		p := loadProfile(f, n)
		framings = append(framings, &p.Framing)
		for _, tc := range p.Tests {
			for _, x := range tc.Exchanges {
				f.Add(uint8(i), uint8(3), append([]byte{0xFF, 0x00}, x.RX...))
				f.Add(uint8(i), uint8(0), x.TX)
			}
		}
	}
	f.Fuzz(func(t *testing.T, which, chunk uint8, data []byte) {
		fr := framings[int(which)%len(framings)]
		port := &memPort{chunks: split(data, int(chunk)%7+1), err: syscall.EIO}
		l := &line{port: port}
		for i := 0; i < 4; i++ {
			got, err := l.readFrame(context.Background(), fr, 5*time.Millisecond, 5*time.Millisecond, 64)
			if err == nil {
				again, eerr := fr.Encode(got.Addr, got.Text)
				if eerr != nil || !bytes.Contains(data, again) {
					t.Fatalf("frame % X not in the input (%v)", again, eerr)
				}
				continue
			}
			if !errors.Is(err, reader.ErrReaderGone) && !errors.Is(err, profile.ErrBadChecksum) &&
				!errors.Is(err, errShort) && !errors.Is(err, ErrProtocol) && !errors.Is(err, reader.ErrTimeout) {
				t.Fatalf("unclassified error: %v", err)
			}
			if errors.Is(err, reader.ErrReaderGone) {
				return
			}
		}
	})
}
