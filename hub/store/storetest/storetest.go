// Package storetest is the contract every store.Store implementation must
// pass: [Run] runs the whole suite against fresh stores, [Race] hammers
// one or two stores sharing the same data with concurrent, repeated and
// conflicting postings and checks that each was posted exactly once.
// Every test ends with store.Check.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/onecard-hub/onecard/hub/store"
	"github.com/onecard-hub/onecard/terminal/record"
)

// Day is the business day of the suite's postings.
const Day = "20260314"

// Bank is the external account opening balances come from.
const Bank = store.ExternalPrefix + "bank"

// Fund is the fund of the suite's card and merchant accounts.
const Fund = "310"

// Terminal numbers used by the suite.
const (
	TermA = "370100000001"
	TermB = "370100000002"
)

// Card returns a deterministic, non-zero card ID for n.
func Card(n int) record.CardID {
	var c record.CardID
	copy(c[:], "OC-TEST-")
	c[8], c[9], c[10], c[11] = byte(n>>24), byte(n>>16), byte(n>>8), byte(n)
	c[15] = 0xA5
	return c
}

// CardAccount is the suite's card account name.
func CardAccount(c record.CardID) string { return "card/" + c.String() + "/" + Fund }

// MerchantAccount is the suite's merchant account name.
func MerchantAccount(m string) string { return "merchant/" + m + "/" + Fund }

// Pay builds a pay posting (card → merchant) using the card's ED offline
// counter value counter.
func Pay(term string, seq uint64, c record.CardID, counter uint16, amount int64, merchant string) *store.Posting {
	return &store.Posting{
		Key: store.RecordKey(term, seq), Kind: store.KindPay, Day: Day, CardID: c, Party: merchant, Fund: Fund,
		Amount: amount, Counter: &store.Counter{Type: store.CounterType(record.TxPurchaseED), Value: counter},
		Entries: []store.Entry{{Account: CardAccount(c), Amount: -amount}, {Account: MerchantAccount(merchant), Amount: amount}},
		Content: fmt.Appendf(nil, "pay|%s|%d|%s|%d|%d|%s", term, seq, c, counter, amount, merchant),
	}
}

// Opening builds an opening-balance posting (Bank → card).
func Opening(ref string, c record.CardID, amount int64) *store.Posting {
	return &store.Posting{
		Key: store.RefKey(ref), Kind: store.KindOpening, Day: Day, CardID: c, Fund: Fund, Amount: amount,
		Entries: []store.Entry{{Account: Bank, Amount: -amount}, {Account: CardAccount(c), Amount: amount}},
		Content: fmt.Appendf(nil, "opening|%s|%s|%d", ref, c, amount),
	}
}

// Payout builds a merchant settlement payout (merchant → Bank): the
// postings that can overdraw an account that may not go negative.
func Payout(ref, merchant string, amount int64) *store.Posting {
	return &store.Posting{
		Key: store.RefKey(ref), Kind: store.KindFund, Day: Day, Party: merchant, Fund: Fund, Amount: amount,
		Entries: []store.Entry{{Account: MerchantAccount(merchant), Amount: -amount}, {Account: Bank, Amount: amount}},
		Content: fmt.Appendf(nil, "payout|%s|%s|%d", ref, merchant, amount),
	}
}

// Certify builds an attestation posting (no money).
func Certify(term string, seq uint64, c record.CardID) *store.Posting {
	return &store.Posting{
		Key: store.RecordKey(term, seq), Kind: store.KindCertify, Day: Day, CardID: c, Party: "PENSION",
		Content: fmt.Appendf(nil, "certify|%s|%d|%s", term, seq, c),
	}
}

// Ctx returns a context cancelled when the test ends (at most 60 s).
func Ctx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// MustPost posts ps and fails the test on a batch error.
func MustPost(t testing.TB, s store.Store, ps ...*store.Posting) []store.Result {
	t.Helper()
	res, err := s.Post(Ctx(t), ps)
	if err != nil {
		t.Fatalf("post: %v", err)
	}
	if len(res) != len(ps) {
		t.Fatalf("post: %d results for %d postings", len(res), len(ps))
	}
	return res
}

// MustCheck fails the test unless s.Check passes.
func MustCheck(t testing.TB, s store.Store) {
	t.Helper()
	if err := s.Check(Ctx(t)); err != nil {
		t.Fatalf("invariants: %v", err)
	}
}

// WantBalance fails the test unless account has balance want.
func WantBalance(t testing.TB, s store.Store, account string, want int64) {
	t.Helper()
	got, err := s.Balance(Ctx(t), account)
	if err != nil {
		t.Fatalf("balance %s: %v", account, err)
	}
	if got != want {
		t.Fatalf("balance %s = %d, want %d", account, got, want)
	}
}

