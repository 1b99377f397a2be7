package ledger

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"

	"github.com/onecard-hub/onecard/hub/store"
	"github.com/onecard-hub/onecard/terminal/record"
)

// Load reservations.
//
// The hub answers a load authorisation with MAC2 only after it has moved
// the amount from the card's grant to a hold account of that one
// authorisation: hold/<programme>/<card>/<tx type>-<online counter>. The
// card's online counter names the load: the card accepts a MAC2 only for
// its current counter value and moves the counter on when it credits, so
// every load the card can ever complete has its own hold, and a second
// authorisation cannot be given money that an earlier one (completed on
// the card, its record not yet uploaded) already took.
//
//   - Authorising again at the same counter (the card was pulled before
//     the credit, or the terminal retried) raises the hold to the new
//     amount if it is larger and otherwise reuses it: only the latest
//     authorisation at a counter can complete on the card.
//   - The load's record, when it is posted, empties its hold: the amount
//     goes to the card, the rest back to the grant (or, if the hold was
//     released meanwhile, the grant pays as it did before reservations).
//   - An operator releases a hold whose load never happened
//     (ReleaseHold): its money returns to the grant.

// HoldAccount names the account holding the reservation of the load
// authorised at card's online counter (txType 01 ED, 02 EP).
func HoldAccount(programme string, card record.CardID, txType record.TxType, counter uint16) string {
	return fmt.Sprintf("hold/%s/%s/%02X-%d", url.PathEscape(programme), card, uint8(txType), counter)
}

// ErrNotEntitled: the card's grant in the programme (plus what the same
// authorisation already holds) is below the amount asked.
var ErrNotEntitled = errors.New("not entitled")

// LoadRequest is a load the hub is asked to authorise.
type LoadRequest struct {
	Programme string
	Card      record.CardID
	TxType    record.TxType // record.TxLoadED or record.TxLoadEP
	Counter   uint16        // the card's online counter in INITIALIZE FOR LOAD
	Amount    uint32        // fen
	Day       string        // YYYYMMDD (the card's date); default today (UTC+8)
}

// Reserve holds r.Amount of the card's grant in the programme for the
// load at r.Counter, so the MAC2 the caller then gives out is backed.
// Calling it again for the same counter raises the hold to the larger
// amount or leaves it (no second reservation). Two hubs reserving the same
// amount for the same counter at once post the same reference: the store
// keeps one. Errors: ErrNotEntitled (wrapped with the amounts),
// store.ErrNotFound for an unknown programme, store errors.
func (l *Ledger) Reserve(ctx context.Context, r LoadRequest) error {
	if r.TxType != record.TxLoadED && r.TxType != record.TxLoadEP {
		return fmt.Errorf("reserve load: %w: transaction type %02X", ErrUnpostable, uint8(r.TxType))
	}
	if r.Amount == 0 {
		return fmt.Errorf("reserve load: %w: amount must be positive", ErrUnpostable)
	}
	if r.Day == "" {
		r.Day = l.today()
	}
	if _, err := l.st.Programme(ctx, r.Programme); err != nil {
		return fmt.Errorf("reserve load: %w", err)
	}
	hold := HoldAccount(r.Programme, r.Card, r.TxType, r.Counter)
	grant := GrantAccount(r.Programme, r.Card)
	base := fmt.Sprintf("hold/%s/%02X/%d/%d", r.Card, uint8(r.TxType), r.Counter, r.Amount)
	// The reference names the target amount, so two hubs raising the same
	// hold to the same amount at once post one reservation. A reference
	// already used (the hold was raised to this amount, then released)
	// makes the next attempt use a numbered one.
	for attempt := 0; attempt < maxHoldAttempts; attempt++ {
		// The grant first, then the hold: a reservation moves both in one
		// commit, so a grant read after it is followed by a hold read
		// after it too (never a spent grant with an empty hold).
		avail, err := l.st.Balance(ctx, grant)
		if err != nil {
			return fmt.Errorf("reserve load: %w", err)
		}
		held, err := l.st.Balance(ctx, hold)
		if err != nil {
			return fmt.Errorf("reserve load: %w", err)
		}
		need := int64(r.Amount) - held
		if need <= 0 {
			return nil
		}
		if avail < need {
			return fmt.Errorf("reserve load: %w: card entitled to %d fen from programme %s, not %d", ErrNotEntitled, avail+held, r.Programme, r.Amount)
		}
		ref := base
		if attempt > 0 {
			ref += "/" + strconv.Itoa(attempt)
		}
		p := &store.Posting{
			Key: store.RefKey(ref), Kind: store.KindHold, Day: r.Day, CardID: r.Card, Party: r.Programme, Amount: need,
			Entries: []store.Entry{{Account: grant, Amount: -need}, {Account: hold, Amount: need}},
			Content: holdContent("hold", r.Programme, r.Card, r.TxType, r.Counter, need),
		}
		res, err := l.st.Post(ctx, []*store.Posting{p})
		switch {
		case err != nil:
			return fmt.Errorf("reserve load: %w", err)
		case res[0].Outcome == store.Posted:
			return nil
		case errors.Is(res[0].Err, store.ErrInsufficientFunds):
			return fmt.Errorf("reserve load: %w: the grant changed meanwhile: %w", ErrNotEntitled, res[0].Err)
		case res[0].Err != nil && !errors.Is(res[0].Err, store.ErrConflict):
			return fmt.Errorf("reserve load: %w", res[0].Err)
		}
		// Duplicate or conflict: the loop looks at the hold again.
	}
	return fmt.Errorf("reserve load: hold %s kept changing over %d attempts", hold, maxHoldAttempts)
}

