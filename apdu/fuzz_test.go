package apdu

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"
)

// Seeds from real traces and vectors (ssc-card-facts §1.4, §1.5, §1.6, §3.4,
// §6).
var commandSeeds = []string{
	"00A404000F7378312E73682EC9E7BBE1B1A3D5CF",
	"00A404000F7378312E73682EC9E7BBE1B1A3D5CF00",
	"00A4020002EF05",
	"00A4000002EF05",
	"00A4040006D15600000590",
	"00A404000F7378322E73682EC9E7BBE1B1A3D5CF",
	"00B2070010",
	"00B2072C0B",
	"00B24E0016",
	"00B2010400",
	"0084000008",
	"0084000004",
	"0088000010" + "456FE02E253F817DA39FC0BF44CAEA80",
	"0082000A10" + "4F5FB5932F10694D2CFE760428888D8E",
	"0082000710" + "00112233445566778899AABBCCDDEEFF",
	"0020000003123456",
	"0020000003888888",
	"805E010007123456FF654321",
	"8424000114" + strings.Repeat("5A", 20),
	"00C0000008",
	"805000010B0100001000001122334455 10",
	"805001020B0100001000001122334455 0F",
	"805003020B0100001000001122334455 0F",
	"805401000F0000000120120229135100F15CAB7508",
	"805200000B201112212148223A845BF0 04",
	"805C000204",
	"805C000104",
	"805A000602000108",
	"807000001C" + "1122334400000000100006201202291351000200" + "0000000000000001",
	"8070000024" + "1122334400000000100006201202291351000200" + "0000000000000001" + "0102030405060708",
	"8072000004F15CAB75",
	"801A280108" + "0102030405060708",
	"80FA0000081122334455667788",
	"80FA050010" + "00112233445566778899AABBCCDDEEFF",
	"BFDE485D18" + strings.Repeat("00", 24),
	"841E000004AABBCCDD",
	"04D6850006 AABB 11223344",
	"00B00000000101",
	"00CB0000 000002 5C00 0000",
}

var responseSeeds = []string{
	"9000", "63C2", "63C0", "6983", "6982", "6A82", "6108", "6C0B", "9302", "9401", "9406",
	"0110639900D15600000500BF7C7A48FB4966 9000",
	"0110411600D156000005C38275EEFC9B9648 9000",
	"0304332E3030 9000",
	"00000000 0000 02 00 11223344 2988AE5A 9000",
	"000003E8 9000",
	fciSSSE + "9000",
	"0908C9E7BBE1B1A3D5CF 9000",
}

func addHexSeeds(f *testing.F, seeds ...string) {
	for _, s := range seeds {
		b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
		if err != nil {
			f.Fatalf("bad seed %q: %v", s, err)
		}
		f.Add(b)
	}
}

func FuzzParseCommand(f *testing.F) {
	addHexSeeds(f, commandSeeds...)
	addHexSeeds(f, "", "00", "00A40400", "00A4040000AA", "00D60000000000AABB", "00D6000000")
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseCommand(b)
		if err != nil {
			if !errors.Is(err, ErrMalformedCommand) {
				t.Fatalf("error %v does not wrap ErrMalformedCommand", err)
			}
			return
		}
		enc, err := c.Bytes()
		if err != nil {
			t.Fatalf("parsed command does not encode: %v", err)
		}
		again, err := ParseCommand(enc)
		if err != nil || !commandsEqual(again, c) {
			t.Fatalf("re-parse of %X = %+v, %v; want %+v", enc, again, err, c)
		}
		// Exact round trip unless the input used the extended form for
		// lengths that fit the short form.
		inputExtended := len(b) > 5 && b[4] == 0
		if inputExtended == c.Extended() && !bytes.Equal(enc, b) {
			t.Fatalf("round trip %X → %X", b, enc)
		}
		if c.Case() < 1 || c.Case() > 4 {
			t.Fatalf("Case = %d", c.Case())
		}
	})
}

func FuzzParseResponse(f *testing.F) {
	addHexSeeds(f, responseSeeds...)
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseResponse(b)
		if err != nil {
			if len(b) >= 2 || !errors.Is(err, ErrMalformedResponse) {
				t.Fatalf("ParseResponse(%X): %v", b, err)
			}
			return
		}
		if !bytes.Equal(r.Bytes(), b) {
			t.Fatalf("round trip %X → %X", b, r.Bytes())
		}
		err = r.Err()
		if (err == nil) != (r.SW == SWOK) {
			t.Fatalf("Err() = %v for %04X", err, r.SW)
		}
		if err != nil && !strings.HasPrefix(err.Error(), fmt.Sprintf("%04X: ", r.SW)) {
			t.Fatalf("Error() = %q", err.Error())
		}
	})
}

