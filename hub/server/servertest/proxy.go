package servertest

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
)

// Direction of a proxied byte stream.
type Direction int

// Directions.
const (
	Up   Direction = iota // agent → hub
	Down                  // hub → agent
)

// CutProxy is a loopback TCP proxy for plain ws connections that counts
// WebSocket data frames and, on the first connection only, cuts both sides
// once CutAfter frames have passed in direction Dir (after forwarding
// Partial bytes of the next frame when Partial > 0). Later connections
// pass untouched. CutAfter 0 never cuts.
type CutProxy struct {
	Dir      Direction
	CutAfter int
	Partial  int

	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  int
	cut    bool
	wg     sync.WaitGroup
}

// NewCutProxy listens on 127.0.0.1 and forwards to target (host:port);
// it is closed when the test ends.
func NewCutProxy(t testing.TB, target string, dir Direction, after, partial int) *CutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &CutProxy{Dir: dir, CutAfter: after, Partial: partial, ln: ln, target: target}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(func() { ln.Close(); p.wg.Wait() })
	return p
}

// Addr returns the proxy's host:port.
func (p *CutProxy) Addr() string { return p.ln.Addr().String() }

// Cut reports whether the proxy has cut a connection.
func (p *CutProxy) Cut() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cut
}

func (p *CutProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		p.conns++
		first := p.conns == 1
		p.mu.Unlock()
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.serve(c, first && p.CutAfter > 0)
		}()
	}
}

func (p *CutProxy) serve(c net.Conn, cutting bool) {
	defer c.Close()
	s, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	defer s.Close()
	var once sync.Once
	kill := func() {
		once.Do(func() {
			p.mu.Lock()
			p.cut = true
			p.mu.Unlock()
			c.Close()
			s.Close()
		})
	}
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn, d Direction) {
		defer func() { done <- struct{}{} }()
		if !cutting || d != p.Dir {
			io.Copy(dst, src)
			dst.Close()
			src.Close()
			return
		}
		if err := forwardFrames(dst, src, p.CutAfter, p.Partial); err == errCut {
			kill()
		}
		dst.Close()
		src.Close()
	}
	go pipe(s, c, Up)
	go pipe(c, s, Down)
	<-done
	<-done
}

var errCut = errors.New("cut")

// forwardFrames copies the HTTP upgrade head, then WebSocket frames,
// returning errCut after n data frames (plus partial bytes of the next).
func forwardFrames(dst io.Writer, src io.Reader, n, partial int) error {
	r := bufio.NewReader(src)
	// HTTP head up to the blank line.
	var head []byte
	for !bytes.HasSuffix(head, []byte("\r\n\r\n")) {
		b, err := r.ReadByte()
		if err != nil {
			return err
		}
		head = append(head, b)
	}
	if _, err := dst.Write(head); err != nil {
		return err
	}
	count := 0
	for {
		frame, data, err := readFrame(r)
		if err != nil {
			return err
		}
		if data && count == n {
			if partial > 0 {
				dst.Write(frame[:min(partial, len(frame)-1)])
			}
			return errCut
		}
		if _, err := dst.Write(frame); err != nil {
			return err
		}
		if data {
			count++
		}
	}
}

// readFrame reads one WebSocket frame and reports whether it is a data
// frame (text, binary or continuation) rather than a control frame.
func readFrame(r *bufio.Reader) ([]byte, bool, error) {
	h := make([]byte, 2, 14)
	if _, err := io.ReadFull(r, h); err != nil {
		return nil, false, err
	}
	opcode := h[0] & 0x0F
	masked := h[1]&0x80 != 0
	n := uint64(h[1] & 0x7F)
	switch n {
	case 126:
		ext := make([]byte, 2)
		if _, err := io.ReadFull(r, ext); err != nil {
			return nil, false, err
		}
		h = append(h, ext...)
		n = uint64(binary.BigEndian.Uint16(ext))
	case 127:
		ext := make([]byte, 8)
		if _, err := io.ReadFull(r, ext); err != nil {
			return nil, false, err
		}
		h = append(h, ext...)
		n = binary.BigEndian.Uint64(ext)
	}
	if masked {
		n += 4
	}
	if n > 64<<20 {
		return nil, false, errors.New("frame too large for the proxy")
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return nil, false, err
	}
	return append(h, body...), opcode < 8, nil
}
