package apdu

import (
	"bytes"
	"errors"
	"testing"
)

func TestCN(t *testing.T) {
	tests := []struct {
		digits string
		n      int
		hex    string
	}{
		{"20111221", 4, "20111221"},
		{"330300", 3, "330300"},
		{"123", 2, "123F"},
		{"1", 3, "1FFFFF"},
		{"", 2, "FFFF"},
		{"01", 1, "01"},
	}
	for _, tt := range tests {
		b, err := EncodeCN(tt.digits, tt.n)
		if err != nil {
			t.Fatalf("EncodeCN(%q, %d): %v", tt.digits, tt.n, err)
		}
		if want := mustHex(t, tt.hex); !bytes.Equal(b, want) {
			t.Errorf("EncodeCN(%q, %d) = %X, want %X", tt.digits, tt.n, b, want)
		}
		if s := DecodeCN(b); s != tt.digits {
			t.Errorf("DecodeCN(%X) = %q, want %q", b, s, tt.digits)
		}
	}
	for _, bad := range []struct {
		digits string
		n      int
	}{{"12A", 2}, {"12345", 2}, {"1 2", 2}, {"1", -1}, {"١", 2}} {
		if b, err := EncodeCN(bad.digits, bad.n); !errors.Is(err, ErrBadValue) {
			t.Errorf("EncodeCN(%q, %d) = %X, %v; want ErrBadValue", bad.digits, bad.n, b, err)
		}
	}
	// DecodeCN never hides malformed nibbles.
	for in, want := range map[string]string{"1A3F": "1A3", "F123": "F123", "1F2F": "1F2", "": ""} {
		if got := DecodeCN(mustHex(t, in)); got != want {
			t.Errorf("DecodeCN(%s) = %q, want %q", in, got, want)
		}
	}
}

func TestAN(t *testing.T) {
	tests := []struct {
		s   string
		n   int
		hex string
	}{
		{"3.00", 4, "332E3030"},
		{"12", 4, "31320000"},
		{"", 1, "00"},
		{"A12345678", 9, "413132333435363738"},
	}
	for _, tt := range tests {
		b, err := EncodeAN(tt.s, tt.n)
		if err != nil {
			t.Fatalf("EncodeAN(%q): %v", tt.s, err)
		}
		if want := mustHex(t, tt.hex); !bytes.Equal(b, want) {
			t.Errorf("EncodeAN(%q, %d) = %X, want %X", tt.s, tt.n, b, want)
		}
		if s := DecodeAN(b); s != tt.s {
			t.Errorf("DecodeAN(%X) = %q, want %q", b, s, tt.s)
		}
	}
	for _, bad := range []string{"é", "a\x00", "12345", "\x7f"} {
		if b, err := EncodeAN(bad, 4); !errors.Is(err, ErrBadValue) {
			t.Errorf("EncodeAN(%q) = %X, %v; want ErrBadValue", bad, b, err)
		}
	}
	if got := DecodeAN(mustHex(t, "3101FF00")); got != "1\uFFFD\uFFFD" {
		t.Errorf("DecodeAN(3101FF00) = %q", got)
	}
}

