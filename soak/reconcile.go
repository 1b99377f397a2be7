package soak

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/onecard-hub/onecard/hub/store"
	"github.com/onecard-hub/onecard/terminal/journal"
	"github.com/onecard-hub/onecard/terminal/record"
)

// CardView is what a virtual card itself says: its purse balances (EP+ED)
// and purse counters at the start and at the end of the campaign.
type CardView struct {
	ID                       record.CardID
	Opening, Final           int64  // fen
	OfflineStart, OfflineEnd uint16 // purchase counter
	OnlineStart, OnlineEnd   uint16 // load counter
}

// JournalRecord is one record of an agent's journal.
type JournalRecord struct {
	Terminal string
	Entry    journal.Entry
}

// Input holds the three views.
type Input struct {
	Cards    []CardView
	Journals []JournalRecord
	Postings []*store.Posting // the record postings (pay, load, certify)
	Ledger   map[record.CardID]int64
	Dead     []store.DeadLetter
	// Operations and Faults are only counted into the summary.
	Operations, Faults int
}

// CardLine is the side-by-side reconciliation of one card.
type CardLine struct {
	Card record.CardID
	// The card's own view.
	CardDelta        int64
	Purchases, Loads int // counter advances
	// The journals' view: money records that moved money (card-done,
	// sent, cleared) and uncertain ones.
	JournalDelta              int64
	JournalPays, JournalLoads int
	Uncertain                 int
	UncertainAmount           int64 // absolute
	// The ledger's view.
	LedgerDelta             int64
	LedgerPays, LedgerLoads int
}

// Result is the reconciliation.
type Result struct {
	Lines                       []CardLine
	Operations, Faults          int
	Lost, Duplicated, Uncertain int
	DeadLettered                int
	Problems                    []string // the offending records, first first
}

// OK reports whether nothing was lost or duplicated and every card balances.
func (r *Result) OK() bool { return r.Lost == 0 && r.Duplicated == 0 && len(r.Problems) == 0 }

// Summary is the one-line verdict.
func (r *Result) Summary() string {
	s := fmt.Sprintf("operations %d, faults %d, lost %d, duplicated %d", r.Operations, r.Faults, r.Lost, r.Duplicated)
	if r.Uncertain+r.DeadLettered > 0 {
		s += fmt.Sprintf(" (uncertain %d, dead-lettered %d, each with a reason)", r.Uncertain, r.DeadLettered)
	}
	if len(r.Problems) > 0 {
		s += "; first: " + r.Problems[0]
	}
	return s
}

// Print writes the three views side by side, one card a line.
func (r *Result) Print(w io.Writer) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "CARD\tcard Δ fen\tpurchases\tloads\t|\tjournal Δ fen\tpays\tloads\tuncertain\t|\tledger Δ fen\tpays\tloads\t")
	for _, l := range r.Lines {
		fmt.Fprintf(tw, "…%s\t%d\t%d\t%d\t|\t%d\t%d\t%d\t%d\t|\t%d\t%d\t%d\t\n", l.Card.String()[24:], l.CardDelta, l.Purchases, l.Loads,
			l.JournalDelta, l.JournalPays, l.JournalLoads, l.Uncertain, l.LedgerDelta, l.LedgerPays, l.LedgerLoads)
	}
	tw.Flush()
}

func moved(s journal.State) bool {
	return s == journal.CardDone || s == journal.Sent || s == journal.Cleared
}

