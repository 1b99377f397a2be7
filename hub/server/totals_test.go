package server_test

import (
	"context"
	"testing"
	"time"

	"github.com/onecard-hub/onecard/hub/ledger"
	"github.com/onecard-hub/onecard/hub/server/servertest"
	hubsync "github.com/onecard-hub/onecard/hub/sync"
	"github.com/onecard-hub/onecard/terminal/record"
)

// TestSyncEndOfDayTotals: the agent signs its journal's day totals and
// submits them once its queue is drained; the report compares them with
// the postings. A record the hub refused makes them differ, and the
// report lists the terminal's records; forged and replayed-old totals
// are refused.
func TestSyncEndOfDayTotals(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	keys := servertest.Keys(t)
	h, st, led := startHub(t, false, nil)
	a := newAgent(t, term1, h)
	servertest.Register(t, st, term1, a.key.PublicKey())
	day := servertest.At.Format("20060102")
	servertest.Fill(t, a.j, keys, term1, 1, 5, 40, 125)
	servertest.Journal(t, a.j, keys, servertest.Record(record.KindCertify, term1, servertest.Card(3), 0, 0))
	c := a.client(t)
	if err := c.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	rep, err := led.Report(ctx, day)
	if err != nil {
		t.Fatal(err)
	}
	want := ledger.Counts{PayCount: 40, PayAmount: 40 * 125, CertifyCount: 1}
	if len(rep.Terminals) != 1 || !rep.Terminals[0].Match || rep.Terminals[0].Submitted == nil || *rep.Terminals[0].Submitted != want {
		t.Fatalf("report terminals %+v, want one matching line with %+v", rep.Terminals, want)
	}
	if len(rep.Discrepancies) != 0 {
		t.Fatalf("discrepancies %+v", rep.Discrepancies)
	}
	s, _ := c.Status()
	if len(s.Totals) != 1 || s.Totals[0].Day != day || !s.Totals[0].Match {
		t.Fatalf("client totals status %+v", s.Totals)
	}

	// A load of a programme the hub does not know: the card took it (its
	// TAC is genuine), the hub dead-letters the record, the totals differ.
	bad := servertest.Record(record.KindLoad, term1, servertest.Card(3), 1, 999)
	bad.Merchant = "NO-SUCH-PROGRAMME"
	servertest.Journal(t, a.j, keys, bad)
	if err := c.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	rep, err = led.Report(ctx, day)
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[ledger.DiscrepancyKind]int{}
	for _, d := range rep.Discrepancies {
		kinds[d.Kind]++
		if d.Kind == ledger.TotalsMismatch && len(d.Records) != 41 {
			t.Errorf("mismatch lists %d records, want the terminal's 41 postings", len(d.Records))
		}
	}
	if rep.Terminals[0].Match || rep.Terminals[0].Submitted.LoadCount != 1 || kinds[ledger.TotalsMismatch] != 1 || kinds[ledger.Rejected] != 1 {
		t.Fatalf("after a refused record: terminals %+v, discrepancies %v", rep.Terminals, kinds)
	}
	if s, _ := c.Status(); s.Totals[0].Match {
		t.Fatalf("client reports a match: %+v", s.Totals)
	}

	// Forged and stale submissions on a raw session.
	r, err := servertest.DialRaw(h.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if m, err := r.Hello(term1, a.key); err != nil {
		t.Fatal(err)
	} else if _, ok := m.(*hubsync.Welcome); !ok {
		t.Fatalf("hello answered %#v", m)
	}
	ask := func(id uint64, m *hubsync.Totals) hubsync.Message {
		t.Helper()
		if err := r.Send(id, m); err != nil {
			t.Fatal(err)
		}
		for {
			got, ans, err := r.Read()
			if err != nil {
				t.Fatal(err)
			}
			if got == id {
				return ans
			}
		}
	}
	forged := &hubsync.Totals{Day: day, Rev: 99, PayCount: 41, PayAmount: 40 * 125, CertifyCount: 1}
	if err := hubsync.SignTotals(servertest.TerminalKey(t), term1, forged); err != nil {
		t.Fatal(err)
	}
	if e, ok := ask(1, forged).(*hubsync.Error); !ok || e.Code != hubsync.CodeBadRequest {
		t.Fatalf("forged totals answered %#v", e)
	}
	old := &hubsync.Totals{Day: day, Rev: 1, PayCount: 1, PayAmount: 125}
	if err := hubsync.SignTotals(a.key, term1, old); err != nil {
		t.Fatal(err)
	}
	if res, ok := ask(2, old).(*hubsync.TotalsResult); !ok || res.Status != hubsync.TotalsStale {
		t.Fatalf("an older revision answered %#v", res)
	}
	got, err := st.Totals(ctx, day)
	if err != nil || len(got) != 1 || got[0].PayCount != 40 || got[0].LoadCount != 1 || got[0].LoadAmount != 999 {
		t.Fatalf("stored totals %+v, %v; want the agent's last submission kept", got, err)
	}
	if !hubsync.VerifyTotals(a.key.PublicKey(), term1, &hubsync.Totals{Day: day, Rev: revOf(t, got[0].Signed),
		PayCount: got[0].PayCount, PayAmount: got[0].PayAmount, LoadCount: got[0].LoadCount,
		LoadAmount: got[0].LoadAmount, CertifyCount: got[0].CertifyCount, Signature: got[0].Signature}) {
		t.Fatal("the stored evidence does not verify")
	}
}

func revOf(t *testing.T, signed []byte) uint64 {
	t.Helper()
	rev, ok := hubsync.TotalsRev(signed)
	if !ok {
		t.Fatalf("stored signed bytes are not totals bytes")
	}
	return rev
}
