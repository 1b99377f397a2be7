package profile

import (
	"bytes"
	"errors"
	"testing"
)

// The framings of docs/reader-protocols.md §1, written out here rather
// than loaded from the profile files, so that the worked frames of §1.10
// check the framer independently of the shipped data.
var (
	crt310Framing = Framing{Start: []byte{0x02}, Length: LengthSpec{Width: 2, Order: "big", Encoding: "binary", Counts: "text"},
		End: []byte{0x03}, Checksum: ChecksumSpec{Algo: "xor8", From: "start", To: "end", Width: 1, Encoding: "binary"}, MaxFrame: 300}
	crt591Framing = Framing{Start: []byte{0xF2}, Address: &AddressSpec{Default: 0, Min: 0, Max: 15},
		Length: LengthSpec{Width: 2, Order: "big", Encoding: "binary", Counts: "text"},
		End:    []byte{0x03}, Checksum: ChecksumSpec{Algo: "xor8", From: "start", To: "end", Width: 1, Encoding: "binary"}, MaxFrame: 1024}
	sankyoFraming = Framing{Start: []byte{0xF2}, Length: LengthSpec{Width: 2, Order: "big", Encoding: "binary", Counts: "text"},
		Checksum: ChecksumSpec{Algo: "crc16-xmodem", From: "start", To: "text", Width: 2, Order: "big", Encoding: "binary"}, MaxFrame: 1024}
	idsamFraming = Framing{Start: []byte{0xAA, 0xAA, 0xAA, 0x96, 0x69}, Length: LengthSpec{Width: 2, Order: "big", Encoding: "binary", Counts: "text_checksum"},
		Checksum: ChecksumSpec{Algo: "xor8", From: "length", To: "text", Width: 1, Encoding: "binary"}, MaxFrame: 4096}
	// ZT588-style ASCII framing (no worked frame in the notes): 3 decimal
	// digits of length, XOR as two hex characters over length..ETX.
	zt588Framing = Framing{Start: []byte{0x02}, Length: LengthSpec{Width: 3, Encoding: "ascii-dec", Counts: "text"},
		End: []byte{0x03}, Checksum: ChecksumSpec{Algo: "xor8", From: "length", To: "end", Width: 1, Encoding: "ascii-hex"}, MaxFrame: 1024}
)

func hexb(t testing.TB, s string) []byte {
	t.Helper()
	b, err := ParseHex(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestProfileWorkedFrames(t *testing.T) {
	cases := []struct {
		name  string
		f     *Framing
		addr  byte
		text  string
		frame string
	}{
		{"CRT-310 reset reader", &crt310Framing, 0, "30 30", "02 00 02 30 30 03 03"},
		{"CRT-310 status", &crt310Framing, 0, "31 30", "02 00 02 31 30 03 02"},
		{"CRT-310 IC power on", &crt310Framing, 0, "33 30", "02 00 02 33 30 03 00"},
		{"CRT-310 CPU cold reset", &crt310Framing, 0, "37 30", "02 00 02 37 30 03 04"},
		{"CRT-591 init, leave card", &crt591Framing, 0, "43 30 33", "F2 00 00 03 43 30 33 03 B2"},
		{"CRT-591 status", &crt591Framing, 0, "43 31 30", "F2 00 00 03 43 31 30 03 B0"},
		{"CRT-591 CPU activate EMV", &crt591Framing, 0, "43 51 30 30", "F2 00 00 04 43 51 30 30 03 E7"},
		{"Sankyo status", &sankyoFraming, 0, "43 31 30", "F2 00 03 43 31 30 C5 2A"},
		{"ID-SAM find card", &idsamFraming, 0, "20 01", "AA AA AA 96 69 00 03 20 01 22"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			want := hexb(t, c.frame)
			got, err := c.f.Encode(c.addr, hexb(t, c.text))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("Encode = % X, want % X", got, want)
			}
			fr, n, err := c.f.Decode(append(want, 0xEE, 0x02)) // trailing bytes are not part of it
			if err != nil || n != len(want) || !bytes.Equal(fr.Text, hexb(t, c.text)) {
				t.Fatalf("Decode = %+v, %d, %v", fr, n, err)
			}
		})
	}
}

