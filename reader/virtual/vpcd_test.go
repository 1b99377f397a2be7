package virtual_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/onecard-hub/onecard/reader/virtual"
)

// fakeVPCD plays vpcd's side of the protocol on a loopback listener so
// the bridge can be tested without pcscd.
type fakeVPCD struct {
	t    *testing.T
	addr string
	ln   net.Listener
}

func newFakeVPCD(t *testing.T) *fakeVPCD {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	return &fakeVPCD{t: t, addr: ln.Addr().String(), ln: ln}
}

// accept waits for the card to connect.
func (f *fakeVPCD) accept() *vpcdConn {
	f.t.Helper()
	type res struct {
		c   net.Conn
		err error
	}
	ch := make(chan res, 1)
	go func() {
		c, err := f.ln.Accept()
		ch <- res{c, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			f.t.Fatalf("accept: %v", r.err)
		}
		f.t.Cleanup(func() { _ = r.c.Close() })
		return &vpcdConn{t: f.t, c: r.c}
	case <-time.After(10 * time.Second):
		f.t.Fatal("card did not connect to fake vpcd")
		return nil
	}
}

type vpcdConn struct {
	t *testing.T
	c net.Conn
}

func (c *vpcdConn) send(msg []byte) {
	c.t.Helper()
	b := binary.BigEndian.AppendUint16(nil, uint16(len(msg)))
	// Like vpcd: length and payload in two writes.
	if _, err := c.c.Write(b); err != nil {
		c.t.Fatalf("send: %v", err)
	}
	if _, err := c.c.Write(msg); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

// recv reads one frame; it returns an error when the card closed.
func (c *vpcdConn) recv() ([]byte, error) {
	_ = c.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var hdr [2]byte
	if _, err := io.ReadFull(c.c, hdr[:]); err != nil {
		return nil, err
	}
	msg := make([]byte, binary.BigEndian.Uint16(hdr[:]))
	_, err := io.ReadFull(c.c, msg)
	return msg, err
}

func (c *vpcdConn) exchange(msg []byte) []byte {
	c.t.Helper()
	c.send(msg)
	resp, err := c.recv()
	if err != nil {
		c.t.Fatalf("exchange % X: %v", msg, err)
	}
	return resp
}

// expectClosed checks that the card closed the connection without
// sending anything.
func (c *vpcdConn) expectClosed() {
	c.t.Helper()
	msg, err := c.recv()
	if !errors.Is(err, io.EOF) {
		c.t.Fatalf("want connection closed by the card, got % X, %v", msg, err)
	}
}

// runBridge starts b.Run and stops it at the end of the test.
func runBridge(t testing.TB, b *virtual.VPCD) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Run did not return after cancel")
		}
	})
}