// maxHoldAttempts bounds Reserve's retries on a reference already used.
const maxHoldAttempts = 8

func holdContent(verb, programme string, card record.CardID, tx record.TxType, counter uint16, amount int64) []byte {
	var b []byte
	for _, f := range []string{"onecard-" + verb + " v1", programme, card.String(), strconv.Itoa(int(tx)),
		strconv.Itoa(int(counter)), strconv.FormatInt(amount, 10)} {
		b = strconv.AppendQuote(b, f)
		b = append(b, '\n')
	}
	return b
}

// useHold rewrites a load posting (from RecordPosting) to draw on its
// authorisation's hold: the hold is emptied, the card gets the amount and
// the grant the difference (or pays what the hold lacks).
func (l *Ledger) useHold(ctx context.Context, p *store.Posting) error {
	if p.Kind != store.KindLoad || p.Counter == nil {
		return nil
	}
	hold := HoldAccount(p.Party, p.CardID, record.TxType(p.Counter.Type), p.Counter.Value)
	held, err := l.st.Balance(ctx, hold)
	if err != nil || held <= 0 {
		return err
	}
	grant := GrantAccount(p.Party, p.CardID)
	es := []store.Entry{{Account: hold, Amount: -held}}
	if d := held - p.Amount; d != 0 {
		es = append(es, store.Entry{Account: grant, Amount: d})
	}
	p.Entries = append(es, store.Entry{Account: CardAccount(p.CardID, p.Fund), Amount: p.Amount})
	return nil
}

// Hold is one load reservation with money in it.
type Hold struct {
	Programme string
	Card      record.CardID
	TxType    record.TxType
	Counter   uint16
	Amount    int64 // fen held now
}

// Holds lists card's reservations that still hold money, by programme and
// counter.
func (l *Ledger) Holds(ctx context.Context, card record.CardID) ([]Hold, error) {
	seen := map[string]Hold{}
	var after uint64
	for {
		ps, err := l.st.Postings(ctx, store.Query{CardID: card, AfterID: after, Limit: 1000})
		if err != nil {
			return nil, fmt.Errorf("list holds: %w", err)
		}
		if len(ps) == 0 {
			break
		}
		for _, p := range ps {
			if p.Kind != store.KindHold {
				continue
			}
			for _, e := range p.Entries {
				if h, ok := parseHold(e.Account, p.Party, card); ok {
					seen[e.Account] = h
				}
			}
		}
		after = ps[len(ps)-1].ID
	}
	var out []Hold
	for acct, h := range seen {
		b, err := l.st.Balance(ctx, acct)
		if err != nil {
			return nil, fmt.Errorf("list holds: %w", err)
		}
		if b > 0 {
			h.Amount = b
			out = append(out, h)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Programme != b.Programme {
			return a.Programme < b.Programme
		}
		if a.TxType != b.TxType {
			return a.TxType < b.TxType
		}
		return a.Counter < b.Counter
	})
	return out, nil
}

func parseHold(account, programme string, card record.CardID) (Hold, bool) {
	prefix := "hold/" + url.PathEscape(programme) + "/" + card.String() + "/"
	rest, ok := strings.CutPrefix(account, prefix)
	if !ok {
		return Hold{}, false
	}
	tx, ctr, ok := strings.Cut(rest, "-")
	t, err1 := strconv.ParseUint(tx, 16, 8)
	c, err2 := strconv.ParseUint(ctr, 10, 16)
	if !ok || err1 != nil || err2 != nil {
		return Hold{}, false
	}
	return Hold{Programme: programme, Card: card, TxType: record.TxType(t), Counter: uint16(c)}, true
}

// ReleaseHold returns what the hold of h's authorisation holds to the
// card's grant: for a load an operator knows did not happen (the card
// never came back). ref makes it idempotent. If the load did happen after
// all, its record draws on the grant when it is posted. It returns the
// amount released (0: nothing was held). Errors: store errors,
// *store.ConflictError (ref reused).
func (l *Ledger) ReleaseHold(ctx context.Context, ref string, h Hold) (int64, error) {
	hold := HoldAccount(h.Programme, h.Card, h.TxType, h.Counter)
	held, err := l.st.Balance(ctx, hold)
	if err != nil || held <= 0 {
		return 0, err
	}
	p := &store.Posting{
		Key: store.RefKey(ref), Kind: store.KindRelease, Day: l.today(), CardID: h.Card, Party: h.Programme, Amount: held,
		Entries: []store.Entry{{Account: hold, Amount: -held}, {Account: GrantAccount(h.Programme, h.Card), Amount: held}},
		Content: holdContent("release", h.Programme, h.Card, h.TxType, h.Counter, held),
	}
	res, err := l.st.Post(ctx, []*store.Posting{p})
	if err != nil {
		return 0, fmt.Errorf("release hold: %w", err)
	}
	if res[0].Err != nil {
		return 0, fmt.Errorf("release hold: %w", res[0].Err)
	}
	return held, nil
}
