package server

import (
	"context"
	"errors"
	"fmt"

	"github.com/onecard-hub/onecard/hub/ledger"
	"github.com/onecard-hub/onecard/hub/store"

	hubsync "github.com/onecard-hub/onecard/hub/sync"
	"github.com/onecard-hub/onecard/terminal/record"
)

// Ledger is what the server needs of the ledger (hub/ledger): posting
// verified records exactly once, and the programme entitlements behind
// load authorisations and pending credits.
type Ledger interface {
	// PostRecords posts recs (already verified by the server) in order,
	// durably, before it returns; results[i] is recs[i]'s. The error is
	// non-nil only when nothing can be said of the batch (store down): the
	// server then asks the agent to retry, which is safe.
	PostRecords(ctx context.Context, recs []*record.Record) ([]PostResult, error)
	// ReserveLoad holds the amount of r's card entitlement for the load
	// at r's counter (ledger.Ledger.Reserve) and returns nil, or the
	// reason it may not be loaded; a failure that is not a refusal wraps
	// ErrLedgerUnavailable. The server gives out MAC2 only after it.
	ReserveLoad(ctx context.Context, r ledger.LoadRequest) error
	// PendingCredits lists what waits to be loaded onto card.
	PendingCredits(ctx context.Context, card record.CardID) ([]hubsync.Credit, error)
}

// ErrLedgerUnavailable marks a Ledger failure that is not a refusal (the
// store is down): ReserveLoad's caller answers "unavailable, retry" rather
// than "not authorised".
var ErrLedgerUnavailable = errors.New("ledger unavailable")

// PostResult is the ledger's verdict on one record.
type PostResult struct {
	// Duplicate: the same terminal number, sequence and content were
	// posted before; nothing changed now.
	Duplicate bool
	// Err is a permanent rejection (conflict, counter reuse, insufficient
	// funds, invalid): nothing was posted. Code is its hubsync Reject*
	// code.
	Err  error
	Code string
	// Filed: the ledger filed the rejection in the dead letters itself
	// (the server files the others).
	Filed bool
}

// NewLedger adapts the hub's ledger (hub/ledger) to the server: records
// post through ledger.Post (which files rejected records as dead letters),
// loads are allowed up to the card's entitlement (its granted, not yet
// loaded credits in the programme), each authorised load holds its amount
// until its record is posted, and the pending credits are those
// entitlements.
func NewLedger(l *ledger.Ledger) Ledger { return hubLedger{l} }

type hubLedger struct{ l *ledger.Ledger }

func (h hubLedger) PostRecords(ctx context.Context, recs []*record.Record) ([]PostResult, error) {
	res, err := h.l.Post(ctx, recs...)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrLedgerUnavailable, err)
	}
	out := make([]PostResult, len(res))
	for i, r := range res {
		switch {
		case r.Err != nil:
			out[i] = PostResult{Err: r.Err, Code: RejectCode(r.Err), Filed: true}
		case r.Outcome == store.Duplicate:
			out[i].Duplicate = true
		}
	}
	return out, nil
}

// RejectCode maps a ledger or store rejection to its hubsync code.
func RejectCode(err error) string {
	switch {
	case errors.Is(err, store.ErrConflict):
		return hubsync.RejectConflict
	case errors.Is(err, store.ErrCounterReuse):
		return hubsync.RejectCounterReuse
	case errors.Is(err, store.ErrInsufficientFunds):
		return hubsync.RejectFunds
	}
	return hubsync.RejectInvalid
}

func (h hubLedger) ReserveLoad(ctx context.Context, r ledger.LoadRequest) error {
	err := h.l.Reserve(ctx, r)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("no programme %q", r.Programme)
	case errors.Is(err, ledger.ErrNotEntitled), errors.Is(err, ledger.ErrUnpostable):
		return err
	}
	return fmt.Errorf("%w: %w", ErrLedgerUnavailable, err)
}

func (h hubLedger) PendingCredits(ctx context.Context, card record.CardID) ([]hubsync.Credit, error) {
	progs, err := h.l.Store().Programmes(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrLedgerUnavailable, err)
	}
	var out []hubsync.Credit
	for _, p := range progs {
		ent, err := h.l.Entitlement(ctx, card, p.ID)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrLedgerUnavailable, err)
		}
		if ent > 0 && ent <= 0xFFFFFFFF {
			out = append(out, hubsync.Credit{Programme: clipRunes(p.ID, 64), Fund: clipRunes(p.Fund, 64), Amount: uint32(ent),
				Note: clipRunes(hubsync.Printable(p.Name), hubsync.MaxText)})
		}
		if len(out) == hubsync.MaxCredits {
			break
		}
	}
	return out, nil
}
