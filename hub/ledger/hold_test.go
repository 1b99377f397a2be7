package ledger_test

import (
	"errors"
	"sync"
	"testing"

	"github.com/onecard-hub/onecard/hub/ledger"
	"github.com/onecard-hub/onecard/hub/store"
	"github.com/onecard-hub/onecard/terminal/record"
)

// TestLedgerReserve: load authorisations hold the entitlement per card
// online counter; the load's record empties its hold; a release returns
// it; a second hub reserving at the same moment does not double it.
func TestLedgerReserve(t *testing.T) {
	eachStore(t, func(t *testing.T, l *ledger.Ledger, _ *logBuffer) {
		const prog, fund = "WINTER", "320"
		c := card(7)
		setupProgramme(t, l, prog, fund, 100_000)
		if _, err := l.Grant(ctx(t), ledger.Request{Ref: "g", Programme: prog, Card: c, Amount: 1_000}); err != nil {
			t.Fatal(err)
		}
		grant := ledger.GrantAccount(prog, c)
		hold := func(ctr uint16) string { return ledger.HoldAccount(prog, c, record.TxLoadEP, ctr) }
		reserveIn := func(p string, ctr uint16, amount uint32) error {
			return l.Reserve(ctx(t), ledger.LoadRequest{Programme: p, Card: c, TxType: record.TxLoadEP, Counter: ctr, Amount: amount})
		}
		reserve := func(ctr uint16, amount uint32) error { return reserveIn(prog, ctr, amount) }
		want := func(step string, balances map[string]int64) {
			t.Helper()
			for acc, w := range balances {
				if got := balance(t, l, acc); got != w {
					t.Fatalf("%s: %s = %d, want %d", step, acc, got, w)
				}
			}
		}
		steps := []struct {
			name   string
			prog   string
			ctr    uint16
			amount uint32
			err    error
			after  map[string]int64
		}{
			{"first authorisation", prog, 20, 400, nil, map[string]int64{grant: 600, hold(20): 400}},
			{"same counter, larger", prog, 20, 700, nil, map[string]int64{grant: 300, hold(20): 700}},
			{"same counter, smaller: the hold stays", prog, 20, 500, nil, map[string]int64{grant: 300, hold(20): 700}},
			{"next counter beyond the rest", prog, 21, 400, ledger.ErrNotEntitled, map[string]int64{grant: 300, hold(21): 0}},
			{"unknown programme", "NOPE", 21, 1, store.ErrNotFound, nil},
		}
		for _, s := range steps {
			err := reserveIn(s.prog, s.ctr, s.amount)
			if !errors.Is(err, s.err) || (s.err == nil) != (err == nil) {
				t.Fatalf("%s: %v, want %v", s.name, err, s.err)
			}
			want(s.name, s.after)
		}
		// The load at counter 20 completes: its record takes the hold.
		if r := mustPost(t, l, loadRecord(termA, 1, c, 20, 700, prog, fund))[0]; r.Err != nil || r.Outcome != store.Posted {
			t.Fatalf("load record: %+v", r)
		}
		want("load posted", map[string]int64{grant: 300, hold(20): 0, ledger.CardAccount(c, fund): 700})
		// Posting it again is a duplicate and moves nothing.
		if r := mustPost(t, l, loadRecord(termA, 1, c, 20, 700, prog, fund))[0]; r.Outcome != store.Duplicate {
			t.Fatalf("repeated load record: %+v", r)
		}
		want("load repeated", map[string]int64{grant: 300, ledger.CardAccount(c, fund): 700})

		// A hold smaller than its load (held 100, loaded 250): the grant
		// pays the rest.
		if err := reserve(22, 100); err != nil {
			t.Fatal(err)
		}
		if r := mustPost(t, l, loadRecord(termA, 2, c, 22, 250, prog, fund))[0]; r.Err != nil {
			t.Fatalf("load beyond its hold: %+v", r)
		}
		want("load beyond its hold", map[string]int64{grant: 50, hold(22): 0, ledger.CardAccount(c, fund): 950})

		// Release, and reserving the same amount again afterwards.
		if _, err := l.Grant(ctx(t), ledger.Request{Ref: "g2", Programme: prog, Card: c, Amount: 450}); err != nil {
			t.Fatal(err)
		}
		if err := reserve(23, 500); err != nil {
			t.Fatal(err)
		}
		hs, err := l.Holds(ctx(t), c)
		if err != nil || len(hs) != 1 || hs[0] != (ledger.Hold{Programme: prog, Card: c, TxType: record.TxLoadEP, Counter: 23, Amount: 500}) {
			t.Fatalf("holds %+v, %v", hs, err)
		}
		if n, err := l.ReleaseHold(ctx(t), "rel-1", hs[0]); err != nil || n != 500 {
			t.Fatalf("release = %d, %v", n, err)
		}
		want("released", map[string]int64{grant: 500, hold(23): 0})
		if err := reserve(23, 500); err != nil {
			t.Fatalf("reserve after the release: %v", err)
		}
		want("reserved again", map[string]int64{grant: 0, hold(23): 500})
		if n, err := l.ReleaseHold(ctx(t), "rel-2", hs[0]); err != nil || n != 500 {
			t.Fatalf("second release = %d, %v", n, err)
		}

		// Two hubs (two ledgers on one store) reserve the same load at
		// once, many times: one hold.
		other, err := ledger.New(ledger.Options{Store: l.Store()})
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				lg := l
				if i%2 == 1 {
					lg = other
				}
				if err := lg.Reserve(ctx(t), ledger.LoadRequest{Programme: prog, Card: c, TxType: record.TxLoadEP, Counter: 30, Amount: 300}); err != nil {
					t.Errorf("concurrent reserve %d: %v", i, err)
				}
			}()
		}
		wg.Wait()
		want("concurrent reservations", map[string]int64{grant: 200, hold(30): 300})
	})
}
