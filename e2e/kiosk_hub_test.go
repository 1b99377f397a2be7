package e2e

import (
	"context"
	"crypto/rand"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/onecard-hub/onecard/agent"
	"github.com/onecard-hub/onecard/agent/hublink"
	"github.com/onecard-hub/onecard/hub/client"
	"github.com/onecard-hub/onecard/hub/ledger"
	"github.com/onecard-hub/onecard/hub/server"
	"github.com/onecard-hub/onecard/hub/store"
	"github.com/onecard-hub/onecard/hub/store/boltstore"
	hubsync "github.com/onecard-hub/onecard/hub/sync"
	"github.com/onecard-hub/onecard/sm"
	"github.com/onecard-hub/onecard/terminal/record"
	"github.com/onecard-hub/onecard/web/admin"
	"github.com/onecard-hub/onecard/web/kiosk"
)

// The hub side of the story (as in 'onecard demo').
const (
	khHubID     = "e2e-hub"
	khTerminal  = "330100000001" // the test PSAM's terminal number
	khCardID    = "330100D15600000593E4B7026C1AF5D8"
	khProgramme = "subsidy-2026"
	khProgFund  = "subsidy"
	khGrant     = 20000 // fen
)

// TestKioskHub: the kiosk page's three services against an agent enrolled
// with a real hub: a payment (the syncing stage shows), a load of a
// subsidy the hub granted (authorised online by the hub) and a
// certification; the hub posts all three, and its admin page shows them.
func TestKioskHub(t *testing.T) {
	br := startBrowser(t)
	dir := t.TempDir()
	ctx := context.Background()

	// The hub: store, books, sync endpoint and admin page.
	keys, err := sm.TestKeySet("demo")
	if err != nil {
		t.Fatal(err)
	}
	st, err := boltstore.Open(boltstore.Options{Path: filepath.Join(dir, "hub.db"), NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	led, err := ledger.New(ledger.Options{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	card, err := record.ParseCardID(khCardID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := led.OpeningBalance(ctx, ledger.Request{Ref: "opening", Card: card, Fund: "medical", Amount: cardBalance}); err != nil {
		t.Fatal(err)
	}
	if err := led.CreateProgramme(ctx, store.Programme{ID: khProgramme, Name: "subsidy", Fund: khProgFund}); err != nil {
		t.Fatal(err)
	}
	if _, err := led.Fund(ctx, ledger.Request{Ref: "fund", Programme: khProgramme, Amount: 1_000_000}); err != nil {
		t.Fatal(err)
	}
	if _, err := led.Grant(ctx, ledger.Request{Ref: "grant", Programme: khProgramme, Card: card, Amount: khGrant}); err != nil {
		t.Fatal(err)
	}
	hub, err := server.New(server.Options{HubID: khHubID, Store: st, Ledger: server.NewLedger(led), Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	page, err := server.AdminPage(server.AdminPageOptions{Store: st, Ledger: led, Server: hub})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(hubsync.Path, hub)
	mux.Handle(admin.Prefix, page)
	hs := httptest.NewServer(mux)
	t.Cleanup(func() {
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = hub.Close(cctx)
		hs.Close()
	})
	hubURL := "ws" + strings.TrimPrefix(hs.URL, "http") + hubsync.Path

	// Enrolment: token, key, approval.
	key, err := sm.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	keyPath := filepath.Join(dir, "terminal.key")
	if err := sm.SavePrivateKeyPEM(keyPath, key); err != nil {
		t.Fatal(err)
	}
	token, err := server.Invite(ctx, st, khTerminal, "e2e kiosk", false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.Enroll(ctx, client.EnrollOptions{URL: hubURL, HubID: khHubID, TerminalID: khTerminal, Token: token, Key: key}); err != nil {
		t.Fatal(err)
	}
	if _, err := server.Approve(ctx, st, khTerminal); err != nil {
		t.Fatal(err)
	}

	// The agent: no issuer keys of its own, the PSAM and the hub.
	port := freePort(t)
	origin := fmt.Sprintf("http://127.0.0.1:%d", port)
	cfg, err := agent.ParseConfig([]byte(fmt.Sprintf(`
listen: 127.0.0.1:%d
admin: "off"
state_dir: %q
terminal: {id: %q, key: %q}
hub: {url: %q, hub_id: %q}
readers:
  pcsc: false
  sim: [{name: hk, card: %q, psam: %q}]
kiosk:
  origins: [%s]
`, port, dir, khTerminal, keyPath, hubURL, khHubID, copyCard(t, dir, "ssc-gen3.yaml"), copyCard(t, dir, "psam.yaml"), origin)), dir)
	if err != nil {
		t.Fatal(err)
	}
	log := &syncBuffer{}
	a, err := agent.New(agent.Options{Config: cfg, Hub: hublink.New, Version: "e2e", LogOutput: log})
	if err != nil {
		t.Fatal(err)
	}
	actx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(actx) }()
	t.Cleanup(func() {
		stop()
		<-done
		if t.Failed() {
			t.Logf("agent log:\n%s", tail(log.String(), 16<<10))
		}
	})

	pg := br.open(origin + kiosk.Prefix + "?lang=zh&programme=" + khProgramme + "&programmeFund=" + khProgFund)
	pg.waitScreen("services")

	// Pay: the record goes to the hub (syncing).
	pg.click(`button[data-service="pay"]`)
	pg.waitScreen("amount")
	pg.keys("#amount-keypad", "1234")
	pg.click("#amount-ok")
	pg.waitScreen("pin")
	pg.keys("#pin-keypad", cardPIN)
	pg.click("#pin-ok")
	if st := pg.waitScreen("receipt"); st.Stage != "syncing" {
		t.Errorf("last progress stage of the payment %q, want syncing", st.Stage)
	}

	// Load the granted subsidy: authorised online by the hub.
	pg.click(`[data-action="done"]`)
	pg.waitScreen("services")
	pg.click(`button[data-service="load"]`)
	pg.waitScreen("amount")
	pg.checkLayout("amount (load)")
	pg.click(fmt.Sprintf(`#presets button[data-fen="%d"]`, khGrant))
	pg.click("#amount-ok")
	pg.waitScreen("receipt")
	if got := pg.text("#receipt-title"); got != "领取成功" {
		t.Errorf("load receipt title %q", got)
	}
	if got, want := pg.text(`#receipt dd[data-field="balance"]`), "¥ "+yuan(cardBalance-1234+khGrant); got != want {
		t.Errorf("balance after the load %q, want %q", got, want)
	}
	if got := pg.text(`#receipt dd[data-field="merchant"]`); got != khProgramme {
		t.Errorf("load receipt programme %q", got)
	}

	// A second load: the grant is used up, the hub refuses.
	pg.click(`[data-action="done"]`)
	pg.waitScreen("services")
	pg.click(`button[data-service="load"]`)
	pg.waitScreen("amount")
	pg.click(`#presets button[data-fen="10000"]`)
	pg.click("#amount-ok")
	if st := pg.waitScreen("error"); st.Error != "not_authorised" {
		t.Errorf("load beyond the grant: error %q, want not_authorised", st.Error)
	}
	if msg := pg.text("#error-message"); !strings.Contains(msg, "未授权") {
		t.Errorf("refused load message %q", msg)
	}

	// Certify eligibility.
	pg.click("#error-back")
	pg.waitScreen("services")
	pg.click(`button[data-service="certify"]`)
	pg.waitScreen("pin")
	pg.keys("#pin-keypad", cardPIN)
	pg.click("#pin-ok")
	pg.waitScreen("receipt")
	if got := pg.text(`#receipt dd[data-field="signed"]`); got != "已签名 (SM2)" {
		t.Errorf("certification receipt: card signature %q", got)
	}
	pg.close()

	// The hub has posted the three records.
	deadline := time.Now().Add(20 * time.Second)
	for hub.Stats().Accepted < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("hub stats %+v: want 3 records accepted", hub.Stats())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if bal, err := led.Balance(ctx, card, khProgFund); err != nil || bal != khGrant {
		t.Errorf("hub balance of the card in %s: %d (%v), want %d", khProgFund, bal, err, khGrant)
	}

	// The hub's admin page shows them.
	ap := br.open(hs.URL + admin.Prefix)
	deadline = time.Now().Add(actionTimeout)
	for {
		s := evalJS[adminState](ap, `window.onecardAdmin ? window.onecardAdmin.state() : {}`)
		if s.Loaded && s.Terminals == 1 && s.Total == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("admin page state %+v, want 1 terminal and 3 transactions", s)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if m := ap.text("#merchants"); !strings.Contains(m, "pharmacy-01") || !strings.Contains(m, "12.34") {
		t.Errorf("admin page merchants: %q", m)
	}
	if p := ap.text("#programmes"); !strings.Contains(p, khProgramme) || !strings.Contains(p, "200.00") {
		t.Errorf("admin page programmes: %q", p)
	}
}
