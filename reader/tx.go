package reader

import (
	"context"
	"fmt"
	"sync"
)

// Tx is exclusive use of a connected card for ONE logical card operation
// (read the basic data, one purchase, one PIN change): while it lasts, no
// other program sharing the reader can send APDUs to the card.
//
// Contract:
//   - Begin a Tx right before the operation's first APDU and End it right
//     after the last one, normally with defer. Never hold a Tx across PIN
//     entry, a user prompt or a network round trip: other programs (and
//     the operating system — Windows resets a card whose transaction is
//     idle for 5 s) wait for it.
//   - Re-select the application at the start of every Tx: another program
//     may have used the card since the last one.
//   - A Tx is used by one goroutine. End is idempotent; Transmit after End
//     fails with ErrTxEnded. Backends may end a Tx that outlives their time
//     limit (the PC/SC slot does), after which Transmit fails with
//     ErrTxEnded too.
type Tx interface {
	// Transmit sends one command APDU inside the transaction (no T=0
	// chaining; see apdu.Exchange) with the errors of Slot.Transmit.
	Transmit(ctx context.Context, cmd []byte) ([]byte, error)
	// End ends the transaction; the card stays connected and powered.
	End() error
}

// Transactor is implemented by slots whose card other programs can use at
// the same time (PC/SC slots in shared mode), so that a logical card
// operation needs an exclusive bracket. Use Begin rather than calling it
// directly, so that code works with every backend.
type Transactor interface {
	// Begin starts a transaction on the connected card. It waits (bounded
	// by ctx) while another program holds one.
	Begin(ctx context.Context) (Tx, error)
}

// Begin starts a transaction on s: s's own when s is a Transactor, else a
// Tx that forwards to s (in-process and serial readers are not shared with
// other programs, so nothing needs locking). It returns ctx's error when
// ctx is already done.
func Begin(ctx context.Context, s Slot) (Tx, error) {
	if t, ok := s.(Transactor); ok {
		return t.Begin(ctx)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("begin transaction on %s: %w", s.ID(), err)
	}
	return &plainTx{s: s}, nil
}

// plainTx is the Tx of a slot no other program can use.
type plainTx struct {
	s     Slot
	mu    sync.Mutex
	ended bool
}

func (t *plainTx) Transmit(ctx context.Context, cmd []byte) ([]byte, error) {
	t.mu.Lock()
	ended := t.ended
	t.mu.Unlock()
	if ended {
		return nil, fmt.Errorf("transmit on %s: %w", t.s.ID(), ErrTxEnded)
	}
	return t.s.Transmit(ctx, cmd)
}

func (t *plainTx) End() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.ended = true
	return nil
}
