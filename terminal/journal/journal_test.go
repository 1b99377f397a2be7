package journal_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/onecard-hub/onecard/terminal/journal"
	"github.com/onecard-hub/onecard/terminal/journal/journaltest"
	"github.com/onecard-hub/onecard/terminal/record"
)

var ctx = context.Background()

func states(h []journal.Transition) []journal.State {
	var out []journal.State
	for _, t := range h {
		out = append(out, t.To)
	}
	return out
}

func mustPrepare(t *testing.T, j *journal.Journal, r *record.Record) uint64 {
	t.Helper()
	seq, err := j.Prepare(ctx, r)
	if err != nil {
		t.Fatalf("prepare: %v", err)
	}
	return seq
}

func mustState(t *testing.T, j *journal.Journal, seq uint64, want journal.State) journal.Entry {
	t.Helper()
	e, err := j.Get(seq)
	if err != nil {
		t.Fatalf("get %d: %v", seq, err)
	}
	if e.State != want {
		t.Fatalf("record %d is %s, want %s", seq, e.State, want)
	}
	return e
}

func seqs(es []journal.Entry) []uint64 {
	var out []uint64
	for _, e := range es {
		out = append(out, e.Seq)
	}
	return out
}

func TestJournalLifecycle(t *testing.T) {
	for _, kind := range []record.Kind{record.KindPay, record.KindLoad, record.KindCertify} {
		t.Run(kind.String(), func(t *testing.T) {
			clk := newClock(t0)
			j := journaltest.MustOpen(t, &journal.Options{Now: clk.Now})
			r := journaltest.NewRecord(kind, journaltest.Card(1), 1250)
			seq := mustPrepare(t, j, r)
			if seq != journal.SeedSequence(t0) || r.TerminalSeq != seq {
				t.Fatalf("seq %d (record %d), want the seed %d", seq, r.TerminalSeq, journal.SeedSequence(t0))
			}
			e := mustState(t, j, seq, journal.Prepared)
			if e.Record.TerminalSeq != seq || e.Record.HolderName != "张三" || !e.PreparedAt().Equal(t0) {
				t.Errorf("stored record %+v", e.Record)
			}
			res := journaltest.DoneResult(r, 1)
			clk.Add(time.Second)
			if err := j.CardDone(ctx, seq, res); err != nil {
				t.Fatal(err)
			}
			e = mustState(t, j, seq, journal.CardDone)
			if !bytes.Equal(e.Record.TAC, res.TAC) || e.Record.BalanceAfter != res.BalanceAfter {
				t.Errorf("card result not stored: %+v", e.Record)
			}
			if err := j.CardDone(ctx, seq, res); err != nil {
				t.Errorf("repeating CardDone with the same result: %v", err)
			}
			if kind.Money() {
				other := journaltest.DoneResult(r, 2)
				if err := j.CardDone(ctx, seq, other); !errors.Is(err, journal.ErrTransition) {
					t.Errorf("CardDone with another TAC: err %v, want ErrTransition", err)
				}
			}
			next, err := j.NextToSend(10)
			if err != nil || !slices.Equal(seqs(next), []uint64{seq}) {
				t.Fatalf("NextToSend = %v, %v", seqs(next), err)
			}
			for i := 0; i < 2; i++ { // the second call is a no-op
				if err := j.MarkSent(ctx, []uint64{seq}); err != nil {
					t.Fatal(err)
				}
			}
			if next, _ := j.NextToSend(10); len(next) != 0 {
				t.Errorf("sent record still offered: %v", seqs(next))
			}
			if un, err := j.Unacknowledged(0); err != nil || !slices.Equal(seqs(un), []uint64{seq}) {
				t.Errorf("Unacknowledged = %v, %v", seqs(un), err)
			}
			for i := 0; i < 2; i++ {
				if err := j.MarkCleared(ctx, []uint64{seq}); err != nil {
					t.Fatal(err)
				}
			}
			e = mustState(t, j, seq, journal.Cleared)
			want := []journal.State{journal.Prepared, journal.CardDone, journal.Sent, journal.Cleared}
			if !slices.Equal(states(e.History), want) {
				t.Errorf("history %v, want %v", states(e.History), want)
			}
			st, err := j.Stats()
			if err != nil {
				t.Fatal(err)
			}
			if st.Counts[journal.Cleared] != 1 || st.Records != 1 || st.NextSeq != seq+1 || st.HighWater != seq || st.Unsent != 0 {
				t.Errorf("stats %+v", st)
			}
		})
	}
}

