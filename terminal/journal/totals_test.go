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