func wantOutcome(t testing.TB, r store.Result, want store.Outcome) {
	t.Helper()
	if r.Err != nil || r.Outcome != want || r.ID == 0 {
		t.Fatalf("result %+v, want %s with an ID", r, want)
	}
}

// samePosting compares what a store must give back.
func samePosting(t testing.TB, got, want *store.Posting) {
	t.Helper()
	g, w := *got, *want
	if g.ID == 0 || g.PostedAt.IsZero() {
		t.Fatalf("stored posting %s without ID or time: %+v", g.Key, g)
	}
	g.ID, g.PostedAt, w.ID, w.PostedAt = 0, time.Time{}, 0, time.Time{}
	if !reflect.DeepEqual(g, w) {
		t.Fatalf("stored posting differs:\n got %+v\nwant %+v", g, w)
	}
}

// Run runs the contract suite. open returns a fresh, empty store for one
// subtest and arranges (t.Cleanup) for it to be closed.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"PostAndRead", testPostAndRead},
		{"DuplicateAndConflict", testDuplicateAndConflict},
		{"CounterReuse", testCounterReuse},
		{"InsufficientFunds", testInsufficientFunds},
		{"InvalidPostings", testInvalidPostings},
		{"BatchOrder", testBatchOrder},
		{"SummaryAndGaps", testSummaryAndGaps},
		{"Programmes", testProgrammes},
		{"Terminals", testTerminals},
		{"LostCards", testLostCards},
		{"DeadLetters", testDeadLetters},
		{"Totals", testTotals},
		{"Nonces", testNonces},
		{"Cancelled", testCancelled},
		{"Property", testProperty},
		{"RaceOneStore", func(t *testing.T, s store.Store) { Race(t, s, s, RaceOptions{}) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t)
			tc.fn(t, s)
			MustCheck(t, s)
		})
	}
}

func testPostAndRead(t *testing.T, s store.Store) {
	ctx := Ctx(t)
	c1, c2 := Card(1), Card(2)
	open1, open2 := Opening("open-1", c1, 10000), Opening("open-2", c2, 500)
	p1 := Pay(TermA, 1, c1, 7, 1250, "H1")
	p2 := Pay(TermB, 1, c2, 3, 500, "H1")
	cert := Certify(TermA, 2, c1)
	res := MustPost(t, s, open1, open2, p1, p2, cert)
	seen := map[uint64]bool{}
	for _, r := range res {
		wantOutcome(t, r, store.Posted)
		if seen[r.ID] {
			t.Fatalf("ID %d given twice", r.ID)
		}
		seen[r.ID] = true
	}
	for _, p := range []*store.Posting{open1, open2, p1, p2, cert} {
		got, err := s.Posting(ctx, p.Key)
		if err != nil {
			t.Fatalf("get %s: %v", p.Key, err)
		}
		samePosting(t, got, p)
	}
	WantBalance(t, s, CardAccount(c1), 10000-1250)
	WantBalance(t, s, CardAccount(c2), 0)
	WantBalance(t, s, MerchantAccount("H1"), 1750)
	WantBalance(t, s, Bank, -10500)
	WantBalance(t, s, "card/never-used", 0)
	if _, err := s.Posting(ctx, store.RecordKey(TermA, 99)); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("absent posting: %v, want ErrNotFound", err)
	}

	queries := []struct {
		q    store.Query
		want []*store.Posting
	}{
		{store.Query{}, []*store.Posting{open1, open2, p1, p2, cert}},
		{store.Query{Day: Day}, []*store.Posting{open1, open2, p1, p2, cert}},
		{store.Query{Day: "20260315"}, nil},
		{store.Query{TerminalNo: TermA}, []*store.Posting{p1, cert}},
		{store.Query{CardID: c2}, []*store.Posting{open2, p2}},
		{store.Query{Day: Day, TerminalNo: TermB, CardID: c2}, []*store.Posting{p2}},
		{store.Query{Limit: 2}, []*store.Posting{open1, open2}},
		{store.Query{AfterID: res[1].ID, Limit: 2}, []*store.Posting{p1, p2}},
		{store.Query{Day: Day, AfterID: res[3].ID}, []*store.Posting{cert}},
	}
	for _, q := range queries {
		got, err := s.Postings(ctx, q.q)
		if err != nil {
			t.Fatalf("postings %+v: %v", q.q, err)
		}
		if len(got) != len(q.want) {
			t.Fatalf("postings %+v: %d, want %d", q.q, len(got), len(q.want))
		}
		for i := range got {
			samePosting(t, got[i], q.want[i])
		}
	}
	if _, err := s.Postings(ctx, store.Query{Day: "2026-03-14"}); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("bad day: %v, want ErrInvalid", err)
	}
}