func TestJournalTransitionTable(t *testing.T) {
	for _, from := range journal.States {
		if journal.CanMove(from, journal.Prepared) {
			t.Errorf("%s → prepared allowed", from)
		}
		if journal.CanMove(from, from) {
			t.Errorf("%s → itself allowed", from)
		}
		for _, to := range journal.States {
			if from.Final() && journal.CanMove(from, to) {
				t.Errorf("final %s → %s allowed", from, to)
			}
		}
		// Every state reaches a final one.
		seen := map[journal.State]bool{from: true}
		queue := []journal.State{from}
		final := false
		for len(queue) > 0 {
			s := queue[0]
			queue = queue[1:]
			final = final || s.Final()
			for _, to := range journal.States {
				if journal.CanMove(s, to) && !seen[to] {
					seen[to] = true
					queue = append(queue, to)
				}
			}
		}
		if !final {
			t.Errorf("%s never reaches a final state", from)
		}
		if p, err := journal.ParseState(from.String()); err != nil || p != from {
			t.Errorf("ParseState(%q) = %v, %v", from, p, err)
		}
	}
}

// TestRefusedMoves drives records into each state and tries moves the
// table forbids: they fail with ErrTransition and change nothing.
func TestJournalRefusedMoves(t *testing.T) {
	j := journaltest.MustOpen(t, nil)
	pay := func() (uint64, *record.Record) {
		r := journaltest.NewRecord(record.KindPay, journaltest.Card(2), 100)
		return mustPrepare(t, j, r), r
	}
	prepared, _ := pay()
	failed, _ := pay()
	if err := j.Fail(ctx, failed, "SW 9401 insufficient balance"); err != nil {
		t.Fatal(err)
	}
	cleared, cr := pay()
	if err := j.CardDone(ctx, cleared, journaltest.DoneResult(cr, 1)); err != nil {
		t.Fatal(err)
	}
	if err := j.MarkCleared(ctx, []uint64{cleared}); err != nil {
		t.Fatal(err)
	}
	dead, dr := pay()
	if err := j.CardDone(ctx, dead, journaltest.DoneResult(dr, 2)); err != nil {
		t.Fatal(err)
	}
	if err := j.DeadLetter(ctx, dead, "hub: TAC does not verify"); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		seq  uint64
		op   func(seq uint64) error
	}{
		{"send prepared", prepared, func(s uint64) error { return j.MarkSent(ctx, []uint64{s}) }},
		{"clear prepared", prepared, func(s uint64) error { return j.MarkCleared(ctx, []uint64{s}) }},
		{"dead-letter prepared", prepared, func(s uint64) error { return j.DeadLetter(ctx, s, "x") }},
		{"send failed", failed, func(s uint64) error { return j.MarkSent(ctx, []uint64{s}) }},
		{"card-done failed", failed, func(s uint64) error {
			return j.CardDone(ctx, s, journal.CardResult{TAC: []byte{1, 2, 3, 4}, BalanceAfter: 9900})
		}},
		{"uncertain failed", failed, func(s uint64) error { return j.MarkUncertain(ctx, s, "x") }},
		{"fail cleared", cleared, func(s uint64) error { return j.Fail(ctx, s, "x") }},
		{"dead-letter cleared", cleared, func(s uint64) error { return j.DeadLetter(ctx, s, "x") }},
		{"clear dead", dead, func(s uint64) error { return j.MarkCleared(ctx, []uint64{s}) }},
		{"batch with one bad", cleared, func(s uint64) error { return j.MarkSent(ctx, []uint64{s, prepared}) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before, _ := j.Get(tt.seq)
			err := tt.op(tt.seq)
			var te *journal.TransitionError
			if !errors.Is(err, journal.ErrTransition) || !errors.As(err, &te) {
				t.Fatalf("err %v, want a *TransitionError", err)
			}
			after, _ := j.Get(tt.seq)
			if after.State != before.State || len(after.History) != len(before.History) {
				t.Errorf("state changed %s → %s", before.State, after.State)
			}
		})
	}
	if err := j.MarkSent(ctx, []uint64{prepared + 1000}); !errors.Is(err, journal.ErrNotFound) {
		t.Errorf("unknown seq: err %v", err)
	}
	if _, err := j.Get(12345); !errors.Is(err, journal.ErrNotFound) {
		t.Errorf("Get unknown: err %v", err)
	}
	e := mustState(t, j, failed, journal.Failed)
	if e.Reason != "SW 9401 insufficient balance" {
		t.Errorf("reason %q", e.Reason)
	}
}

