package profile

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
)

// Frame errors returned by [Framing.Decode] and [Framing.FrameLen]; they are
// wrapped with detail, test them with errors.Is.
var (
	// ErrShortFrame: more bytes are needed (a stream reader keeps reading;
	// on a complete buffer it means the frame was cut short).
	ErrShortFrame = errors.New("frame incomplete")
	// ErrBadStart: the bytes do not begin with the start marker.
	ErrBadStart = errors.New("frame start marker missing")
	// ErrBadLength: the length field is malformed or out of range.
	ErrBadLength = errors.New("frame length invalid")
	// ErrBadEnd: the end marker is not where the length field puts it.
	ErrBadEnd = errors.New("frame end marker missing")
	// ErrBadChecksum: the checksum does not match.
	ErrBadChecksum = errors.New("frame checksum mismatch")
)

// Framing describes how a frame is cut and built:
//
//	start · [address] · length · text · [end] · checksum
type Framing struct {
	Start    []byte
	Address  *AddressSpec // nil: no address byte
	Length   LengthSpec
	End      []byte // empty: no end marker
	Checksum ChecksumSpec
	MaxFrame int // whole frame, bytes
}

// AddressSpec describes the address byte (CRT-591 DIP switch).
type AddressSpec struct{ Default, Min, Max int }

// LengthSpec describes the length field.
type LengthSpec struct {
	Width    int    // bytes (binary) or digits (ascii-dec)
	Order    string // big | little (binary only)
	Encoding string // binary | ascii-dec
	Counts   string // text | text_checksum | text_end_checksum
}

// ChecksumSpec describes the checksum.
type ChecksumSpec struct {
	Algo     string // none | xor8 | sum8 | crc16-xmodem | crc16-ccitt-false
	From     string // start | address | length | text
	To       string // text | end
	Width    int    // value width in bytes: 0 (none), 1 or 2
	Order    string // big | little, for 2-byte values
	Encoding string // binary | ascii-hex (two hex digits per byte)
}

// Frame is a decoded frame.
type Frame struct {
	Addr byte
	Text []byte
}

// checksum algorithms
var checksumWidth = map[string]int{"none": 0, "xor8": 1, "sum8": 1, "crc16-xmodem": 2, "crc16-ccitt-false": 2}

// Checksum computes algo over b. It returns 0 for "none" and unknown names.
func Checksum(algo string, b []byte) uint16 {
	switch algo {
	case "xor8":
		var x byte
		for _, c := range b {
			x ^= c
		}
		return uint16(x)
	case "sum8":
		var s byte
		for _, c := range b {
			s += c
		}
		return uint16(s)
	case "crc16-xmodem":
		return crc16(0x0000, b)
	case "crc16-ccitt-false":
		return crc16(0xFFFF, b)
	}
	return 0
}

