package apdu

import (
	"bytes"
	"errors"
	"fmt"
)

// ErrMalformedTLV is wrapped by every BER-TLV parse and encode error.
var ErrMalformedTLV = errors.New("malformed BER-TLV")

// MaxTLVDepth bounds the nesting of constructed objects ParseTLV accepts.
const MaxTLVDepth = 32

// Tag is a BER-TLV tag: its 1 to 4 bytes read as a big-endian number, e.g.
// 0x6F, 0x9F0C, 0xBF0C. The first tag byte is never 00 or FF (padding), so
// the number identifies the bytes.
type Tag uint32

// Bytes returns the tag's encoding (without leading zero bytes).
func (t Tag) Bytes() []byte {
	switch {
	case t > 0xFFFFFF:
		return []byte{byte(t >> 24), byte(t >> 16), byte(t >> 8), byte(t)}
	case t > 0xFFFF:
		return []byte{byte(t >> 16), byte(t >> 8), byte(t)}
	case t > 0xFF:
		return []byte{byte(t >> 8), byte(t)}
	}
	return []byte{byte(t)}
}

// Constructed reports whether the tag's first byte has the constructed bit
// (b6) set.
func (t Tag) Constructed() bool { return t.Bytes()[0]&0x20 != 0 }

// String returns the tag in upper-case hex, e.g. "9F0C".
func (t Tag) String() string { return fmt.Sprintf("%X", t.Bytes()) }

// valid reports whether t is a well-formed tag: a first byte other than
// 00/FF; when its low 5 bits are all 1, subsequent bytes with b8 set on all
// but the last.
func (t Tag) valid() bool {
	b := t.Bytes()
	if b[0] == 0x00 || b[0] == 0xFF {
		return false
	}
	if b[0]&0x1F != 0x1F {
		return len(b) == 1
	}
	if len(b) < 2 {
		return false
	}
	for i := 1; i < len(b)-1; i++ {
		if b[i]&0x80 == 0 {
			return false
		}
	}
	return b[len(b)-1]&0x80 == 0
}

// TLV is one BER-TLV data object. A primitive object (tag b6 clear) carries
// Value; a constructed object carries Children. When encoding a
// constructed object whose Children is empty, Value is used as its
// already-encoded content.
type TLV struct {
	Tag      Tag
	Value    []byte
	Children []TLV
}

// ParseTLV parses a sequence of BER-TLV objects that must cover b exactly,
// descending into constructed objects. Tags may have up to 4 bytes, lengths
// up to 4 length bytes (81..84 xx..). It is strict: truncation, a length
// running past its container, the indefinite length 80, padding bytes 00/FF
// where a tag is expected and nesting deeper than MaxTLVDepth are errors
// wrapping ErrMalformedTLV. Non-minimal lengths (81 05) are accepted; the
// encoder always writes the minimal form. Values are copies.
func ParseTLV(b []byte) ([]TLV, error) {
	return parseTLVs(b, 0, 0)
}

func parseTLVs(b []byte, off, depth int) ([]TLV, error) {
	if depth > MaxTLVDepth {
		return nil, fmt.Errorf("parse TLV: %w: nesting deeper than %d at offset %d", ErrMalformedTLV, MaxTLVDepth, off)
	}
	var out []TLV
	for len(b) > 0 {
		t, hdr, n, err := parseTLVHeader(b, off)
		if err != nil {
			return nil, err
		}
		content := b[hdr : hdr+n]
		obj := TLV{Tag: t}
		if t.Constructed() {
			if obj.Children, err = parseTLVs(content, off+hdr, depth+1); err != nil {
				return nil, err
			}
		} else {
			obj.Value = append([]byte{}, content...)
		}
		out = append(out, obj)
		b = b[hdr+n:]
		off += hdr + n
	}
	return out, nil
}

