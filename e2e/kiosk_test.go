//go:build linux

package e2e

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/onecard-hub/onecard/agent"
	"github.com/onecard-hub/onecard/internal/pcsctest"
	"github.com/onecard-hub/onecard/internal/simcard"
	"github.com/onecard-hub/onecard/reader/virtual"
	"github.com/onecard-hub/onecard/terminal"
	"github.com/onecard-hub/onecard/terminal/journal"
	"github.com/onecard-hub/onecard/terminal/record"
	"github.com/onecard-hub/onecard/web/kiosk"
)

// The test card (testdata/cards/ssc-gen3.yaml).
const (
	cardPersonID = "650102199208154026"
	cardNumber   = "B98765432"
	cardPIN      = "123456"
	cardBalance  = 120000 // fen
)

// copyCard copies a test card file into dir (the simulator keeps its
// state beside the file) and returns the copy's path.
func copyCard(t *testing.T, dir, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", "cards", name))
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// freePort returns a loopback port nobody listens on now.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// runningAgent is the real agent, in process.
type runningAgent struct {
	a      *agent.Agent
	cfg    *agent.Config
	log    *syncBuffer
	cancel context.CancelFunc
	done   chan error
}

// startAgent starts the agent from a YAML configuration; t.Cleanup stops
// it (stop may be called earlier).
func startAgent(t *testing.T, dir, yml string, pad terminal.PINPad) *runningAgent {
	t.Helper()
	cfg, err := agent.ParseConfig([]byte(yml), dir)
	if err != nil {
		t.Fatal(err)
	}
	log := &syncBuffer{}
	a, err := agent.New(agent.Options{Config: cfg, Version: "e2e", LogOutput: log, PINPad: pad})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &runningAgent{a: a, cfg: cfg, log: log, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- a.Run(ctx) }()
	t.Cleanup(func() {
		r.stop(t)
		if t.Failed() {
			t.Logf("agent log:\n%s", tail(log.String(), 16<<10))
		}
	})
	return r
}

func (r *runningAgent) stop(t *testing.T) {
	t.Helper()
	if r.cancel == nil {
		return
	}
	r.cancel()
	r.cancel = nil
	select {
	case err := <-r.done:
		if err != nil {
			t.Errorf("agent Run: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Error("agent did not stop in 30 s")
	}
}

// journalCounts returns the journal's record counts by state, as the
// agent reports them (journalStatus / status).
func (r *runningAgent) journalCounts(t *testing.T) map[string]int {
	t.Helper()
	b, err := json.Marshal(r.a.Status()["journal"])
	if err != nil {
		t.Fatal(err)
	}
	var j struct {
		Records map[string]int `json:"records"`
	}
	if err := json.Unmarshal(b, &j); err != nil {
		t.Fatal(err)
	}
	return j.Records
}

// delayer is the simulated card's slow-card switch.
type delayer interface{ SetDelay(time.Duration) }

// TestKiosk drives the kiosk page in headless Chromium against the real
// agent, with the virtual card and PSAM behind pcscd: identity, a payment
// with a wrong and then the right PIN on the on-screen keypad, the
// receipt, the language toggle, the card pulled mid-operation, the page
// served from an origin the agent does not allow (refused before any
// APDU, then paired), and the journal's card-done record with the TAC the
// page showed.
func TestKiosk(t *testing.T) {
	br := startBrowser(t)
	pc := pcsctest.Start(t, pcsctest.Options{})
	dir := t.TempDir()
	card, err := simcard.LoadFile(copyCard(t, dir, "ssc-gen3.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	psam, err := simcard.LoadFile(copyCard(t, dir, "psam.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	bctx, bcancel := context.WithCancel(context.Background())
	t.Cleanup(bcancel)
	var bridges []*virtual.VPCD
	for i, c := range []virtual.Card{card, psam} {
		b := virtual.NewVPCD(virtual.VPCDOptions{Addr: pc.Slots[i].Addr, Card: c})
		bridges = append(bridges, b)
		done := make(chan struct{})
		go func() { defer close(done); _ = b.Run(bctx) }()
		t.Cleanup(func() { bcancel(); <-done })
	}
	cardBridge, psamBridge := bridges[0], bridges[1]
	for _, s := range pc.Slots[:2] {
		wctx, wcancel := context.WithTimeout(bctx, 10*time.Second)
		_, err := pcsctest.WaitCard(wctx, s.Name, true)
		wcancel()
		if err != nil {
			t.Fatal(err)
		}
	}

	port := freePort(t)
	origin := fmt.Sprintf("http://127.0.0.1:%d", port)
	ag := startAgent(t, dir, fmt.Sprintf(`
listen: 127.0.0.1:%d
admin: "off"
state_dir: %q
keys: {test: demo}
lanes:
  - {name: kiosk, card: %q, psam: %q}
kiosk:
  origins: [%s]
`, port, dir, pc.Slots[0].Name, pc.Slots[1].Name, origin), nil)

	// 1. The page, served by the agent, reads the inserted card.
	pg := br.open(origin + kiosk.Prefix + "?lang=zh")
	pg.waitScreen("services")
	if name := pg.text("#id-name"); !strings.HasPrefix(name, "阿") || !strings.Contains(name, "*") {
		t.Errorf("holder name shown %q, want masked", name)
	}
	if id := pg.text("#id-person"); id != "650*************26" {
		t.Errorf("person ID shown %q, want 650*************26", id)
	}
	body := evalJS[string](pg, `document.body.innerText`)
	for _, secret := range []string{cardPersonID, cardNumber, "买买提"} {
		if strings.Contains(body, secret) {
			t.Errorf("page shows unmasked personal data %q", secret)
		}
	}
	pg.checkLayout("services")
	pg.screenshot("kiosk.png")

	// 2. Pay 12.34: amount on the keypad, a wrong PIN, then the right one.
	pg.click(`button[data-service="pay"]`)
	pg.waitScreen("amount")
	pg.keys("#amount-keypad", "1234")
	if got := pg.text("#amount-value"); got != "12.34" {
		t.Errorf("amount shows %q, want 12.34", got)
	}
	pg.checkLayout("amount")
	pg.click("#amount-ok")
	pg.waitScreen("pin")
	pg.keys("#pin-keypad", "111111")
	pg.checkLayout("pin")
	pg.click("#pin-ok")
	pg.run("wait for the PIN error", waitVisible("#pin-error"))
	if msg := pg.text("#pin-error"); !strings.Contains(msg, "密码错误") || !strings.Contains(msg, "2") {
		t.Errorf("wrong PIN message %q, want 密码错误 … 2 次", msg)
	}
	pg.keys("#pin-keypad", cardPIN)
	pg.click("#pin-ok")
	pg.waitScreen("receipt")
	tac := pg.text(`#receipt dd[data-field="tac"]`)
	if len(tac) != 8 {
		t.Errorf("receipt TAC %q, want 8 hex digits", tac)
	}
	if got := pg.text(`#receipt dd[data-field="amount"]`); got != "¥ 12.34" {
		t.Errorf("receipt amount %q", got)
	}
	if got, want := pg.text(`#receipt dd[data-field="balance"]`), "¥ "+yuan(cardBalance-1234); got != want {
		t.Errorf("receipt balance %q, want %q", got, want)
	}
	receipt := pg.text("#receipt")
	for _, secret := range []string{cardPersonID, cardNumber, "买买提"} {
		if strings.Contains(receipt, secret) {
			t.Errorf("receipt shows unmasked personal data %q", secret)
		}
	}
	seq := pg.text(`#receipt dd[data-field="seq"]`)
	pg.checkLayout("receipt")
	if c := ag.journalCounts(t); c["card-done"] != 1 {
		t.Errorf("journal counts %v, want 1 card-done", c)
	}

	// 3. The language toggle.
	pg.click("#lang")
	if got := pg.text("#receipt-title"); got != "Payment complete" {
		t.Errorf("English receipt title %q", got)
	}
	if lang := evalJS[string](pg, `document.documentElement.lang`); lang != "en" {
		t.Errorf("html lang %q after the toggle, want en", lang)
	}
	pg.checkLayout("receipt (English)")
	pg.click("#lang")
	if got := pg.text("#receipt-title"); got != "缴费成功" {
		t.Errorf("Chinese receipt title %q", got)
	}

	// 4. The card is pulled while a second payment reads it (slow card).
	pg.click(`[data-action="done"]`)
	pg.waitScreen("services")
	pg.click(`button[data-service="pay"]`)
	pg.waitScreen("amount")
	pg.click(`#presets button[data-fen="1000"]`)
	pg.click("#amount-ok")
	pg.waitScreen("pin")
	pg.keys("#pin-keypad", cardPIN)
	card.(delayer).SetDelay(250 * time.Millisecond)
	before := cardBridge.Status().APDUs
	pg.click("#pin-ok")
	deadline := time.Now().Add(10 * time.Second)
	for cardBridge.Status().APDUs == before {
		if time.Now().After(deadline) {
			t.Fatalf("the payment never reached the card (page %+v)", pg.stateNow())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if st := pg.stateNow(); st.Screen != "busy" {
		t.Errorf("page shows %q while the card is read, want busy", st.Screen)
	}
	cardBridge.Remove()
	st := pg.waitScreen("error")
	if st.Error != "card_removed" && st.Error != "outcome_unknown" {
		t.Errorf("error after pulling the card: %q, want card_removed", st.Error)
	}
	if msg := pg.text("#error-title") + pg.text("#error-message"); !strings.Contains(msg, "拔出") {
		t.Errorf("page says %q, want that the card was removed (拔出)", msg)
	}
	pg.checkLayout("error")
	card.(delayer).SetDelay(0)
	// The agent reports the removal (the page asks for the card), then
	// the insertion: the page reads the card again by itself.
	pg.wait("the removal reported", func(s kioskState) bool { return s.Screen == "error" && !s.CardPresent })
	cardBridge.Insert(nil)
	pg.waitScreen("services") // re-inserted: read again
	pg.close()

	// 5. The same page from an origin the agent does not allow: pairing
	// screen; a read is refused before any APDU reaches card or PSAM.
	other := httptest.NewServer(kiosk.Handler())
	defer other.Close()
	if !strings.HasPrefix(other.URL, "http://127.0.0.1:") {
		t.Fatalf("second server at %s, want loopback", other.URL)
	}
	apdusBefore := cardBridge.Status().APDUs + psamBridge.Status().APDUs
	foreign := br.open(other.URL + kiosk.Prefix + "?lang=zh&agent=127.0.0.1:" + strconv.Itoa(port))
	fs := foreign.waitScreen("pair")
	if fs.Authorised {
		t.Fatal("a page from a non-allowed origin is authorised")
	}
	if !strings.Contains(foreign.text("#pair-origin"), other.URL) {
		t.Errorf("pairing screen does not name the origin: %q", foreign.text("#pair-origin"))
	}
	foreign.checkLayout("pair")
	refused := evalJS[string](foreign, fmt.Sprintf(`new Promise(function (resolve) {
		var oc = new OneCard({url: %s, tokenStore: {get: function () { return null; }, set: function () {}}});
		oc.connect().then(function () { return oc.readIdentity({}); })
		  .then(function (r) { resolve('read: ' + JSON.stringify(r)); }, function (e) { resolve(e.code); });
	})`, jsonString(fmt.Sprintf("ws://127.0.0.1:%d/v1/ws", port))))
	if refused != "unauthorised" {
		t.Errorf("readIdentity from a non-allowed origin: %q, want unauthorised", refused)
	}
	time.Sleep(200 * time.Millisecond)
	if after := cardBridge.Status().APDUs + psamBridge.Status().APDUs; after != apdusBefore {
		t.Errorf("%d APDUs reached the card or PSAM for a non-allowed origin", after-apdusBefore)
	}
	// A wrong pairing code is refused; the operator's code pairs the page.
	foreign.keys("#pair-keypad", "000000")
	foreign.click("#pair-ok")
	foreign.run("wait for the pairing error", waitVisible("#pair-error"))
	if msg := foreign.text("#pair-error"); !strings.Contains(msg, "配对码") {
		t.Errorf("pairing error %q", msg)
	}
	code, _, err := ag.a.NewPairingCode()
	if err != nil {
		t.Fatal(err)
	}
	foreign.keys("#pair-keypad", code)
	foreign.click("#pair-ok")
	if st := foreign.waitScreen("services"); !st.Authorised {
		t.Errorf("paired page state %+v", st)
	}
	foreign.close()

	// 6. The journal (read-only, after the agent stopped) has the
	// payment as card-done with the TAC the page showed.
	ag.stop(t)
	j, err := journal.Open(ag.cfg.JournalPath(), &journal.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	entries, err := j.List(0, 100)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range entries {
		if e.State == journal.CardDone && e.Record.Kind == record.KindPay && e.Record.Amount == 1234 {
			found = true
			if got := strings.ToUpper(hex.EncodeToString(e.Record.TAC)); got != tac {
				t.Errorf("journal TAC %s, page showed %s", got, tac)
			}
			if strconv.FormatUint(e.Seq, 10) != seq {
				t.Errorf("journal sequence %d, page showed %s", e.Seq, seq)
			}
		}
	}
	if !found {
		t.Errorf("no card-done payment of 12.34 in the journal: %d entries", len(entries))
	}
}

// gatedPad is a PIN pad whose holder types when the test says so.
type gatedPad struct {
	release chan struct{}
	pad     *terminal.StaticPINPad
}

func (g *gatedPad) ReadPIN(ctx context.Context, p terminal.PINPurpose) (*terminal.PIN, error) {
	select {
	case <-g.release:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return g.pad.ReadPIN(ctx, p)
}

// TestKioskPINPad: with a PIN pad the page asks the holder to use it
// (the agent's enter_pin stage) instead of showing its keypad, and an
// amount above the balance ends with the insufficient-balance message.
// The card is in an in-process simulated reader.
func TestKioskPINPad(t *testing.T) {
	br := startBrowser(t)
	dir := t.TempDir()
	cardFile, psamFile := copyCard(t, dir, "ssc-gen3.yaml"), copyCard(t, dir, "psam.yaml")
	port := freePort(t)
	origin := fmt.Sprintf("http://127.0.0.1:%d", port)
	pad := &gatedPad{release: make(chan struct{}, 2), pad: terminal.NewStaticPINPad(cardPIN, cardPIN)}
	startAgent(t, dir, fmt.Sprintf(`
listen: 127.0.0.1:%d
admin: "off"
state_dir: %q
keys: {test: demo}
readers:
  pcsc: false
  sim: [{name: pp, card: %q, psam: %q}]
kiosk:
  origins: [%s]
`, port, dir, cardFile, psamFile, origin), pad)

	pg := br.open(origin + kiosk.Prefix + "?lang=en")
	pg.waitScreen("services")
	pg.click(`button[data-service="pay"]`)
	pg.waitScreen("amount")
	pg.click(`#presets button[data-fen="2000"]`)
	pg.click("#amount-ok")
	pg.wait("enter_pin stage", func(s kioskState) bool { return s.Screen == "busy" && s.Stage == "enter_pin" })
	if hint := pg.text("#pinpad-hint"); !strings.Contains(hint, "PIN pad") {
		t.Errorf("PIN pad hint %q", hint)
	}
	if pg.visible("#pin-keypad") {
		t.Error("the on-screen PIN keypad is shown although the agent has a PIN pad")
	}
	pg.checkLayout("busy (PIN pad)")
	pad.release <- struct{}{}
	pg.waitScreen("receipt")
	if got := pg.text(`#receipt dd[data-field="amount"]`); got != "¥ 20.00" {
		t.Errorf("receipt amount %q", got)
	}

	// More than the balance: refused by the card, nothing charged.
	pg.click(`[data-action="done"]`)
	pg.waitScreen("services")
	pg.click(`button[data-service="pay"]`)
	pg.waitScreen("amount")
	pg.keys("#amount-keypad", "500000") // 5000.00
	pad.release <- struct{}{}
	pg.click("#amount-ok")
	st := pg.waitScreen("error")
	if st.Error != "insufficient_balance" {
		t.Errorf("error %q, want insufficient_balance", st.Error)
	}
	if msg := pg.text("#error-message"); !strings.Contains(msg, "Insufficient balance") {
		t.Errorf("error message %q", msg)
	}
	if pg.visible("#error-retry") {
		t.Error("retry offered for insufficient balance (not retriable)")
	}
}

func yuan(fen int) string { return fmt.Sprintf("%d.%02d", fen/100, fen%100) }
