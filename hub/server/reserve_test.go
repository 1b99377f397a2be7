package server_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/onecard-hub/onecard/hub/ledger"
	"github.com/onecard-hub/onecard/hub/server/servertest"
	"github.com/onecard-hub/onecard/terminal"
	"github.com/onecard-hub/onecard/terminal/record"
)

// TestSyncLoadReservation: an authorised load holds its amount until its
// record is posted, so a second load cannot be authorised on the same
// entitlement while the first one's record is still on its way, and
// concurrent authorisations give out at most what was granted.
func TestSyncLoadReservation(t *testing.T) {
	keys := servertest.Keys(t)
	h, st, led := startHub(t, false, nil)
	a := newAgent(t, term1, h)
	servertest.Register(t, st, term1, a.key.PublicKey())
	c, _ := runAgent(t, a)
	ctx := context.Background()
	auth := func(card record.CardID, counter uint16, amount uint32, rnd byte) ([]byte, error) {
		la := terminal.LoadAuthorisation{
			TerminalID: term1, TerminalSeq: uint64(counter), CardID: card, AlgFlag: terminal.AlgFlagSM4, Programme: servertest.Programme,
			Fund: servertest.Fund, Amount: amount, TxType: record.TxLoadEP, Balance: 1000, OnlineSeq: counter,
			Random: [4]byte{rnd, 1, 2, 3}, CardDate: "20260314", CardTime: "090203",
		}
		la.MAC1 = cardMAC1(t, keys, la)
		return c.AuthoriseLoad(ctx, la)
	}
	balance := func(account string) int64 { t.Helper(); return balanceOf(t, st, account) }
	card := servertest.Card(80)
	grant := ledger.GrantAccount(servertest.Programme, card)
	hold4 := ledger.HoldAccount(servertest.Programme, card, record.TxLoadEP, 4)
	servertest.Grant(t, led, card, 5000)

	if _, err := auth(card, 4, 5000, 1); err != nil {
		t.Fatalf("first load: %v", err)
	}
	if g, hd := balance(grant), balance(hold4); g != 0 || hd != 5000 {
		t.Fatalf("after the authorisation: grant %d, hold %d; want 0 and 5000", g, hd)
	}
	// The card completed that load (its online counter is now 5); the
	// record has not reached the hub. A second load on the same
	// entitlement is refused.
	if mac2, err := auth(card, 5, 5000, 2); !errors.Is(err, terminal.ErrNotAuthorised) {
		t.Fatalf("second load on a held entitlement: %X, %v", mac2, err)
	}
	// Authorising again at counter 4 (the card was pulled before the
	// credit) reuses the hold: no second reservation.
	if _, err := auth(card, 4, 5000, 3); err != nil {
		t.Fatalf("re-authorisation at the same counter: %v", err)
	}
	if g, hd := balance(grant), balance(hold4); g != 0 || hd != 5000 {
		t.Fatalf("after re-authorising: grant %d, hold %d", g, hd)
	}
	// The load's record arrives: the hold goes to the card.
	servertest.Journal(t, a.j, keys, servertest.Record(record.KindLoad, term1, card, 4, 5000))
	c.Kick()
	waitFor(t, "load record posted", func() bool { s, _ := c.Status(); return s.Waiting == 0 && s.Accepted == 1 })
	if g, hd, cd := balance(grant), balance(hold4), balance(ledger.CardAccount(card, servertest.Fund)); g != 0 || hd != 0 || cd != 5000 {
		t.Fatalf("after posting: grant %d, hold %d, card %d; want 0, 0, 5000", g, hd, cd)
	}
	if hs, err := led.Holds(ctx, card); err != nil || len(hs) != 0 {
		t.Fatalf("holds after posting: %+v, %v", hs, err)
	}

	// Eight authorisations at once for one entitlement: one MAC2.
	card2 := servertest.Card(81)
	servertest.Grant(t, led, card2, 3000)
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok := 0
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := auth(card2, uint16(10+i), 3000, byte(i)); err == nil {
				mu.Lock()
				ok++
				mu.Unlock()
			} else if !errors.Is(err, terminal.ErrNotAuthorised) {
				t.Errorf("authorisation %d: %v", i, err)
			}
		}()
	}
	wg.Wait()
	if ok != 1 || balance(ledger.GrantAccount(servertest.Programme, card2)) != 0 {
		t.Fatalf("%d of 8 concurrent authorisations given for one entitlement", ok)
	}

	// A load that never happened: the operator releases the hold, the
	// grant is whole again; a hold raised to a larger amount at the same
	// counter takes only the difference.
	card3 := servertest.Card(82)
	grant3 := ledger.GrantAccount(servertest.Programme, card3)
	servertest.Grant(t, led, card3, 1000)
	if _, err := auth(card3, 20, 400, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := auth(card3, 20, 700, 2); err != nil {
		t.Fatal(err)
	}
	hs, err := led.Holds(ctx, card3)
	if err != nil || len(hs) != 1 || hs[0].Amount != 700 || hs[0].Counter != 20 || balance(grant3) != 300 {
		t.Fatalf("holds %+v (%v), grant %d; want one hold of 700 at counter 20, grant 300", hs, err, balance(grant3))
	}
	n, err := led.ReleaseHold(ctx, "release/test/1", hs[0])
	if err != nil || n != 700 || balance(grant3) != 1000 {
		t.Fatalf("release = %d, %v; grant %d", n, err, balance(grant3))
	}
	// Raising the same counter to the same amount after a release holds
	// again (a fresh reference).
	if _, err := auth(card3, 20, 700, 3); err != nil {
		t.Fatal(err)
	}
	if balance(grant3) != 300 {
		t.Fatalf("after re-reserving: grant %d, want 300", balance(grant3))
	}
	if err := st.Check(ctx); err != nil {
		t.Fatal(err)
	}
}