func FuzzParseTLV(f *testing.F) {
	addHexSeeds(f, fciSSSE, "9F0C03860103", "5381FF"+strings.Repeat("00", 255), "538103AABBCC",
		"DF81820301AA", nestedTLV(MaxTLVDepth), "6F80", "5384FFFFFFFF", "70 0A 5A 08 6212345678901234")
	f.Fuzz(func(t *testing.T, b []byte) {
		objs, err := ParseTLV(b)
		if err != nil {
			if !errors.Is(err, ErrMalformedTLV) {
				t.Fatalf("error %v does not wrap ErrMalformedTLV", err)
			}
			return
		}
		enc, err := EncodeTLV(objs...)
		if err != nil {
			t.Fatalf("parsed objects do not encode: %v", err)
		}
		if len(enc) > len(b) {
			t.Fatalf("canonical encoding %X longer than input %X", enc, b)
		}
		again, err := ParseTLV(enc)
		if err != nil {
			t.Fatalf("re-parse: %v", err)
		}
		enc2, err := EncodeTLV(again...)
		if err != nil || !bytes.Equal(enc, enc2) {
			t.Fatalf("encoding not stable: %X → %X", enc, enc2)
		}
		if len(enc) == len(b) && !bytes.Equal(enc, b) {
			t.Fatalf("same-length round trip differs: %X → %X", b, enc)
		}
	})
}

func FuzzParseRecord(f *testing.F) {
	addHexSeeds(f,
		"0110639900D15600000500BF7C7A48FB4966", "0304332E3030", "0709413132333435363738", "0504 20211203",
		"0604 20311202", "0908C9E7BBE1B1A3D5CF", "0A0132", "0B0101", "0C03110105", "0D0419900101",
		"4E14"+strings.Repeat("00", 20), "02", "0105AABB")
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseRecord(b)
		if err != nil {
			if !errors.Is(err, ErrMalformedRecord) {
				t.Fatalf("error %v does not wrap ErrMalformedRecord", err)
			}
			return
		}
		if !bytes.Equal(r.Bytes(), b) {
			t.Fatalf("round trip %X → %X", b, r.Bytes())
		}
		fld, text, ok, err := DecodeRecord("", r)
		if !ok || err != nil {
			return
		}
		if !utf8.ValidString(text) {
			t.Fatalf("decoded text %q is not UTF-8", text)
		}
		if len(r.Value) != fld.Len || unset(r.Value) {
			return
		}
		// A value of the field's length that decodes re-encodes to a value
		// with the same meaning.
		v, err := fld.Encode(text)
		if err != nil {
			t.Fatalf("%s: decoded %q from %X does not encode: %v", fld.Name, text, r.Value, err)
		}
		if back, err := fld.Decode(v); err != nil || back != text {
			t.Fatalf("%s: %q → %X → %q, %v", fld.Name, text, v, back, err)
		}
	})
}

func FuzzDecodeCN(f *testing.F) {
	addHexSeeds(f, "20111221", "330300", "123F", "1FFFFF", "", "1A3F", "F123", "411600000000000000000000")
	f.Fuzz(func(t *testing.T, b []byte) {
		s := DecodeCN(b)
		if len(s) > 2*len(b) {
			t.Fatalf("DecodeCN(%X) = %q is too long", b, s)
		}
		if strings.Trim(s, "0123456789") != "" {
			if _, err := decodeCNStrict(b); err == nil {
				t.Fatalf("strict decode accepted %X", b)
			}
			return
		}
		enc, err := EncodeCN(s, len(b))
		if err != nil || !bytes.Equal(enc, b) {
			t.Fatalf("round trip %X → %q → %X, %v", b, s, enc, err)
		}
	})
}

func FuzzDecodeAN(f *testing.F) {
	addHexSeeds(f, "332E3030", "31320000", "413132333435363738", "3101FF00", "", "00", "313130313031313939303031303130303158")
	f.Fuzz(func(t *testing.T, b []byte) {
		s := DecodeAN(b)
		if !utf8.ValidString(s) {
			t.Fatalf("DecodeAN(%X) = %q is not UTF-8", b, s)
		}
		if strings.ContainsRune(s, utf8.RuneError) {
			if _, err := decodeANStrict(b); err == nil {
				t.Fatalf("strict decode accepted %X", b)
			}
			return
		}
		enc, err := EncodeAN(s, len(b))
		if err != nil || !bytes.Equal(enc, b) {
			t.Fatalf("round trip %X → %q → %X, %v", b, s, enc, err)
		}
	})
}

func FuzzDecodeGBK(f *testing.F) {
	addHexSeeds(f, "C9E7BBE1B1A3D5CF", "7378312E73682EC9E7BBE1B1A3D5CF", "C9E7BBE1B1A3D5CF20FF00", "C9", "C9E7FFBBE1", "80", "A1A4", "")
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := DecodeGBK(b)
		if err != nil {
			if !errors.Is(err, ErrBadValue) {
				t.Fatalf("error %v does not wrap ErrBadValue", err)
			}
			return
		}
		if !utf8.ValidString(s) {
			t.Fatalf("DecodeGBK(%X) = %q is not UTF-8", b, s)
		}
		enc, err := EncodeGBK(s, len(b))
		if err != nil {
			t.Fatalf("decoded %q from %X does not encode in %d bytes: %v", s, b, len(b), err)
		}
		if back, err := DecodeGBK(enc); err != nil || back != s {
			t.Fatalf("round trip %X → %q → %X → %q, %v", b, s, enc, back, err)
		}
	})
}

