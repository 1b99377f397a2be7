package ledger_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/onecard-hub/onecard/hub/ledger"
	"github.com/onecard-hub/onecard/hub/store"
	"github.com/onecard-hub/onecard/terminal/record"
)

func mustPost(t *testing.T, l *ledger.Ledger, rs ...*record.Record) []store.Result {
	t.Helper()
	res, err := l.Post(ctx(t), rs...)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func balance(t *testing.T, l *ledger.Ledger, account string) int64 {
	t.Helper()
	b, err := l.Store().Balance(ctx(t), account)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func setupProgramme(t *testing.T, l *ledger.Ledger, id, fund string, funds int64) {
	t.Helper()
	if err := l.CreateProgramme(ctx(t), store.Programme{ID: id, Name: id, Fund: fund}); err != nil {
		t.Fatal(err)
	}
	if out, err := l.Fund(ctx(t), ledger.Request{Ref: "fund-" + id, Programme: id, Amount: funds, Source: "finance-bureau"}); err != nil || out != store.Posted {
		t.Fatalf("fund: %v %v", out, err)
	}
}

// TestBenefitLifecycle: fund a programme, grant a card, load it, spend
// it, certify; repeats are duplicates, tampering is a flagged conflict.
func TestBenefitLifecycle(t *testing.T) {
	eachStore(t, func(t *testing.T, l *ledger.Ledger, logs *logBuffer) {
		c := card(1)
		setupProgramme(t, l, "SUBSIDY-2024", "agri", 100000)
		if out, err := l.Grant(ctx(t), ledger.Request{Ref: "grant-1", Programme: "SUBSIDY-2024", Card: c, Amount: 5000}); err != nil || out != store.Posted {
			t.Fatalf("grant: %v %v", out, err)
		}
		if e, err := l.Entitlement(ctx(t), c, "SUBSIDY-2024"); err != nil || e != 5000 {
			t.Fatalf("entitlement %d %v, want 5000", e, err)
		}
		load := loadRecord(termA, 1, c, 3, 5000, "SUBSIDY-2024", "agri")
		pay := payRecord(termA, 2, c, 7, 1200, "H37010000001", "agri")
		cert := certifyRecord(termA, 3, c)
		for i, r := range mustPost(t, l, load, pay, cert) {
			if r.Err != nil || r.Outcome != store.Posted {
				t.Fatalf("record %d: %+v", i, r)
			}
		}
		want := map[string]int64{
			ledger.ProgrammeAccount("SUBSIDY-2024"):        95000,
			ledger.GrantAccount("SUBSIDY-2024", c):         0,
			ledger.CardAccount(c, "agri"):                  3800,
			ledger.MerchantAccount("H37010000001", "agri"): 1200,
			ledger.ExternalAccount("finance-bureau"):       -100000,
		}
		for acc, w := range want {
			if got := balance(t, l, acc); got != w {
				t.Fatalf("%s = %d, want %d", acc, got, w)
			}
		}
		if e, _ := l.Entitlement(ctx(t), c, "SUBSIDY-2024"); e != 0 {
			t.Fatalf("entitlement after the load: %d", e)
		}
		// The grant is consumed: a second load (new key, next counter) has
		// no entitlement.
		again := loadRecord(termB, 1, c, 4, 5000, "SUBSIDY-2024", "agri")
		if r := mustPost(t, l, again)[0]; !errors.Is(r.Err, store.ErrInsufficientFunds) {
			t.Fatalf("second load: %+v", r)
		}
		// The same records again are duplicates and change nothing.
		for i, r := range mustPost(t, l, load.Clone(), pay.Clone(), cert.Clone()) {
			if r.Err != nil || r.Outcome != store.Duplicate {
				t.Fatalf("repeat %d: %+v", i, r)
			}
		}
		// Same key, other content: rejected, flagged.
		tampered := pay.Clone()
		tampered.Amount, tampered.BalanceBefore = 12, 1012
		r := mustPost(t, l, tampered)[0]
		var ce *store.ConflictError
		if !errors.As(r.Err, &ce) || ce.Key != store.RecordKey(termA, 2) {
			t.Fatalf("tampered record: %+v", r)
		}
		if got := balance(t, l, ledger.CardAccount(c, "agri")); got != 3800 {
			t.Fatalf("card balance after rejections: %d", got)
		}
		letters, err := l.Store().DeadLetters(ctx(t), 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(letters) != 2 || letters[0].Key != keyOf(again) || letters[1].Key != store.RecordKey(termA, 2) ||
			!strings.Contains(letters[1].Reason, "different content") {
			t.Fatalf("dead letters %+v", letters)
		}
		if got, err := record.Decode(letters[1].Content); err != nil || got.Amount != 12 {
			t.Fatalf("dead letter content: %v %v", got, err)
		}
		log := logs.String()
		if !strings.Contains(log, "record rejected") || !strings.Contains(log, "370100000001/2") {
			t.Fatalf("log: %s", log)
		}
		for _, personal := range []string{"张三", "110000199001010000", "C00000001"} {
			if strings.Contains(log, personal) || strings.Contains(letters[1].Reason, personal) {
				t.Fatalf("personal data %q in the log or reason", personal)
			}
		}
	})
}

func TestGrantBeyondFunds(t *testing.T) {
	eachStore(t, func(t *testing.T, l *ledger.Ledger, _ *logBuffer) {
		setupProgramme(t, l, "P", "benefit", 1000)
		_, err := l.Grant(ctx(t), ledger.Request{Ref: "g1", Programme: "P", Card: card(1), Amount: 1001})
		var ie *store.InsufficientFundsError
		if !errors.As(err, &ie) || ie.Account != ledger.ProgrammeAccount("P") || ie.Balance != 1000 {
			t.Fatalf("grant beyond funds: %v", err)
		}
		for i, amt := range []int64{600, 400} {
			if _, err := l.Grant(ctx(t), ledger.Request{Ref: "g" + string(rune('2'+i)), Programme: "P", Card: card(i), Amount: amt}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := l.Grant(ctx(t), ledger.Request{Ref: "g9", Programme: "P", Card: card(3), Amount: 1}); !errors.Is(err, store.ErrInsufficientFunds) {
			t.Fatalf("grant from an empty programme: %v", err)
		}
		if got := balance(t, l, ledger.ProgrammeAccount("P")); got != 0 {
			t.Fatalf("programme balance %d", got)
		}
		if _, err := l.Entitlement(ctx(t), card(1), "NOPE"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("entitlement in an unknown programme: %v", err)
		}
	})
}

func TestOperatorRequests(t *testing.T) {
	eachStore(t, func(t *testing.T, l *ledger.Ledger, _ *logBuffer) {
		setupProgramme(t, l, "P", "benefit", 1000)
		q := ledger.Request{Ref: "fund-P", Programme: "P", Amount: 1000, Source: "finance-bureau"}
		if out, err := l.Fund(ctx(t), q); err != nil || out != store.Duplicate {
			t.Fatalf("repeated fund: %v %v", out, err)
		}
		q.Amount = 2000
		if _, err := l.Fund(ctx(t), q); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("reused reference: %v", err)
		}
		c := card(5)
		if _, err := l.OpeningBalance(ctx(t), ledger.Request{Ref: "open-5", Card: c, Fund: "310", Amount: 777}); err != nil {
			t.Fatal(err)
		}
		if b, err := l.Balance(ctx(t), c, "310"); err != nil || b != 777 {
			t.Fatalf("opening balance %d %v", b, err)
		}
		if got := balance(t, l, ledger.ExternalAccount("treasury")); got != -777 {
			t.Fatalf("default source: %d", got)
		}
		bad := []struct {
			name string
			do   func() error
			want error
		}{
			{"fund unknown programme", func() error {
				_, err := l.Fund(ctx(t), ledger.Request{Ref: "x1", Programme: "NOPE", Amount: 1})
				return err
			}, ledger.ErrUnpostable},
			{"zero amount", func() error { _, err := l.Fund(ctx(t), ledger.Request{Ref: "x2", Programme: "P"}); return err }, ledger.ErrUnpostable},
			{"grant without card", func() error {
				_, err := l.Grant(ctx(t), ledger.Request{Ref: "x3", Programme: "P", Amount: 1})
				return err
			}, ledger.ErrUnpostable},
			{"no reference", func() error {
				_, err := l.OpeningBalance(ctx(t), ledger.Request{Card: c, Amount: 1})
				return err
			}, store.ErrInvalid},
			{"bad day", func() error {
				_, err := l.OpeningBalance(ctx(t), ledger.Request{Ref: "x4", Card: c, Amount: 1, Day: "2026"})
				return err
			}, store.ErrInvalid},
		}
		for _, b := range bad {
			if err := b.do(); !errors.Is(err, b.want) || !store.IsRejection(err) {
				t.Fatalf("%s: %v, want %v", b.name, err, b.want)
			}
		}
	})
}

func TestUnpostableRecords(t *testing.T) {
	eachStore(t, func(t *testing.T, l *ledger.Ledger, _ *logBuffer) {
		setupProgramme(t, l, "P", "benefit", 1000)
		c := card(1)
		noTAC := payRecord(termA, 1, c, 1, 10, "M", "")
		noTAC.TAC, noTAC.BalanceAfter = nil, 0
		cases := []struct {
			name    string
			r       *record.Record
			letter  bool
			wantErr error
		}{
			{"pay without TAC", noTAC, true, ledger.ErrUnpostable},
			{"pay without merchant", payRecord(termA, 2, c, 2, 10, "", ""), true, ledger.ErrUnpostable},
			{"load of unknown programme", loadRecord(termA, 3, c, 1, 10, "NOPE", "benefit"), true, ledger.ErrUnpostable},
			{"load into another fund", loadRecord(termA, 4, c, 1, 10, "P", "medical"), true, ledger.ErrUnpostable},
			{"invalid record", func() *record.Record { r := payRecord(termA, 5, c, 1, 10, "M", ""); r.CardDate = "x"; return r }(), true, store.ErrInvalid},
			{"no sequence", payRecord(termA, 0, c, 1, 10, "M", ""), false, ledger.ErrUnpostable},
			{"nil", nil, false, ledger.ErrUnpostable},
		}
		for _, tc := range cases {
			r := mustPost(t, l, tc.r)[0]
			if !errors.Is(r.Err, tc.wantErr) || !store.IsRejection(r.Err) || r.Outcome != 0 {
				t.Fatalf("%s: %+v, want %v", tc.name, r, tc.wantErr)
			}
		}
		letters, err := l.Store().DeadLetters(ctx(t), 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, tc := range cases {
			if tc.letter {
				n++
			}
		}
		if len(letters) != n {
			t.Fatalf("%d dead letters, want %d: %+v", len(letters), n, letters)
		}
		// The good records of a batch still post next to a bad one.
		res := mustPost(t, l, noTAC, certifyRecord(termB, 1, c))
		if res[0].Err == nil || res[1].Outcome != store.Posted {
			t.Fatalf("mixed batch: %+v", res)
		}
	})
}

// TestLedgerCardAccountLags: a purchase the card proved is posted even
// when the hub's books for the card are short (the load that paid for it
// comes later: another terminal, a retried batch); the books catch up
// when the load arrives. Accounts the hub controls still refuse.
func TestLedgerCardAccountLags(t *testing.T) {
	eachStore(t, func(t *testing.T, l *ledger.Ledger, _ *logBuffer) {
		c := card(9)
		setupProgramme(t, l, "P", "benefit", 10_000)
		if _, err := l.Grant(ctx(t), ledger.Request{Ref: "g", Programme: "P", Card: c, Amount: 500}); err != nil {
			t.Fatal(err)
		}
		if r := mustPost(t, l, payRecord(termB, 1, c, 1, 300, "M", "benefit"))[0]; r.Err != nil || r.Outcome != store.Posted {
			t.Fatalf("proven purchase ahead of its load: %+v", r)
		}
		if b := balance(t, l, ledger.CardAccount(c, "benefit")); b != -300 {
			t.Fatalf("card account %d, want -300 until the load arrives", b)
		}
		if r := mustPost(t, l, loadRecord(termA, 1, c, 1, 500, "P", "benefit"))[0]; r.Err != nil {
			t.Fatalf("the load: %+v", r)
		}
		if b := balance(t, l, ledger.CardAccount(c, "benefit")); b != 200 {
			t.Fatalf("card account %d after the load, want 200", b)
		}
		// The grant is spent: a second load is refused (the hub's money).
		if r := mustPost(t, l, loadRecord(termA, 2, c, 2, 1, "P", "benefit"))[0]; !errors.Is(r.Err, store.ErrInsufficientFunds) {
			t.Fatalf("load beyond the grant: %+v", r)
		}
	})
}

func TestRecordPosting(t *testing.T) {
	c := card(9)
	for _, r := range []*record.Record{payRecord(termA, 7, c, 3, 250, "M/1", "f 2"), loadRecord(termB, 8, c, 4, 300, "P", "agri"), certifyRecord(termA, 9, c)} {
		p, err := ledger.RecordPosting(r)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Validate(); err != nil {
			t.Fatalf("%s posting invalid: %v", r.Kind, err)
		}
		back, err := record.Decode(p.Content)
		if err != nil || back.TerminalSeq != r.TerminalSeq || back.Amount != r.Amount {
			t.Fatalf("content is not the record: %v", err)
		}
		if p.Key != keyOf(r) || p.Day != r.CardDate || p.CardID != r.CardID || p.Amount != int64(r.Amount) || p.Party != r.Merchant {
			t.Fatalf("%s posting %+v", r.Kind, p)
		}
		if r.Kind == record.KindCertify {
			if p.Counter != nil || len(p.Entries) != 0 {
				t.Fatalf("certify posting moves money: %+v", p)
			}
			continue
		}
		if p.Counter == nil || p.Counter.Value != r.CardCounter || p.Counter.Type != store.CounterType(r.TxType) {
			t.Fatalf("counter %+v", p.Counter)
		}
		var out, in string
		for _, e := range p.Entries {
			if e.Amount < 0 {
				out = e.Account
			} else {
				in = e.Account
			}
		}
		wantOut, wantIn := ledger.CardAccount(c, r.Fund), ledger.MerchantAccount(r.Merchant, r.Fund)
		if r.Kind == record.KindLoad {
			wantOut, wantIn = ledger.GrantAccount(r.Merchant, c), ledger.CardAccount(c, r.Fund)
		}
		if out != wantOut || in != wantIn {
			t.Fatalf("%s moves %s → %s, want %s → %s", r.Kind, out, in, wantOut, wantIn)
		}
	}
}

func TestAccountNamesDoNotCollide(t *testing.T) {
	names := map[string]string{}
	add := func(what, name string) {
		if prev, ok := names[name]; ok {
			t.Fatalf("%s and %s share the account %s", prev, what, name)
		}
		names[name] = what
	}
	add("merchant a/b fund c", ledger.MerchantAccount("a/b", "c"))
	add("merchant a fund b/c", ledger.MerchantAccount("a", "b/c"))
	add("merchant a%2Fb fund c", ledger.MerchantAccount("a%2Fb", "c"))
	add("programme x/y", ledger.ProgrammeAccount("x/y"))
	add("external x/y", ledger.ExternalAccount("x/y"))
	add("card fund a/b", ledger.CardAccount(card(1), "a/b"))
	add("card fund a", ledger.CardAccount(card(1), "a"))
	for name := range names {
		if store.AllowsNegative(name) != (strings.HasPrefix(name, "external/") || strings.HasPrefix(name, "card/")) {
			t.Fatalf("policy of %s", name)
		}
		if err := store.ValidateAccount(name); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	if _, err := ledger.New(ledger.Options{}); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("ledger without a store: %v", err)
	}
}