// Reconcile checks the three views against each other:
//   - every journal record that moved money has exactly one posting with
//     its key, and no posting lacks a journal record that moved money;
//   - no two postings use the same card counter (a duplicate);
//   - per card, the counter advances equal the money records plus the
//     uncertain ones, and the card's balance change equals the journal's
//     and the ledger's, unless uncertain records explain the difference.
//
// Lost counts money movements missing from a view; Duplicated those that
// appear twice.
func Reconcile(in Input) *Result {
	r := &Result{Operations: in.Operations, Faults: in.Faults, DeadLettered: len(in.Dead)}
	problem := func(format string, a ...any) { r.Problems = append(r.Problems, fmt.Sprintf(format, a...)) }
	lines := map[record.CardID]*CardLine{}
	line := func(id record.CardID) *CardLine {
		l, ok := lines[id]
		if !ok {
			l = &CardLine{Card: id}
			lines[id] = l
		}
		return l
	}
	posted := map[store.Key]int{}
	counters := map[string]store.Key{}
	for _, p := range in.Postings {
		posted[p.Key]++
		if posted[p.Key] > 1 {
			r.Duplicated++
			problem("posting %s twice", p.Key)
		}
		if p.Counter != nil {
			ck := fmt.Sprintf("%s/%v", p.CardID, *p.Counter)
			if k, dup := counters[ck]; dup {
				r.Duplicated++
				problem("card %s counter %v posted by %s and %s", p.CardID, *p.Counter, k, p.Key)
			}
			counters[ck] = p.Key
		}
		l := line(p.CardID)
		switch p.Kind {
		case store.KindPay:
			l.LedgerPays++
		case store.KindLoad:
			l.LedgerLoads++
		}
	}
	inJournal := map[store.Key]bool{}
	for _, jr := range in.Journals {
		e := jr.Entry
		rec := e.Record
		if rec == nil || (rec.Kind != record.KindPay && rec.Kind != record.KindLoad) {
			continue
		}
		k := store.RecordKey(jr.Terminal, e.Seq)
		l := line(rec.CardID)
		amt := int64(rec.Amount)
		if rec.Kind == record.KindPay {
			amt = -amt
		}
		switch {
		case moved(e.State):
			inJournal[k] = true
			l.JournalDelta += amt
			if rec.Kind == record.KindPay {
				l.JournalPays++
			} else {
				l.JournalLoads++
			}
			if e.State == journal.Cleared && posted[k] == 0 {
				r.Lost++
				problem("journal record %s cleared but not on the ledger", k)
			}
		case e.State == journal.Uncertain:
			l.Uncertain++
			l.UncertainAmount += int64(rec.Amount)
			r.Uncertain++
			if e.Reason == "" {
				problem("uncertain record %s without a reason", k)
			}
		case e.State == journal.Dead:
			if e.Reason == "" {
				problem("dead record %s without a reason", k)
			}
		}
	}
	for _, p := range in.Postings {
		if (p.Kind == store.KindPay || p.Kind == store.KindLoad) && !inJournal[p.Key] {
			r.Duplicated++
			problem("posting %s has no journal record that moved money", p.Key)
		}
	}
	for _, c := range in.Cards {
		l := line(c.ID)
		l.CardDelta = c.Final - c.Opening
		l.Purchases = int(c.OfflineEnd - c.OfflineStart)
		l.Loads = int(c.OnlineEnd - c.OnlineStart)
		l.LedgerDelta = in.Ledger[c.ID] - c.Opening
		money := l.Purchases + l.Loads
		if l.Uncertain == 0 {
			if l.CardDelta != l.JournalDelta {
				r.Lost++
				problem("card %s: card moved %d fen, journals %d fen", c.ID, l.CardDelta, l.JournalDelta)
			}
			if money != l.JournalPays+l.JournalLoads {
				r.Lost++
				problem("card %s: counters advanced %d, journals hold %d money records", c.ID, money, l.JournalPays+l.JournalLoads)
			}
		} else if money < l.JournalPays+l.JournalLoads || money > l.JournalPays+l.JournalLoads+l.Uncertain {
			problem("card %s: counters advanced %d, journals %d + %d uncertain", c.ID, money, l.JournalPays+l.JournalLoads, l.Uncertain)
		}
		if l.LedgerDelta != l.JournalDelta {
			diff := l.LedgerDelta - l.JournalDelta
			if diff < 0 {
				diff = -diff
			}
			if l.Uncertain == 0 || diff > l.UncertainAmount {
				problem("card %s: ledger moved %d fen, journals %d fen", c.ID, l.LedgerDelta, l.JournalDelta)
			}
		}
		if l.Uncertain == 0 && l.LedgerDelta != l.CardDelta {
			problem("card %s: ledger moved %d fen, the card %d fen", c.ID, l.LedgerDelta, l.CardDelta)
		}
	}
	for _, l := range lines {
		r.Lines = append(r.Lines, *l)
	}
	sort.Slice(r.Lines, func(i, j int) bool { return strings.Compare(r.Lines[i].Card.String(), r.Lines[j].Card.String()) < 0 })
	return r
}