func TestGBK(t *testing.T) {
	// 社会保障 in GBK from the SSSE DF name (ssc-card-facts §1.1).
	b, err := EncodeGBK("社会保障", 10)
	if err != nil {
		t.Fatal(err)
	}
	if want := mustHex(t, "C9E7BBE1B1A3D5CF 0000"); !bytes.Equal(b, want) {
		t.Fatalf("EncodeGBK = %X, want %X", b, want)
	}
	for _, in := range []string{
		"C9E7BBE1B1A3D5CF",
		"C9E7BBE1B1A3D5CF 0000",
		"C9E7BBE1B1A3D5CF 2020",
		"C9E7BBE1B1A3D5CF FFFF",
		"C9E7BBE1B1A3D5CF 20 00 FF",
	} {
		s, err := DecodeGBK(mustHex(t, in))
		if err != nil || s != "社会保障" {
			t.Errorf("DecodeGBK(%s) = %q, %v", in, s, err)
		}
	}
	if s, err := DecodeGBK(mustHex(t, "7378312E7368 2E C9E7BBE1B1A3D5CF")); err != nil || s != "sx1.sh.社会保障" {
		t.Errorf("DecodeGBK(SSSE name) = %q, %v", s, err)
	}
	if s, err := DecodeGBK(nil); err != nil || s != "" {
		t.Errorf("DecodeGBK(nil) = %q, %v", s, err)
	}
	for _, bad := range []string{
		"C9",             // truncated double-byte character
		"C9E7 FF BBE1",   // FF inside
		"C9E7 00 BBE1",   // embedded NUL
		"C9E7 0A",        // control character
		"C9E7 80FF BBE1", // invalid trail byte
	} {
		if s, err := DecodeGBK(mustHex(t, bad)); !errors.Is(err, ErrBadValue) {
			t.Errorf("DecodeGBK(%s) = %q, %v; want ErrBadValue", bad, s, err)
		}
	}
	for _, bad := range []struct {
		s string
		n int
	}{{"社会保障", 7}, {"😀", 30}, {"a\nb", 30}, {"\xff", 30}, {"张", -1}} {
		if b, err := EncodeGBK(bad.s, bad.n); !errors.Is(err, ErrBadValue) {
			t.Errorf("EncodeGBK(%q, %d) = %X, %v; want ErrBadValue", bad.s, bad.n, b, err)
		}
	}
}

func TestDate(t *testing.T) {
	for _, d := range []string{"20111221", "20240229", "20000229", "19491001", "20311202"} {
		b, err := EncodeDate(d)
		if err != nil {
			t.Fatalf("EncodeDate(%s): %v", d, err)
		}
		if want := mustHex(t, d); !bytes.Equal(b, want) {
			t.Errorf("EncodeDate(%s) = %X", d, b)
		}
		if s, err := DecodeDate(b); err != nil || s != d {
			t.Errorf("DecodeDate(%X) = %q, %v", b, s, err)
		}
	}
	for _, bad := range []string{"20230229", "19000229", "20241301", "20240001", "20240100", "20240431", "00000101", "2024011", "202401011", "2024O101", ""} {
		if b, err := EncodeDate(bad); !errors.Is(err, ErrBadValue) {
			t.Errorf("EncodeDate(%q) = %X, %v; want ErrBadValue", bad, b, err)
		}
	}
	for _, bad := range []string{"20230229", "2011122F", "201112", "2011122101", "FFFFFFFF", "20111A21"} {
		if s, err := DecodeDate(mustHex(t, bad)); !errors.Is(err, ErrBadValue) {
			t.Errorf("DecodeDate(%s) = %q, %v; want ErrBadValue", bad, s, err)
		}
	}
}

func TestAmount(t *testing.T) {
	tests := []struct {
		fen  uint32
		hex  string
		yuan string
	}{
		{4096, "00001000", "40.96"},
		{1000, "000003E8", "10.00"},
		{5, "00000005", "0.05"},
		{0, "00000000", "0.00"},
		{0xFFFFFFFF, "FFFFFFFF", "42949672.95"},
	}
	for _, tt := range tests {
		b := EncodeAmount(tt.fen)
		if want := mustHex(t, tt.hex); !bytes.Equal(b, want) {
			t.Errorf("EncodeAmount(%d) = %X, want %s", tt.fen, b, tt.hex)
		}
		if v, err := DecodeAmount(b); err != nil || v != tt.fen {
			t.Errorf("DecodeAmount(%X) = %d, %v", b, v, err)
		}
		if y := FormatFen(tt.fen); y != tt.yuan {
			t.Errorf("FormatFen(%d) = %q, want %q", tt.fen, y, tt.yuan)
		}
	}
	for _, bad := range []string{"", "001000", "0000100000"} {
		if v, err := DecodeAmount(mustHex(t, bad)); !errors.Is(err, ErrBadValue) {
			t.Errorf("DecodeAmount(%s) = %d, %v; want ErrBadValue", bad, v, err)
		}
	}
}