// crc16 is the MSB-first CRC with polynomial 0x1021, no reflection, no
// final XOR.
func crc16(crc uint16, b []byte) uint16 {
	for _, c := range b {
		crc ^= uint16(c) << 8
		for i := 0; i < 8; i++ {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}

func (f *Framing) addrLen() int {
	if f.Address == nil {
		return 0
	}
	return 1
}

// HeaderLen is the number of bytes up to and including the length field.
func (f *Framing) HeaderLen() int { return len(f.Start) + f.addrLen() + f.Length.Width }

// checksumLen is the checksum's size on the wire.
func (f *Framing) checksumLen() int {
	if f.Checksum.Encoding == "ascii-hex" {
		return 2 * f.Checksum.Width
	}
	return f.Checksum.Width
}

// Overhead is the number of frame bytes around the text.
func (f *Framing) Overhead() int { return f.HeaderLen() + len(f.End) + f.checksumLen() }

// lengthExtra is what the length field counts beyond the text.
func (f *Framing) lengthExtra() int {
	switch f.Length.Counts {
	case "text_checksum":
		return f.checksumLen()
	case "text_end_checksum":
		return len(f.End) + f.checksumLen()
	}
	return 0
}

func (f *Framing) maxLengthValue() int {
	if f.Length.Encoding == "ascii-dec" {
		m := 1
		for i := 0; i < f.Length.Width; i++ {
			m *= 10
		}
		return m - 1
	}
	return 1<<(8*f.Length.Width) - 1
}

// MaxText is the longest text a frame may carry.
func (f *Framing) MaxText() int {
	n := f.MaxFrame - f.Overhead()
	if m := f.maxLengthValue() - f.lengthExtra(); m < n {
		n = m
	}
	return n
}

// Encode builds a frame around text. addr is used only when the framing has
// an address byte. It fails when text does not fit.
func (f *Framing) Encode(addr byte, text []byte) ([]byte, error) {
	if len(text) > f.MaxText() {
		return nil, fmt.Errorf("encode frame: text of %d bytes exceeds %d: %w", len(text), f.MaxText(), ErrBadLength)
	}
	out := make([]byte, 0, len(text)+f.Overhead())
	out = append(out, f.Start...)
	if f.Address != nil {
		out = append(out, addr)
	}
	out = f.appendLength(out, len(text)+f.lengthExtra())
	out = append(out, text...)
	out = append(out, f.End...)
	sum := Checksum(f.Checksum.Algo, out[f.rangeStart():f.rangeEnd(len(text))])
	return f.appendChecksum(out, sum), nil
}

func (f *Framing) appendLength(out []byte, v int) []byte {
	w := f.Length.Width
	if f.Length.Encoding == "ascii-dec" {
		return append(out, fmt.Sprintf("%0*d", w, v)...)
	}
	b := make([]byte, w)
	for i := 0; i < w; i++ {
		shift := 8 * i
		if f.Length.Order == "big" {
			shift = 8 * (w - 1 - i)
		}
		b[i] = byte(v >> shift)
	}
	return append(out, b...)
}

func (f *Framing) appendChecksum(out []byte, sum uint16) []byte {
	var b []byte
	switch f.Checksum.Width {
	case 1:
		b = []byte{byte(sum)}
	case 2:
		if f.Checksum.Order == "little" {
			b = []byte{byte(sum), byte(sum >> 8)}
		} else {
			b = []byte{byte(sum >> 8), byte(sum)}
		}
	}
	if f.Checksum.Encoding == "ascii-hex" {
		return append(out, bytes.ToUpper([]byte(hex.EncodeToString(b)))...)
	}
	return append(out, b...)
}

// rangeStart is the offset where the checksum range begins.
func (f *Framing) rangeStart() int {
	switch f.Checksum.From {
	case "address":
		return len(f.Start)
	case "length":
		return len(f.Start) + f.addrLen()
	case "text":
		return f.HeaderLen()
	}
	return 0
}

// rangeEnd is the offset just past the checksum range for a text of n bytes.
func (f *Framing) rangeEnd(n int) int {
	end := f.HeaderLen() + n
	if f.Checksum.To == "end" {
		end += len(f.End)
	}
	return end
}

// FrameLen reads the header at the start of b (at least HeaderLen bytes)
// and returns the length of the whole frame. It fails with ErrShortFrame,
// ErrBadStart or ErrBadLength.
func (f *Framing) FrameLen(b []byte) (int, error) {
	if len(b) < f.HeaderLen() {
		return 0, fmt.Errorf("decode frame header: %d of %d bytes: %w", len(b), f.HeaderLen(), ErrShortFrame)
	}
	if !bytes.Equal(b[:len(f.Start)], f.Start) {
		return 0, fmt.Errorf("decode frame: % X: %w", b[:len(f.Start)], ErrBadStart)
	}
	if f.Address != nil {
		if a := int(b[len(f.Start)]); a < f.Address.Min || a > f.Address.Max {
			return 0, fmt.Errorf("decode frame: address %d outside %d..%d: %w", a, f.Address.Min, f.Address.Max, ErrBadStart)
		}
	}
	field := b[len(f.Start)+f.addrLen() : f.HeaderLen()]
	v := 0
	for i, c := range field {
		switch {
		case f.Length.Encoding == "ascii-dec":
			if c < '0' || c > '9' {
				return 0, fmt.Errorf("decode frame: length digit %q: %w", c, ErrBadLength)
			}
			v = v*10 + int(c-'0')
		case f.Length.Order == "big":
			v = v<<8 | int(c)
		default:
			v |= int(c) << (8 * i)
		}
	}
	n := v - f.lengthExtra()
	total := f.HeaderLen() + n + len(f.End) + f.checksumLen()
	if n < 0 || total > f.MaxFrame {
		return 0, fmt.Errorf("decode frame: length field %d (frame %d bytes, max %d): %w", v, total, f.MaxFrame, ErrBadLength)
	}
	return total, nil
}

// Decode parses the frame at the start of b and returns it with the number
// of bytes it occupies. Bytes after the frame are ignored. Errors:
// ErrShortFrame (b holds less than the length field announces), ErrBadStart,
// ErrBadLength, ErrBadEnd, ErrBadChecksum (n is then still the frame's
// length, so a reader can skip it).
func (f *Framing) Decode(b []byte) (fr Frame, n int, err error) {
	total, err := f.FrameLen(b)
	if err != nil {
		return Frame{}, 0, err
	}
	if len(b) < total {
		return Frame{}, 0, fmt.Errorf("decode frame: %d of %d bytes: %w", len(b), total, ErrShortFrame)
	}
	hl := f.HeaderLen()
	textLen := total - hl - len(f.End) - f.checksumLen()
	endAt := hl + textLen
	if !bytes.Equal(b[endAt:endAt+len(f.End)], f.End) {
		return Frame{}, 0, fmt.Errorf("decode frame: % X where end % X belongs: %w", b[endAt:endAt+len(f.End)], f.End, ErrBadEnd)
	}
	sum := Checksum(f.Checksum.Algo, b[f.rangeStart():f.rangeEnd(textLen)])
	want := f.appendChecksum(nil, sum)
	got := b[endAt+len(f.End) : total]
	if !bytes.Equal(got, want) {
		return Frame{}, total, fmt.Errorf("decode frame: checksum % X, computed % X: %w", got, want, ErrBadChecksum)
	}
	if f.Address != nil {
		fr.Addr = b[len(f.Start)]
	}
	fr.Text = append([]byte(nil), b[hl:endAt]...)
	return fr, total, nil
}
