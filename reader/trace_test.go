package reader_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/onecard-hub/onecard/reader"
	"github.com/onecard-hub/onecard/reader/virtual"
)

func h(s string) []byte {
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		panic(err)
	}
	return b
}

func TestReaderTraceRedactCommand(t *testing.T) {
	for _, tc := range []struct {
		name, cmd, want string
		redacted        bool
		secretResp      bool
	}{
		{"VERIFY PIN", "00 20 00 00 03 12 34 56", "00 20 00 00 03 00 00 00", true, false},
		{"VERIFY PIN with Le", "00 20 00 00 03 12 34 56 00", "00 20 00 00 03 00 00 00 00", true, false},
		{"VERIFY tries left (no data)", "00 20 00 00", "00 20 00 00", false, false},
		{"VERIFY extended", "00 20 00 00 00 00 02 12 34", "00 20 00 00 00 00 02 00 00", true, false},
		{"VERIFY malformed Lc", "00 20 00 00 08 12 34 56", "00 20 00 00 00 00 00 00", true, false},
		{"VERIFY bare header plus junk", "00 20 00 00 00 12", "00 20 00 00 00 00", true, false},
		{"CHANGE PIN 80 5E", "80 5E 01 00 07 12 34 56 FF 65 43 21", "80 5E 01 00 07 00 00 00 00 00 00 00", true, false},
		{"RELOAD PIN 80 5E", "80 5E 00 00 07 12 34 56 AA BB CC DD", "80 5E 00 00 07 00 00 00 00 00 00 00", true, false},
		{"CHANGE REFERENCE DATA", "00 24 00 00 06 11 11 11 22 22 22", "00 24 00 00 06 00 00 00 00 00 00", true, false},
		{"PIN UNBLOCK 84 24", "84 24 00 01 04 DE AD BE EF", "84 24 00 01 04 00 00 00 00", true, false},
		{"RESET RETRY COUNTER", "00 2C 00 00 04 01 02 03 04", "00 2C 00 00 04 00 00 00 00", true, false},
		{"EXTERNAL AUTHENTICATE", "00 82 00 0A 08 01 02 03 04 05 06 07 08", "00 82 00 0A 08 00 00 00 00 00 00 00 00", true, false},
		{"DES CRYPT", "80 FA 00 00 08 01 02 03 04 05 06 07 08", "80 FA 00 00 08 00 00 00 00 00 00 00 00", true, true},
		{"WRITE KEY", "84 D4 01 00 04 AA BB CC DD", "84 D4 01 00 04 00 00 00 00", true, false},
		{"PSAM KEY OPERATION", "BF DE 00 00 02 AA BB", "BF DE 00 00 02 00 00", true, false},
		// Not secret: headers, selections, challenges, MACs, TACs.
		{"SELECT", "00 A4 04 00 02 3F 00", "00 A4 04 00 02 3F 00", false, false},
		{"GET CHALLENGE", "00 84 00 00 08", "00 84 00 00 08", false, false},
		{"INTERNAL AUTHENTICATE", "00 88 00 00 08 01 02 03 04 05 06 07 08", "00 88 00 00 08 01 02 03 04 05 06 07 08", false, false},
		{"INIT FOR DESCRYPT", "80 1A 45 01 08 01 02 03 04 05 06 07 08", "80 1A 45 01 08 01 02 03 04 05 06 07 08", false, false},
		{"DEBIT FOR PURCHASE (MAC1)", "80 54 01 00 0F 00000001 20240101 120000 AABBCCDD 08", "80 54 01 00 0F 00000001 20240101 120000 AABBCCDD 08", false, false},
		{"GET RESPONSE", "00 C0 00 00 08", "00 C0 00 00 08", false, false},
		{"too short", "00 20", "00 20", false, false},
		{"empty", "", "", false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := h(tc.cmd)
			orig := bytes.Clone(cmd)
			got, redacted := reader.RedactCommand(cmd)
			if !bytes.Equal(got, h(tc.want)) || redacted != tc.redacted {
				t.Fatalf("RedactCommand = % X, %v; want %s, %v", got, redacted, tc.want, tc.redacted)
			}
			if !bytes.Equal(cmd, orig) {
				t.Fatal("RedactCommand modified its input")
			}
			secret, secretResp, why := reader.SecretCommand(cmd)
			if secret != (tc.redacted || strings.HasPrefix(tc.name, "VERIFY tries")) || secretResp != tc.secretResp || secret != (why != "") {
				t.Fatalf("SecretCommand = %v, %v, %q", secret, secretResp, why)
			}
		})
	}
}

func TestReaderTraceRedactResponse(t *testing.T) {
	for _, tc := range []struct {
		resp, want string
		secret     bool
		redacted   bool
	}{
		{"01 02 03 90 00", "00 00 00 90 00", true, true},
		{"01 02 03 90 00", "01 02 03 90 00", false, false},
		{"90 00", "90 00", true, false},
		{"61", "00", true, true},
		{"", "", true, false},
	} {
		got, redacted := reader.RedactResponse(h(tc.resp), tc.secret)
		if !bytes.Equal(got, h(tc.want)) || redacted != tc.redacted {
			t.Errorf("RedactResponse(%s, %v) = % X, %v; want %s, %v", tc.resp, tc.secret, got, redacted, tc.want, tc.redacted)
		}
	}
}

