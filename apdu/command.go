package apdu

import (
	"errors"
	"fmt"
)

// Length limits of ISO 7816-4 command APDUs.
const (
	MaxShortLc    = 255   // largest Nc in a short Lc field
	MaxShortNe    = 256   // largest Ne in a short Le field (coded 00)
	MaxExtendedLc = 65535 // largest Nc in an extended Lc field
	MaxExtendedNe = 65536 // largest Ne in an extended Le field (coded 0000)
)

// ErrMalformedCommand is wrapped by every error ParseCommand and
// Command.Bytes return.
var ErrMalformedCommand = errors.New("malformed command APDU")

// Command is an ISO 7816-4 command APDU.
//
// Ne is the expected response length: 0 means no Le field; 1..256 fits a
// short Le byte (256 is coded 00); up to 65536 needs the extended form
// (65536 is coded 0000). Bytes uses the extended form automatically when
// len(Data) > 255 or Ne > 256, and the short form otherwise.
type Command struct {
	CLA, INS, P1, P2 byte
	Data             []byte
	Ne               int
}

// Case returns the ISO 7816-4 case of c: 1 (no data, no Le), 2 (Le only),
// 3 (data only) or 4 (data and Le).
func (c Command) Case() int {
	switch {
	case len(c.Data) == 0 && c.Ne == 0:
		return 1
	case len(c.Data) == 0:
		return 2
	case c.Ne == 0:
		return 3
	}
	return 4
}

// Extended reports whether Bytes encodes c with extended length fields.
func (c Command) Extended() bool { return len(c.Data) > MaxShortLc || c.Ne > MaxShortNe }

// Bytes encodes c. It returns an error wrapping ErrMalformedCommand when
// len(Data) > 65535 or Ne is outside 0..65536.
func (c Command) Bytes() ([]byte, error) {
	nc := len(c.Data)
	if nc > MaxExtendedLc {
		return nil, fmt.Errorf("encode command: %w: %d data bytes, at most %d", ErrMalformedCommand, nc, MaxExtendedLc)
	}
	if c.Ne < 0 || c.Ne > MaxExtendedNe {
		return nil, fmt.Errorf("encode command: %w: Ne %d outside 0..%d", ErrMalformedCommand, c.Ne, MaxExtendedNe)
	}
	b := make([]byte, 0, 4+3+nc+2)
	b = append(b, c.CLA, c.INS, c.P1, c.P2)
	if !c.Extended() {
		if nc > 0 {
			b = append(b, byte(nc))
			b = append(b, c.Data...)
		}
		if c.Ne > 0 {
			b = append(b, byte(c.Ne)) // 256 → 00
		}
		return b, nil
	}
	b = append(b, 0x00) // extended marker, shared by Lc and Le
	if nc > 0 {
		b = append(b, byte(nc>>8), byte(nc))
		b = append(b, c.Data...)
	}
	if c.Ne > 0 {
		b = append(b, byte(c.Ne>>8), byte(c.Ne)) // 65536 → 0000
	}
	return b, nil
}

// ParseCommand decodes a command APDU of any ISO 7816-4 case, short or
// extended. It is strict: the length fields must account for every byte
// (no trailing bytes, no truncation), a short Lc may not be 00 (that byte
// introduces the extended form), an extended Lc may not be 0000, and an
// extended Le must follow an extended Lc or the 00 marker. Errors wrap
// ErrMalformedCommand. Data is a copy; it is nil when there is no data.
//
// Extended encodings of small lengths (e.g. 00 0005 for Ne 5) are valid
// ISO and accepted; Bytes re-encodes such a command in the short form.
func ParseCommand(b []byte) (Command, error) {
	n := len(b)
	if n < 4 {
		return Command{}, fmt.Errorf("parse command: %w: %d bytes, a header needs 4", ErrMalformedCommand, n)
	}
	c := Command{CLA: b[0], INS: b[1], P1: b[2], P2: b[3]}
	body := b[4:]
	switch {
	case len(body) == 0: // case 1
		return c, nil
	case len(body) == 1: // case 2S
		c.Ne = shortNe(body[0])
		return c, nil
	case body[0] != 0: // case 3S or 4S
		lc := int(body[0])
		switch len(body) {
		case 1 + lc:
			c.Data = clone(body[1:])
		case 1 + lc + 1:
			c.Data = clone(body[1 : 1+lc])
			c.Ne = shortNe(body[1+lc])
		default:
			return Command{}, fmt.Errorf("parse command: %w: short Lc %d does not match %d body bytes (want %d or %d)",
				ErrMalformedCommand, lc, len(body), 1+lc, 2+lc)
		}
		return c, nil
	}
	// body[0] == 0 and more bytes follow: extended form.
	switch {
	case len(body) == 2:
		return Command{}, fmt.Errorf("parse command: %w: 00 followed by one byte (short Lc cannot be 00; an extended Le needs 2 bytes)", ErrMalformedCommand)
	case len(body) == 3: // case 2E
		c.Ne = extendedNe(body[1], body[2])
		return c, nil
	}
	lc := int(body[1])<<8 | int(body[2])
	if lc == 0 {
		return Command{}, fmt.Errorf("parse command: %w: extended Lc is 0000", ErrMalformedCommand)
	}
	switch len(body) {
	case 3 + lc: // case 3E
		c.Data = clone(body[3:])
	case 3 + lc + 2: // case 4E
		c.Data = clone(body[3 : 3+lc])
		c.Ne = extendedNe(body[3+lc], body[4+lc])
	default:
		return Command{}, fmt.Errorf("parse command: %w: extended Lc %d does not match %d body bytes (want %d or %d)",
			ErrMalformedCommand, lc, len(body), 3+lc, 5+lc)
	}
	return c, nil
}

func shortNe(le byte) int {
	if le == 0 {
		return MaxShortNe
	}
	return int(le)
}

func extendedNe(hi, lo byte) int {
	ne := int(hi)<<8 | int(lo)
	if ne == 0 {
		return MaxExtendedNe
	}
	return ne
}

func clone(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return append([]byte(nil), b...)
}
