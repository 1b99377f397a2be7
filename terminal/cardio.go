package terminal

import (
	"context"
	"errors"
	"fmt"

	"github.com/onecard-hub/onecard/apdu"
	"github.com/onecard-hub/onecard/reader"
)

// link is one card (user card or PSAM) inside one reader transaction. It
// counts the APDUs it sends and turns a response without a status word
// (what pcsc-lite + vpcd give for a card pulled mid-APDU) into
// reader.ErrCardRemoved.
type link struct {
	tx     reader.Tx
	name   string // "card" or "PSAM", for errors
	count  *int   // APDUs sent (shared with the operation)
	broken bool   // a transmission failed (not a status word)
}

// Transmit implements apdu.Transmitter.
func (l *link) Transmit(ctx context.Context, cmd []byte) ([]byte, error) {
	if l.count != nil {
		*l.count++
	}
	resp, err := l.tx.Transmit(ctx, cmd)
	if err != nil {
		l.broken = true
		return nil, err
	}
	if len(resp) < 2 {
		l.broken = true
		return nil, fmt.Errorf("%s answered %d bytes without a status word: %w", l.name, len(resp), reader.ErrCardRemoved)
	}
	return resp, nil
}

// run sends c and returns the data of a 9000 answer. Errors are wrapped
// "<what>: ..." and keep the card's *apdu.StatusError and the reader's
// sentinels visible.
func (l *link) run(ctx context.Context, what string, c apdu.Command) ([]byte, error) {
	data, err := apdu.Run(ctx, l, c)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", l.name, what, err)
	}
	return data, nil
}

// cardAnswered reports whether err is the card's own answer (a status
// word): the command reached the card and was refused. Anything else (the
// card left, the reader failed, a timeout) leaves the outcome unknown.
func cardAnswered(err error) bool {
	var se *apdu.StatusError
	return errors.As(err, &se)
}
