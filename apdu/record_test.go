package apdu

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestParseRecord(t *testing.T) {
	tests := []struct {
		hex   string
		tag   byte
		value string
	}{
		{"0110639900D15600000500BF7C7A48FB4966", 0x01, "639900D15600000500BF7C7A48FB4966"},
		{"0304332E3030", 0x03, "332E3030"},
		{"0A00", 0x0A, ""},
	}
	for _, tt := range tests {
		in := mustHex(t, tt.hex)
		r, err := ParseRecord(in)
		if err != nil {
			t.Fatalf("ParseRecord(%s): %v", tt.hex, err)
		}
		if r.Tag != tt.tag || !bytes.Equal(r.Value, mustHex(t, tt.value)) {
			t.Errorf("ParseRecord(%s) = %02X %X", tt.hex, r.Tag, r.Value)
		}
		if b := r.Bytes(); !bytes.Equal(b, in) {
			t.Errorf("Bytes = %X, want %X", b, in)
		}
	}
	for _, bad := range []string{"", "01", "0105AABB", "0302AABBCC", "0304332E3030 9000"} {
		if r, err := ParseRecord(mustHex(t, bad)); !errors.Is(err, ErrMalformedRecord) {
			t.Errorf("ParseRecord(%s) = %+v, %v; want ErrMalformedRecord", bad, r, err)
		}
	}
	if b := (Record{Tag: 1, Value: make([]byte, 256)}).Bytes(); b != nil {
		t.Errorf("Bytes of a 256-byte value = %d bytes, want nil", len(b))
	}
}

// TestSSCFields checks the field table against ssc-card-facts §1.4.
func TestSSCFields(t *testing.T) {
	want := []struct {
		file string
		tag  byte
		zh   string
		n    int
		enc  Encoding
	}{
		{"EF05", 0x01, "卡识别码", 16, EncBinary},
		{"EF05", 0x02, "卡的类别", 1, EncAN},
		{"EF05", 0x03, "规范版本", 4, EncAN},
		{"EF05", 0x04, "初始化机构编号", 12, EncCN},
		{"EF05", 0x05, "发卡日期", 4, EncDate},
		{"EF05", 0x06, "卡有效期", 4, EncDate},
		{"EF05", 0x07, "卡号", 9, EncAN},
		{"EF06", 0x08, "社会保障号码", 18, EncAN},
		{"EF06", 0x09, "姓名", 30, EncGBK},
		{"EF06", 0x4E, "姓名扩展", 20, EncGBK},
		{"EF06", 0x0A, "性别", 1, EncAN},
		{"EF06", 0x0B, "民族", 1, EncCN},
		{"EF06", 0x0C, "出生地", 3, EncCN},
		{"EF06", 0x0D, "出生日期", 4, EncDate},
	}
	if len(SSCFields) != len(want) {
		t.Fatalf("SSCFields has %d entries, want %d", len(SSCFields), len(want))
	}
	for _, w := range want {
		f, ok := FieldByTag(w.file, w.tag)
		if !ok {
			t.Errorf("FieldByTag(%s, %02X) not found", w.file, w.tag)
			continue
		}
		if f.NameZH != w.zh || f.Len != w.n || f.Encoding != w.enc || f.Name == "" {
			t.Errorf("field %s/%02X = %+v", w.file, w.tag, f)
		}
		if g, ok := FieldByTag("", w.tag); !ok || g != f {
			t.Errorf("FieldByTag(\"\", %02X) = %+v, %v", w.tag, g, ok)
		}
		if g, ok := FieldByTag(strings.ToLower(w.file), w.tag); !ok || g != f {
			t.Errorf("FieldByTag is case-sensitive for %s", w.file)
		}
		other := "EF06"
		if w.file == "EF06" {
			other = "EF05"
		}
		if _, ok := FieldByTag(other, w.tag); ok {
			t.Errorf("tag %02X found in %s too", w.tag, other)
		}
	}
	if _, ok := FieldByTag("", 0x0E); ok {
		t.Error("FieldByTag found unknown tag 0E")
	}
}

