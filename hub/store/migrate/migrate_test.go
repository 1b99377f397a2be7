package migrate_test

import (
	"errors"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/onecard-hub/onecard/hub/ledger"
	"github.com/onecard-hub/onecard/hub/store"
	"github.com/onecard-hub/onecard/hub/store/boltstore"
	"github.com/onecard-hub/onecard/hub/store/migrate"
	"github.com/onecard-hub/onecard/hub/store/pgstore"
	"github.com/onecard-hub/onecard/hub/store/storetest"
	"github.com/onecard-hub/onecard/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

var _ migrate.Target = (*pgstore.Store)(nil)

// fill writes a little of everything into s: postings of every kind over
// two days, programmes, terminals in each state (one with acknowledged
// records), lost and found cards, dead letters (one rejected twice) and
// totals. It returns the days used.
func fill(t *testing.T, s store.Store) []string {
	t.Helper()
	ctx := storetest.Ctx(t)
	today := time.Now().Format("20060102")
	var ps []*store.Posting
	for i := 1; i <= 6; i++ {
		c := storetest.Card(i)
		ps = append(ps, storetest.Opening("open/"+c.String(), c, int64(1000*i)))
		for n := 1; n <= 5; n++ {
			seq := uint64(10*i + n)
			p := storetest.Pay(storetest.TermA, seq, c, uint16(n), int64(7*n+i), []string{"H1", "H2"}[n%2])
			if n == 5 {
				p.Day = today
			}
			ps = append(ps, p)
		}
		ps = append(ps, storetest.Certify(storetest.TermB, uint64(i), c))
	}
	storetest.MustPost(t, s, ps...)
	for _, p := range []store.Programme{{ID: "SUBSIDY", Name: "heating", Fund: "310"}, {ID: "PENSION", Name: "pension check", Fund: ""}} {
		if err := s.CreateProgramme(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	token := []byte("0123456789abcdef-token")
	for i, no := range []string{storetest.TermA, storetest.TermB, "370100000003", "370100000004"} {
		tm, err := store.NewTerminal(no, "kiosk "+no, token)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.CreateTerminal(ctx, tm); err != nil {
			t.Fatal(err)
		}
		steps := [][]func(*store.Terminal) error{
			{func(t *store.Terminal) error { return t.Enrol(token, []byte("pk-A")) }, (*store.Terminal).Approve,
				func(t *store.Terminal) error { return t.Acknowledge(42) }},
			{func(t *store.Terminal) error { return t.Enrol(token, []byte("pk-B")) }, (*store.Terminal).Approve,
				(*store.Terminal).Suspend},
			{func(t *store.Terminal) error { return t.Enrol(token, []byte("pk-C")) }},
			nil, // stays invited, with its token hash
		}[i]
		for _, fn := range steps {
			if _, err := s.UpdateTerminal(ctx, no, fn); err != nil {
				t.Fatal(err)
			}
		}
	}
	for i, lost := range []bool{true, true, true, false, true} {
		if _, err := s.SetLost(ctx, storetest.Card(1+i%3), lost); err != nil {
			t.Fatal(err)
		}
	}
	for i, key := range []store.Key{store.RecordKey(storetest.TermA, 99), store.RecordKey(storetest.TermA, 99), store.RefKey("bad-grant")} {
		if _, err := s.AddDeadLetter(ctx, store.DeadLetter{Key: key, Content: []byte{byte('a' + i/2)}, Reason: "insufficient funds"}); err != nil {
			t.Fatal(err)
		}
	}
	for _, tt := range []store.Totals{
		{TerminalNo: storetest.TermA, Day: storetest.Day, PayCount: 24, PayAmount: 1000, Signed: []byte("signed"), Signature: []byte("sig")},
		{TerminalNo: storetest.TermB, Day: storetest.Day, CertifyCount: 6},
		{TerminalNo: storetest.TermA, Day: today, PayCount: 6, PayAmount: 1},
	} {
		if err := s.PutTotals(ctx, tt); err != nil {
			t.Fatal(err)
		}
	}
	return []string{storetest.Day, today}
}

func openBolt(t *testing.T) *boltstore.Store {
	t.Helper()
	s, err := boltstore.Open(boltstore.Options{Path: filepath.Join(t.TempDir(), "hub.db"), NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func openPG(t *testing.T) *pgstore.Store {
	t.Helper()
	s, err := pgstore.Open(storetest.Ctx(t), pgstore.Options{DSN: pgtest.Start(t).CreateDB(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// same compares everything a store tells of its content, apart from the
// IDs the target assigns itself (postings, dead letters).
func same(t *testing.T, a, b store.Store, days []string) {
	t.Helper()
	ctx := storetest.Ctx(t)
	pa, err := a.Postings(ctx, store.Query{Limit: 10_000})
	if err != nil {
		t.Fatal(err)
	}
	pb, err := b.Postings(ctx, store.Query{Limit: 10_000})
	if err != nil {
		t.Fatal(err)
	}
	if len(pa) != len(pb) {
		t.Fatalf("%d postings, source %d", len(pb), len(pa))
	}
	for i := range pa {
		x, y := *pa[i], *pb[i]
		x.ID, y.ID = 0, 0
		x.PostedAt, y.PostedAt = x.PostedAt.Truncate(time.Microsecond), y.PostedAt.Truncate(time.Microsecond)
		if !reflect.DeepEqual(x, y) {
			t.Errorf("posting %d: %+v, source %+v", i, y, x)
		}
	}
	eq := func(what string, f func(store.Store) (any, error)) {
		t.Helper()
		x, err := f(a)
		if err != nil {
			t.Fatal(err)
		}
		y, err := f(b)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(x, y) {
			t.Errorf("%s:\n got %+v\nwant %+v", what, y, x)
		}
	}
	micro := func(ts ...*time.Time) {
		for _, t := range ts {
			*t = t.Truncate(time.Microsecond)
		}
	}
	eq("programmes", func(s store.Store) (any, error) {
		ps, err := s.Programmes(ctx)
		for i := range ps {
			micro(&ps[i].CreatedAt)
		}
		return ps, err
	})
	eq("terminals", func(s store.Store) (any, error) {
		ts, err := s.Terminals(ctx)
		for i := range ts {
			micro(&ts[i].CreatedAt, &ts[i].UpdatedAt)
		}
		return ts, err
	})
	eq("lost cards", func(s store.Store) (any, error) { return s.LostCards(ctx, 0) })
	eq("dead letters", func(s store.Store) (any, error) {
		ds, err := s.DeadLetters(ctx, 0, 0)
		for i := range ds {
			ds[i].ID = 0
			micro(&ds[i].First, &ds[i].Last)
		}
		return ds, err
	})
	for _, day := range days {
		eq("totals "+day, func(s store.Store) (any, error) {
			ts, err := s.Totals(ctx, day)
			for i := range ts {
				micro(&ts[i].ReceivedAt)
			}
			return ts, err
		})
		eq("report "+day, func(s store.Store) (any, error) {
			l, err := ledger.New(ledger.Options{Store: s})
			if err != nil {
				return nil, err
			}
			return l.Report(ctx, day)
		})
	}
	for i := 1; i <= 6; i++ {
		eq("balance", func(s store.Store) (any, error) { return s.Balance(ctx, storetest.CardAccount(storetest.Card(i))) })
	}
	storetest.MustCheck(t, a)
	storetest.MustCheck(t, b)
}

// TestMigrateCopy: a bbolt store with data of every kind copied into
// PostgreSQL equals it; copying again copies nothing (and needs Resume);
// an interrupted copy resumes; a target holding another posting under a
// source key is refused.
func TestMigrateCopy(t *testing.T) {
	cases := []struct {
		name string
		// prepare the target before the copy
		prepare func(t *testing.T, src store.Store, dst *pgstore.Store)
		resume  bool
		wantErr error
		copied  int // postings copied by the copy under test
	}{
		{name: "empty target", copied: 42},
		{name: "copied already, without resume", wantErr: migrate.ErrNotEmpty,
			prepare: func(t *testing.T, src store.Store, dst *pgstore.Store) { mustCopy(t, src, dst, false) }},
		{name: "copied already, resumed", resume: true, copied: 0,
			prepare: func(t *testing.T, src store.Store, dst *pgstore.Store) { mustCopy(t, src, dst, false) }},
		{name: "interrupted after 10 postings", resume: true, copied: 32,
			prepare: func(t *testing.T, src store.Store, dst *pgstore.Store) {
				ps, err := src.Postings(storetest.Ctx(t), store.Query{Limit: 10})
				if err != nil {
					t.Fatal(err)
				}
				storetest.MustPost(t, dst, ps...)
			}},
		{name: "target holds another posting under a key", resume: true, wantErr: store.ErrConflict,
			prepare: func(t *testing.T, src store.Store, dst *pgstore.Store) {
				p := storetest.Opening("open/"+storetest.Card(1).String(), storetest.Card(1), 5)
				storetest.MustPost(t, dst, p)
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			src, dst := openBolt(t), openPG(t)
			days := fill(t, src)
			if tc.prepare != nil {
				tc.prepare(t, src, dst)
			}
			st, err := migrate.Copy(storetest.Ctx(t), src, dst, migrate.Options{Resume: tc.resume, Batch: 7})
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("copy: %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("copy: %v", err)
			}
			if st.Postings.Source != 42 || st.Postings.Copied != tc.copied {
				t.Errorf("postings %+v, want 42 read and %d copied", st.Postings, tc.copied)
			}
			want := migrate.Count{Source: 2, Copied: 2}
			if tc.copied != 42 && tc.name != "interrupted after 10 postings" {
				want.Copied = 0
			}
			if st.Programmes != want {
				t.Errorf("programmes %+v, want %+v", st.Programmes, want)
			}
			if st.Terminals.Source != 4 || st.LostCards.Source != 3 || st.DeadLetters.Source != 2 || st.Totals.Source != 3 || st.LostVersion != 4 {
				t.Errorf("stats %+v", st)
			}
			if len(st.Days) != 2 || st.Accounts != 1+6+2 {
				t.Errorf("verified days %v, %d accounts", st.Days, st.Accounts)
			}
			same(t, src, dst, days)
		})
	}
}

func mustCopy(t *testing.T, src store.Store, dst migrate.Target, resume bool) migrate.Stats {
	t.Helper()
	st, err := migrate.Copy(storetest.Ctx(t), src, dst, migrate.Options{Resume: resume})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// TestMigrateFindsMismatch: a target whose balance was changed behind the
// ledger's back fails the verification (the target's Check names it).
func TestMigrateFindsMismatch(t *testing.T) {
	src, dst := openBolt(t), openPG(t)
	fill(t, src)
	mustCopy(t, src, dst, false)
	// Another posting in the target only: the summaries and balances differ.
	storetest.MustPost(t, dst, storetest.Pay(storetest.TermB, 1000, storetest.Card(2), 900, 1, "H1"))
	_, err := migrate.Copy(storetest.Ctx(t), src, dst, migrate.Options{Resume: true})
	var me *migrate.MismatchError
	if !errors.As(err, &me) || !errors.Is(err, migrate.ErrMismatch) || len(me.Problems) != 3 {
		t.Fatalf("copy onto a changed target: %v, want 3 differences (summary, card and merchant balances)", err)
	}
}