func TestJournalPrepareAndCardDoneValidate(t *testing.T) {
	j := journaltest.MustOpen(t, nil)
	bad := journaltest.NewRecord(record.KindPay, journaltest.Card(3), 100)
	bad.TerminalID = "12"
	if _, err := j.Prepare(ctx, bad); !errors.Is(err, journal.ErrInvalidRecord) || !errors.Is(err, record.ErrInvalid) {
		t.Errorf("bad terminal: err %v", err)
	}
	withTAC := journaltest.NewRecord(record.KindPay, journaltest.Card(3), 100)
	withTAC.TAC = []byte{1, 2, 3, 4}
	if _, err := j.Prepare(ctx, withTAC); !errors.Is(err, journal.ErrInvalidRecord) {
		t.Errorf("prepared with a TAC: err %v", err)
	}
	if _, err := j.Prepare(ctx, nil); !errors.Is(err, journal.ErrInvalidRecord) {
		t.Errorf("nil record: err %v", err)
	}
	st, _ := j.Stats()
	if st.Records != 0 {
		t.Fatalf("refused records stored: %+v", st)
	}
	r := journaltest.NewRecord(record.KindPay, journaltest.Card(3), 100)
	seq := mustPrepare(t, j, r)
	if seq != st.NextSeq {
		t.Errorf("refused prepares consumed sequences: got %d, want %d", seq, st.NextSeq)
	}
	for name, res := range map[string]journal.CardResult{
		"no TAC":        {BalanceAfter: 9900},
		"short TAC":     {TAC: []byte{1, 2}, BalanceAfter: 9900},
		"wrong balance": {TAC: []byte{1, 2, 3, 4}, BalanceAfter: 9999},
	} {
		if err := j.CardDone(ctx, seq, res); !errors.Is(err, journal.ErrInvalidRecord) {
			t.Errorf("%s: err %v, want ErrInvalidRecord", name, err)
		}
	}
	mustState(t, j, seq, journal.Prepared)
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := j.Prepare(cancelled, r); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled context: err %v", err)
	}
}

