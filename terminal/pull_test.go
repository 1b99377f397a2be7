package terminal_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/onecard-hub/onecard/reader"
	"github.com/onecard-hub/onecard/terminal"
	"github.com/onecard-hub/onecard/terminal/journal"
)

// TestPullMatrix pulls the card before and after every card APDU of a
// payment and a load (second generation over T=0 with its GET RESPONSEs,
// third over T=1), re-inserts it and settles, then proves with the card's
// balance and counters and the journal that the transaction happened
// exactly once or not at all, and that the journal says which.
func TestPullMatrix(t *testing.T) {
	total := map[string]int{}
	for _, file := range cardFiles {
		for _, op := range []string{"pay", "load"} {
			// A clean run counts the flow's card APDUs.
			r := newRig(t, newCard(t, file, nil), rigOpts{})
			if err := runOp(t, r, op); err != nil {
				t.Fatalf("%s %s: %v", file, op, err)
			}
			n := r.cardSlot.count()
			for k := 1; k <= n; k++ {
				for _, after := range []bool{false, true} {
					name := fmt.Sprintf("%s/%s/%s-%d", file, op, map[bool]string{false: "before", true: "after"}[after], k)
					t.Run(name, func(t *testing.T) {
						outcome := pullAndCheck(t, file, op, k, after)
						total[outcome]++
					})
				}
			}
		}
	}
	t.Logf("pull matrix outcomes: %v", total)
	if total["happened"] == 0 || total["not"] == 0 {
		t.Errorf("the matrix should contain both outcomes: %v", total)
	}
}

const pullAmount = 700

func runOp(t testing.TB, r *rig, op string) error {
	r.pins("123456")
	var err error
	switch op {
	case "pay":
		_, err = r.sess.Pay(ctxT(t), terminal.PayRequest{Amount: pullAmount, Merchant: "M"})
	case "load":
		_, err = r.sess.Load(ctxT(t), terminal.LoadRequest{Amount: pullAmount, Programme: "P"})
	}
	return err
}

func pullAndCheck(t *testing.T, file, op string, k int, after bool) string {
	card := newCard(t, file, nil)
	r := newRig(t, card, rigOpts{})
	b0 := card.Balance()
	if after {
		r.cardSlot.arm(0, k)
	} else {
		r.cardSlot.arm(k, 0)
	}
	err := runOp(t, r, op)
	if err == nil {
		t.Fatalf("operation succeeded although the card was pulled at APDU %d", k)
	}
	var ue *terminal.UnsettledError
	switch {
	case errors.As(err, &ue):
		if !errors.Is(err, terminal.ErrOutcomeUnknown) || !errors.Is(err, reader.ErrCardRemoved) {
			t.Errorf("unsettled error %v", err)
		}
	case !errors.Is(err, reader.ErrCardRemoved):
		t.Errorf("error %v: want reader.ErrCardRemoved", err)
	}
	moneySent := errors.As(err, &ue)
	// Re-insert and settle, as the next operation on this card does.
	r.cardSlot.arm(0, 0)
	r.reinsert()
	res, serr := r.sess.Settle(ctxT(t))
	if serr != nil {
		t.Fatalf("settle: %v", serr)
	}
	if moneySent && len(res) != 1 {
		t.Errorf("settled %d records, want 1", len(res))
	}
	did := card.Balance() != b0
	want := b0 - pullAmount
	counter := card.EP().OfflineSeq
	if op == "load" {
		want, counter = b0+pullAmount, card.EP().OnlineSeq
	}
	if did && card.Balance() != want {
		t.Fatalf("balance %d: neither %d nor %d", card.Balance(), b0, want)
	}
	if did != (counter == 1) {
		t.Errorf("counter %d, happened %v", counter, did)
	}
	var done int
	for _, e := range entries(t, r.j) {
		switch e.State {
		case journal.CardDone:
			done++
			checkTAC(t, card, e.Record)
		case journal.Failed:
		default:
			t.Errorf("record %d left %s: %s", e.Seq, e.State, e.Reason)
		}
	}
	if did != (done == 1) || done > 1 {
		t.Errorf("happened %v, %d card-done records", did, done)
	}
	// The settled card takes the next operation.
	if err := runOp(t, r, op); err != nil {
		t.Errorf("next %s: %v", op, err)
	}
	if did {
		return "happened"
	}
	return "not"
}
