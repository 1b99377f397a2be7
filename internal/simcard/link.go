package simcard

import (
	"errors"
	"fmt"
	"strings"

	"github.com/onecard-hub/onecard/apdu"
)

// ErrNotPowered is returned by Transmit when the card has not been powered
// (PowerOn) since it was created, powered off or torn.
var ErrNotPowered = errors.New("simulated card not powered")

// Protocol is the transmission protocol a simulated card announces in its
// ATR and follows when it shapes responses.
type Protocol int

const (
	// T0 withholds response data of case-3/4 commands behind 61xx until
	// GET RESPONSE, and answers 6Cxx to a case-2 command whose Le differs
	// from the length of the data it has.
	T0 Protocol = iota
	// T1 returns response data directly.
	T1
)

// String returns "T0" or "T1".
func (p Protocol) String() string {
	if p == T1 {
		return "T1"
	}
	return "T0"
}

// ParseProtocol accepts "T0", "T=0", "T1", "T=1" (any case); "" is T0.
func ParseProtocol(s string) (Protocol, error) {
	switch strings.ToUpper(strings.ReplaceAll(s, "=", "")) {
	case "", "T0":
		return T0, nil
	case "T1":
		return T1, nil
	}
	return T0, fmt.Errorf("parse protocol %q: want T0 or T1", s)
}

// link is the transport half of a simulated card: it parses command APDUs,
// keeps data withheld behind 61xx and shapes responses for T=0 or T=1.
type link struct {
	proto     Protocol
	pending   []byte // T=0 data waiting for GET RESPONSE
	pendingSW uint16
}

func (l *link) reset() {
	l.pending = nil
	l.pendingSW = 0
}

func sw(code uint16) []byte { return []byte{byte(code >> 8), byte(code)} }

// parse decodes a command APDU. Commands the card cannot take (malformed,
// extended length) get a status word instead.
func (l *link) parse(raw []byte) (apdu.Command, []byte) {
	c, err := apdu.ParseCommand(raw)
	if err != nil {
		return apdu.Command{}, sw(apdu.SWWrongLength)
	}
	if len(c.Data) > 255 || c.Ne > 256 {
		return apdu.Command{}, sw(apdu.SWWrongLength)
	}
	return c, nil
}

// getResponse answers 00 C0 00 00 Le from the withheld data.
func (l *link) getResponse(c apdu.Command) []byte {
	if c.P1 != 0 || c.P2 != 0 {
		return sw(apdu.SWWrongP1P2)
	}
	if len(l.pending) == 0 {
		return sw(apdu.SWConditions)
	}
	n := len(l.pending)
	switch {
	case c.Ne == 0 || c.Ne > n:
		// Keep the data; tell the terminal the right length.
		return sw(apdu.SWWrongLe(n))
	case c.Ne < n:
		out := append([]byte(nil), l.pending[:c.Ne]...)
		l.pending = l.pending[c.Ne:]
		return append(out, sw(apdu.SWMoreData(len(l.pending)))...)
	}
	out := append(l.pending, sw(l.pendingSW)...)
	l.reset()
	return out
}

// reply shapes a handler's answer for the command's case and the protocol.
// Data is only returned with 9000.
func (l *link) reply(c apdu.Command, data []byte, code uint16) []byte {
	if code != apdu.SWOK || len(data) == 0 {
		return sw(code)
	}
	n := len(data)
	if l.proto == T1 {
		if c.Ne > 0 && c.Ne < n {
			return sw(apdu.SWWrongLe(n))
		}
		return append(append([]byte(nil), data...), sw(code)...)
	}
	if len(c.Data) > 0 { // case 3 or 4: data waits for GET RESPONSE
		l.pending = append([]byte(nil), data...)
		l.pendingSW = code
		return sw(apdu.SWMoreData(n))
	}
	if c.Ne != n { // case 1 or 2 with the wrong Le
		return sw(apdu.SWWrongLe(n))
	}
	return append(append([]byte(nil), data...), sw(code)...)
}

// leTooShort reports whether a T=1 command asks for fewer than n response
// bytes. Commands that change persistent state check it before acting, so
// that a 6Cxx never follows an applied change.
func (l *link) leTooShort(c apdu.Command, n int) bool {
	return l.proto == T1 && c.Ne > 0 && c.Ne < n
}

// buildATR returns 3B 6D 00 00 <13 historical bytes> for T=0 and
// 3B ED 00 00 81 31 FE 45 <historical bytes> TCK for T=1 (TD1 announces
// T=1, TD2/TA3/TB3 give IFSC 254 and BWI/CWI 4/5).
func buildATR(proto Protocol, hist []byte) []byte {
	k := byte(len(hist) & 0x0F)
	if proto == T0 {
		atr := []byte{0x3B, 0x60 | k, 0x00, 0x00}
		return append(atr, hist...)
	}
	atr := []byte{0x3B, 0xE0 | k, 0x00, 0x00, 0x81, 0x31, 0xFE, 0x45}
	atr = append(atr, hist...)
	var tck byte
	for _, b := range atr[1:] {
		tck ^= b
	}
	return append(atr, tck)
}
