package e2e

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/onecard-hub/onecard/hub/client"
	"github.com/onecard-hub/onecard/hub/server"
	"github.com/onecard-hub/onecard/hub/server/servertest"
	hubsync "github.com/onecard-hub/onecard/hub/sync"
	"github.com/onecard-hub/onecard/terminal/journal"
	"github.com/onecard-hub/onecard/terminal/journal/journaltest"
	"github.com/onecard-hub/onecard/terminal/record"
	webadmin "github.com/onecard-hub/onecard/web/admin"
)

// adminState is window.onecardAdmin.state().
type adminState struct {
	Loaded        bool   `json:"loaded"`
	Error         string `json:"error"`
	Day           string `json:"day"`
	Terminals     int    `json:"terminals"`
	Discrepancies int    `json:"discrepancies"`
	Bars          int    `json:"bars"`
	Total         int    `json:"total"`
}

// TestAdminPage runs a hub (bbolt) with its admin page, uploads records
// of two terminals through the real client (pays through the day, a load,
// certifications, and a card counter gap), and checks in Chromium that
// the page shows the terminals, the day's totals, the discrepancy and an
// SVG chart with bars.
func TestAdminPage(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	keys := servertest.Keys(t)
	st := servertest.OpenStore(t, "", false)
	led, adapter := servertest.Books(t, st, servertest.Cards(1, 8)...)
	servertest.Grant(t, led, servertest.Card(5), 20_000)
	srv, err := server.New(server.Options{HubID: servertest.HubID, Store: st, Ledger: adapter, Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	page, err := server.AdminPage(server.AdminPageOptions{Store: st, Ledger: led, Server: srv})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(hubsync.Path, srv)
	mux.Handle(webadmin.Prefix, page)
	hs := httptest.NewServer(mux)
	t.Cleanup(func() {
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer scancel()
		srv.Close(sctx)
		hs.CloseClientConnections()
		hs.Close()
	})
	wsURL := "ws://" + hs.Listener.Addr().String() + hubsync.Path

	terms := []string{"370100000011", "370100000012"}
	clients := map[string]*client.Client{}
	next := map[int]uint16{} // each card's purchase counter
	for ti, term := range terms {
		key := servertest.TerminalKey(t)
		servertest.Register(t, st, term, key.PublicKey())
		j := journaltest.MustOpenPath(t, filepath.Join(t.TempDir(), "journal.db"), nil)
		// Pays spread over the day's hours on cards 1..4 (this terminal's
		// half of the counters), one certification per terminal.
		for i := 0; i < 9; i++ {
			card := 1 + (i+ti)%4
			next[card]++
			if ti == 1 && i == 8 {
				next[card] += 2 // a card counter gap: two records the hub never saw
			}
			counter := next[card]
			r := servertest.Record(record.KindPay, term, servertest.Card(card), counter, uint32(100*(i+1)))
			r.CardTime = fmt.Sprintf("%02d%02d00", 8+i, 10*ti)
			servertest.Journal(t, j, keys, r)
		}
		c := servertest.Record(record.KindCertify, term, servertest.Card(6+ti), 0, 0)
		c.CardTime = "103000"
		servertest.Journal(t, j, keys, c)
		if ti == 0 {
			l := servertest.Record(record.KindLoad, term, servertest.Card(5), 1, 5_000)
			l.CardTime = "113000"
			servertest.Journal(t, j, keys, l)
		}
		cl, err := client.New(client.Options{URL: wsURL, HubID: servertest.HubID, TerminalID: term, Key: key, Journal: j,
			MinBackoff: 10 * time.Millisecond, MaxBackoff: 200 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cl.Close() })
		if err := cl.Sync(ctx); err != nil {
			t.Fatalf("sync %s: %v", term, err)
		}
		if js, _ := j.Stats(); js.Counts[journal.Cleared] != js.Records {
			t.Fatalf("terminal %s: journal %v", term, js.Counts)
		}
		clients[term] = cl
	}
	// Keep terminal 1 connected (the page shows it online).
	go clients[terms[0]].Run(ctx)
	deadline := time.Now().Add(10 * time.Second)
	for srv.Stats().Sessions < 1 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}

	b := startBrowser(t)
	p := b.open(hs.URL + webadmin.Prefix + "?day=" + servertest.At.Format("20060102"))
	var st0 adminState
	for end := time.Now().Add(actionTimeout); ; {
		st0 = evalJS[adminState](p, `window.onecardAdmin ? window.onecardAdmin.state() : {}`)
		if st0.Loaded {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("admin page did not load: %+v", st0)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if st0.Error != "" {
		t.Fatalf("admin page error: %s", st0.Error)
	}
	if st0.Terminals != 2 || st0.Total != 21 || st0.Bars < 10 {
		t.Errorf("state %+v: want 2 terminals, 21 records, at least 10 bars", st0)
	}
	terminals := p.text("#terminals tbody")
	for _, want := range append(terms, "active", "online", "offline") {
		if !strings.Contains(terminals, want) {
			t.Errorf("terminals table lacks %q:\n%s", want, terminals)
		}
	}
	// 18 pays: terminal 1 100..900 fen, terminal 2 the same → 9,000 fen.
	merchants := p.text("#merchants tbody")
	if !strings.Contains(merchants, servertest.Programme) || !strings.Contains(merchants, "18") || !strings.Contains(merchants, "90.00") {
		t.Errorf("merchants table:\n%s", merchants)
	}
	if progs := p.text("#programmes tbody"); !strings.Contains(progs, servertest.Programme) || !strings.Contains(progs, "50.00") {
		t.Errorf("programmes table:\n%s", progs)
	}
	disc := p.text("#discrepancies tbody")
	if n := strings.Count(disc, "missing-record"); n != 1 || st0.Discrepancies != 1 {
		t.Errorf("%d discrepancies, %d missing-record; want 1 (the gap; both terminals sent matching totals)", st0.Discrepancies, n)
	}
	if rec := p.text("#reconciliation tbody"); strings.Count(rec, "match") != 2 || strings.Contains(rec, "MISMATCH") {
		t.Errorf("reconciliation table (want both terminals' signed totals to match):\n%s", rec)
	}
	if !strings.Contains(disc, "missing-record") || !strings.Contains(disc, "411600") || strings.Contains(disc, servertest.Card(4).String()) {
		t.Errorf("discrepancies table (want a missing record, card masked):\n%s", disc)
	}
	type chartInfo struct {
		Rects  int     `json:"rects"`
		Hours  int     `json:"hours"`
		Height float64 `json:"height"`
	}
	bars := evalJS[chartInfo](p, `(function(){
		var r = document.querySelectorAll('#chart svg rect.bar'), hours = {}, h = 0;
		r.forEach(function(e){ hours[e.getAttribute('data-hour')] = 1; h = Math.max(h, e.getBoundingClientRect().height); });
		return {rects: r.length, hours: Object.keys(hours).length, height: h};
	})()`)
	// Pays at 08..16 h, the certifications at 10 h, the load at 11 h.
	if bars.Rects != st0.Bars || bars.Hours != 9 || bars.Height < 20 {
		t.Errorf("chart: %+v, want bars in 9 hours, visibly tall", bars)
	}
	p.screenshot("admin.png")
}