func TestProfileChecksumCheckValues(t *testing.T) {
	// The catalogue check values over "123456789".
	in := []byte("123456789")
	for algo, want := range map[string]uint16{"crc16-xmodem": 0x31C3, "crc16-ccitt-false": 0x29B1, "xor8": 0x31, "sum8": 0xDD} {
		if got := Checksum(algo, in); got != want {
			t.Errorf("%s = %04X, want %04X", algo, got, want)
		}
	}
}

func TestProfileASCIIFraming(t *testing.T) {
	text := []byte("5A")
	fr, err := zt588Framing.Encode(0, text)
	if err != nil {
		t.Fatal(err)
	}
	// "002" "5A" ETX, XOR of "0025A" and 0x03 = 0x45 → "45"
	want := append([]byte{0x02}, []byte("0025A\x0345")...)
	if !bytes.Equal(fr, want) {
		t.Fatalf("Encode = %q, want %q", fr, want)
	}
	got, _, err := zt588Framing.Decode(fr)
	if err != nil || !bytes.Equal(got.Text, text) {
		t.Fatalf("Decode = %q, %v", got.Text, err)
	}
}

func TestProfileDecodeFrameErrors(t *testing.T) {
	cases := []struct {
		name  string
		f     *Framing
		frame string
		want  error
	}{
		{"bad checksum", &crt310Framing, "02 00 02 31 30 03 03", ErrBadChecksum},
		{"bad CRC", &sankyoFraming, "F2 00 03 43 31 30 C5 2B", ErrBadChecksum},
		{"short", &crt310Framing, "02 00 05 31 30", ErrShortFrame},
		{"short header", &sankyoFraming, "F2 00", ErrShortFrame},
		{"no start", &crt310Framing, "03 00 02 31 30 03 02", ErrBadStart},
		{"address out of range", &crt591Framing, "F2 10 00 03 43 31 30 03 A0", ErrBadStart},
		{"length beyond max_frame", &crt310Framing, "02 FF FF 31", ErrBadLength},
		{"ETX missing where the length puts it", &crt310Framing, "02 00 02 31 30 30 03 02", ErrBadEnd},
		{"ascii length not digits", &zt588Framing, "02 30 3A 32", ErrBadLength},
		// ETX inside the data must not end the frame: length decides.
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := c.f.Decode(hexb(t, c.frame))
			if !errors.Is(err, c.want) {
				t.Errorf("Decode: %v, want %v", err, c.want)
			}
		})
	}
	// Data containing 03 (and even "03 BCC") decodes by length.
	text := hexb(t, "37 31 59 00 04 03 02 90 00")
	fr, err := crt310Framing.Encode(0, text)
	if err != nil {
		t.Fatal(err)
	}
	got, n, err := crt310Framing.Decode(fr)
	if err != nil || n != len(fr) || !bytes.Equal(got.Text, text) {
		t.Errorf("frame with ETX in its data: %v, %d, % X", err, n, got.Text)
	}
}

func TestProfileATRProtocol(t *testing.T) {
	for atr, want := range map[string]Protocol{
		"3B 6C 00 00 53 53 43 20 43 41 52 44 20 56 33 30": ProtoT0,
		"3B 88 01 50 53 41 4D 20 53 4D 34 44":             ProtoT1,
		"3B F0 11 00 FF 01 00":                            ProtoT1, // TA1 TB1 TC1 then TD1 = T=1
		"3B 80 00":                                        ProtoT0,
		"3B":                                              ProtoT0,
		"3B F0":                                           ProtoT0,
	} {
		if got := ATRProtocol(hexb(t, atr)); got != want {
			t.Errorf("ATRProtocol(%s) = %s, want %s", atr, got, want)
		}
	}
}
