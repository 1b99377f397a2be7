package virtual

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// vpcd wire protocol (vsmartcard ifd-vpcd): every message in either
// direction is a 2-byte big-endian length followed by that many bytes. A
// 1-byte message from vpcd is a control code; anything longer is a command
// APDU that the card answers with a response APDU.
const (
	vpcdPowerOff = 0x00 // no reply
	vpcdPowerOn  = 0x01 // no reply
	vpcdReset    = 0x02 // no reply
	vpcdGetATR   = 0x04 // reply: the ATR

	maxFrame = 0xFFFF
)

// ErrFrameTooLong: a payload does not fit the 16-bit length of a vpcd
// frame.
var ErrFrameTooLong = errors.New("vpcd frame longer than 65535 bytes")

// readFrame reads one length-prefixed vpcd message. It returns io.EOF only
// when the stream ends cleanly between frames, and io.ErrUnexpectedEOF
// for a frame cut short.
func readFrame(r io.Reader) ([]byte, error) {
	var hdr [2]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := int(binary.BigEndian.Uint16(hdr[:]))
	msg := make([]byte, n)
	if _, err := io.ReadFull(r, msg); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return msg, nil
}

// appendFrame appends payload as one vpcd frame to dst.
func appendFrame(dst, payload []byte) ([]byte, error) {
	if len(payload) > maxFrame {
		return dst, fmt.Errorf("encode vpcd frame of %d bytes: %w", len(payload), ErrFrameTooLong)
	}
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(payload)))
	return append(dst, payload...), nil
}

// action tells the connection loop what to do after a message.
type action int

const (
	actNone  action = iota // nothing to send
	actReply               // send reply
	actTorn                // the card was pulled: close the connection unanswered
)

// swNoDiagnosis is the response sent when the simulated card misbehaves
// (an error other than ErrTorn, or an answer that cannot be framed).
var swNoDiagnosis = []byte{0x6F, 0x00}

// cardSession is the card side of one vpcd connection: it turns messages
// from vpcd into calls on the Card. It never panics on any message.
type cardSession struct {
	card    Card
	atr     []byte
	powered bool
	// onError reports card misbehaviour (not ErrTorn) for logging.
	onError func(msg string, err error)
}

// newCardSession reads the ATR for a freshly inserted card. vpcd asks for
// the ATR before it powers the card, so the session powers the card once
// to learn it and leaves it unpowered.
func newCardSession(card Card) *cardSession {
	cs := &cardSession{card: card}
	cs.atr = clone(card.PowerOn())
	card.PowerOff()
	return cs
}

// handle processes one message from vpcd and returns what to do.
func (cs *cardSession) handle(msg []byte) (reply []byte, act action) {
	switch len(msg) {
	case 0:
		// Not produced by vpcd; ignore rather than guess.
		return nil, actNone
	case 1:
		switch msg[0] {
		case vpcdPowerOff:
			cs.card.PowerOff()
			cs.powered = false
		case vpcdPowerOn:
			cs.atr = clone(cs.card.PowerOn())
			cs.powered = true
		case vpcdReset:
			cs.card.PowerOff()
			cs.atr = clone(cs.card.PowerOn())
			cs.powered = true
		case vpcdGetATR:
			return clone(cs.atr), actReply
		}
		// Unknown control codes (03, 05..FF) get no reply, as in vicc.
		return nil, actNone
	}
	resp, err := cs.card.Transmit(clone(msg))
	switch {
	case errors.Is(err, ErrTorn):
		return nil, actTorn
	case err != nil:
		cs.report("card error", err)
		return clone(swNoDiagnosis), actReply
	case len(resp) < 2:
		cs.report("card response unusable", fmt.Errorf("%d bytes: %w", len(resp), ErrBadResponse))
		return clone(swNoDiagnosis), actReply
	case len(resp) > maxFrame:
		cs.report("card response unusable", fmt.Errorf("%d bytes: %w", len(resp), ErrFrameTooLong))
		return clone(swNoDiagnosis), actReply
	}
	return resp, actReply
}

func (cs *cardSession) report(msg string, err error) {
	if cs.onError != nil {
		cs.onError(msg, err)
	}
}