func testDuplicateAndConflict(t *testing.T, s store.Store) {
	ctx := Ctx(t)
	c := Card(1)
	p := Pay(TermA, 1, c, 1, 100, "H1")
	first := MustPost(t, s, Opening("open", c, 1000), p)
	wantOutcome(t, first[1], store.Posted)

	again := Pay(TermA, 1, c, 1, 100, "H1") // a fresh, byte-identical copy
	r := MustPost(t, s, again)[0]
	wantOutcome(t, r, store.Duplicate)
	if r.ID != first[1].ID {
		t.Fatalf("duplicate reports ID %d, want %d", r.ID, first[1].ID)
	}

	changed := []*store.Posting{
		Pay(TermA, 1, c, 1, 101, "H1"), // other amount
		Pay(TermA, 1, c, 2, 100, "H1"), // other counter
		Pay(TermA, 1, c, 1, 100, "H2"), // other merchant
	}
	for _, q := range changed {
		r := MustPost(t, s, q)[0]
		var ce *store.ConflictError
		if !errors.As(r.Err, &ce) || !errors.Is(r.Err, store.ErrConflict) || !store.IsRejection(r.Err) {
			t.Fatalf("conflicting content: %+v, want a ConflictError", r)
		}
		if ce.Key != q.Key || ce.ExistingID != first[1].ID || r.Outcome != 0 {
			t.Fatalf("conflict %+v (outcome %v), want key %s existing %d", ce, r.Outcome, q.Key, first[1].ID)
		}
	}
	// Same key, same content except an unrelated byte: still a conflict.
	tampered := Pay(TermA, 1, c, 1, 100, "H1")
	tampered.Content = append(tampered.Content, ' ')
	if r := MustPost(t, s, tampered)[0]; !errors.Is(r.Err, store.ErrConflict) {
		t.Fatalf("tampered content: %+v, want conflict", r)
	}
	WantBalance(t, s, CardAccount(c), 900)
	WantBalance(t, s, MerchantAccount("H1"), 100)
	WantBalance(t, s, MerchantAccount("H2"), 0)

	// Within one batch: the repeat is a duplicate of the first, the
	// changed copy a conflict.
	p2 := Pay(TermA, 2, c, 2, 50, "H1")
	res := MustPost(t, s, p2, Pay(TermA, 2, c, 2, 50, "H1"), Pay(TermA, 2, c, 2, 51, "H1"))
	wantOutcome(t, res[0], store.Posted)
	wantOutcome(t, res[1], store.Duplicate)
	if res[1].ID != res[0].ID {
		t.Fatalf("in-batch duplicate ID %d, want %d", res[1].ID, res[0].ID)
	}
	if !errors.Is(res[2].Err, store.ErrConflict) {
		t.Fatalf("in-batch conflict: %+v", res[2])
	}
	WantBalance(t, s, CardAccount(c), 850)
	got, err := s.Posting(ctx, p.Key)
	if err != nil {
		t.Fatal(err)
	}
	samePosting(t, got, p)
}

func testCounterReuse(t *testing.T, s store.Store) {
	c, other := Card(1), Card(2)
	MustPost(t, s, Opening("o1", c, 1000), Opening("o2", other, 1000))
	wantOutcome(t, MustPost(t, s, Pay(TermA, 1, c, 5, 10, "H1"))[0], store.Posted)

	reuse := Pay(TermB, 9, c, 5, 20, "H2")
	r := MustPost(t, s, reuse)[0]
	var ce *store.CounterReuseError
	if !errors.As(r.Err, &ce) || !errors.Is(r.Err, store.ErrCounterReuse) || !store.IsRejection(r.Err) {
		t.Fatalf("reused counter: %+v, want CounterReuseError", r)
	}
	if ce.Key != reuse.Key || ce.Other != store.RecordKey(TermA, 1) || ce.CardID != c || ce.Counter != *reuse.Counter {
		t.Fatalf("counter reuse error %+v", ce)
	}
	// The same value of another counter type or another card is fine.
	load := Pay(TermB, 10, c, 5, 20, "H2")
	load.Counter.Type = store.CounterType(record.TxPurchaseEP)
	load.Content = append(load.Content, []byte("|EP")...)
	for _, p := range []*store.Posting{load, Pay(TermB, 11, other, 5, 20, "H2")} {
		wantOutcome(t, MustPost(t, s, p)[0], store.Posted)
	}
	WantBalance(t, s, CardAccount(c), 1000-10-20)
	WantBalance(t, s, MerchantAccount("H2"), 40)
	if _, err := s.Posting(Ctx(t), reuse.Key); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("rejected posting stored: %v", err)
	}
}

