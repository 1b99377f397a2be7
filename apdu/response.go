package apdu

import (
	"errors"
	"fmt"
)

// ErrMalformedResponse is wrapped by the error ParseResponse returns.
var ErrMalformedResponse = errors.New("malformed response APDU")

// Response is a response APDU: the data field followed by the status word
// SW1 SW2.
type Response struct {
	Data []byte
	SW   uint16
}

// ParseResponse splits b into data and status word. It needs at least the
// two status bytes and returns an error wrapping ErrMalformedResponse
// otherwise. It does not judge the status word; Data is a copy (nil when
// empty).
func ParseResponse(b []byte) (Response, error) {
	if len(b) < 2 {
		return Response{}, fmt.Errorf("parse response: %w: %d bytes, need at least SW1 SW2", ErrMalformedResponse, len(b))
	}
	n := len(b) - 2
	return Response{Data: clone(b[:n]), SW: uint16(b[n])<<8 | uint16(b[n+1])}, nil
}

// Bytes encodes r as data followed by SW1 SW2.
func (r Response) Bytes() []byte {
	b := make([]byte, 0, len(r.Data)+2)
	b = append(b, r.Data...)
	return append(b, byte(r.SW>>8), byte(r.SW))
}

// SW1 returns the first status byte.
func (r Response) SW1() byte { return byte(r.SW >> 8) }

// SW2 returns the second status byte.
func (r Response) SW2() byte { return byte(r.SW) }

// Err returns nil for 9000 and a *StatusError for any other status word,
// including warnings (62xx, 63xx) and 61xx/6Cxx left unresolved.
func (r Response) Err() error {
	if r.SW == SWOK {
		return nil
	}
	return &StatusError{SW: r.SW}
}