func TestFieldDecodeEncode(t *testing.T) {
	tests := []struct {
		tag   byte
		value string // hex
		text  string
	}{
		{0x01, "639900D15600000500BF7C7A48FB4966", "639900D15600000500BF7C7A48FB4966"},
		{0x03, "332E3030", "3.00"},
		{0x04, "411600000000000000000000", "411600000000000000000000"},
		{0x05, "20211203", "20211203"},
		{0x06, "20311202", "20311202"},
		{0x07, "413132333435363738", "A12345678"},
		{0x08, "313130313031313939303031303130303158", "11010119900101001X"},
		{0x09, "C9E7BBE1B1A3D5CF" + strings.Repeat("00", 22), "社会保障"},
		{0x0A, "32", "2"},
		{0x0B, "01", "01"},
		{0x0C, "110105", "110105"},
		{0x0D, "19900101", "19900101"},
	}
	for _, tt := range tests {
		f, _ := FieldByTag("", tt.tag)
		v := mustHex(t, tt.value)
		text, err := f.Decode(v)
		if err != nil || text != tt.text {
			t.Errorf("%s.Decode(%X) = %q, %v; want %q", f.Name, v, text, err, tt.text)
		}
		enc, err := f.Encode(tt.text)
		if err != nil || !bytes.Equal(enc, v) {
			t.Errorf("%s.Encode(%q) = %X, %v; want %X", f.Name, tt.text, enc, err, v)
		}
		r, err := f.Record(tt.text)
		if err != nil || r.Tag != tt.tag || !bytes.Equal(r.Value, v) {
			t.Errorf("%s.Record = %+v, %v", f.Name, r, err)
		}
		gf, gtext, ok, err := DecodeRecord(f.File, r)
		if !ok || err != nil || gf != f || gtext != tt.text {
			t.Errorf("DecodeRecord(%s, %+v) = %v, %q, %v, %v", f.File, r, gf, gtext, ok, err)
		}
	}
}

func TestFieldDecodeErrors(t *testing.T) {
	tests := []struct {
		tag   byte
		value string
	}{
		{0x05, "20230229"},     // no such date
		{0x0D, "1990A101"},     // not BCD
		{0x0B, "0A"},           // not BCD
		{0x03, "332E0130"},     // control byte in an
		{0x09, "C9E7FFBBE1"},   // bad GBK
		{0x05, "201112"},       // short date
		{0x08, "3131FF3131"},   // FF inside an
		{0x0C, "11F105"},       // F before a digit
		{0x04, "4116000000BC"}, // hex letters in cn
	}
	for _, tt := range tests {
		f, _ := FieldByTag("", tt.tag)
		if s, err := f.Decode(mustHex(t, tt.value)); !errors.Is(err, ErrBadValue) {
			t.Errorf("%s.Decode(%s) = %q, %v; want ErrBadValue", f.Name, tt.value, s, err)
		}
	}
	// Unwritten fields decode to "".
	for _, tag := range []byte{0x05, 0x07, 0x09, 0x0B} {
		f, _ := FieldByTag("", tag)
		for _, fill := range []byte{0x00, 0xFF} {
			v := bytes.Repeat([]byte{fill}, f.Len)
			if s, err := f.Decode(v); err != nil || s != "" {
				t.Errorf("%s.Decode(%X) = %q, %v; want empty", f.Name, v, s, err)
			}
		}
	}
	for _, tt := range []struct {
		tag  byte
		text string
	}{{0x01, "6399"}, {0x01, "zz"}, {0x05, "20230229"}, {0x07, "1234567890"}, {0x09, strings.Repeat("张", 16)}, {0x0C, "1101051"}} {
		f, _ := FieldByTag("", tt.tag)
		if v, err := f.Encode(tt.text); !errors.Is(err, ErrBadValue) {
			t.Errorf("%s.Encode(%q) = %X, %v; want ErrBadValue", f.Name, tt.text, v, err)
		}
	}
	if _, text, ok, err := DecodeRecord("", Record{Tag: 0x7F, Value: []byte{1, 2}}); ok || err != nil || text != "0102" {
		t.Errorf("DecodeRecord(unknown tag) = %q, %v, %v", text, ok, err)
	}
}