func testInsufficientFunds(t *testing.T, s store.Store) {
	c := Card(1)
	MustPost(t, s, Opening("o1", c, 100), Pay(TermA, 1, c, 1, 40, "H1"))
	over := Payout("po1", "H1", 41)
	r := MustPost(t, s, over)[0]
	var ie *store.InsufficientFundsError
	if !errors.As(r.Err, &ie) || !store.IsRejection(r.Err) {
		t.Fatalf("overdraft: %+v, want InsufficientFundsError", r)
	}
	if ie.Account != MerchantAccount("H1") || ie.Balance != 40 || ie.Delta != -41 || ie.Key != over.Key {
		t.Fatalf("insufficient funds error %+v", ie)
	}
	WantBalance(t, s, MerchantAccount("H1"), 40)
	// Nothing of the rejected posting remains: its key is free.
	po := Payout("po1", "H1", 40)
	wantOutcome(t, MustPost(t, s, po)[0], store.Posted)
	WantBalance(t, s, MerchantAccount("H1"), 0)
	// External and card purse accounts may go negative (a proven purchase
	// posts although the hub has not seen the money yet:
	// store.CardPrefix); the others may not, whatever the kind.
	WantBalance(t, s, Bank, -100+40)
	d := Card(2)
	wantOutcome(t, MustPost(t, s, Pay(TermB, 1, d, 1, 70, "H2"))[0], store.Posted)
	WantBalance(t, s, CardAccount(d), -70)
	MustPost(t, s, Opening("o2", d, 100))
	WantBalance(t, s, CardAccount(d), 30)
	if res, err := s.Post(Ctx(t), nil); err != nil || len(res) != 0 {
		t.Fatalf("empty batch: %v %v", res, err)
	}
}

func testInvalidPostings(t *testing.T, s store.Store) {
	c := Card(1)
	mod := func(f func(p *store.Posting)) *store.Posting {
		p := Opening("x", c, 10)
		f(p)
		return p
	}
	bad := map[string]*store.Posting{
		"unbalanced":         mod(func(p *store.Posting) { p.Entries[0].Amount = -9 }),
		"one entry":          mod(func(p *store.Posting) { p.Entries = p.Entries[:1] }),
		"zero entry":         mod(func(p *store.Posting) { p.Entries = append(p.Entries, store.Entry{Account: "x", Amount: 0}) }),
		"same account twice": mod(func(p *store.Posting) { p.Entries[1].Account = p.Entries[0].Account }),
		"empty account":      mod(func(p *store.Posting) { p.Entries[0].Account = "" }),
		"no content":         mod(func(p *store.Posting) { p.Content = nil }),
		"huge content":       mod(func(p *store.Posting) { p.Content = make([]byte, store.MaxContent+1) }),
		"bad day":            mod(func(p *store.Posting) { p.Day = "20261301" }),
		"no key":             mod(func(p *store.Posting) { p.Key = store.Key{} }),
		"record key":         mod(func(p *store.Posting) { p.Key = store.RecordKey(TermA, 1) }),
		"both keys":          mod(func(p *store.Posting) { p.Key.TerminalNo = TermA }),
		"short terminal":     mod(func(p *store.Posting) { p.Key = store.RecordKey("1234", 1); p.Kind = store.KindPay }),
		"sequence 0":         mod(func(p *store.Posting) { p.Key = store.RecordKey(TermA, 0); p.Kind = store.KindPay }),
		"unknown kind":       mod(func(p *store.Posting) { p.Kind = 99 }),
		"negative amount":    mod(func(p *store.Posting) { p.Amount = -1 }),
		"counter on opening": mod(func(p *store.Posting) { p.Counter = &store.Counter{Type: 5, Value: 1} }),
		"control in fund":    mod(func(p *store.Posting) { p.Fund = "a\nb" }),
		"entry over maximum": mod(func(p *store.Posting) {
			p.Entries[0].Amount, p.Entries[1].Amount = -store.MaxAmount-1, store.MaxAmount+1
		}),
		"certify with entries": func() *store.Posting {
			p := Certify(TermA, 1, c)
			p.Entries = Opening("y", c, 1).Entries
			return p
		}(),
		"bad counter type": func() *store.Posting { p := Pay(TermA, 1, c, 1, 1, "M"); p.Counter.Type = 3; return p }(),
		"counter, no card": func() *store.Posting { p := Pay(TermA, 1, c, 1, 1, "M"); p.CardID = record.CardID{}; return p }(),
	}
	n := 0
	for name, p := range bad {
		n++
		good := Opening(fmt.Sprintf("good-%d", n), c, 1)
		res := MustPost(t, s, p, good)
		if !errors.Is(res[0].Err, store.ErrInvalid) || !store.IsRejection(res[0].Err) {
			t.Fatalf("%s: %+v, want ErrInvalid", name, res[0])
		}
		wantOutcome(t, res[1], store.Posted)
	}
	WantBalance(t, s, CardAccount(c), int64(len(bad)))
	if r := MustPost(t, s, nil)[0]; !errors.Is(r.Err, store.ErrInvalid) {
		t.Fatalf("nil posting: %+v", r)
	}
	if res, err := s.Post(Ctx(t), nil); err != nil || len(res) != 0 {
		t.Fatalf("empty batch: %v %v", res, err)
	}
}

