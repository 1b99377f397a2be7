package apdu

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/encoding/simplifiedchinese"
)

// ErrBadValue is wrapped by every codec error: a value that does not fit
// its encoding (non-digit in cn, non-printable in an, invalid GBK, impossible
// date, wrong length, too long for the field).
var ErrBadValue = errors.New("bad field value")

const hexDigits = "0123456789ABCDEF"

// EncodeCN encodes a string of decimal digits as cn (BCD): two digits a
// byte, left-aligned, padded with F nibbles to n bytes. It returns an error
// wrapping ErrBadValue for a non-digit, for more than 2n digits or for n < 0.
func EncodeCN(digits string, n int) ([]byte, error) {
	if n < 0 {
		return nil, fmt.Errorf("encode cn: %w: negative length %d", ErrBadValue, n)
	}
	if len(digits) > 2*n {
		return nil, fmt.Errorf("encode cn: %w: %d digits do not fit %d bytes", ErrBadValue, len(digits), n)
	}
	b := make([]byte, n)
	for i := range b {
		b[i] = 0xFF
	}
	for i := 0; i < len(digits); i++ {
		d := digits[i]
		if d < '0' || d > '9' {
			return nil, fmt.Errorf("encode cn: %w: non-digit at position %d", ErrBadValue, i)
		}
		if i%2 == 0 {
			b[i/2] = (d-'0')<<4 | 0x0F
		} else {
			b[i/2] = b[i/2]&0xF0 | (d - '0')
		}
	}
	return b, nil
}

// DecodeCN decodes cn (BCD) bytes: every nibble becomes one character and
// trailing F padding nibbles are dropped. It never fails and hides nothing:
// nibbles A–F that are not trailing padding appear as hex letters, so a
// result that is not all digits reveals a malformed value (see
// Field.Decode for a strict decode).
func DecodeCN(b []byte) string {
	out := make([]byte, 0, 2*len(b))
	for _, x := range b {
		out = append(out, hexDigits[x>>4], hexDigits[x&0x0F])
	}
	return strings.TrimRight(string(out), "F")
}

// decodeCNStrict is DecodeCN that rejects anything but digits followed by F
// padding.
func decodeCNStrict(b []byte) (string, error) {
	s := DecodeCN(b)
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return "", fmt.Errorf("decode cn: %w: nibble %c at position %d", ErrBadValue, s[i], i)
		}
	}
	return s, nil
}

// EncodeAN encodes printable ASCII (20–7E) as an: left-aligned, padded with
// 00 to n bytes. Errors wrap ErrBadValue.
func EncodeAN(s string, n int) ([]byte, error) {
	if n < 0 {
		return nil, fmt.Errorf("encode an: %w: negative length %d", ErrBadValue, n)
	}
	if len(s) > n {
		return nil, fmt.Errorf("encode an: %w: %d characters do not fit %d bytes", ErrBadValue, len(s), n)
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7E {
			return nil, fmt.Errorf("encode an: %w: byte %02X at position %d is not printable ASCII", ErrBadValue, s[i], i)
		}
	}
	b := make([]byte, n)
	copy(b, s)
	return b, nil
}

// DecodeAN decodes an bytes: trailing 00 padding is dropped and the rest is
// returned as text. It never fails; a byte that is not printable ASCII
// becomes U+FFFD so that the result is always valid UTF-8 (see
// Field.Decode for a strict decode).
func DecodeAN(b []byte) string {
	for len(b) > 0 && b[len(b)-1] == 0 {
		b = b[:len(b)-1]
	}
	var sb strings.Builder
	for _, x := range b {
		if x < 0x20 || x > 0x7E {
			sb.WriteRune(utf8.RuneError)
			continue
		}
		sb.WriteByte(x)
	}
	return sb.String()
}

func decodeANStrict(b []byte) (string, error) {
	s := DecodeAN(b)
	if i := strings.IndexRune(s, utf8.RuneError); i >= 0 {
		return "", fmt.Errorf("decode an: %w: byte at position %d is not printable ASCII", ErrBadValue, i)
	}
	return s, nil
}

