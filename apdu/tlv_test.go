package apdu

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
)

// fciSSSE is an FCI as the SSSE SELECT may return it: DF name and the
// algorithm flag 9F0C 03 86 01 03 (ssc-card-facts §1.1).
const fciSSSE = "6F19 840F7378312E73682EC9E7BBE1B1A3D5CF A506 9F0C03 860103"

func TestParseTLV(t *testing.T) {
	objs, err := ParseTLV(mustHex(t, fciSSSE))
	if err != nil {
		t.Fatal(err)
	}
	want := []TLV{{Tag: 0x6F, Children: []TLV{
		{Tag: 0x84, Value: mustHex(t, "7378312E73682EC9E7BBE1B1A3D5CF")},
		{Tag: 0xA5, Children: []TLV{{Tag: 0x9F0C, Value: mustHex(t, "860103")}}},
	}}}
	if !reflect.DeepEqual(objs, want) {
		t.Fatalf("ParseTLV = %+v, want %+v", objs, want)
	}
	if o, ok := FindTLV(objs, 0x6F, 0xA5, 0x9F0C); !ok || !bytes.Equal(o.Value, []byte{0x86, 0x01, 0x03}) {
		t.Errorf("FindTLV 6F/A5/9F0C = %+v, %v", o, ok)
	}
	if _, ok := FindTLV(objs, 0x6F, 0x88); ok {
		t.Error("FindTLV found absent 88")
	}
	if _, ok := FindTLV(objs); ok {
		t.Error("FindTLV with empty path found something")
	}
	enc, err := EncodeTLV(want...)
	if err != nil || !bytes.Equal(enc, mustHex(t, fciSSSE)) {
		t.Fatalf("EncodeTLV = %X, %v", enc, err)
	}
}

func TestTLVLengths(t *testing.T) {
	tests := []struct {
		n      int
		header string
	}{
		{0, "5300"}, {1, "5301"}, {127, "537F"}, {128, "538180"}, {255, "5381FF"},
		{256, "53820100"}, {65535, "5382FFFF"}, {65536, "5383010000"},
	}
	for _, tt := range tests {
		v := seq(tt.n)
		enc, err := TLV{Tag: 0x53, Value: v}.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		want := append(mustHex(t, tt.header), v...)
		if !bytes.Equal(enc, want) {
			t.Errorf("length %d encodes with header %X, want %s", tt.n, enc[:len(enc)-tt.n], tt.header)
		}
		objs, err := ParseTLV(enc)
		if err != nil || len(objs) != 1 || !bytes.Equal(objs[0].Value, v) {
			t.Errorf("ParseTLV of length %d: %v", tt.n, err)
		}
	}
	// Non-minimal and 4-byte lengths are accepted; encoding is minimal.
	for _, in := range []string{"538103AABBCC", "53820003AABBCC", "5384 00000003 AABBCC"} {
		objs, err := ParseTLV(mustHex(t, in))
		if err != nil {
			t.Fatalf("ParseTLV(%s): %v", in, err)
		}
		enc, _ := EncodeTLV(objs...)
		if !bytes.Equal(enc, mustHex(t, "5303AABBCC")) {
			t.Errorf("ParseTLV(%s) re-encodes as %X", in, enc)
		}
	}
}

func TestTLVMultiByteTags(t *testing.T) {
	tests := []struct {
		hex string
		tag Tag
	}{
		{"9F0C0101", 0x9F0C},
		{"5F2001 41", 0x5F20},
		{"BF0C00", 0xBF0C},
		{"9F810101 AA", 0x9F8101},
		{"DF81820301 AA", 0xDF818203},
	}
	for _, tt := range tests {
		objs, err := ParseTLV(mustHex(t, tt.hex))
		if err != nil || len(objs) != 1 || objs[0].Tag != tt.tag {
			t.Errorf("ParseTLV(%s) = %+v, %v; want tag %s", tt.hex, objs, err, tt.tag)
			continue
		}
		if !bytes.Equal(tt.tag.Bytes(), mustHex(t, tt.hex)[:len(tt.tag.Bytes())]) {
			t.Errorf("Tag(%s).Bytes = %X", tt.tag, tt.tag.Bytes())
		}
		enc, err := EncodeTLV(objs...)
		if err != nil || !bytes.Equal(enc, mustHex(t, tt.hex)) {
			t.Errorf("EncodeTLV = %X, %v; want %s", enc, err, tt.hex)
		}
	}
	if Tag(0x9F0C).String() != "9F0C" || !Tag(0xBF0C).Constructed() || Tag(0x9F0C).Constructed() {
		t.Error("Tag String/Constructed wrong")
	}
}

func TestParseTLVStrict(t *testing.T) {
	deep := nestedTLV(MaxTLVDepth + 1)
	if _, err := ParseTLV(mustHex(t, nestedTLV(MaxTLVDepth))); err != nil {
		t.Fatalf("ParseTLV of %d nested objects: %v", MaxTLVDepth, err)
	}
	tests := []struct{ name, hex string }{
		{"tag truncated", "9F"},
		{"length missing", "9F0C"},
		{"long length truncated", "5381"},
		{"4-byte length truncated", "5384000000"},
		{"value truncated", "5305AABB"},
		{"child runs past parent", "6F03 5305AA"},
		{"child truncated inside parent", "6F02 53"},
		{"indefinite length", "6F80 0000"},
		{"5 length bytes", "5385 0000000001 AA"},
		{"huge length", "5384FFFFFFFF AA"},
		{"padding 00", "00"},
		{"padding FF", "FF"},
		{"padding between objects", "5301AA 00 5301BB"},
		{"tag longer than 4 bytes", "5F8080808001 00"},
		{"too deep", deep},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if objs, err := ParseTLV(mustHex(t, tt.hex)); !errors.Is(err, ErrMalformedTLV) {
				t.Fatalf("ParseTLV(%s) = %+v, %v; want ErrMalformedTLV", tt.hex, objs, err)
			}
		})
	}
}

// nestedTLV returns n constructed A1 objects nested in each other, in hex.
func nestedTLV(n int) string {
	s := ""
	for i := 0; i < n; i++ {
		s = "A1" + hexLen(len(s)/2) + s
	}
	return s
}

func hexLen(n int) string {
	if n < 0x80 {
		return string([]byte{hexDigits[n>>4], hexDigits[n&15]})
	}
	return "81" + string([]byte{hexDigits[n>>4], hexDigits[n&15]})
}

func TestEncodeTLVErrors(t *testing.T) {
	for _, tag := range []Tag{0, 0xFF, 0x1F, 0x0F12, 0x9F8080, 0x9F0C01, 0xFF01} {
		if b, err := EncodeTLV(TLV{Tag: tag}); !errors.Is(err, ErrMalformedTLV) {
			t.Errorf("EncodeTLV(tag %X) = %X, %v; want ErrMalformedTLV", uint32(tag), b, err)
		}
	}
	// A constructed object without children uses Value as encoded content.
	b, err := EncodeTLV(TLV{Tag: 0x6F, Value: mustHex(t, "5301AA")})
	if err != nil || !bytes.Equal(b, mustHex(t, "6F035301AA")) {
		t.Errorf("EncodeTLV(raw constructed) = %X, %v", b, err)
	}
}