func testBatchOrder(t *testing.T, s store.Store) {
	c := Card(1)
	// The pay needs the opening balance posted earlier in the same batch.
	res := MustPost(t, s, Opening("o", c, 100), Pay(TermA, 1, c, 1, 100, "H1"))
	wantOutcome(t, res[0], store.Posted)
	wantOutcome(t, res[1], store.Posted)
	// Reversed: the payout comes before the pay that funds it and is
	// rejected; the pay posts.
	d := Card(2)
	MustPost(t, s, Opening("o2", d, 100))
	res = MustPost(t, s, Payout("po", "H3", 10), Pay(TermA, 2, d, 1, 10, "H3"))
	if !errors.Is(res[0].Err, store.ErrInsufficientFunds) {
		t.Fatalf("payout before funds: %+v", res[0])
	}
	wantOutcome(t, res[1], store.Posted)
	// Two postings of one batch use the same counter value: the second is
	// a reuse.
	res = MustPost(t, s, Pay(TermA, 3, d, 7, 10, "H1"), Pay(TermB, 3, d, 7, 10, "H1"))
	wantOutcome(t, res[0], store.Posted)
	if !errors.Is(res[1].Err, store.ErrCounterReuse) {
		t.Fatalf("in-batch counter reuse: %+v", res[1])
	}
	WantBalance(t, s, CardAccount(d), 80)
	WantBalance(t, s, MerchantAccount("H1"), 110)
	WantBalance(t, s, MerchantAccount("H3"), 10)
}

func testSummaryAndGaps(t *testing.T, s store.Store) {
	ctx := Ctx(t)
	c1, c2, c3 := Card(1), Card(2), Card(3)
	MustPost(t, s, Opening("o1", c1, 1000), Opening("o2", c2, 1000), Opening("o3", c3, 1000))
	ps := []*store.Posting{
		Pay(TermA, 1, c1, 1, 10, "H1"),
		Pay(TermA, 2, c1, 2, 20, "H1"),
		Pay(TermA, 3, c1, 5, 30, "H2"), // gap 3..4
		Pay(TermB, 1, c1, 9, 40, "H1"), // gap 6..8
		Pay(TermB, 2, c2, 100, 50, "H1"),
		Pay(TermB, 3, c2, 101, 60, "H1"),
		Certify(TermB, 4, c2),
	}
	// c3 has a gap, but only postings on another day.
	other := []*store.Posting{Pay(TermA, 10, c3, 1, 5, "H1"), Pay(TermA, 11, c3, 3, 5, "H1")}
	for _, p := range other {
		p.Day = "20260315"
	}
	for _, r := range MustPost(t, s, append(ps, other...)...) {
		wantOutcome(t, r, store.Posted)
	}
	sum, err := s.Summary(ctx, Day)
	if err != nil {
		t.Fatal(err)
	}
	want := []store.SummaryLine{
		{Kind: store.KindPay, TerminalNo: TermA, Party: "H1", Fund: Fund, Count: 2, Amount: 30},
		{Kind: store.KindPay, TerminalNo: TermA, Party: "H2", Fund: Fund, Count: 1, Amount: 30},
		{Kind: store.KindPay, TerminalNo: TermB, Party: "H1", Fund: Fund, Count: 3, Amount: 150},
		{Kind: store.KindCertify, TerminalNo: TermB, Party: "PENSION", Count: 1},
		{Kind: store.KindOpening, Fund: Fund, Count: 3, Amount: 3000},
	}
	if !reflect.DeepEqual(sum, want) {
		t.Fatalf("summary:\n got %+v\nwant %+v", sum, want)
	}
	if sum, err := s.Summary(ctx, "20200101"); err != nil || len(sum) != 0 {
		t.Fatalf("summary of an empty day: %v %v", sum, err)
	}
	gaps, err := s.Gaps(ctx, Day)
	if err != nil {
		t.Fatal(err)
	}
	ed := store.CounterType(record.TxPurchaseED)
	wantGaps := []store.Gap{
		{CardID: c1, Type: ed, From: 3, To: 4, Before: store.RecordKey(TermA, 2), After: store.RecordKey(TermA, 3)},
		{CardID: c1, Type: ed, From: 6, To: 8, Before: store.RecordKey(TermA, 3), After: store.RecordKey(TermB, 1)},
	}
	if !reflect.DeepEqual(gaps, wantGaps) {
		t.Fatalf("gaps:\n got %+v\nwant %+v", gaps, wantGaps)
	}
	// The missing records arrive (on another day): the gaps close.
	late := []*store.Posting{Pay(TermB, 20, c1, 3, 1, "H1"), Pay(TermB, 21, c1, 4, 1, "H1"), Pay(TermB, 22, c1, 6, 1, "H1")}
	for _, p := range late {
		p.Day = "20260313"
	}
	MustPost(t, s, late...)
	gaps, err = s.Gaps(ctx, Day)
	if err != nil {
		t.Fatal(err)
	}
	if len(gaps) != 1 || gaps[0].From != 7 || gaps[0].To != 8 || gaps[0].Before != store.RecordKey(TermB, 22) {
		t.Fatalf("gaps after late records: %+v", gaps)
	}
	if _, err := s.Gaps(ctx, "x"); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("bad day: %v", err)
	}
}