// parseTLVHeader reads a tag and a length at the start of b, checks that
// the content fits, and returns the tag, the header size and the content
// length.
func parseTLVHeader(b []byte, off int) (Tag, int, int, error) {
	if b[0] == 0x00 || b[0] == 0xFF {
		return 0, 0, 0, fmt.Errorf("parse TLV: %w: padding byte %02X where a tag is expected at offset %d", ErrMalformedTLV, b[0], off)
	}
	i := 1
	if b[0]&0x1F == 0x1F {
		for {
			if i >= len(b) {
				return 0, 0, 0, fmt.Errorf("parse TLV: %w: tag truncated at offset %d", ErrMalformedTLV, off)
			}
			if i >= 4 {
				return 0, 0, 0, fmt.Errorf("parse TLV: %w: tag longer than 4 bytes at offset %d", ErrMalformedTLV, off)
			}
			i++
			if b[i-1]&0x80 == 0 {
				break
			}
		}
	}
	var t Tag
	for _, x := range b[:i] {
		t = t<<8 | Tag(x)
	}
	if i >= len(b) {
		return 0, 0, 0, fmt.Errorf("parse TLV: %w: length of tag %s missing at offset %d", ErrMalformedTLV, t, off)
	}
	l := b[i]
	i++
	var n uint64
	switch {
	case l < 0x80:
		n = uint64(l)
	case l == 0x80:
		return 0, 0, 0, fmt.Errorf("parse TLV: %w: indefinite length for tag %s at offset %d", ErrMalformedTLV, t, off)
	case l > 0x84:
		return 0, 0, 0, fmt.Errorf("parse TLV: %w: %d length bytes for tag %s at offset %d (at most 4)", ErrMalformedTLV, l&0x7F, t, off)
	default:
		k := int(l & 0x7F)
		if i+k > len(b) {
			return 0, 0, 0, fmt.Errorf("parse TLV: %w: length of tag %s truncated at offset %d", ErrMalformedTLV, t, off)
		}
		for _, x := range b[i : i+k] {
			n = n<<8 | uint64(x)
		}
		i += k
	}
	if n > uint64(len(b)-i) {
		return 0, 0, 0, fmt.Errorf("parse TLV: %w: tag %s at offset %d declares %d bytes, %d left", ErrMalformedTLV, t, off, n, len(b)-i)
	}
	return t, i, int(n), nil
}

// EncodeTLV encodes objects in order with minimal length fields. An
// invalid tag is an error wrapping ErrMalformedTLV.
func EncodeTLV(objs ...TLV) ([]byte, error) {
	var buf bytes.Buffer
	for _, o := range objs {
		if err := o.encode(&buf, 0); err != nil {
			return nil, err
		}
	}
	return buf.Bytes(), nil
}

// Bytes encodes t; see EncodeTLV.
func (t TLV) Bytes() ([]byte, error) { return EncodeTLV(t) }

func (t TLV) encode(buf *bytes.Buffer, depth int) error {
	if !t.Tag.valid() {
		return fmt.Errorf("encode TLV: %w: invalid tag %s", ErrMalformedTLV, t.Tag)
	}
	if depth > MaxTLVDepth {
		return fmt.Errorf("encode TLV: %w: nesting deeper than %d", ErrMalformedTLV, MaxTLVDepth)
	}
	content := t.Value
	if t.Tag.Constructed() && len(t.Children) > 0 {
		var inner bytes.Buffer
		for _, c := range t.Children {
			if err := c.encode(&inner, depth+1); err != nil {
				return err
			}
		}
		content = inner.Bytes()
	}
	buf.Write(t.Tag.Bytes())
	n := uint64(len(content))
	switch {
	case n < 0x80:
		buf.WriteByte(byte(n))
	case n <= 0xFF:
		buf.Write([]byte{0x81, byte(n)})
	case n <= 0xFFFF:
		buf.Write([]byte{0x82, byte(n >> 8), byte(n)})
	case n <= 0xFFFFFF:
		buf.Write([]byte{0x83, byte(n >> 16), byte(n >> 8), byte(n)})
	case n <= 0xFFFFFFFF:
		buf.Write([]byte{0x84, byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)})
	default:
		return fmt.Errorf("encode TLV: %w: value of tag %s too long", ErrMalformedTLV, t.Tag)
	}
	buf.Write(content)
	return nil
}

// FindTLV returns the first object reached by following path through objs
// and their children (e.g. FindTLV(fci, 0x6F, 0xA5, 0x9F0C)).
func FindTLV(objs []TLV, path ...Tag) (TLV, bool) {
	if len(path) == 0 {
		return TLV{}, false
	}
	for _, o := range objs {
		if o.Tag != path[0] {
			continue
		}
		if len(path) == 1 {
			return o, true
		}
		if r, ok := FindTLV(o.Children, path[1:]...); ok {
			return r, true
		}
	}
	return TLV{}, false
}
