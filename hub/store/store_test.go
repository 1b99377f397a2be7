package store_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/onecard-hub/onecard/hub/store"
	"github.com/onecard-hub/onecard/hub/store/storetest"
)

func TestKeyForms(t *testing.T) {
	cases := []struct {
		k     store.Key
		s     string
		valid bool
	}{
		{store.RecordKey("370100000001", 42), "370100000001/42", true},
		{store.RefKey("fund-2026-03"), "ref:fund-2026-03", true},
		{store.RecordKey("370100000001", 0), "370100000001/0", false},
		{store.RecordKey("37010000000x", 1), "37010000000x/1", false},
		{store.RefKey("has space"), "ref:has space", false},
		{store.RefKey(strings.Repeat("r", store.MaxRef+1)), "ref:" + strings.Repeat("r", store.MaxRef+1), false},
		{store.Key{TerminalNo: "370100000001", TerminalSeq: 1, Ref: "x"}, "ref:x", false},
		{store.Key{}, "/0", false},
	}
	for _, c := range cases {
		if got := c.k.String(); got != c.s {
			t.Fatalf("%#v.String() = %q, want %q", c.k, got, c.s)
		}
		if err := c.k.Validate(); (err == nil) != c.valid || (err != nil && !errors.Is(err, store.ErrInvalid)) {
			t.Fatalf("%#v.Validate() = %v, valid %v", c.k, err, c.valid)
		}
	}
}

func TestNames(t *testing.T) {
	cases := map[string]string{
		store.KindPay.String(): "pay", store.KindGrant.String(): "grant", store.Kind(99).String(): "kind(99)",
		store.CounterType(5).String(): "ED-offline", store.CounterType(2).String(): "EP-online", store.CounterType(9).String(): "counter(9)",
		store.StateActive.String(): "active", store.TerminalState(0).String(): "state(0)",
		store.Posted.String(): "posted", store.Duplicate.String(): "duplicate", store.Outcome(0).String(): "rejected",
	}
	for got, want := range cases {
		if got != want {
			t.Fatalf("%q, want %q", got, want)
		}
	}
}

func TestIsRejection(t *testing.T) {
	cases := []struct {
		err  error
		want bool
	}{
		{&store.ConflictError{}, true},
		{fmt.Errorf("post: %w", &store.CounterReuseError{}), true},
		{&store.InsufficientFundsError{}, true},
		{fmt.Errorf("x: %w", store.ErrInvalid), true},
		{context.DeadlineExceeded, false},
		{errors.New("connection reset"), false},
		{store.ErrCorrupt, false},
	}
	for _, c := range cases {
		if got := store.IsRejection(c.err); got != c.want {
			t.Fatalf("IsRejection(%v) = %v", c.err, got)
		}
	}
}

func TestProblemsTruncate(t *testing.T) {
	var p store.Problems
	if p.Err() != nil {
		t.Fatal("no problems, yet an error")
	}
	for i := 0; i < store.MaxProblems+5; i++ {
		p.Addf("problem %d", i)
	}
	var ie *store.InvariantError
	if err := p.Err(); !errors.As(err, &ie) || !errors.Is(err, store.ErrInvariant) || len(ie.Problems) != store.MaxProblems || !ie.Truncated {
		t.Fatalf("%v", err)
	}
}

func TestTerminalValidate(t *testing.T) {
	good, err := store.NewTerminal("370100000001", "hall", []byte("0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	mods := map[string]func(*store.Terminal){
		"number":            func(x *store.Terminal) { x.No = "1" },
		"state":             func(x *store.Terminal) { x.State = 9 },
		"invited, no token": func(x *store.Terminal) { x.TokenHash = nil },
		"active, token":     func(x *store.Terminal) { x.State, x.PublicKey = store.StateActive, []byte("k") },
		"active, no key":    func(x *store.Terminal) { x.State, x.TokenHash = store.StateActive, nil },
		"name":              func(x *store.Terminal) { x.Name = "a\x01" },
	}
	for name, mod := range mods {
		x := good
		mod(&x)
		if err := x.Validate(); !errors.Is(err, store.ErrInvalid) {
			t.Fatalf("%s: %v", name, err)
		}
	}
}

func TestPostingValidateAcceptsSuitePostings(t *testing.T) {
	for _, p := range []*store.Posting{storetest.Pay(storetest.TermA, 1, storetest.Card(1), 1, 5, "M"),
		storetest.Opening("o", storetest.Card(1), 5), storetest.Certify(storetest.TermA, 2, storetest.Card(1))} {
		if err := p.Validate(); err != nil {
			t.Fatalf("%s: %v", p.Key, err)
		}
	}
}