func TestJournalRecoverAndPendingForCard(t *testing.T) {
	clk := newClock(t0)
	path := filepath.Join(t.TempDir(), "j.db")
	opts := &journal.Options{Now: clk.Now, UncertainHold: time.Hour}
	j := journaltest.MustOpenPath(t, path, opts)
	cardA, cardB := journaltest.Card(0xA), journaltest.Card(0xB)
	torn := mustPrepare(t, j, journaltest.NewRecord(record.KindPay, cardA, 300))
	doneRec := journaltest.NewRecord(record.KindLoad, cardB, 500)
	done := mustPrepare(t, j, doneRec)
	if err := j.CardDone(ctx, done, journaltest.DoneResult(doneRec, 1)); err != nil {
		t.Fatal(err)
	}
	failed := mustPrepare(t, j, journaltest.NewRecord(record.KindPay, cardA, 400))
	if err := j.Fail(ctx, failed, "6982"); err != nil {
		t.Fatal(err)
	}
	cleared := mustPrepare(t, j, journaltest.NewRecord(record.KindCertify, cardB, 0))
	if err := j.CardDone(ctx, cleared, journal.CardResult{}); err != nil {
		t.Fatal(err)
	}
	if err := j.MarkCleared(ctx, []uint64{cleared}); err != nil {
		t.Fatal(err)
	}
	j.Close() // "crash" with torn still prepared

	clk.Add(10 * time.Minute)
	j = journaltest.MustOpenPath(t, path, opts)
	open, err := j.Recover(ctx, clk.Now())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(seqs(open), []uint64{torn, done}) {
		t.Fatalf("Recover returned %v, want [%d %d]", seqs(open), torn, done)
	}
	if open[0].State != journal.Uncertain || open[0].Reason != journal.RecoverReason || open[0].Overdue {
		t.Errorf("torn record: %s %q overdue=%v", open[0].State, open[0].Reason, open[0].Overdue)
	}
	if p, err := j.PendingForCard(cardA); err != nil || !slices.Equal(seqs(p), []uint64{torn}) {
		t.Errorf("PendingForCard(A) = %v, %v", seqs(p), err)
	}
	if p, _ := j.PendingForCard(cardB); len(p) != 0 {
		t.Errorf("PendingForCard(B) = %v", seqs(p))
	}
	if n, _ := j.NextToSend(0); !slices.Equal(seqs(n), []uint64{done}) {
		t.Errorf("NextToSend within the hold = %v, want [%d]", seqs(n), done)
	}
	again, err := j.Recover(ctx, clk.Now())
	if err != nil || !slices.Equal(seqs(again), seqs(open)) {
		t.Errorf("second Recover = %v, %v", seqs(again), err)
	}

	clk.Add(time.Hour)
	if n, _ := j.NextToSend(0); !slices.Equal(seqs(n), []uint64{torn, done}) || !n[0].Overdue {
		t.Errorf("NextToSend after the hold = %v", seqs(n))
	}
	if n, _ := j.NextToSend(1); !slices.Equal(seqs(n), []uint64{torn}) {
		t.Errorf("NextToSend(1) = %v", seqs(n))
	}
	st, _ := j.Stats()
	if st.Unsent != 2 || !st.OldestUnsent.Equal(t0) || st.OldestUnsentAge != 70*time.Minute {
		t.Errorf("stats unsent %d oldest %v age %v", st.Unsent, st.OldestUnsent, st.OldestUnsentAge)
	}
	// The card comes back; its proof shows the debit happened.
	tornRec, _ := j.Get(torn)
	if err := j.CardDone(ctx, torn, journaltest.DoneResult(tornRec.Record, 9)); err != nil {
		t.Fatal(err)
	}
	e := mustState(t, j, torn, journal.CardDone)
	want := []journal.State{journal.Prepared, journal.Uncertain, journal.CardDone}
	if !slices.Equal(states(e.History), want) {
		t.Errorf("history %v, want %v", states(e.History), want)
	}
	if p, _ := j.PendingForCard(cardA); len(p) != 0 {
		t.Errorf("settled record still pending: %v", seqs(p))
	}
}

func TestJournalSeedSequence(t *testing.T) {
	for _, tt := range []struct {
		at   time.Time
		want uint64
	}{
		{journal.SeqEpoch.Add(-time.Hour), 1 << journal.SeqShift},
		{journal.SeqEpoch, 1 << journal.SeqShift},
		{journal.SeqEpoch.Add(1500 * time.Millisecond), 1 << journal.SeqShift},
		{journal.SeqEpoch.Add(2 * time.Second), 2 << journal.SeqShift},
		{journal.SeqEpoch.AddDate(100, 0, 0), uint64(journal.SeqEpoch.AddDate(100, 0, 0).Sub(journal.SeqEpoch)/time.Second) << journal.SeqShift},
	} {
		if got := journal.SeedSequence(tt.at); got != tt.want {
			t.Errorf("SeedSequence(%v) = %d, want %d", tt.at, got, tt.want)
		}
	}
}

// TestReinstallStartsAbove: a fresh journal made a second after the old
// one was lost starts above every sequence the old one issued.
func TestJournalReinstallStartsAbove(t *testing.T) {
	clk := newClock(t0)
	path := filepath.Join(t.TempDir(), "j.db")
	j := journaltest.MustOpenPath(t, path, &journal.Options{Now: clk.Now})
	var last uint64
	for i := 0; i < 50; i++ {
		last = mustPrepare(t, j, journaltest.NewRecord(record.KindPay, journaltest.Card(1), 1))
	}
	j.Close()
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	clk.Add(time.Second)
	j = journaltest.MustOpenPath(t, path, &journal.Options{Now: clk.Now})
	first := mustPrepare(t, j, journaltest.NewRecord(record.KindPay, journaltest.Card(1), 1))
	if first <= last {
		t.Fatalf("reinstalled journal starts at %d, at or below the old %d", first, last)
	}
}

