package journal_test

import (
	"errors"
	"testing"

	"github.com/onecard-hub/onecard/terminal/journal"
	"github.com/onecard-hub/onecard/terminal/journal/journaltest"
	"github.com/onecard-hub/onecard/terminal/record"
)

func TestJournalTotals(t *testing.T) {
	j := journaltest.MustOpen(t, nil)
	type step struct {
		kind   record.Kind
		amount uint32
		day    string
		end    string // "done", "fail", "uncertain", "settled", "dead"
	}
	steps := []step{
		{record.KindPay, 1250, "20261130", "done"},
		{record.KindPay, 300, "20261130", "dead"},      // the card paid: counts although the hub refused it
		{record.KindPay, 999, "20261130", "fail"},      // the card refused: nothing moved
		{record.KindPay, 777, "20261130", "uncertain"}, // unknown yet: not counted
		{record.KindPay, 50, "20261130", "settled"},    // uncertain, then the card's proof: counts
		{record.KindLoad, 10000, "20261130", "done"},
		{record.KindCertify, 0, "20261130", "done"},
		{record.KindPay, 80, "20261201", "done"},
	}
	for i, s := range steps {
		r := journaltest.NewRecord(s.kind, journaltest.Card(byte(i+1)), s.amount)
		r.CardDate = s.day
		seq := mustPrepare(t, j, r)
		var err error
		switch s.end {
		case "done", "dead":
			err = j.CardDone(ctx, seq, journaltest.DoneResult(r, byte(i)))
			if err == nil && s.end == "dead" {
				err = j.DeadLetter(ctx, seq, "insufficient_funds")
			}
		case "fail":
			err = j.Fail(ctx, seq, "card refused")
		case "uncertain":
			err = j.MarkUncertain(ctx, seq, "card pulled")
		case "settled":
			if err = j.MarkUncertain(ctx, seq, "card pulled"); err == nil {
				err = j.CardDone(ctx, seq, journaltest.DoneResult(r, byte(i)))
			}
		}
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		// Clearing a counted record does not count it again.
		if s.end == "done" {
			if err := j.MarkCleared(ctx, []uint64{seq}); err != nil {
				t.Fatal(err)
			}
		}
	}
	got, err := j.Totals("")
	if err != nil {
		t.Fatal(err)
	}
	want := []journal.DayTotals{
		{Day: "20261130", PayCount: 3, PayAmount: 1250 + 300 + 50, LoadCount: 1, LoadAmount: 10000, CertifyCount: 1, Rev: 5},
		{Day: "20261201", PayCount: 1, PayAmount: 80, Rev: 1},
	}
	if len(got) != len(want) {
		t.Fatalf("totals %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("day %d: %+v, want %+v", i, got[i], want[i])
		}
	}
	later, err := j.Totals("20261201")
	if err != nil || len(later) != 1 || later[0].Day != "20261201" {
		t.Errorf("Totals(20261201) = %+v, %v", later, err)
	}
	if _, err := j.Totals("2026-11-30"); !errors.Is(err, journal.ErrInvalidArgument) {
		t.Errorf("bad day: %v, want ErrInvalidArgument", err)
	}
	// An uncertain record the hub posts (its card never came back, the hub
	// had the proof) counts when it is cleared.
	r := journaltest.NewRecord(record.KindCertify, journaltest.Card(40), 0)
	r.CardDate = "20261201"
	seq := mustPrepare(t, j, r)
	if err := j.MarkUncertain(ctx, seq, "card pulled"); err != nil {
		t.Fatal(err)
	}
	if err := j.MarkCleared(ctx, []uint64{seq}); err != nil {
		t.Fatal(err)
	}
	later, _ = j.Totals("20261201")
	if later[0].CertifyCount != 1 || later[0].Rev != 2 {
		t.Errorf("after clearing an uncertain certification: %+v", later[0])
	}
}

// TestJournalRefused: a transaction the card refused is journaled Failed
// in one commit: never open, never offered to the hub, not in the totals;
// a failure before the commit journals nothing.
func TestJournalRefused(t *testing.T) {
	fail := errors.New("disk gone")
	var failAt string
	j := journaltest.MustOpen(t, &journal.Options{Failpoint: func(name string) error {
		if name == failAt {
			return fail
		}
		return nil
	}})
	r := journaltest.NewRecord(record.KindPay, journaltest.Card(1), 500)
	seq, err := j.Refused(ctx, r, "card refused INITIALIZE: 9401")
	if err != nil {
		t.Fatal(err)
	}
	e := mustState(t, j, seq, journal.Failed)
	if got := states(e.History); len(got) != 2 || got[0] != journal.Prepared || got[1] != journal.Failed || e.Reason != "card refused INITIALIZE: 9401" {
		t.Fatalf("history %v, reason %q", got, e.Reason)
	}
	if es, _ := j.PendingForCard(journaltest.Card(1)); len(es) != 0 {
		t.Fatalf("a refused record waits for its card: %v", seqs(es))
	}
	if es, _ := j.NextToSend(0); len(es) != 0 {
		t.Fatalf("a refused record is offered to the hub: %v", seqs(es))
	}
	if tot, _ := j.Totals(""); len(tot) != 0 {
		t.Fatalf("a refused record is in the totals: %+v", tot)
	}
	failAt = "before-refused-commit"
	if seq, err := j.Refused(ctx, journaltest.NewRecord(record.KindPay, journaltest.Card(2), 1), "x"); !errors.Is(err, fail) || seq != 0 {
		t.Fatalf("failed commit: %d, %v", seq, err)
	}
	if st, _ := j.Stats(); st.Records != 1 || st.Counts[journal.Failed] != 1 {
		t.Fatalf("after a failed commit: %+v", st.Counts)
	}
}