func testProgrammes(t *testing.T, s store.Store) {
	ctx := Ctx(t)
	b := store.Programme{ID: "SUBSIDY-2026", Name: "惠民惠农补贴 2026", Fund: "agri"}
	a := store.Programme{ID: "BENEFIT-01", Name: "Pension top-up", Fund: "pension"}
	for _, p := range []store.Programme{b, a} {
		if err := s.CreateProgramme(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.CreateProgramme(ctx, store.Programme{ID: b.ID, Name: "again"}); !errors.Is(err, store.ErrExists) {
		t.Fatalf("second create: %v, want ErrExists", err)
	}
	for _, bad := range []store.Programme{{}, {ID: "has space"}, {ID: "x", Name: "a\x00"}} {
		if err := s.CreateProgramme(ctx, bad); !errors.Is(err, store.ErrInvalid) {
			t.Fatalf("create %+v: %v, want ErrInvalid", bad, err)
		}
	}
	got, err := s.Programme(ctx, b.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.CreatedAt.IsZero() {
		t.Fatal("programme without creation time")
	}
	got.CreatedAt = time.Time{}
	if got != b {
		t.Fatalf("programme %+v, want %+v", got, b)
	}
	if _, err := s.Programme(ctx, "NONE"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("absent programme: %v", err)
	}
	all, err := s.Programmes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 2 || all[0].ID != a.ID || all[1].ID != b.ID {
		t.Fatalf("programmes %+v, want sorted [%s %s]", all, a.ID, b.ID)
	}
}

func testTerminals(t *testing.T, s store.Store) {
	ctx := Ctx(t)
	token := []byte("0123456789abcdef-token")
	nt, err := store.NewTerminal(TermB, "Jinan hall 2", token)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.NewTerminal(TermA, "", []byte("short")); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("short token: %v", err)
	}
	if bytes.Contains(nt.TokenHash, token) {
		t.Fatal("token stored in clear")
	}
	if err := s.CreateTerminal(ctx, nt); err != nil {
		t.Fatal(err)
	}
	nt2, _ := store.NewTerminal(TermA, "Jinan hall 1", token)
	if err := s.CreateTerminal(ctx, nt2); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateTerminal(ctx, nt); !errors.Is(err, store.ErrExists) {
		t.Fatalf("second create: %v", err)
	}
	if err := s.CreateTerminal(ctx, store.Terminal{No: "1"}); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("bad terminal: %v", err)
	}
	key := []byte("sm2-public-key-bytes")
	steps := []struct {
		name  string
		fn    func(*store.Terminal) error
		err   error
		state store.TerminalState
	}{
		{"ack before enrolment", func(x *store.Terminal) error { return x.Acknowledge(5) }, store.ErrState, store.StateInvited},
		{"approve before enrolment", (*store.Terminal).Approve, store.ErrState, store.StateInvited},
		{"suspend before enrolment", (*store.Terminal).Suspend, store.ErrState, store.StateInvited},
		{"wrong token", func(x *store.Terminal) error { return x.Enrol([]byte("0123456789abcdef-wrong"), key) }, store.ErrToken, store.StateInvited},
		{"no key", func(x *store.Terminal) error { return x.Enrol(token, nil) }, store.ErrInvalid, store.StateInvited},
		{"enrol", func(x *store.Terminal) error { return x.Enrol(token, key) }, nil, store.StateEnrolled},
		{"token used", func(x *store.Terminal) error { return x.Enrol(token, key) }, store.ErrToken, store.StateEnrolled},
		{"ack while enrolled", func(x *store.Terminal) error { return x.Acknowledge(5) }, store.ErrState, store.StateEnrolled},
		{"approve", (*store.Terminal).Approve, nil, store.StateActive},
		{"ack 7", func(x *store.Terminal) error { return x.Acknowledge(7) }, nil, store.StateActive},
		{"ack 3 keeps 7", func(x *store.Terminal) error { return x.Acknowledge(3) }, nil, store.StateActive},
		{"suspend", (*store.Terminal).Suspend, nil, store.StateSuspended},
		{"ack while suspended", func(x *store.Terminal) error { return x.Acknowledge(9) }, store.ErrState, store.StateSuspended},
		{"renumber", func(x *store.Terminal) error { x.No = TermA; return nil }, store.ErrInvalid, store.StateSuspended},
		{"approve again", (*store.Terminal).Approve, nil, store.StateActive},
	}
	for _, st := range steps {
		got, err := s.UpdateTerminal(ctx, TermB, st.fn)
		if (st.err == nil) != (err == nil) || (st.err != nil && !errors.Is(err, st.err)) {
			t.Fatalf("%s: %v, want %v", st.name, err, st.err)
		}
		stored, err := s.Terminal(ctx, TermB)
		if err != nil {
			t.Fatal(err)
		}
		if stored.State != st.state {
			t.Fatalf("%s: stored state %s, want %s", st.name, stored.State, st.state)
		}
		if st.err == nil && (got.State != st.state || !got.UpdatedAt.Equal(stored.UpdatedAt)) {
			t.Fatalf("%s: returned %+v, stored %+v", st.name, got, stored)
		}
	}
	final, err := s.Terminal(ctx, TermB)
	if err != nil {
		t.Fatal(err)
	}
	if final.AckedSeq != 7 || !bytes.Equal(final.PublicKey, key) || len(final.TokenHash) != 0 || final.Name != "Jinan hall 2" ||
		final.CreatedAt.IsZero() || final.UpdatedAt.Before(final.CreatedAt) {
		t.Fatalf("final terminal %+v", final)
	}
	if _, err := s.UpdateTerminal(ctx, "999999999999", (*store.Terminal).Approve); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("update absent: %v", err)
	}
	if _, err := s.Terminal(ctx, "999999999999"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("get absent: %v", err)
	}
	all, err := s.Terminals(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 2 || all[0].No != TermA || all[1].No != TermB || all[0].State != store.StateInvited {
		t.Fatalf("terminals %+v", all)
	}
}

func testLostCards(t *testing.T, s store.Store) {
	ctx := Ctx(t)
	set := func(c record.CardID, lost bool, want uint64) {
		t.Helper()
		v, err := s.SetLost(ctx, c, lost)
		if err != nil || v != want {
			t.Fatalf("SetLost(%s, %v) = %d, %v; want version %d", c, lost, v, err, want)
		}
	}
	set(Card(9), false, 0) // never lost: nothing to remove
	set(Card(1), true, 1)
	set(Card(2), true, 2)
	set(Card(1), true, 2) // already lost: no new version
	set(Card(3), true, 3)
	set(Card(1), false, 4)
	if _, err := s.SetLost(ctx, record.CardID{}, true); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("zero card: %v", err)
	}
	cases := []struct {
		since uint64
		want  []store.LostChange
	}{
		{0, []store.LostChange{{CardID: Card(2), Lost: true, Version: 2}, {CardID: Card(3), Lost: true, Version: 3}, {CardID: Card(1), Lost: false, Version: 4}}},
		{2, []store.LostChange{{CardID: Card(3), Lost: true, Version: 3}, {CardID: Card(1), Lost: false, Version: 4}}},
		{4, nil},
		{99, nil},
	}
	for _, c := range cases {
		l, err := s.LostCards(ctx, c.since)
		if err != nil {
			t.Fatal(err)
		}
		if l.Version != 4 || !reflect.DeepEqual(l.Changes, c.want) {
			t.Fatalf("LostCards(%d) = %+v, want version 4 and %+v", c.since, l, c.want)
		}
	}
}

