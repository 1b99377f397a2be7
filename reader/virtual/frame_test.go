package virtual

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"testing/iotest"
	"time"
)

// fuzzCard is a deterministic card for the decoder tests: it echoes the
// command with 9000, tears on INS 0xEE, errors on INS 0xEF and answers
// without status word on INS 0xED.
type fuzzCard struct {
	mu sync.Mutex
	on bool
}

func (c *fuzzCard) PowerOn() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.on = true
	return []byte{0x3B, 0x02, 0x14, 0x50}
}

func (c *fuzzCard) PowerOff() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.on = false
}

func (c *fuzzCard) Transmit(cmd []byte) ([]byte, error) {
	if len(cmd) >= 2 {
		switch cmd[1] {
		case 0xEE:
			return nil, ErrTorn
		case 0xEF:
			return nil, errors.New("simulator bug")
		case 0xED:
			return []byte{0x90}, nil
		}
	}
	return append(append([]byte(nil), cmd...), 0x90, 0x00), nil
}

func h(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

func TestReadFrame(t *testing.T) {
	for _, tc := range []struct {
		name    string
		in      []byte
		want    [][]byte
		wantErr error
	}{
		{"power on", h("000101"), [][]byte{{0x01}}, io.EOF},
		{"get ATR then APDU", h("000104" + "0005" + "0084000008"), [][]byte{{0x04}, h("0084000008")}, io.EOF},
		{"empty frame", h("0000"), [][]byte{{}}, io.EOF},
		{"truncated header", h("00"), nil, io.ErrUnexpectedEOF},
		{"truncated payload", h("0005008400"), nil, io.ErrUnexpectedEOF},
		{"nothing", nil, nil, io.EOF},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// One byte per Read: the decoder must cope with short reads.
			r := iotest.OneByteReader(bytes.NewReader(tc.in))
			var got [][]byte
			var err error
			for {
				var msg []byte
				if msg, err = readFrame(r); err != nil {
					break
				}
				got = append(got, msg)
			}
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("final error %v, want %v", err, tc.wantErr)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %d frames % X, want %d", len(got), got, len(tc.want))
			}
			for i := range got {
				if !bytes.Equal(got[i], tc.want[i]) {
					t.Fatalf("frame %d = % X, want % X", i, got[i], tc.want[i])
				}
			}
		})
	}
}

func TestAppendFrame(t *testing.T) {
	for _, tc := range []struct {
		n       int
		wantErr error
	}{{0, nil}, {2, nil}, {0xFFFF, nil}, {0x10000, ErrFrameTooLong}} {
		b, err := appendFrame(nil, make([]byte, tc.n))
		if !errors.Is(err, tc.wantErr) {
			t.Fatalf("appendFrame(%d bytes): %v, want %v", tc.n, err, tc.wantErr)
		}
		if err == nil && (len(b) != tc.n+2 || int(b[0])<<8|int(b[1]) != tc.n) {
			t.Fatalf("appendFrame(%d bytes): header % X, len %d", tc.n, b[:2], len(b))
		}
	}
}

func TestCardSessionHandle(t *testing.T) {
	atr := []byte{0x3B, 0x02, 0x14, 0x50}
	for _, tc := range []struct {
		name    string
		msg     []byte
		want    []byte
		wantAct action
		powered bool
	}{
		{"power off", []byte{0x00}, nil, actNone, false},
		{"power on", []byte{0x01}, nil, actNone, true},
		{"reset", []byte{0x02}, nil, actNone, true},
		{"unused 03", []byte{0x03}, nil, actNone, false},
		{"get ATR", []byte{0x04}, atr, actReply, false},
		{"unknown FF", []byte{0xFF}, nil, actNone, false},
		{"empty", []byte{}, nil, actNone, false},
		{"APDU", h("00A4040000"), h("00A40400009000"), actReply, false},
		{"two-byte APDU", h("0084"), h("00849000"), actReply, false},
		{"torn", h("00EE000000"), nil, actTorn, false},
		{"card error", h("00EF000000"), swNoDiagnosis, actReply, false},
		{"no status word", h("00ED000000"), swNoDiagnosis, actReply, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cs := newCardSession(&fuzzCard{})
			var reported error
			cs.onError = func(_ string, err error) { reported = err }
			got, act := cs.handle(tc.msg)
			if act != tc.wantAct || !bytes.Equal(got, tc.want) {
				t.Fatalf("handle(% X) = % X, %v; want % X, %v", tc.msg, got, act, tc.want, tc.wantAct)
			}
			if cs.powered != tc.powered {
				t.Fatalf("powered = %v, want %v", cs.powered, tc.powered)
			}
			if bytes.Equal(tc.want, swNoDiagnosis) && reported == nil {
				t.Fatal("card misbehaviour not reported")
			}
		})
	}
}

// FuzzVPCDFrame feeds arbitrary byte streams from "vpcd" to the frame
// decoder, the card session and the full connection loop: nothing may
// panic, every decoded frame must re-encode to the bytes it came from and
// every reply must be a valid frame.
func FuzzVPCDFrame(f *testing.F) {
	for _, s := range []string{
		"000101", // power on
		"000104", // get ATR
		"000100", // power off
		"000102", // reset
		"0000",   // empty
		"000103", // unused control code
		"0014" + "00A404000F7378312E73682EC9E7BBE1B1A3D5CF",                          // SELECT SSSE
		"000104" + "000104" + "000101" + "000104" + "0005" + "0084000008" + "000100", // insertion as pcscd does it
		"0005" + "00EE000000", // torn
		"0005" + "00EF000000", // card error
		"FFFF00",              // truncated long frame
		"00",
	} {
		f.Add(h(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		// Decoder and session.
		r := bytes.NewReader(data)
		cs := newCardSession(&fuzzCard{})
		consumed := 0
		for {
			msg, err := readFrame(r)
			if err != nil {
				break
			}
			enc, err := appendFrame(nil, msg)
			if err != nil || !bytes.Equal(enc, data[consumed:consumed+len(enc)]) {
				t.Fatalf("frame % X does not re-encode to its input: % X, %v", msg, enc, err)
			}
			consumed += len(enc)
			reply, act := cs.handle(msg)
			if act == actReply {
				enc, err := appendFrame(nil, reply)
				if err != nil {
					t.Fatalf("reply % X cannot be framed: %v", reply, err)
				}
				back, err := readFrame(bytes.NewReader(enc))
				if err != nil || !bytes.Equal(back, reply) {
					t.Fatalf("reply round trip: % X, %v", back, err)
				}
			}
			if act == actTorn {
				break
			}
		}

		// The connection loop on an in-memory pipe.
		v := NewVPCD(VPCDOptions{Card: &fuzzCard{}})
		ours, theirs := net.Pipe()
		go func() {
			_, _ = io.Copy(io.Discard, theirs)
		}()
		go func() {
			_, _ = theirs.Write(data)
			_ = theirs.Close()
		}()
		done := make(chan struct{})
		go func() {
			v.serve(context.Background(), ours, &fuzzCard{})
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("serve did not end after the peer closed")
		}
	})
}
