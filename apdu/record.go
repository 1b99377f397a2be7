package apdu

import (
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// ErrMalformedRecord is wrapped by ParseRecord errors.
var ErrMalformedRecord = errors.New("malformed SSC record")

// Record is one fixed-length record of the social-security card's SSSE
// files EF05/EF06 (ssc-card-facts §1.4): tag(1) len(1) value.
type Record struct {
	Tag   byte
	Value []byte
}

// Bytes encodes r as tag, length, value. A record holds at most 255 value
// bytes; Bytes returns nil for a longer Value (use Field.Record to build
// records with checking).
func (r Record) Bytes() []byte {
	if len(r.Value) > 255 {
		return nil
	}
	b := make([]byte, 0, 2+len(r.Value))
	b = append(b, r.Tag, byte(len(r.Value)))
	return append(b, r.Value...)
}

// ParseRecord decodes the data of a READ RECORD response (without the
// status word). The length byte must match the value exactly: short input
// and trailing bytes are errors wrapping ErrMalformedRecord. Value is a copy.
func ParseRecord(b []byte) (Record, error) {
	if len(b) < 2 {
		return Record{}, fmt.Errorf("parse record: %w: %d bytes, need tag and length", ErrMalformedRecord, len(b))
	}
	if n := int(b[1]); n != len(b)-2 {
		return Record{}, fmt.Errorf("parse record: %w: tag %02X declares %d value bytes, %d present", ErrMalformedRecord, b[0], n, len(b)-2)
	}
	return Record{Tag: b[0], Value: append([]byte{}, b[2:]...)}, nil
}

// Encoding is how a field's value is coded.
type Encoding int

// Field encodings.
const (
	EncBinary Encoding = iota // raw bytes, shown as upper-case hex
	EncCN                     // BCD digits, left-aligned, F-padded
	EncAN                     // printable ASCII, left-aligned, 00-padded
	EncGBK                    // GBK text, 00-padded
	EncDate                   // cn YYYYMMDD, 4 bytes
)

// String returns the encoding's short name: binary, cn, an, GBK, date.
func (e Encoding) String() string {
	switch e {
	case EncBinary:
		return "binary"
	case EncCN:
		return "cn"
	case EncAN:
		return "an"
	case EncGBK:
		return "GBK"
	case EncDate:
		return "date"
	}
	return fmt.Sprintf("Encoding(%d)", int(e))
}

// Field describes one data item of the SSSE files EF05/EF06.
type Field struct {
	File     string // "EF05" or "EF06"
	Tag      byte
	Name     string // English name
	NameZH   string // Chinese name as in the specification
	Len      int    // value length in bytes
	Encoding Encoding
}

// SSCFields lists every EF05/EF06 item of ssc-card-facts §1.4 in tag order
// of the files. Tags are unique across the two files.
var SSCFields = []Field{
	{"EF05", 0x01, "card identification code", "卡识别码", 16, EncBinary},
	{"EF05", 0x02, "card type", "卡的类别", 1, EncAN},
	{"EF05", 0x03, "specification version", "规范版本", 4, EncAN},
	{"EF05", 0x04, "initialising organisation number", "初始化机构编号", 12, EncCN},
	{"EF05", 0x05, "issue date", "发卡日期", 4, EncDate},
	{"EF05", 0x06, "expiry date", "卡有效期", 4, EncDate},
	{"EF05", 0x07, "card number", "卡号", 9, EncAN},
	{"EF06", 0x08, "social security number", "社会保障号码", 18, EncAN},
	{"EF06", 0x09, "name", "姓名", 30, EncGBK},
	{"EF06", 0x4E, "name extension", "姓名扩展", 20, EncGBK},
	{"EF06", 0x0A, "sex", "性别", 1, EncAN},
	{"EF06", 0x0B, "ethnic group", "民族", 1, EncCN},
	{"EF06", 0x0C, "birthplace", "出生地", 3, EncCN},
	{"EF06", 0x0D, "birth date", "出生日期", 4, EncDate},
}

// FieldByTag returns the field with the given tag in file ("EF05",
// "EF06"; case-insensitive), or in either file when file is "".
func FieldByTag(file string, tag byte) (Field, bool) {
	for _, f := range SSCFields {
		if f.Tag == tag && (file == "" || strings.EqualFold(file, f.File)) {
			return f, true
		}
	}
	return Field{}, false
}

// Decode renders a value of the field as display text: binary as
// upper-case hex, cn as digits, an and GBK as text, dates as YYYYMMDD.
// A value of all 00 or all FF bytes is an unwritten field and gives "".
// The value length is not checked against Len (cards differ); the content
// is checked strictly and errors wrap ErrBadValue.
func (f Field) Decode(v []byte) (string, error) {
	if f.Encoding != EncBinary && unset(v) {
		return "", nil
	}
	var (
		s   string
		err error
	)
	switch f.Encoding {
	case EncBinary:
		return strings.ToUpper(hex.EncodeToString(v)), nil
	case EncCN:
		s, err = decodeCNStrict(v)
	case EncAN:
		s, err = decodeANStrict(v)
	case EncGBK:
		s, err = DecodeGBK(v)
	case EncDate:
		s, err = DecodeDate(v)
	default:
		err = fmt.Errorf("%w: unknown encoding %v", ErrBadValue, f.Encoding)
	}
	if err != nil {
		return "", fmt.Errorf("decode %s %s: %w", f.File, f.Name, err)
	}
	return s, nil
}

// Encode codes display text s as the field's value of exactly Len bytes
// (binary fields take hex). Errors wrap ErrBadValue.
func (f Field) Encode(s string) ([]byte, error) {
	var (
		v   []byte
		err error
	)
	switch f.Encoding {
	case EncBinary:
		v, err = hex.DecodeString(s)
		if err == nil && len(v) != f.Len {
			err = fmt.Errorf("%w: %d bytes, want %d", ErrBadValue, len(v), f.Len)
		} else if err != nil {
			err = fmt.Errorf("%w: %v", ErrBadValue, err)
		}
	case EncCN:
		v, err = EncodeCN(s, f.Len)
	case EncAN:
		v, err = EncodeAN(s, f.Len)
	case EncGBK:
		v, err = EncodeGBK(s, f.Len)
	case EncDate:
		v, err = EncodeDate(s)
	default:
		err = fmt.Errorf("%w: unknown encoding %v", ErrBadValue, f.Encoding)
	}
	if err != nil {
		return nil, fmt.Errorf("encode %s %s: %w", f.File, f.Name, err)
	}
	return v, nil
}

// Record returns the record holding s in this field (see Encode).
func (f Field) Record(s string) (Record, error) {
	v, err := f.Encode(s)
	if err != nil {
		return Record{}, err
	}
	return Record{Tag: f.Tag, Value: v}, nil
}

// DecodeRecord looks up r's field in file (or either file when file is
// "") and decodes its value. ok is false when the tag is unknown; the text
// is then the value in hex.
func DecodeRecord(file string, r Record) (f Field, text string, ok bool, err error) {
	f, ok = FieldByTag(file, r.Tag)
	if !ok {
		return Field{}, strings.ToUpper(hex.EncodeToString(r.Value)), false, nil
	}
	text, err = f.Decode(r.Value)
	return f, text, true, err
}

func unset(v []byte) bool {
	if len(v) == 0 {
		return true
	}
	for _, x := range v[1:] {
		if x != v[0] {
			return false
		}
	}
	return v[0] == 0x00 || v[0] == 0xFF
}