func testDeadLetters(t *testing.T, s store.Store) {
	ctx := Ctx(t)
	k := store.RecordKey(TermA, 5)
	id1, err := s.AddDeadLetter(ctx, store.DeadLetter{Key: k, Content: []byte("rec-v1"), Reason: "conflict"})
	if err != nil {
		t.Fatal(err)
	}
	id2, err := s.AddDeadLetter(ctx, store.DeadLetter{Key: k, Content: []byte("rec-v2"), Reason: "conflict"})
	if err != nil || id2 == id1 {
		t.Fatalf("second content: id %d (first %d), %v", id2, id1, err)
	}
	again, err := s.AddDeadLetter(ctx, store.DeadLetter{Key: k, Content: []byte("rec-v1"), Reason: "insufficient funds"})
	if err != nil || again != id1 {
		t.Fatalf("repeat: id %d, %v; want %d", again, err, id1)
	}
	id3, err := s.AddDeadLetter(ctx, store.DeadLetter{Key: store.RefKey("grant-7"), Reason: "no such programme"})
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []store.DeadLetter{{Key: k}, {Key: store.Key{}, Reason: "x"}, {Key: k, Reason: "x", Content: make([]byte, store.MaxContent+1)}} {
		if _, err := s.AddDeadLetter(ctx, bad); !errors.Is(err, store.ErrInvalid) {
			t.Fatalf("bad letter: %v", err)
		}
	}
	all, err := s.DeadLetters(ctx, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 3 || all[0].ID != id1 || all[1].ID != id2 || all[2].ID != id3 {
		t.Fatalf("letters %+v", all)
	}
	l := all[0]
	if l.Count != 2 || l.Reason != "insufficient funds" || string(l.Content) != "rec-v1" || l.Key != k ||
		l.First.IsZero() || l.Last.Before(l.First) {
		t.Fatalf("repeated letter %+v", l)
	}
	if all[2].Key != store.RefKey("grant-7") || all[2].Content != nil || all[2].Count != 1 {
		t.Fatalf("reference letter %+v", all[2])
	}
	page, err := s.DeadLetters(ctx, id1, 1)
	if err != nil || len(page) != 1 || page[0].ID != id2 {
		t.Fatalf("page %+v %v", page, err)
	}
	if err := s.DeleteDeadLetter(ctx, id1); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteDeadLetter(ctx, id1); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
	// Once deleted, the same key and content make a new letter.
	id4, err := s.AddDeadLetter(ctx, store.DeadLetter{Key: k, Content: []byte("rec-v1"), Reason: "again"})
	if err != nil || id4 == id1 {
		t.Fatalf("letter after delete: %d %v", id4, err)
	}
}

func testTotals(t *testing.T, s store.Store) {
	ctx := Ctx(t)
	t1 := store.Totals{TerminalNo: TermB, Day: Day, PayCount: 3, PayAmount: 150, CertifyCount: 1, Signed: []byte("signed"), Signature: []byte("sig")}
	t2 := store.Totals{TerminalNo: TermA, Day: Day, LoadCount: 1, LoadAmount: 5000}
	t3 := store.Totals{TerminalNo: TermA, Day: "20260315", PayCount: 1, PayAmount: 1}
	for _, x := range []store.Totals{t1, t2, t3} {
		if err := s.PutTotals(ctx, x); err != nil {
			t.Fatal(err)
		}
	}
	t1.PayCount, t1.PayAmount = 4, 160 // resubmission replaces
	if err := s.PutTotals(ctx, t1); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []store.Totals{{TerminalNo: "1", Day: Day}, {TerminalNo: TermA, Day: "x"}, {TerminalNo: TermA, Day: Day, PayCount: -1}} {
		if err := s.PutTotals(ctx, bad); !errors.Is(err, store.ErrInvalid) {
			t.Fatalf("bad totals: %v", err)
		}
	}
	got, err := s.Totals(ctx, Day)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("totals %+v", got)
	}
	for i, want := range []store.Totals{t2, t1} {
		g := got[i]
		if g.ReceivedAt.IsZero() {
			t.Fatal("totals without a receipt time")
		}
		g.ReceivedAt = time.Time{}
		if !reflect.DeepEqual(g, want) {
			t.Fatalf("totals[%d] = %+v, want %+v", i, g, want)
		}
	}
}