// EncodeGBK encodes s in GBK, left-aligned and padded with 00 to n bytes.
// Errors wrap ErrBadValue: a character GBK cannot encode, a control
// character, or an encoding longer than n bytes (never cut inside a
// character).
func EncodeGBK(s string, n int) ([]byte, error) {
	if n < 0 {
		return nil, fmt.Errorf("encode GBK: %w: negative length %d", ErrBadValue, n)
	}
	if !utf8.ValidString(s) {
		return nil, fmt.Errorf("encode GBK: %w: invalid UTF-8", ErrBadValue)
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7F {
			return nil, fmt.Errorf("encode GBK: %w: control character U+%04X", ErrBadValue, r)
		}
	}
	enc, err := simplifiedchinese.GBK.NewEncoder().String(s)
	if err != nil {
		return nil, fmt.Errorf("encode GBK: %w: character not in GBK", ErrBadValue)
	}
	if len(enc) > n {
		return nil, fmt.Errorf("encode GBK: %w: %d bytes do not fit %d", ErrBadValue, len(enc), n)
	}
	b := make([]byte, n)
	copy(b, enc)
	return b, nil
}

// DecodeGBK decodes GBK text such as a card holder's name: trailing 00, 20
// and FF padding bytes are trimmed first (none of them can end a GBK
// character). Invalid GBK sequences and embedded control characters are
// errors wrapping ErrBadValue.
func DecodeGBK(b []byte) (string, error) {
	for len(b) > 0 {
		x := b[len(b)-1]
		if x != 0x00 && x != 0x20 && x != 0xFF {
			break
		}
		b = b[:len(b)-1]
	}
	s, err := simplifiedchinese.GBK.NewDecoder().Bytes(b)
	if err != nil {
		return "", fmt.Errorf("decode GBK: %w: %v", ErrBadValue, err)
	}
	for i, r := range string(s) {
		switch {
		case r == utf8.RuneError:
			return "", fmt.Errorf("decode GBK: %w: invalid GBK sequence", ErrBadValue)
		case r < 0x20 || r == 0x7F:
			return "", fmt.Errorf("decode GBK: %w: control character at position %d", ErrBadValue, i)
		}
	}
	return string(s), nil
}

// EncodeDate encodes a "YYYYMMDD" date as 4 bytes of cn. The date must
// exist (20240230 is rejected); errors wrap ErrBadValue.
func EncodeDate(yyyymmdd string) ([]byte, error) {
	if err := checkDate(yyyymmdd); err != nil {
		return nil, fmt.Errorf("encode date: %w", err)
	}
	return EncodeCN(yyyymmdd, 4)
}

// DecodeDate decodes 4 bytes of cn into "YYYYMMDD". The bytes must be 8 BCD
// digits forming a real date; errors wrap ErrBadValue.
func DecodeDate(b []byte) (string, error) {
	if len(b) != 4 {
		return "", fmt.Errorf("decode date: %w: %d bytes, want 4", ErrBadValue, len(b))
	}
	s, err := decodeCNStrict(b)
	if err != nil {
		return "", fmt.Errorf("decode date: %w", err)
	}
	if err := checkDate(s); err != nil {
		return "", fmt.Errorf("decode date: %w", err)
	}
	return s, nil
}

func checkDate(s string) error {
	if len(s) != 8 {
		return fmt.Errorf("%w: date %q is not YYYYMMDD", ErrBadValue, s)
	}
	v := 0
	for i := 0; i < 8; i++ {
		if s[i] < '0' || s[i] > '9' {
			return fmt.Errorf("%w: date %q is not YYYYMMDD", ErrBadValue, s)
		}
		v = v*10 + int(s[i]-'0')
	}
	y, m, d := v/10000, v/100%100, v%100
	if y == 0 || m < 1 || m > 12 || d < 1 || d > daysIn(y, m) {
		return fmt.Errorf("%w: %q is not a calendar date", ErrBadValue, s)
	}
	return nil
}

func daysIn(y, m int) int {
	switch m {
	case 2:
		if y%4 == 0 && (y%100 != 0 || y%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// EncodeAmount encodes an amount in fen (分, 1/100 yuan) as 4 bytes
// big-endian, as PBOC e-purse commands carry it.
func EncodeAmount(fen uint32) []byte {
	return []byte{byte(fen >> 24), byte(fen >> 16), byte(fen >> 8), byte(fen)}
}

// DecodeAmount decodes a 4-byte big-endian amount in fen. Any other length
// is an error wrapping ErrBadValue.
func DecodeAmount(b []byte) (uint32, error) {
	if len(b) != 4 {
		return 0, fmt.Errorf("decode amount: %w: %d bytes, want 4", ErrBadValue, len(b))
	}
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3]), nil
}

// FormatFen renders an amount in fen as yuan with two decimals, e.g. 4096 →
// "40.96".
func FormatFen(fen uint32) string {
	return fmt.Sprintf("%d.%02d", fen/100, fen%100)
}
