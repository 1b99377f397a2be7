package apdu

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

// mustHex decodes hex, ignoring spaces; it fails the test on bad input.
func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatalf("bad test hex %q: %v", s, err)
	}
	return b
}

func seq(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i * 7)
	}
	return b
}

func TestCommandEncodeParse(t *testing.T) {
	tests := []struct {
		name string
		cmd  Command
		hex  string // expected encoding; "" to build it from the parts below
		want []byte // used when hex is ""
		cse  int
		ext  bool
	}{
		{name: "case 1", cmd: Command{CLA: 0x00, INS: 0x84, P1: 0x01, P2: 0x02}, hex: "00840102", cse: 1},
		{name: "case 2S GET CHALLENGE", cmd: Command{INS: 0x84, Ne: 8}, hex: "0084000008", cse: 2},
		{name: "case 2S Ne 256", cmd: Command{INS: 0xB0, Ne: 256}, hex: "00B0000000", cse: 2},
		{name: "case 2S READ RECORD via SFI", cmd: Command{INS: 0xB2, P1: 0x07, P2: 0x2C, Ne: 11}, hex: "00B2072C0B", cse: 2},
		{name: "case 3S SELECT EF05", cmd: Command{INS: 0xA4, P1: 0x02, Data: []byte{0xEF, 0x05}}, hex: "00A4020002EF05", cse: 3},
		{name: "case 3S SELECT SSSE", cmd: Command{INS: 0xA4, P1: 0x04, Data: mustHex(t, "7378312E73682EC9E7BBE1B1A3D5CF")},
			hex: "00A404000F7378312E73682EC9E7BBE1B1A3D5CF", cse: 3},
		{name: "case 3S VERIFY", cmd: Command{INS: 0x20, Data: []byte{0x12, 0x34, 0x56}}, hex: "0020000003123456", cse: 3},
		{name: "case 4S INITIALIZE FOR LOAD", cmd: Command{CLA: 0x80, INS: 0x50, P1: 0x00, P2: 0x01, Data: mustHex(t, "01 00001000 001122334455"), Ne: 16},
			hex: "805000010B0100001000001122334455 10", cse: 4},
		{name: "case 4S GET TRANSACTION PROOF", cmd: Command{CLA: 0x80, INS: 0x5A, P2: 0x06, Data: []byte{0x00, 0x01}, Ne: 8}, hex: "805A000602000108", cse: 4},
		{name: "case 4S 255 data Ne 256", cmd: Command{INS: 0xD6, Data: seq(255), Ne: 256},
			want: append(append([]byte{0x00, 0xD6, 0, 0, 0xFF}, seq(255)...), 0x00), cse: 4},
		{name: "case 2E Ne 257", cmd: Command{INS: 0xB0, Ne: 257}, hex: "00B00000000101", cse: 2, ext: true},
		{name: "case 2E Ne 65536", cmd: Command{INS: 0xB0, Ne: 65536}, hex: "00B00000000000", cse: 2, ext: true},
		{name: "case 3E 256 data", cmd: Command{INS: 0xD6, Data: seq(256)},
			want: append([]byte{0x00, 0xD6, 0, 0, 0x00, 0x01, 0x00}, seq(256)...), cse: 3, ext: true},
		{name: "case 4E short data large Ne", cmd: Command{INS: 0xCB, Data: []byte{0x5C, 0x00}, Ne: 65536},
			hex: "00CB0000 000002 5C00 0000", cse: 4, ext: true},
		{name: "case 4E 300 data Ne 10", cmd: Command{INS: 0x2A, Data: seq(300), Ne: 10},
			want: append(append([]byte{0x00, 0x2A, 0, 0, 0x00, 0x01, 0x2C}, seq(300)...), 0x00, 0x0A), cse: 4, ext: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := tt.want
			if tt.hex != "" {
				want = mustHex(t, tt.hex)
			}
			got, err := tt.cmd.Bytes()
			if err != nil {
				t.Fatalf("Bytes: %v", err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("Bytes = %X, want %X", got, want)
			}
			if c := tt.cmd.Case(); c != tt.cse {
				t.Errorf("Case = %d, want %d", c, tt.cse)
			}
			if e := tt.cmd.Extended(); e != tt.ext {
				t.Errorf("Extended = %v, want %v", e, tt.ext)
			}
			parsed, err := ParseCommand(want)
			if err != nil {
				t.Fatalf("ParseCommand: %v", err)
			}
			if !commandsEqual(parsed, tt.cmd) {
				t.Fatalf("ParseCommand = %+v, want %+v", parsed, tt.cmd)
			}
		})
	}
}