func testNonces(t *testing.T, s store.Store) {
	ctx := Ctx(t)
	later := time.Now().Add(time.Hour)
	if err := s.UseNonce(ctx, []byte("n1"), later); err != nil {
		t.Fatal(err)
	}
	if err := s.UseNonce(ctx, []byte("n1"), later); !errors.Is(err, store.ErrReplay) {
		t.Fatalf("replay: %v", err)
	}
	if err := s.UseNonce(ctx, []byte("n2"), later); err != nil {
		t.Fatal(err)
	}
	// An expired nonce may be used again.
	past := time.Now().Add(-time.Second)
	if err := s.UseNonce(ctx, []byte("old"), past); err != nil {
		t.Fatal(err)
	}
	if err := s.UseNonce(ctx, []byte("old"), later); err != nil {
		t.Fatalf("expired nonce refused: %v", err)
	}
	for _, bad := range [][]byte{nil, make([]byte, store.MaxNonce+1)} {
		if err := s.UseNonce(ctx, bad, later); !errors.Is(err, store.ErrInvalid) {
			t.Fatalf("bad nonce: %v", err)
		}
	}
}

func testCancelled(t *testing.T, s store.Store) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Post(ctx, []*store.Posting{Opening("o", Card(1), 1)}); err == nil {
		t.Fatal("post with a cancelled context succeeded")
	}
	WantBalance(t, s, CardAccount(Card(1)), 0)
}