func FuzzDecodeDate(f *testing.F) {
	addHexSeeds(f, "20111221", "20120229", "20211203", "20311202", "19900101", "20230229", "FFFFFFFF", "201112")
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := DecodeDate(b)
		if err != nil {
			if !errors.Is(err, ErrBadValue) {
				t.Fatalf("error %v does not wrap ErrBadValue", err)
			}
			return
		}
		enc, err := EncodeDate(s)
		if err != nil || !bytes.Equal(enc, b) {
			t.Fatalf("round trip %X → %q → %X, %v", b, s, enc, err)
		}
	})
}

func FuzzDecodeAmount(f *testing.F) {
	addHexSeeds(f, "00001000", "000003E8", "FFFFFFFF", "", "001000")
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := DecodeAmount(b)
		if err != nil {
			if len(b) == 4 || !errors.Is(err, ErrBadValue) {
				t.Fatalf("DecodeAmount(%X): %v", b, err)
			}
			return
		}
		if enc := EncodeAmount(v); !bytes.Equal(enc, b) {
			t.Fatalf("round trip %X → %d → %X", b, v, enc)
		}
	})
}

func FuzzExplain(f *testing.F) {
	for _, k := range []Kind{KindAuto, KindCommand, KindResponse} {
		for _, s := range append(append([]string{}, commandSeeds...), responseSeeds...) {
			b, _ := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
			f.Add(b, uint8(k))
		}
	}
	f.Fuzz(func(t *testing.T, b []byte, k uint8) {
		kind := Kind(k % 3)
		s, err := Explain(b, kind)
		if err != nil {
			return
		}
		if !utf8.ValidString(s) || s == "" {
			t.Fatalf("Explain(%X) = %q", b, s)
		}
		if kind == KindResponse {
			return
		}
		// PIN material never appears in a command explanation.
		if c, err := ParseCommand(b); err == nil && strings.HasPrefix(s, "command") && Sensitive(c) && len(c.Data) >= 3 {
			if strings.Contains(s, fmt.Sprintf("%X", c.Data)) {
				t.Fatalf("explanation of %X shows the PIN data:\n%s", b, s)
			}
		}
	})
}

// fuzzCard answers from a byte stream: each response is a length byte
// followed by that many bytes; when the stream ends it answers 9000.
type fuzzCard struct {
	stream []byte
	sent   int
}

func (c *fuzzCard) Transmit(_ context.Context, cmd []byte) ([]byte, error) {
	c.sent++
	if _, err := ParseCommand(cmd); err != nil {
		return nil, fmt.Errorf("Exchange sent a malformed command %X: %w", cmd, err)
	}
	if len(c.stream) == 0 {
		return []byte{0x90, 0x00}, nil
	}
	n := int(c.stream[0])
	c.stream = c.stream[1:]
	n = min(n, len(c.stream))
	r := c.stream[:n]
	c.stream = c.stream[n:]
	return r, nil
}

func FuzzExchange(f *testing.F) {
	f.Add([]byte{0x02, 0x61, 0x08, 0x0A, 1, 2, 3, 4, 5, 6, 7, 8, 0x90, 0x00}, byte(0x80), 8)
	f.Add([]byte{0x02, 0x6C, 0x0B, 0x02, 0x61, 0x02, 0x04, 0xAA, 0xBB, 0x90, 0x00}, byte(0x00), 16)
	f.Add([]byte{0x02, 0x6C, 0x04, 0x02, 0x6C, 0x05}, byte(0x00), 0)
	f.Add(bytes.Repeat([]byte{0x02, 0x61, 0x01}, 300), byte(0x01), 1)
	f.Add([]byte{0x01, 0x90}, byte(0x00), 4)
	f.Fuzz(func(t *testing.T, stream []byte, cla byte, ne int) {
		card := &fuzzCard{stream: stream}
		c := Command{CLA: cla, INS: 0xB0, Ne: ne}
		resp, err := Exchange(context.Background(), card, c)
		if card.sent > 2+2*(MaxGetResponses+1) {
			t.Fatalf("Exchange sent %d commands", card.sent)
		}
		if err != nil {
			if errors.Is(err, ErrMalformedCommand) && ne >= 0 && ne <= MaxExtendedNe {
				t.Fatalf("Exchange: %v", err)
			}
			return
		}
		if len(resp.Data) > MaxResponseBytes {
			t.Fatalf("response of %d bytes", len(resp.Data))
		}
		if resp.SW1() == 0x61 {
			t.Fatalf("Exchange returned unresolved %04X", resp.SW)
		}
	})
}