func FuzzReaderTraceRedact(f *testing.F) {
	for _, s := range []string{
		"0020000003123456", "002000000312345600", "00200000000002 1234", "805E0100071234 56FF654321",
		"0082000A080102030405060708", "80FA0000080102030405060708", "00A404000F7378312E73682EC9E7BBE1B1A3D5CF",
		"0020", "", "00200000FF",
	} {
		f.Add(h(s))
	}
	f.Fuzz(func(t *testing.T, cmd []byte) {
		out, redacted := reader.RedactCommand(cmd)
		if len(out) != len(cmd) {
			t.Fatalf("length %d -> %d", len(cmd), len(out))
		}
		secret, _, _ := reader.SecretCommand(cmd)
		if !secret {
			if redacted || !bytes.Equal(out, cmd) {
				t.Fatalf("non-secret command changed: % X -> % X", cmd, out)
			}
			return
		}
		if !bytes.Equal(out[:4], cmd[:4]) {
			t.Fatalf("header changed: % X -> % X", cmd, out)
		}
		// Every byte after the header that changed was zeroed, and none of
		// the data field survives: at most the length bytes and Le (at
		// most 3 + 3) may remain non-zero.
		nonzero := 0
		for i := 4; i < len(out); i++ {
			if out[i] != 0 {
				nonzero++
				if out[i] != cmd[i] {
					t.Fatalf("byte %d rewritten to %02X", i, out[i])
				}
			}
		}
		if nonzero > 6 {
			t.Fatalf("%d non-zero bytes left in a redacted command: % X", nonzero, out)
		}
		ev := reader.TraceEvent{Slot: "x", Op: "transmit", Command: out, CommandRedacted: redacted}
		_ = ev.String()
	})
}

// scriptCard answers DES CRYPT (80 FA) with 61 08 and GET RESPONSE with
// eight secret bytes, SELECT with 61 02 then GET RESPONSE "6F00", and
// anything else with 90 00.
type scriptCard struct {
	mu      sync.Mutex
	pending string
}

var secretOut = h("0102030405060708")

func (c *scriptCard) PowerOn() []byte { return h("3B021450") }
func (c *scriptCard) PowerOff()       {}
func (c *scriptCard) Transmit(cmd []byte) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch cmd[1] {
	case 0xFA:
		c.pending = "crypt"
		return h("6108"), nil
	case 0xA4:
		c.pending = "select"
		return h("6102"), nil
	case 0xC0:
		p := c.pending
		c.pending = ""
		switch p {
		case "crypt":
			return append(bytes.Clone(secretOut), 0x90, 0x00), nil
		case "select":
			return h("6F009000"), nil
		}
		return h("6985"), nil
	}
	return h("9000"), nil
}

func TestReaderTracedSlot(t *testing.T) {
	var events []reader.TraceEvent
	vs := virtual.NewSlot("sam", &scriptCard{})
	s := reader.Traced(vs, func(ev reader.TraceEvent) { events = append(events, ev) })
	if s.ID() != "virtual:sam" || s.Unwrap() != reader.Slot(vs) {
		t.Fatalf("ID %q / Unwrap", s.ID())
	}
	ctx := context.Background()
	if _, err := s.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	tx, err := reader.Begin(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	steps := []string{
		"80FA000008 1111111111111111", // DES CRYPT: secret in and out
		"00C0000008",                  // GET RESPONSE of DES CRYPT: secret out
		"00A4040002 3F00",             // SELECT
		"00C0000002",                  // GET RESPONSE of SELECT: not secret
		"0020000003 123456",           // VERIFY
	}
	for _, st := range steps {
		if _, err := tx.Transmit(ctx, h(st)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.End(); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Transmit(ctx, h("00A4040002 3F00")); !errors.Is(err, reader.ErrTxEnded) {
		t.Fatalf("Transmit after End: %v", err)
	}
	if _, err := s.Reset(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Transmit(ctx, h("00")); err == nil {
		t.Fatal("short command accepted")
	}
	if err := s.Disconnect(); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"virtual:sam connect -> 3B 02 14 50",
		"virtual:sam begin",
		"virtual:sam transmit 80 FA 00 00 08 ** ** ** ** ** ** ** ** -> 61 08",
		"virtual:sam transmit 00 C0 00 00 08 -> ** ** ** ** ** ** ** ** 90 00",
		"virtual:sam transmit 00 A4 04 00 02 3F 00 -> 61 02",
		"virtual:sam transmit 00 C0 00 00 02 -> 6F 00 90 00",
		"virtual:sam transmit 00 20 00 00 03 ** ** ** -> 90 00",
		"virtual:sam end",
		"virtual:sam transmit 00 A4 04 00 02 3F 00 error: ",
		"virtual:sam reset -> 3B 02 14 50",
		"virtual:sam transmit 00 error: ",
		"virtual:sam disconnect",
	}
	if len(events) != len(want) {
		t.Fatalf("%d events, want %d: %v", len(events), len(want), events)
	}
	for i, ev := range events {
		got := ev.String()
		if !strings.HasPrefix(got, want[i]) {
			t.Errorf("event %d: %q, want prefix %q", i, got, want[i])
		}
		if bytes.Contains(ev.Command, h("123456")) || bytes.Contains(ev.Command, h("1111111111111111")) || bytes.Contains(ev.Response, secretOut) {
			t.Errorf("event %d leaks a secret: %+v", i, ev)
		}
		if ev.Start.IsZero() || ev.Duration < 0 {
			t.Errorf("event %d timing %v %v", i, ev.Start, ev.Duration)
		}
	}
	if events[10].Err == nil {
		t.Error("error not traced")
	}
}
