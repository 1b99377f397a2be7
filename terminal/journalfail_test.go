package terminal_test

import (
	"errors"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/onecard-hub/onecard/terminal"
	"github.com/onecard-hub/onecard/terminal/journal"
)

// TestJournalWriteFailures makes each journal write of a payment fail
// once (before or after its commit) in process. Whatever fails, the card
// and the journal agree once the card is used again: a debit the journal
// missed is settled from the card, a debit that was never sent is failed.
func TestJournalWriteFailures(t *testing.T) {
	for _, tc := range []struct {
		point    string
		happened bool // the card debited in the failing payment
		wantErr  error
	}{
		{"before-prepare-commit", false, terminal.ErrJournal},
		{"after-prepare-commit", false, terminal.ErrJournal},
		{"before-carddone-commit", true, terminal.ErrJournal},
		{"after-carddone-commit", true, terminal.ErrJournal},
	} {
		t.Run(tc.point, func(t *testing.T) {
			var armed atomic.Bool
			armed.Store(true)
			fp := func(name string) error {
				if name == tc.point && armed.CompareAndSwap(true, false) {
					return fmt.Errorf("injected %s", name)
				}
				return nil
			}
			card := newCard(t, "ssc-gen3.yaml", nil)
			r := newRig(t, card, rigOpts{journalOpts: &journal.Options{Failpoint: fp}})
			b0 := card.Balance()
			_, err := payOnce(t, r, 300)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("pay: %v, want %v", err, tc.wantErr)
			}
			if got := card.Balance() != b0; got != tc.happened {
				t.Fatalf("card debited %v, want %v", got, tc.happened)
			}
			// The next payment settles the first, then runs.
			if _, err := payOnce(t, r, 200); err != nil {
				t.Fatalf("next pay: %v", err)
			}
			var done, failed int
			for _, e := range entries(t, r.j) {
				switch e.State {
				case journal.CardDone:
					done++
					checkTAC(t, card, e.Record)
				case journal.Failed:
					failed++
				default:
					t.Errorf("record %d %s", e.Seq, e.State)
				}
			}
			wantDone := 1
			if tc.happened {
				wantDone = 2
			}
			if done != wantDone || card.Balance() != b0-200-map[bool]uint32{true: 300}[tc.happened] {
				t.Errorf("%d card-done, %d failed, balance %d", done, failed, card.Balance())
			}
		})
	}
}
