package apdu

import (
	"context"
	"errors"
	"fmt"
)

// Limits of the T=0 response chaining done by Exchange. They bound a card
// that keeps answering 61xx: 256 GET RESPONSE commands of up to 256 bytes
// each cover the largest response a command can ask for (65536 bytes).
const (
	MaxGetResponses  = 256
	MaxResponseBytes = MaxExtendedNe
)

// ErrChainTooLong is wrapped by Exchange when the card keeps asking for GET
// RESPONSE beyond MaxGetResponses commands or MaxResponseBytes bytes.
var ErrChainTooLong = errors.New("response chaining exceeds limit")

// Transmitter sends one command APDU and returns the raw response APDU
// (data followed by SW1 SW2) without any T=0 handling. reader.Slot
// satisfies it. Transmit must honour ctx.
type Transmitter interface {
	Transmit(ctx context.Context, cmd []byte) ([]byte, error)
}

// Exchange sends c and resolves the T=0 transport status words:
//
//   - 6Cxx (wrong Le): c is sent again once with Ne = xx (00 = 256).
//   - 61xx (more data): GET RESPONSE (CLA C0 00 00 xx) is sent until the
//     status is no longer 61xx; the data of every response is concatenated.
//     A GET RESPONSE answered with 6Cxx is repeated with that Le. The GET
//     RESPONSE class byte keeps the logical channel of an interindustry CLA
//     and is 00 for proprietary classes such as 80 and 84.
//
// The returned Response carries the concatenated data and the final status
// word, which may be any status: Exchange does not judge it (use
// Response.Err or Run). Errors: the encoding error of c (ErrMalformedCommand);
// the Transmitter's error, wrapped; ErrMalformedResponse for a response of
// fewer than 2 bytes; ErrChainTooLong; ctx.Err() when ctx ends between
// commands.
func Exchange(ctx context.Context, t Transmitter, c Command) (Response, error) {
	if t == nil {
		return Response{}, errors.New("exchange APDU: nil Transmitter")
	}
	resp, err := transmit(ctx, t, c, "transmit command")
	if err != nil {
		return Response{}, err
	}
	if resp.SW1() == 0x6C {
		c.Ne = shortNe(resp.SW2())
		if resp, err = transmit(ctx, t, c, "resend command with corrected Le"); err != nil {
			return Response{}, err
		}
	}
	var data []byte
	for n := 0; resp.SW1() == 0x61; n++ {
		data = append(data, resp.Data...)
		if n >= MaxGetResponses {
			return Response{}, fmt.Errorf("exchange APDU: %w: card still answers %04X after %d GET RESPONSE commands", ErrChainTooLong, resp.SW, n)
		}
		if len(data) > MaxResponseBytes {
			return Response{}, fmt.Errorf("exchange APDU: %w: more than %d response bytes", ErrChainTooLong, MaxResponseBytes)
		}
		gr := Command{CLA: getResponseCLA(c.CLA), INS: 0xC0, Ne: shortNe(resp.SW2())}
		if resp, err = transmit(ctx, t, gr, "transmit GET RESPONSE"); err != nil {
			return Response{}, err
		}
		if resp.SW1() == 0x6C {
			gr.Ne = shortNe(resp.SW2())
			if resp, err = transmit(ctx, t, gr, "resend GET RESPONSE with corrected Le"); err != nil {
				return Response{}, err
			}
		}
	}
	if data != nil {
		resp.Data = append(data, resp.Data...)
		if len(resp.Data) > MaxResponseBytes {
			return Response{}, fmt.Errorf("exchange APDU: %w: more than %d response bytes", ErrChainTooLong, MaxResponseBytes)
		}
	}
	return resp, nil
}

// Run is Exchange followed by Response.Err: it returns the response data
// when the final status word is 9000, and otherwise a nil slice and the
// *StatusError (or the Exchange error).
func Run(ctx context.Context, t Transmitter, c Command) ([]byte, error) {
	resp, err := Exchange(ctx, t, c)
	if err != nil {
		return nil, err
	}
	if err := resp.Err(); err != nil {
		return nil, err
	}
	return resp.Data, nil
}

func transmit(ctx context.Context, t Transmitter, c Command, what string) (Response, error) {
	if err := ctx.Err(); err != nil {
		return Response{}, fmt.Errorf("%s: %w", what, err)
	}
	raw, err := c.Bytes()
	if err != nil {
		return Response{}, err
	}
	rb, err := t.Transmit(ctx, raw)
	if err != nil {
		return Response{}, fmt.Errorf("%s: %w", what, err)
	}
	resp, err := ParseResponse(rb)
	if err != nil {
		return Response{}, fmt.Errorf("%s: %w", what, err)
	}
	return resp, nil
}

// getResponseCLA returns the class byte for a GET RESPONSE following a
// command of class cla: proprietary classes (b8 = 1, e.g. 80, 84) use 00;
// interindustry classes keep their logical channel and drop secure
// messaging and command chaining.
func getResponseCLA(cla byte) byte {
	switch {
	case cla&0x80 != 0:
		return 0x00
	case cla&0x40 != 0:
		return 0x40 | cla&0x0F
	}
	return cla & 0x03
}