func commandsEqual(a, b Command) bool {
	return a.CLA == b.CLA && a.INS == b.INS && a.P1 == b.P1 && a.P2 == b.P2 && a.Ne == b.Ne && bytes.Equal(a.Data, b.Data)
}

func TestParseCommandNonMinimalExtended(t *testing.T) {
	// Extended encodings of lengths that fit the short form are valid ISO;
	// they parse and re-encode in the short form.
	tests := []struct{ in, canonical string }{
		{"00B00000 000005", "00B00000 05"},
		{"00D60000 000002 AABB", "00D60000 02 AABB"},
		{"00D60000 000002 AABB 0100", "00D60000 02 AABB 00"},
	}
	for _, tt := range tests {
		c, err := ParseCommand(mustHex(t, tt.in))
		if err != nil {
			t.Fatalf("ParseCommand(%s): %v", tt.in, err)
		}
		b, err := c.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		if want := mustHex(t, tt.canonical); !bytes.Equal(b, want) {
			t.Errorf("%s re-encodes as %X, want %X", tt.in, b, want)
		}
	}
}

func TestParseCommandStrict(t *testing.T) {
	tests := []struct{ name, hex string }{
		{"empty", ""},
		{"3 bytes", "00A404"},
		{"short Lc too large", "00A4040005 AABB"},
		{"short Lc too small (trailing bytes)", "00A4040001 AABBCC"},
		{"short Lc, two trailing bytes", "00A4040002 EF05 0000"},
		{"short Lc 00 with data", "00A4040000 AA"},
		{"lone 00 then one byte", "00B0000000 05"},
		{"extended Lc 0000", "00D6000000 0000 AABB"},
		{"extended Lc 0000 only", "00D6000000 0000 00"},
		{"extended Lc too large", "00D6000000 0005 AABB"},
		{"extended data then one-byte Le", "00D6000000 0002 AABB 05"},
		{"extended data then three trailing bytes", "00D6000000 0002 AABB 000005"},
		{"extended Lc truncated data", "00D6000000 0100 AA"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseCommand(mustHex(t, tt.hex))
			if err == nil {
				t.Fatalf("ParseCommand(%s) = %+v, want error", tt.hex, c)
			}
			if !errors.Is(err, ErrMalformedCommand) {
				t.Fatalf("error %v does not wrap ErrMalformedCommand", err)
			}
		})
	}
}

func TestCommandBytesErrors(t *testing.T) {
	for _, c := range []Command{
		{Ne: -1},
		{Ne: 65537},
		{Data: make([]byte, 65536)},
	} {
		if b, err := c.Bytes(); !errors.Is(err, ErrMalformedCommand) {
			t.Errorf("Bytes(Ne %d, %d data) = %X, %v; want ErrMalformedCommand", c.Ne, len(c.Data), b, err)
		}
	}
}

func TestParseCommandCopiesData(t *testing.T) {
	in := mustHex(t, "00A4020002EF05")
	c, err := ParseCommand(in)
	if err != nil {
		t.Fatal(err)
	}
	in[5] = 0x00
	if c.Data[0] != 0xEF {
		t.Fatal("Command.Data aliases the input")
	}
}
