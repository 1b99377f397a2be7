package apdu

import (
	"bytes"
	"errors"
	"testing"
)

func TestParseResponse(t *testing.T) {
	tests := []struct {
		hex  string
		data string
		sw   uint16
	}{
		{"9000", "", 0x9000},
		{"63C2", "", 0x63C2},
		{"0304332E3030 9000", "0304332E3030", 0x9000},
		{"00000000 0000 02 00 11223344 2988AE5A 9000", "00000000000002001122334429 88AE5A", 0x9000},
		{"AB 6108", "AB", 0x6108},
	}
	for _, tt := range tests {
		in := mustHex(t, tt.hex)
		r, err := ParseResponse(in)
		if err != nil {
			t.Fatalf("ParseResponse(%s): %v", tt.hex, err)
		}
		if r.SW != tt.sw || !bytes.Equal(r.Data, mustHex(t, tt.data)) {
			t.Errorf("ParseResponse(%s) = %X %04X, want %s %04X", tt.hex, r.Data, r.SW, tt.data, tt.sw)
		}
		if got := r.Bytes(); !bytes.Equal(got, in) {
			t.Errorf("Bytes = %X, want %X", got, in)
		}
		if r.SW1() != byte(tt.sw>>8) || r.SW2() != byte(tt.sw) {
			t.Errorf("SW1/SW2 = %02X %02X", r.SW1(), r.SW2())
		}
		if (r.Err() == nil) != (tt.sw == SWOK) {
			t.Errorf("Err() = %v for %04X", r.Err(), tt.sw)
		}
	}
	for _, bad := range []string{"", "90"} {
		if _, err := ParseResponse(mustHex(t, bad)); !errors.Is(err, ErrMalformedResponse) {
			t.Errorf("ParseResponse(%q) error = %v, want ErrMalformedResponse", bad, err)
		}
	}
}
