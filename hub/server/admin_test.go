package server_test

import (
	"context"
	"errors"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/onecard-hub/onecard/hub/ledger"
	"github.com/onecard-hub/onecard/hub/server"
	"github.com/onecard-hub/onecard/hub/server/servertest"
	"github.com/onecard-hub/onecard/hub/store"
	"github.com/onecard-hub/onecard/terminal/record"
)

// TestAdminSocketBooks drives the operator's books through the admin
// socket (AdminHandler ⇄ AdminClient) and checks each action against the
// store: programmes, funding, grants, opening balances, load holds and
// their release, dead letters.
func TestAdminSocketBooks(t *testing.T) {
	ctx := context.Background()
	st := servertest.OpenStore(t, "", false)
	led, _ := servertest.Books(t, st)
	sock := filepath.Join(t.TempDir(), "hub.admin")
	ln, err := server.ListenAdmin(sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: server.AdminHandler(&server.Ops{Store: st, Ledger: led})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	op, err := server.DialAdmin(sock)
	if err != nil {
		t.Fatal(err)
	}
	balance := func(account string) int64 { t.Helper(); return balanceOf(t, st, account) }

	if err := op.CreateProgramme(ctx, store.Programme{ID: "WINTER", Name: "winter heating", Fund: "320"}); err != nil {
		t.Fatal(err)
	}
	if err := op.CreateProgramme(ctx, store.Programme{ID: "WINTER", Name: "again", Fund: "320"}); !errors.Is(err, store.ErrState) {
		t.Fatalf("second create: %v, want a conflict", err)
	}
	ps, err := op.Programmes(ctx)
	if err != nil || len(ps) != 2 || ps[1].ID != "WINTER" || ps[1].Fund != "320" {
		t.Fatalf("programmes %+v, %v", ps, err)
	}
	card := servertest.Card(5)
	steps := []struct {
		kind store.Kind
		q    ledger.Request
		want store.Outcome
		err  error
	}{
		{store.KindFund, ledger.Request{Ref: "f1", Programme: "WINTER", Amount: 10_000}, store.Posted, nil},
		{store.KindFund, ledger.Request{Ref: "f1", Programme: "WINTER", Amount: 10_000}, store.Duplicate, nil},
		{store.KindGrant, ledger.Request{Ref: "g1", Programme: "WINTER", Card: card, Amount: 4_000}, store.Posted, nil},
		{store.KindGrant, ledger.Request{Ref: "g2", Programme: "WINTER", Card: card, Amount: 7_000}, 0, errors.New("insufficient funds")},
		{store.KindOpening, ledger.Request{Ref: "o1", Card: card, Fund: "320", Amount: 150}, store.Posted, nil},
		{store.KindHold, ledger.Request{Ref: "h1", Programme: "WINTER", Card: card, Amount: 1}, 0, store.ErrInvalid},
	}
	for i, s := range steps {
		got, err := op.Post(ctx, s.kind, s.q)
		if (err == nil) != (s.err == nil) || got != s.want || (s.err != nil && errors.Is(s.err, store.ErrInvalid) && !errors.Is(err, store.ErrInvalid)) {
			t.Fatalf("step %d (%s %s): %v, %v; want %v, %v", i, s.kind, s.q.Ref, got, err, s.want, s.err)
		}
	}
	if g, p, c := balance(ledger.GrantAccount("WINTER", card)), balance(ledger.ProgrammeAccount("WINTER")), balance(ledger.CardAccount(card, "320")); g != 4_000 || p != 6_000 || c != 150 {
		t.Fatalf("grant %d, programme %d, card %d", g, p, c)
	}

	// A load authorised at online counter 9 holds 2,500 of the grant.
	if err := led.Reserve(ctx, ledger.LoadRequest{Programme: "WINTER", Card: card, TxType: record.TxLoadEP, Counter: 9, Amount: 2_500}); err != nil {
		t.Fatal(err)
	}
	hs, err := op.Holds(ctx, card)
	if err != nil || len(hs) != 1 || hs[0].Amount != 2_500 || hs[0].Counter != 9 || hs[0].TxType != record.TxLoadEP || hs[0].Programme != "WINTER" {
		t.Fatalf("holds %+v, %v", hs, err)
	}
	if n, err := op.ReleaseHold(ctx, hs[0]); err != nil || n != 2_500 {
		t.Fatalf("release = %d, %v", n, err)
	}
	if n, err := op.ReleaseHold(ctx, hs[0]); err != nil || n != 0 {
		t.Fatalf("second release = %d, %v; want nothing left", n, err)
	}
	if g := balance(ledger.GrantAccount("WINTER", card)); g != 4_000 {
		t.Fatalf("grant after the release: %d", g)
	}

	// Dead letters: listed, deleted once.
	r := servertest.Record(record.KindPay, term1, card, 1, 10)
	r.TerminalSeq = 7
	content, err := r.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	id, err := st.AddDeadLetter(ctx, store.DeadLetter{Key: store.RecordKey(term1, 7), Content: content, Reason: "tac_mismatch"})
	if err != nil {
		t.Fatal(err)
	}
	ds, err := op.DeadLetters(ctx, 0, 10)
	if err != nil || len(ds) != 1 || ds[0].ID != id || ds[0].Reason != "tac_mismatch" {
		t.Fatalf("dead letters %+v, %v", ds, err)
	}
	if err := op.DeleteDeadLetter(ctx, id); err != nil {
		t.Fatal(err)
	}
	if err := op.DeleteDeadLetter(ctx, id); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("second delete: %v, want ErrNotFound", err)
	}
	// A load of a programme the hub did not know yet is a dead letter;
	// once the operator has created the programme and granted the card,
	// retrying posts it and removes the letter.
	late := servertest.Record(record.KindLoad, term1, servertest.Card(6), 3, 700)
	late.TerminalSeq, late.Merchant, late.Fund = 11, "SPRING", "330"
	res := servertest.Result(t, servertest.Keys(t), late)
	late.TAC, late.MAC2, late.BalanceAfter = res.TAC, res.MAC2, res.BalanceAfter
	if out, err := led.Post(ctx, late); err != nil || !errors.Is(out[0].Err, ledger.ErrUnpostable) {
		t.Fatalf("load of an unknown programme: %+v, %v", out, err)
	}
	ds, err = op.DeadLetters(ctx, 0, 10)
	if err != nil || len(ds) != 1 {
		t.Fatalf("dead letters %+v, %v", ds, err)
	}
	// (The admin socket carries the ledger's refusal as text.)
	if _, err := op.RetryDeadLetter(ctx, ds[0].ID); err == nil || !strings.Contains(err.Error(), "no programme") {
		t.Fatalf("retry before the programme exists: %v", err)
	}
	if err := op.CreateProgramme(ctx, store.Programme{ID: "SPRING", Name: "spring planting", Fund: "330"}); err != nil {
		t.Fatal(err)
	}
	for _, q := range []struct {
		kind store.Kind
		q    ledger.Request
	}{
		{store.KindFund, ledger.Request{Ref: "sf", Programme: "SPRING", Amount: 5_000}},
		{store.KindGrant, ledger.Request{Ref: "sg", Programme: "SPRING", Card: servertest.Card(6), Amount: 700}},
	} {
		if _, err := op.Post(ctx, q.kind, q.q); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := op.RetryDeadLetter(ctx, ds[0].ID); err != nil || out != store.Posted {
		t.Fatalf("retry = %v, %v", out, err)
	}
	if ds, _ := op.DeadLetters(ctx, 0, 10); len(ds) != 0 {
		t.Fatalf("letter kept after the retry posted it: %+v", ds)
	}
	if b := balance(ledger.CardAccount(servertest.Card(6), "330")); b != 700 {
		t.Fatalf("card account %d after the retry, want 700", b)
	}
	// A letter the server filed (what it received, unverified) is never
	// posted.
	env := sealed(t, servertest.Keys(t), servertest.TerminalKey(t), payRec(term1, 6, 4, 5), 12)
	bad, err := st.AddDeadLetter(ctx, store.DeadLetter{Key: store.RecordKey(term1, 12), Content: env, Reason: "bad_signature"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := op.RetryDeadLetter(ctx, bad); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("retry of an unverified letter: %v, want ErrInvalid", err)
	}
	if _, err := op.RetryDeadLetter(ctx, 9999); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("retry of no letter: %v, want ErrNotFound", err)
	}
	if err := st.Check(ctx); err != nil {
		t.Fatal(err)
	}
}
