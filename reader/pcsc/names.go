package pcsc

import (
	"encoding/hex"
	"strings"
)

// readerName is a PC/SC reader name split into its parts. pcsc-lite names
// every slot "<friendly name> XX YY": XX tells apart readers of the same
// model, YY is the slot number, both two hex digits. Names that do not end
// that way (other PC/SC stacks) keep the whole name as the group and have
// no slot number.
type readerName struct {
	full     string
	friendly string // "Virtual PCD"
	group    string // the reader: "Virtual PCD 00"
	slot     string // "00", or "" when the name has no slot suffix
}

func parseName(name string) readerName {
	n := readerName{full: name, friendly: name, group: name}
	// " XX YY" is 6 bytes, and a friendly name needs at least one.
	if len(name) < 7 {
		return n
	}
	tail := name[len(name)-6:]
	if tail[0] != ' ' || tail[3] != ' ' || !isHex2(tail[1:3]) || !isHex2(tail[4:6]) {
		return n
	}
	n.friendly = name[:len(name)-6]
	n.group = name[:len(name)-3]
	n.slot = name[len(name)-2:]
	return n
}

func isHex2(s string) bool {
	for i := range 2 {
		c := s[i]
		if !('0' <= c && c <= '9' || 'A' <= c && c <= 'F' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// readerID returns the stable ID of the reader group: by serial number
// when known, else by the name without the slot number.
func readerID(group, serial string) string {
	if serial != "" {
		return "pcsc:sn:" + serial
	}
	return "pcsc:" + group
}

// slotID returns the stable ID of a slot of the reader readerID. Without
// a serial number it equals "pcsc:" + the PC/SC name.
func slotID(readerID string, n readerName) string {
	if n.slot == "" {
		return readerID
	}
	return readerID + " " + n.slot
}

// cleanSerial turns the SCARD_ATTR_VENDOR_IFD_SERIAL_NO attribute into an
// ID part: trailing NULs and spaces are dropped; a value with bytes other
// than printable ASCII (spaces inside would make IDs ambiguous) is
// hex-encoded.
func cleanSerial(b []byte) string {
	s := strings.TrimRight(string(b), "\x00 ")
	s = strings.TrimLeft(s, " ")
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7F {
			return hex.EncodeToString([]byte(s))
		}
	}
	return s
}