func TestJournalRestoredFromBackup(t *testing.T) {
	clk := newClock(t0)
	dir := t.TempDir()
	path, backup := filepath.Join(dir, "j.db"), filepath.Join(dir, "backup.db")
	opts := &journal.Options{Now: clk.Now}
	j := journaltest.MustOpenPath(t, path, opts)
	cycle := func(n int) (last uint64) {
		for i := 0; i < n; i++ {
			r := journaltest.NewRecord(record.KindPay, journaltest.Card(5), 10)
			last = mustPrepare(t, j, r)
			if err := j.CardDone(ctx, last, journaltest.DoneResult(r, byte(i))); err != nil {
				t.Fatal(err)
			}
			if err := j.MarkCleared(ctx, []uint64{last}); err != nil {
				t.Fatal(err)
			}
		}
		return last
	}
	backupHigh := cycle(3)
	j.Close()
	copyFile(t, path, backup)
	j = journaltest.MustOpenPath(t, path, opts)
	hubAck := cycle(4)
	if err := j.ObserveHubAck(ctx, hubAck); err != nil {
		t.Fatalf("normal ack: %v", err)
	}
	j.Close()

	copyFile(t, backup, path) // the kiosk's disk is restored
	j = journaltest.MustOpenPath(t, path, opts)
	err := j.ObserveHubAck(ctx, hubAck)
	var re *journal.RestoreError
	if !errors.Is(err, journal.ErrRestoredFromBackup) || !errors.As(err, &re) {
		t.Fatalf("err %v, want a *RestoreError", err)
	}
	if re.HubAck != hubAck || re.HighWater != backupHigh || re.Next != hubAck+1 {
		t.Errorf("restore error %+v (hub %d, backup high %d)", re, hubAck, backupHigh)
	}
	seq := mustPrepare(t, j, journaltest.NewRecord(record.KindPay, journaltest.Card(5), 10))
	if seq <= hubAck {
		t.Fatalf("after the restore Prepare got %d, not above the hub's %d", seq, hubAck)
	}
	if err := j.ObserveHubAck(ctx, hubAck); err != nil {
		t.Errorf("repeated ack: %v", err)
	}
	st, _ := j.Stats()
	if st.HubAck != hubAck {
		t.Errorf("stats hub ack %d, want %d", st.HubAck, hubAck)
	}
	// Restored long after: the clock seed wins over ack+1.
	clk.Add(time.Hour)
	err = j.ObserveHubAck(ctx, seq+5)
	if !errors.As(err, &re) || re.Next != journal.SeedSequence(clk.Now()) {
		t.Errorf("second restore: %v", err)
	}
	if err := j.Check(); err != nil {
		t.Errorf("check after jumps: %v", err)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestJournalFullMaxRecords(t *testing.T) {
	clk := newClock(t0)
	j := journaltest.MustOpen(t, &journal.Options{MaxRecords: 4, Now: clk.Now})
	var got []uint64
	recs := map[uint64]*record.Record{}
	for i := 0; i < 4; i++ {
		r := journaltest.NewRecord(record.KindPay, journaltest.Card(6), 10)
		s := mustPrepare(t, j, r)
		got = append(got, s)
		recs[s] = r
	}
	before, _ := j.Stats()
	if _, err := j.Prepare(ctx, journaltest.NewRecord(record.KindPay, journaltest.Card(6), 10)); !errors.Is(err, journal.ErrFull) {
		t.Fatalf("fifth prepare: err %v, want ErrFull", err)
	}
	after, _ := j.Stats()
	if after.Records != 4 || after.NextSeq != before.NextSeq {
		t.Errorf("ErrFull changed the journal: %+v", after)
	}
	// Existing records still advance; clearing and pruning makes room.
	for _, s := range got[:2] {
		if err := j.CardDone(ctx, s, journaltest.DoneResult(recs[s], 1)); err != nil {
			t.Fatal(err)
		}
	}
	if err := j.MarkCleared(ctx, got[:2]); err != nil {
		t.Fatal(err)
	}
	clk.Add(time.Minute)
	n, err := j.PruneFinal(ctx, clk.Now())
	if err != nil || n != 2 {
		t.Fatalf("PruneFinal = %d, %v", n, err)
	}
	if _, err := j.Get(got[0]); !errors.Is(err, journal.ErrNotFound) {
		t.Errorf("pruned record still there: %v", err)
	}
	if err := j.MarkCleared(ctx, got[:1]); err != nil {
		t.Errorf("MarkCleared of a pruned record: %v", err)
	}
	s := mustPrepare(t, j, journaltest.NewRecord(record.KindPay, journaltest.Card(6), 10))
	if s != got[3]+1 {
		t.Errorf("after pruning Prepare got %d, want %d", s, got[3]+1)
	}
}

// TestFullMaxSize fills a small journal until ErrFull; every record that
// was journaled can still advance to card-done and nothing is lost.
func TestJournalFullMaxSize(t *testing.T) {
	j := journaltest.MustOpen(t, &journal.Options{MaxSize: 64 << 10})
	var prepared []uint64
	recs := map[uint64]*record.Record{}
	var full error
	for i := 0; i < 5000 && full == nil; i++ {
		r := journaltest.NewRecord(record.KindPay, journaltest.Card(7), 10)
		r.Merchant = fmt.Sprintf("merchant-%040d", i)
		s, err := j.Prepare(ctx, r)
		if err != nil {
			full = err
			break
		}
		prepared = append(prepared, s)
		recs[s] = r
	}
	if !errors.Is(full, journal.ErrFull) {
		t.Fatalf("no ErrFull after %d records: %v", len(prepared), full)
	}
	if len(prepared) < 10 {
		t.Fatalf("only %d records fit", len(prepared))
	}
	for _, s := range prepared {
		if err := j.CardDone(ctx, s, journaltest.DoneResult(recs[s], 1)); err != nil {
			t.Fatalf("advance %d after ErrFull: %v", s, err)
		}
	}
	st, _ := j.Stats()
	if st.Counts[journal.CardDone] != len(prepared) || st.Records != len(prepared) {
		t.Errorf("stats %+v, want %d card-done", st.Counts, len(prepared))
	}
}

func TestJournalDeadLetters(t *testing.T) {
	j := journaltest.MustOpen(t, nil)
	r := journaltest.NewRecord(record.KindPay, journaltest.Card(8), 10)
	seq := mustPrepare(t, j, r)
	if err := j.CardDone(ctx, seq, journaltest.DoneResult(r, 1)); err != nil {
		t.Fatal(err)
	}
	if err := j.MarkSent(ctx, []uint64{seq}); err != nil {
		t.Fatal(err)
	}
	if err := j.DeadLetter(ctx, seq, "TAC does not verify"); err != nil {
		t.Fatal(err)
	}
	if err := j.DeadLetter(ctx, seq, "second reason"); err != nil {
		t.Errorf("repeated DeadLetter: %v", err)
	}
	dl, err := j.DeadLetters()
	if err != nil || len(dl) != 1 || dl[0].Seq != seq || dl[0].Reason != "TAC does not verify" || dl[0].Entry.State != journal.Dead {
		t.Fatalf("DeadLetters = %+v, %v", dl, err)
	}
	if un, _ := j.Unacknowledged(0); len(un) != 0 {
		t.Errorf("dead record still unacknowledged: %v", seqs(un))
	}
	st, _ := j.Stats()
	if st.DeadLetters != 1 || st.Counts[journal.Dead] != 1 {
		t.Errorf("stats %+v", st)
	}
}

func TestJournalPersonalSealing(t *testing.T) {
	dir := t.TempDir()
	keyPath := filepath.Join(dir, "journal.key")
	key, err := journal.LoadOrCreateKey(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(keyPath); fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %04o", fi.Mode().Perm())
	}
	again, err := journal.LoadOrCreateKey(keyPath)
	if err != nil || !bytes.Equal(again, key) {
		t.Fatalf("reloading the key: %v", err)
	}
	path := filepath.Join(dir, "j.db")
	opts := &journal.Options{PersonalKey: key}
	j := journaltest.MustOpenPath(t, path, opts)
	r := journaltest.NewRecord(record.KindPay, journaltest.Card(9), 10)
	r.HolderName = "欧阳娜娜"
	seq := mustPrepare(t, j, r)
	plain := mustPrepare(t, j, func() *record.Record {
		p := journaltest.NewRecord(record.KindPay, journaltest.Card(9), 10)
		p.CardNumber, p.PersonID, p.HolderName = "", "", ""
		return p
	}())
	if err := j.CardDone(ctx, seq, journaltest.DoneResult(r, 1)); err != nil {
		t.Fatal(err)
	}
	e := mustState(t, j, seq, journal.CardDone)
	if !e.Sealed || e.Record.HolderName != "欧阳娜娜" || e.Record.CardNumber != r.CardNumber || e.Record.PersonID != r.PersonID {
		t.Errorf("with the key: sealed=%v record %+v", e.Sealed, e.Record)
	}
	if p, _ := j.Get(plain); p.Sealed {
		t.Error("a record without personal fields was sealed")
	}
	j.Close()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"欧阳娜娜", r.CardNumber, r.PersonID} {
		if bytes.Contains(raw, []byte(s)) {
			t.Errorf("journal file holds %q in clear", s)
		}
	}

	noKey := &journal.Options{}
	j = journaltest.MustOpenPath(t, path, noKey)
	e = mustState(t, j, seq, journal.CardDone)
	if !e.Sealed || e.Record.HolderName != "" || e.Record.CardNumber != "" {
		t.Errorf("without the key: %+v", e.Record)
	}
	if _, err := j.NextToSend(0); !errors.Is(err, journal.ErrKeyRequired) {
		t.Errorf("NextToSend without the key: err %v", err)
	}
	if err := j.MarkSent(ctx, []uint64{seq}); err != nil {
		t.Errorf("advancing a sealed record without the key: %v", err)
	}
	j.Close()

	wrong := bytes.Repeat([]byte{7}, journal.PersonalKeySize)
	if _, err := journal.Open(path, &journal.Options{PersonalKey: wrong}); !errors.Is(err, journal.ErrWrongKey) {
		t.Errorf("wrong key: err %v", err)
	}
	if _, err := journal.Open(path, &journal.Options{PersonalKey: []byte{1}}); !errors.Is(err, journal.ErrInvalidArgument) {
		t.Errorf("short key: err %v", err)
	}
	if err := os.Chmod(keyPath, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := journal.LoadKey(keyPath); !errors.Is(err, journal.ErrInsecureKeyFile) {
		t.Errorf("0644 key file: err %v", err)
	}
	bad := filepath.Join(dir, "bad.key")
	if err := os.WriteFile(bad, []byte("not hex\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := journal.LoadKey(bad); !errors.Is(err, journal.ErrInvalidArgument) {
		t.Errorf("malformed key file: err %v", err)
	}
	j = journaltest.MustOpenPath(t, path, opts) // the invariant check decrypts with the key
	if e, _ := j.Get(seq); e.Record.HolderName != "欧阳娜娜" {
		t.Errorf("reopened with the key: %q", e.Record.HolderName)
	}
}

func TestJournalClosedAndReadOnly(t *testing.T) {
	path := filepath.Join(t.TempDir(), "j.db")
	j := journaltest.MustOpenPath(t, path, nil)
	seq := mustPrepare(t, j, journaltest.NewRecord(record.KindPay, journaltest.Card(1), 1))
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	if err := j.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := j.Prepare(ctx, journaltest.NewRecord(record.KindPay, journaltest.Card(1), 1)); !errors.Is(err, journal.ErrClosed) {
		t.Errorf("Prepare after Close: err %v", err)
	}
	if _, err := j.Get(seq); !errors.Is(err, journal.ErrClosed) {
		t.Errorf("Get after Close: err %v", err)
	}
	ro := journaltest.MustOpenPath(t, path, &journal.Options{ReadOnly: true})
	if _, err := ro.Get(seq); err != nil {
		t.Errorf("read-only Get: %v", err)
	}
	if _, err := ro.Prepare(ctx, journaltest.NewRecord(record.KindPay, journaltest.Card(1), 1)); !errors.Is(err, journal.ErrReadOnly) {
		t.Errorf("read-only Prepare: err %v", err)
	}
	ro.Close()
	if _, err := journal.Open(filepath.Join(t.TempDir(), "missing.db"), &journal.Options{ReadOnly: true}); err == nil {
		t.Error("read-only open of a missing file succeeded")
	}
	notJournal := filepath.Join(t.TempDir(), "x.db")
	if err := os.WriteFile(notJournal, bytes.Repeat([]byte("x"), 8192), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := journal.Open(notJournal, nil); !errors.Is(err, journal.ErrCorrupt) {
		t.Errorf("garbage file: err %v", err)
	}
}

// TestFailpointsInProcess: an error from a before-* point rolls the
// change back; from an after-* point the change is already committed.
func TestJournalFailpointsInProcess(t *testing.T) {
	boom := errors.New("boom")
	var armed string
	var mu sync.Mutex
	fp := func(name string) error {
		mu.Lock()
		defer mu.Unlock()
		if name == armed {
			return boom
		}
		return nil
	}
	arm := func(s string) { mu.Lock(); armed = s; mu.Unlock() }
	j := journaltest.MustOpen(t, &journal.Options{Failpoint: fp})
	r := journaltest.NewRecord(record.KindPay, journaltest.Card(1), 10)

	arm("before-prepare-commit")
	if _, err := j.Prepare(ctx, r); !errors.Is(err, boom) {
		t.Fatalf("err %v", err)
	}
	if st, _ := j.Stats(); st.Records != 0 {
		t.Fatalf("rolled-back prepare stored a record")
	}
	arm("after-prepare-commit")
	seq, err := j.Prepare(ctx, r)
	if !errors.Is(err, boom) || seq == 0 || r.TerminalSeq != seq {
		t.Fatalf("after-commit failpoint: seq %d, err %v", seq, err)
	}
	mustState(t, j, seq, journal.Prepared)
	arm("before-carddone-commit")
	if err := j.CardDone(ctx, seq, journaltest.DoneResult(r, 1)); !errors.Is(err, boom) {
		t.Fatalf("err %v", err)
	}
	mustState(t, j, seq, journal.Prepared)
	arm("after-carddone-commit")
	if err := j.CardDone(ctx, seq, journaltest.DoneResult(r, 1)); !errors.Is(err, boom) {
		t.Fatalf("err %v", err)
	}
	mustState(t, j, seq, journal.CardDone)
	arm("")
}

// TestConcurrentPrepare: sequences from concurrent Prepares are unique and
// contiguous.
func TestJournalConcurrentPrepare(t *testing.T) {
	j := journaltest.MustOpen(t, nil)
	var mu sync.Mutex
	var got []uint64
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 10; i++ {
				s, err := j.Prepare(ctx, journaltest.NewRecord(record.KindPay, journaltest.Card(byte(g)), 10))
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				got = append(got, s)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	slices.Sort(got)
	for i := 1; i < len(got); i++ {
		if got[i] != got[i-1]+1 {
			t.Fatalf("sequences not contiguous/unique at %d: %d, %d", i, got[i-1], got[i])
		}
	}
}

// TestJournalDuplicateCardTransaction: two records cannot both complete the
// same card transaction (card, purse type, card counter), e.g. a torn
// record settled by mistake after the card already reused its counter.
func TestJournalDuplicateCardTransaction(t *testing.T) {
	j := journaltest.MustOpen(t, nil)
	card := journaltest.Card(0x33)
	torn := journaltest.NewRecord(record.KindPay, card, 100)
	tornSeq := mustPrepare(t, j, torn)
	if err := j.MarkUncertain(ctx, tornSeq, "card removed during DEBIT"); err != nil {
		t.Fatal(err)
	}
	// The card never debited, so the next purchase uses the same counter.
	next := journaltest.NewRecord(record.KindPay, card, 200)
	next.CardCounter = torn.CardCounter
	nextSeq := mustPrepare(t, j, next)
	if err := j.CardDone(ctx, nextSeq, journaltest.DoneResult(next, 1)); err != nil {
		t.Fatal(err)
	}
	err := j.CardDone(ctx, tornSeq, journaltest.DoneResult(torn, 2))
	if !errors.Is(err, journal.ErrDuplicate) {
		t.Fatalf("settling the torn record on a reused counter: err %v, want ErrDuplicate", err)
	}
	mustState(t, j, tornSeq, journal.Uncertain)
	if err := j.Fail(ctx, tornSeq, "card counter moved on without this debit"); err != nil {
		t.Fatal(err)
	}
	// Another purse type or counter is another transaction.
	ep := journaltest.NewRecord(record.KindPay, card, 100)
	ep.CardCounter, ep.TxType = torn.CardCounter, record.TxPurchaseEP
	epSeq := mustPrepare(t, j, ep)
	if err := j.CardDone(ctx, epSeq, journaltest.DoneResult(ep, 3)); err != nil {
		t.Errorf("EP purse with the same counter: %v", err)
	}
}