func TestVPCDProtocol(t *testing.T) {
	f := newFakeVPCD(t)
	card := &echoCard{}
	b := virtual.NewVPCD(virtual.VPCDOptions{Addr: f.addr, Card: card})
	runBridge(t, b)
	c := f.accept()
	// pcscd's insertion sequence: get ATR twice, power on, get ATR.
	for _, tc := range []struct {
		name string
		msg  []byte
		want []byte // nil: no reply expected
	}{
		{"get ATR", []byte{0x04}, atrEcho},
		{"get ATR again", []byte{0x04}, atrEcho},
		{"power on", []byte{0x01}, nil},
		{"get ATR powered", []byte{0x04}, atrEcho},
		{"SELECT", selectSSSE, []byte{0x90, 0x00}},
		{"echo", mustHex("00DC000002CAFE"), mustHex("CAFE9000")},
		{"reset", []byte{0x02}, nil},
		{"GET CHALLENGE", mustHex("0084000004"), mustHex("010203049000")},
		{"power off", []byte{0x00}, nil},
	} {
		if tc.want == nil {
			c.send(tc.msg)
			continue
		}
		if got := c.exchange(tc.msg); !bytes.Equal(got, tc.want) {
			t.Fatalf("%s: got % X, want % X", tc.name, got, tc.want)
		}
	}
	if err := b.WaitConnected(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st := b.Status(); !st.Inserted || !st.Connected || st.APDUs != 3 {
		t.Fatalf("Status = %+v, want inserted, connected, 3 APDUs", st)
	}
}

func TestVPCDInsertRemove(t *testing.T) {
	f := newFakeVPCD(t)
	card := &echoCard{}
	b := virtual.NewVPCD(virtual.VPCDOptions{Addr: f.addr})
	if b.Card() != nil || b.Status().Inserted {
		t.Fatal("bridge without Options.Card starts with a card")
	}
	runBridge(t, b)
	b.Insert(nil) // nothing to insert yet
	b.Insert(card)
	c := f.accept()
	if got := c.exchange([]byte{0x04}); !bytes.Equal(got, atrEcho) {
		t.Fatalf("ATR % X", got)
	}
	b.Remove()
	c.expectClosed()
	if st := b.Status(); st.Inserted || st.Connected {
		t.Fatalf("after Remove: %+v", st)
	}
	b.Insert(nil) // the same card again
	c = f.accept()
	if got := c.exchange(selectSSSE); !bytes.Equal(got, []byte{0x90, 0x00}) {
		t.Fatalf("SELECT after re-insert: % X", got)
	}
	// Swapping cards: the old connection closes, the new card dials.
	b.Insert(newT0Card())
	c.expectClosed()
	c = f.accept()
	if got := c.exchange([]byte{0x04}); !bytes.Equal(got, atrT0) {
		t.Fatalf("ATR after swap % X, want % X", got, atrT0)
	}
}

func TestVPCDPull(t *testing.T) {
	for _, tc := range []struct {
		name        string
		arm         func(b *virtual.VPCD, c *echoCard)
		wantApplied int
	}{
		{"pull-next: the card never sees the APDU", func(b *virtual.VPCD, _ *echoCard) { b.PullDuring(1) }, 1},
		{"torn: the card applies it, no answer", func(_ *virtual.VPCD, c *echoCard) { c.SetTorn(true) }, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeVPCD(t)
			card := &echoCard{}
			b := virtual.NewVPCD(virtual.VPCDOptions{Addr: f.addr, Card: card})
			runBridge(t, b)
			c := f.accept()
			c.send([]byte{0x01})
			if got := c.exchange(selectSSSE); !bytes.Equal(got, []byte{0x90, 0x00}) {
				t.Fatalf("first APDU: % X", got)
			}
			tc.arm(b, card)
			c.send(selectSSSE)
			c.expectClosed()
			if got := card.Applied(); got != tc.wantApplied {
				t.Fatalf("card applied %d APDUs, want %d", got, tc.wantApplied)
			}
			if st := b.Status(); st.Inserted || st.Connected {
				t.Fatalf("after pull: %+v, want empty slot", st)
			}
			// The slot stays empty until Insert.
			b.Insert(nil)
			c = f.accept()
			if got := c.exchange([]byte{0x04}); !bytes.Equal(got, atrEcho) {
				t.Fatalf("ATR after re-insert % X", got)
			}
		})
	}
}

func TestVPCDRedial(t *testing.T) {
	f := newFakeVPCD(t)
	addr := f.addr
	b := virtual.NewVPCD(virtual.VPCDOptions{Addr: addr, Card: &echoCard{}, RetryMin: 5 * time.Millisecond, RetryMax: 50 * time.Millisecond})
	runBridge(t, b)
	c := f.accept()
	c.exchange([]byte{0x04})
	// vpcd goes away (pcscd stopped) and comes back on the same port.
	_ = f.ln.Close()
	_ = c.c.Close()
	time.Sleep(100 * time.Millisecond) // a few failed dials
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("re-listen on %s: %v", addr, err)
	}
	f.ln = ln
	t.Cleanup(func() { _ = ln.Close() })
	c = f.accept()
	if got := c.exchange([]byte{0x04}); !bytes.Equal(got, atrEcho) {
		t.Fatalf("ATR after redial % X", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := b.WaitConnected(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestVPCDRun(t *testing.T) {
	if def := virtual.NewVPCD(virtual.VPCDOptions{}); def.Addr() != virtual.DefaultVPCDAddr {
		t.Fatalf("default Addr() = %q", def.Addr())
	}
	f := newFakeVPCD(t)
	b := virtual.NewVPCD(virtual.VPCDOptions{Addr: f.addr, Card: &echoCard{}})
	runBridge(t, b)
	f.accept()
	if err := b.Run(context.Background()); !errors.Is(err, virtual.ErrAlreadyRunning) {
		t.Fatalf("second Run: %v, want ErrAlreadyRunning", err)
	}
}

func TestVPCDUnreachable(t *testing.T) {
	// Reserve a port nobody listens on.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	b := virtual.NewVPCD(virtual.VPCDOptions{Addr: addr, Card: &echoCard{}, RetryMin: time.Millisecond, RetryMax: 5 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	// Run keeps retrying; the card never connects.
	wctx, wcancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer wcancel()
	if err := b.WaitConnected(wctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitConnected: %v, want deadline exceeded", err)
	}
	// Remove and Insert while dialling do not block.
	b.Remove()
	b.Insert(nil)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}
