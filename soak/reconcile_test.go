package soak

import (
	"strings"
	"testing"

	"github.com/onecard-hub/onecard/hub/store"
	"github.com/onecard-hub/onecard/terminal/journal"
	"github.com/onecard-hub/onecard/terminal/record"
)

func TestReconcile(t *testing.T) {
	card := record.CardID{1}
	pay := func(seq uint64, state journal.State, reason string) JournalRecord {
		return JournalRecord{Terminal: "T1", Entry: journal.Entry{Seq: seq, State: state, Reason: reason,
			Record: &record.Record{Kind: record.KindPay, CardID: card, Amount: 100}}}
	}
	posting := func(seq uint64, counter uint16) *store.Posting {
		return &store.Posting{Key: store.RecordKey("T1", seq), Kind: store.KindPay, CardID: card, Amount: 100,
			Counter: &store.Counter{Value: counter}}
	}
	view := func(final int64, purchases uint16) []CardView {
		return []CardView{{ID: card, Opening: 1000, Final: final, OfflineStart: 1, OfflineEnd: 1 + purchases}}
	}
	tests := []struct {
		name         string
		in           Input
		lost, dup    int
		ok           bool
		firstProblem string
	}{
		{"exactly once", Input{Cards: view(900, 1), Journals: []JournalRecord{pay(1, journal.Cleared, "")},
			Postings: []*store.Posting{posting(1, 1)}, Ledger: map[record.CardID]int64{card: 900}}, 0, 0, true, ""},
		{"cleared but not posted", Input{Cards: view(900, 1), Journals: []JournalRecord{pay(1, journal.Cleared, "")},
			Ledger: map[record.CardID]int64{card: 1000}}, 1, 0, false, "not on the ledger"},
		{"same counter twice", Input{Cards: view(900, 1), Journals: []JournalRecord{pay(1, journal.Cleared, ""), pay(2, journal.Cleared, "")},
			Postings: []*store.Posting{posting(1, 1), posting(2, 1)}, Ledger: map[record.CardID]int64{card: 800}}, 2, 1, false, "counter"},
		{"card moved without a record", Input{Cards: view(900, 1), Ledger: map[record.CardID]int64{card: 1000}}, 2, 0, false, "card moved"},
		{"uncertain with a reason", Input{Cards: view(900, 1), Journals: []JournalRecord{pay(1, journal.Uncertain, "torn")},
			Ledger: map[record.CardID]int64{card: 1000}}, 0, 0, true, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := Reconcile(tc.in)
			if r.Lost != tc.lost || r.Duplicated != tc.dup || r.OK() != tc.ok {
				t.Fatalf("lost %d dup %d ok %v, want %d %d %v: %v", r.Lost, r.Duplicated, r.OK(), tc.lost, tc.dup, tc.ok, r.Problems)
			}
			if tc.firstProblem != "" && !strings.Contains(r.Problems[0], tc.firstProblem) {
				t.Errorf("first problem %q, want %q", r.Problems[0], tc.firstProblem)
			}
			if !strings.Contains(r.Summary(), "lost ") {
				t.Errorf("summary %q", r.Summary())
			}
		})
	}
}
