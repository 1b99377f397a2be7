package main

import (
	"context"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/onecard-hub/onecard/hub/ledger"
	"github.com/onecard-hub/onecard/hub/store"
	"github.com/onecard-hub/onecard/hub/store/boltstore"
	"github.com/onecard-hub/onecard/hub/store/pgstore"
	"github.com/onecard-hub/onecard/hub/store/storetest"
	"github.com/onecard-hub/onecard/internal/pgtest"
)

// TestHubMigrate: "onecard hub migrate" copies a bbolt store with data of
// every kind into PostgreSQL; both ledgers pass Check and give the same
// report; a second run is refused without --resume and copies nothing
// with it.
func TestHubMigrate(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dir := t.TempDir()
	file := filepath.Join(dir, "hub.db")
	bs, err := boltstore.Open(boltstore.Options{Path: file})
	if err != nil {
		t.Fatal(err)
	}
	led, err := ledger.New(ledger.Options{Store: bs})
	if err != nil {
		t.Fatal(err)
	}
	if err := led.CreateProgramme(ctx, store.Programme{ID: "SUBSIDY", Name: "heating", Fund: storetest.Fund}); err != nil {
		t.Fatal(err)
	}
	if _, err := led.Fund(ctx, ledger.Request{Ref: "fund-1", Programme: "SUBSIDY", Amount: 100_000}); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 3; i++ {
		c := storetest.Card(i)
		if _, err := led.Grant(ctx, ledger.Request{Ref: "grant/" + c.String(), Programme: "SUBSIDY", Card: c, Amount: 500}); err != nil {
			t.Fatal(err)
		}
		storetest.MustPost(t, bs, storetest.Opening("open/"+c.String(), c, 1000),
			storetest.Pay(storetest.TermA, uint64(i), c, 1, int64(100+i), "H1"), storetest.Certify(storetest.TermB, uint64(i), c))
	}
	tm, err := store.NewTerminal(storetest.TermA, "kiosk A", []byte("0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	if err := bs.CreateTerminal(ctx, tm); err != nil {
		t.Fatal(err)
	}
	if _, err := bs.SetLost(ctx, storetest.Card(2), true); err != nil {
		t.Fatal(err)
	}
	if _, err := bs.AddDeadLetter(ctx, store.DeadLetter{Key: store.RecordKey(storetest.TermA, 9), Content: []byte("x"), Reason: "conflict"}); err != nil {
		t.Fatal(err)
	}
	if err := bs.PutTotals(ctx, store.Totals{TerminalNo: storetest.TermA, Day: storetest.Day, PayCount: 3, PayAmount: 306}); err != nil {
		t.Fatal(err)
	}
	// The source is locked while a hub (here: the open store) uses it.
	dsn := pgtest.New(t).CreateDB(t)
	if code, _, stderr := onecard(t, "hub", "migrate", "--from", "bbolt:"+file, "--to", dsn); code != 1 || !strings.Contains(stderr, "locked") {
		t.Fatalf("migrate from a store in use: exit %d, %q", code, stderr)
	}
	bs.Close()

	for _, tt := range []struct {
		args []string
		code int
		out  string // in stdout (exit 0) or stderr
	}{
		{[]string{"--to", dsn}, 2, "--from"},
		{[]string{"--from", dsn, "--to", dsn}, 2, "--from"},
		{[]string{"--from", "bbolt:" + file, "--to", "bbolt:" + file}, 2, "--to"},
		{[]string{"--from", "bbolt:" + filepath.Join(dir, "missing.db"), "--to", dsn}, 1, "no such file"},
		{[]string{"--from", "bbolt:" + file, "--to", dsn}, 0, "postings         13 in source,     13 copied,      0 present already"},
		{[]string{"--from", "bbolt:" + file, "--to", dsn}, 1, "--resume"},
		{[]string{"--from", "bbolt:" + file, "--to", dsn, "--resume"}, 0, "postings         13 in source,      0 copied,     13 present already"},
	} {
		code, stdout, stderr := onecard(t, append([]string{"hub", "migrate"}, tt.args...)...)
		got := stderr
		if code == 0 {
			got = stdout
		}
		if code != tt.code || !strings.Contains(got, tt.out) {
			t.Fatalf("hub migrate %q: exit %d, stdout %q, stderr %q; want exit %d and %q", tt.args, code, stdout, stderr, tt.code, tt.out)
		}
	}

	// Both ledgers: invariants hold, and the day's report is the same.
	bs, err = boltstore.Open(boltstore.Options{Path: file})
	if err != nil {
		t.Fatal(err)
	}
	defer bs.Close()
	ps, err := pgstore.Open(ctx, pgstore.Options{DSN: dsn})
	if err != nil {
		t.Fatal(err)
	}
	defer ps.Close()
	var reports []*ledger.Report
	for _, s := range []store.Store{bs, ps} {
		if err := s.Check(ctx); err != nil {
			t.Fatalf("%T: %v", s, err)
		}
		l, err := ledger.New(ledger.Options{Store: s})
		if err != nil {
			t.Fatal(err)
		}
		r, err := l.Report(ctx, storetest.Day)
		if err != nil {
			t.Fatal(err)
		}
		reports = append(reports, r)
	}
	if !reflect.DeepEqual(reports[0], reports[1]) {
		t.Fatalf("reports differ:\nbbolt      %+v\npostgresql %+v", reports[0], reports[1])
	}
	if len(reports[0].Merchants) == 0 || len(reports[0].Discrepancies) == 0 {
		t.Fatalf("report without merchants or dead letters: %+v", reports[0])
	}
}
