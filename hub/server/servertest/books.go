package servertest

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/onecard-hub/onecard/hub/ledger"
	"github.com/onecard-hub/onecard/hub/server"
	"github.com/onecard-hub/onecard/hub/store"
	"github.com/onecard-hub/onecard/terminal/record"
)

// Programme and Fund of the records made here; MerchantAccount is where
// their purchases are credited.
const (
	Programme = "P2026"
	Fund      = "310"
)

// MerchantAccount is the ledger account the test purchases credit.
var MerchantAccount = ledger.MerchantAccount(Programme, Fund)

// Opening is the opening balance (fen) Books gives each card.
const Opening = 10_000_000

// Books sets up the ledger in st for tests: programme Programme (fund
// Fund) and an opening balance of Opening fen for each card. It returns
// the ledger and its server adapter.
func Books(t testing.TB, st store.Store, cards ...record.CardID) (*ledger.Ledger, server.Ledger) {
	t.Helper()
	l, err := SetUpBooks(st, cards...)
	if err != nil {
		t.Fatal(err)
	}
	return l, server.NewLedger(l)
}

// SetUpBooks is Books without a test (for child processes).
func SetUpBooks(st store.Store, cards ...record.CardID) (*ledger.Ledger, error) {
	ctx := context.Background()
	l, err := ledger.New(ledger.Options{Store: st})
	if err != nil {
		return nil, err
	}
	err = l.CreateProgramme(ctx, store.Programme{ID: Programme, Name: "test programme", Fund: Fund})
	if err != nil && !errors.Is(err, store.ErrExists) {
		return nil, err
	}
	for _, c := range cards {
		if _, err := l.OpeningBalance(ctx, ledger.Request{Ref: "open/" + c.String(), Card: c, Fund: Fund, Amount: Opening}); err != nil {
			return nil, err
		}
	}
	return l, nil
}

// Cards returns Card(from) .. Card(to).
func Cards(from, to int) []record.CardID {
	var out []record.CardID
	for i := from; i <= to; i++ {
		out = append(out, Card(i))
	}
	return out
}

// Grant gives card amount fen of Programme's credits (funding the
// programme first).
func Grant(t testing.TB, l *ledger.Ledger, card record.CardID, amount int64) {
	t.Helper()
	ctx := context.Background()
	if _, err := l.Fund(ctx, ledger.Request{Ref: "fund/" + card.String(), Programme: Programme, Amount: amount}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Grant(ctx, ledger.Request{Ref: "grant/" + card.String(), Programme: Programme, Card: card, Amount: amount}); err != nil {
		t.Fatal(err)
	}
}

// FlakyLedger wraps a server.Ledger; while failing, PostRecords fails as
// a store outage would.
type FlakyLedger struct {
	server.Ledger
	mu   sync.Mutex
	fail error
}

// SetFail makes PostRecords fail with err (nil: work again).
func (f *FlakyLedger) SetFail(err error) {
	f.mu.Lock()
	f.fail = err
	f.mu.Unlock()
}

// PostRecords implements server.Ledger.
func (f *FlakyLedger) PostRecords(ctx context.Context, recs []*record.Record) ([]server.PostResult, error) {
	f.mu.Lock()
	err := f.fail
	f.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return f.Ledger.PostRecords(ctx, recs)
}
