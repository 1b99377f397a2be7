package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/gorilla/websocket"

	"github.com/onecard-hub/onecard/agent"
	"github.com/onecard-hub/onecard/agent/hublink"
	"github.com/onecard-hub/onecard/hub/client"
	"github.com/onecard-hub/onecard/hub/ledger"
	"github.com/onecard-hub/onecard/hub/server"
	"github.com/onecard-hub/onecard/hub/store"
	"github.com/onecard-hub/onecard/hub/store/boltstore"
	hubsync "github.com/onecard-hub/onecard/hub/sync"
	"github.com/onecard-hub/onecard/internal/simcard"
	"github.com/onecard-hub/onecard/sm"
	"github.com/onecard-hub/onecard/terminal/record"
	"github.com/onecard-hub/onecard/web"
	webadmin "github.com/onecard-hub/onecard/web/admin"
)

const demoUsage = `[--once] [--listen 127.0.0.1:PORT] [--readers auto|pcsc|sim] [--dir DIR]

Runs onecard end to end on this machine, with TEST keys and a simulated
card (no real card, key or money is involved):

  - a hub: bbolt store, the TEST key set "demo", plain ws on loopback;
  - a virtual third-generation social-security card and a PSAM, behind
    pcscd through vsmartcard's vpcd driver when pcscd is installed (the
    demo starts pcscd when none runs and stops it at the end), in process
    otherwise (--readers sim);
  - a kiosk agent, enrolled with the hub (token, key, approval);

then the story: the card's identity, a pharmacy payment, a subsidy load
(programme created, funded and granted on the hub; the load authorised
online by the hub), an eligibility certification, the sync to the hub and
the hub's clearing report. Personal data is printed masked. Afterwards the
kiosk page (served by the agent) and the hub's admin page stay up until
Ctrl-C; --once exits after the report.`

// Demo parameters: the business side of the story.
const (
	demoHubID       = "onecard-demo"
	demoTerminal    = "330100000001" // the demo PSAM's terminal number
	demoPIN         = "123456"       // the demo card's PIN (a test card)
	demoMerchant    = "pharmacy-01"
	demoPayFund     = "medical"
	demoPayAmount   = 1234 // fen
	demoProgramme   = "subsidy-2026"
	demoProgFund    = "subsidy"
	demoFunding     = 1_000_000 // fen funded into the programme
	demoGrant       = 20_000    // fen granted to the card
	demoCertify     = "pension-2026"
	demoCertifyFund = "pension"
	demoKeySet      = "demo"
	demoListen      = "127.0.0.1:17300"
)

// The demo's card files (as testdata/cards, written into the demo's
// directory so the binary needs no checkout). Keys come from the TEST key
// set "demo"; the card keeps its state in FILE.state.json beside it.
const (
	demoCardYAML = `# Demo third-generation social-security card (SM4 + SM2, T=1). Fake holder.
kind: ssc
generation: 3
protocol: T1
card_id: "330100D15600000593E4B7026C1AF5D8"
card_type: "3"
spec_version: "3.00"
init_org: "330100000000"
issue_date: "20230601"
expiry_date: "20330531"
card_number: "B98765432"
holder:
  ssn: "650102199208154026"
  name: "阿依古丽·买买提艾力·阿不都热依木江"
  sex: "2"
  nation: "05"
  birthplace: "650102"
  birth_date: "19920815"
pin: "123456"
pin_tries: 3
auth_tries: 3
purse:
  balance: 120000
keys:
  test: demo
`
	demoPSAMYAML = `# Demo PSAM: the TEST key set "demo" and the terminal number.
kind: psam
protocol: T0
terminal: "330100000001"
terminal_seq: 1
keys:
  test: demo
`
	demoCardID  = "330100D15600000593E4B7026C1AF5D8"
	demoBalance = 120000 // fen on the demo card at the start
)

func init() {
	register(command{
		name:    "demo",
		summary: "run hub, agent and a virtual card end to end (pay, load, certify, sync, report)",
		run:     runDemo,
	})
}

// demo is one run of the story.
type demo struct {
	out  io.Writer
	dir  string
	step int

	keys     *sm.KeySet
	store    *boltstore.Store
	led      *ledger.Ledger
	hub      *server.Server
	hubLn    net.Listener
	hubWS    string // ws://127.0.0.1:N/sync
	adminURL string

	pcsc      demoReaders // nil: in-process readers
	readerMsg string

	agent     *agent.Agent
	agentDone chan error
	stopAgent context.CancelFunc
	kiosk     string // 127.0.0.1:PORT

	closers []func() // run in reverse order by close
}

// demoReaders is the demo's cards behind pcscd (cmd_demo_pcsc_*.go).
type demoReaders interface {
	CardReader() string // PC/SC name of the card's reader
	PSAMReader() string // PC/SC name of the PSAM's reader
	Describe() string   // how pcscd was found or started
	Close()             // stop the bridges (and the pcscd the demo started)
}

// demoSteps is the number of numbered steps printed.
const demoSteps = 10

func (d *demo) printf(format string, a ...any) { fmt.Fprintf(d.out, format, a...) }

// stepf prints a numbered step; more lines follow with d.more.
func (d *demo) stepf(name, format string, a ...any) {
	d.step++
	d.printf("[%2d/%d] %-10s %s\n", d.step, demoSteps, name, fmt.Sprintf(format, a...))
}

func (d *demo) more(format string, a ...any) {
	d.printf("%19s%s\n", "", fmt.Sprintf(format, a...))
}

func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("demo", demoUsage, stderr)
	once := fs.Bool("once", false, "exit after the story instead of serving the pages until Ctrl-C")
	listen := fs.String("listen", demoListen, "the agent's kiosk API and page `ADDR` (loopback; port 0 = any free port)")
	readers := fs.String("readers", "auto", "where the virtual cards go: auto (pcscd if installed), pcsc or sim (in process)")
	dirFlag := fs.String("dir", "", "keep the demo's files (stores, journal, card state, logs) in `DIR` (default: a temporary directory, removed at the end)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usagef("%v", err)
	}
	if fs.NArg() != 0 {
		return usagef("unexpected arguments %q", fs.Args())
	}
	switch *readers {
	case "auto", "pcsc", "sim":
	default:
		return usagef("--readers %q: want auto, pcsc or sim", *readers)
	}
	listenSet := false
	fs.Visit(func(f *flag.Flag) { listenSet = listenSet || f.Name == "listen" })
	kioskAddr, err := demoKioskAddr(*listen, listenSet)
	if err != nil {
		return err
	}

	d := &demo{out: stdout, kiosk: kioskAddr}
	if *dirFlag != "" {
		if err := os.MkdirAll(*dirFlag, 0o700); err != nil {
			return err
		}
		if ents, err := os.ReadDir(*dirFlag); err != nil {
			return err
		} else if len(ents) > 0 {
			return usagef("--dir %s is not empty: the demo starts from nothing, give a new directory", *dirFlag)
		}
		d.dir = *dirFlag
	} else {
		if d.dir, err = os.MkdirTemp("", "onecard-demo-*"); err != nil {
			return err
		}
		defer os.RemoveAll(d.dir)
	}
	defer d.close()

	d.printf("onecard demo: a clearing hub, a kiosk agent and a virtual social-security card on this machine.\n")
	d.printf("Everything uses the TEST key set %q and a simulated card: no real card, key or money is involved.\n\n", demoKeySet)
	if err := d.run(ctx, *readers); err != nil {
		if ctx.Err() != nil {
			return errors.New("interrupted")
		}
		return err
	}
	if *once {
		d.printf("\ndemo complete (--once): stopping.\n")
		return nil
	}
	d.printf("\nThe demo keeps running. Open in a browser on this machine:\n")
	d.printf("  kiosk page       http://%s%s\n", d.kiosk, web.KioskPath)
	if d.adminURL != "" {
		d.printf("  hub admin page   %s\n", d.adminURL)
	}
	d.printf("  agent log        %s\n", filepath.Join(d.dir, "agent.log"))
	d.printf("The virtual card stays inserted: the kiosk page reads it at once. Press Ctrl-C to stop.\n")
	<-ctx.Done()
	d.printf("\nstopping the demo…\n")
	return nil
}

// run sets everything up and runs the story.
func (d *demo) run(ctx context.Context, readers string) error {
	if err := d.startHub(); err != nil {
		return fmt.Errorf("demo hub: %w", err)
	}
	if err := d.startCards(ctx, readers); err != nil {
		return fmt.Errorf("demo cards: %w", err)
	}
	key, err := d.enrol(ctx)
	if err != nil {
		return fmt.Errorf("demo enrolment: %w", err)
	}
	if err := d.startAgent(ctx, key); err != nil {
		return fmt.Errorf("demo agent: %w", err)
	}
	if err := d.story(ctx); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	return nil
}

// demoKioskAddr checks the agent's address and picks a free port for
// port 0 or, when the default port is taken and --listen was not given,
// instead of the default.
func demoKioskAddr(addr string, explicit bool) (string, error) {
	if err := agent.CheckLoopback(addr); err != nil {
		return "", usagef("--listen: %v", err)
	}
	host, port, _ := net.SplitHostPort(addr)
	if port != "0" {
		ln, err := net.Listen("tcp", addr)
		if err == nil {
			ln.Close()
			return addr, nil
		}
		if explicit {
			return "", fmt.Errorf("--listen %s: %w", addr, err)
		}
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// startHub opens the store, sets up the ledger and serves the sync
// endpoint and the admin page on a loopback port.
func (d *demo) startHub() error {
	var err error
	if d.keys, err = sm.TestKeySet(demoKeySet); err != nil {
		return err
	}
	dbPath := filepath.Join(d.dir, "hub.db")
	if d.store, err = boltstore.Open(boltstore.Options{Path: dbPath}); err != nil {
		return err
	}
	if d.led, err = ledger.New(ledger.Options{Store: d.store}); err != nil {
		return err
	}
	logf, err := os.OpenFile(filepath.Join(d.dir, "hub.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(logf, nil))
	d.hub, err = server.New(server.Options{HubID: demoHubID, Store: d.store, Ledger: server.NewLedger(d.led), Keys: d.keys, Logger: logger})
	if err != nil {
		logf.Close()
		return err
	}
	if d.hubLn, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		logf.Close()
		return err
	}
	mux := http.NewServeMux()
	mux.Handle(hubsync.Path, d.hub)
	page, perr := server.AdminPage(server.AdminPageOptions{Store: d.store, Ledger: d.led, Server: d.hub})
	if perr == nil {
		mux.Handle(webadmin.Prefix, page)
		d.adminURL = "http://" + d.hubLn.Addr().String() + webadmin.Prefix
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn)}
	go func() { _ = srv.Serve(d.hubLn) }()
	d.hubWS = "ws://" + d.hubLn.Addr().String() + hubsync.Path
	hubClose := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = d.hub.Close(ctx)
		_ = srv.Shutdown(ctx)
		logf.Close()
	}
	d.closers = append(d.closers, hubClose)

	// The card's purse balance before the hub kept its books.
	card, _ := record.ParseCardID(demoCardID)
	if _, err := d.led.OpeningBalance(context.Background(), ledger.Request{Ref: "demo/opening/" + demoCardID, Card: card,
		Fund: demoPayFund, Amount: demoBalance}); err != nil {
		return err
	}
	d.stepf("hub", "%s (bbolt store %s, TEST key set %q)", d.hubWS, dbPath, demoKeySet)
	d.more("opening balance of card %s in fund %s: %s CNY (the purse before the hub kept its books)",
		shortCardID(demoCardID), demoPayFund, demoYuan(demoBalance))
	if d.adminURL != "" {
		d.more("admin page %s", d.adminURL)
	}
	return nil
}

// startCards writes the card files and, with pcscd, puts the cards
// behind it; otherwise the agent holds them in an in-process reader.
func (d *demo) startCards(ctx context.Context, mode string) error {
	for name, body := range map[string]string{"card.yaml": demoCardYAML, "psam.yaml": demoPSAMYAML} {
		if err := os.WriteFile(filepath.Join(d.dir, name), []byte(body), 0o600); err != nil {
			return err
		}
	}
	what := "virtual third-generation card (SM4 + SM2, T=1, PIN " + strings.Repeat("*", len(demoPIN)) +
		") and PSAM (terminal " + demoTerminal + ")"
	if mode != "sim" {
		card, err := simcard.LoadFile(filepath.Join(d.dir, "card.yaml"))
		if err != nil {
			return err
		}
		psam, err := simcard.LoadFile(filepath.Join(d.dir, "psam.yaml"))
		if err != nil {
			return err
		}
		p, err := startDemoPCSC(ctx, card, psam)
		if err == nil {
			d.pcsc = p
			d.closers = append(d.closers, p.Close)
			d.stepf("cards", "%s behind pcscd via vpcd", what)
			d.more("PC/SC readers %q (card) and %q (PSAM); %s", p.CardReader(), p.PSAMReader(), p.Describe())
			return nil
		}
		if mode == "pcsc" {
			return err
		}
		d.readerMsg = err.Error()
	}
	d.stepf("cards", "%s in an in-process reader", what)
	if d.readerMsg != "" {
		d.more("(pcscd not used: %s)", d.readerMsg)
	}
	return nil
}

// enrol makes the terminal key, invites the terminal, enrols the key with
// the token and approves it, as operator and kiosk would.
func (d *demo) enrol(ctx context.Context) (string, error) {
	key, err := sm.GenerateKey(rand.Reader)
	if err != nil {
		return "", err
	}
	keyPath := filepath.Join(d.dir, "terminal.key")
	if err := sm.SavePrivateKeyPEM(keyPath, key); err != nil {
		return "", err
	}
	token, err := server.Invite(ctx, d.store, demoTerminal, "demo kiosk", false)
	if err != nil {
		return "", err
	}
	status, err := client.Enroll(ctx, client.EnrollOptions{URL: d.hubWS, HubID: demoHubID, TerminalID: demoTerminal,
		Token: token, Key: key, Agent: "onecard demo " + version})
	if err != nil {
		return "", err
	}
	t, err := server.Approve(ctx, d.store, demoTerminal)
	if err != nil {
		return "", err
	}
	d.stepf("enrolment", "terminal %s: one-time token minted, SM2 key %s enrolled (%s), approved by the operator (%s)",
		demoTerminal, keyFingerprint(key.PublicKey().Point()), status, t.State)
	return keyPath, nil
}

// startAgent runs the real agent with the hub and the cards.
func (d *demo) startAgent(ctx context.Context, keyPath string) error {
	stateDir := filepath.Join(d.dir, "agent")
	var readers, lane string
	if d.pcsc != nil {
		readers = "readers: {pcsc: true}"
		lane = fmt.Sprintf("{name: kiosk, card: %q, psam: %q}", d.pcsc.CardReader(), d.pcsc.PSAMReader())
	} else {
		readers = fmt.Sprintf("readers:\n  pcsc: false\n  sim: [{name: kiosk, card: %q, psam: %q}]",
			filepath.Join(d.dir, "card.yaml"), filepath.Join(d.dir, "psam.yaml"))
		lane = `{name: kiosk, card: "virtual:kiosk:user", psam: "virtual:kiosk:psam1"}`
	}
	yml := fmt.Sprintf(`listen: %s
admin: 127.0.0.1:0
state_dir: %q
terminal: {id: %q, key: %q, device_id: DEMO-KIOSK-01}
hub: {url: %q, hub_id: %q}
%s
lanes: [%s]
kiosk:
  origins: ["http://%s"]
`, d.kiosk, stateDir, demoTerminal, keyPath, d.hubWS, demoHubID, readers, lane, d.kiosk)
	if err := os.WriteFile(filepath.Join(d.dir, "agent.yaml"), []byte(yml), 0o600); err != nil {
		return err
	}
	cfg, err := agent.ParseConfig([]byte(yml), d.dir)
	if err != nil {
		return err
	}
	logf, err := os.OpenFile(filepath.Join(d.dir, "agent.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	a, err := agent.New(agent.Options{Config: cfg, Hub: hublink.New, Version: version, LogOutput: logf})
	if err != nil {
		logf.Close()
		return err
	}
	actx, cancel := context.WithCancel(context.Background())
	d.agent, d.stopAgent, d.agentDone = a, cancel, make(chan error, 1)
	go func() { d.agentDone <- a.Run(actx) }()
	d.closers = append(d.closers, func() {
		d.stopAgent()
		select {
		case <-d.agentDone:
		case <-time.After(60 * time.Second):
		}
		logf.Close()
	})
	// Wait until the lane has its card and the hub client is connected.
	deadline := time.Now().Add(20 * time.Second)
	for {
		ready, hub := d.agentReady()
		if ready && hub {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("agent not ready after 20 s (card in the lane: %t, hub connected: %t; see %s)",
				ready, hub, filepath.Join(d.dir, "agent.log"))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-d.agentDone:
			d.agentDone <- err
			return fmt.Errorf("agent stopped: %v", err)
		case <-time.After(50 * time.Millisecond):
		}
	}
	d.stepf("agent", "kiosk API ws://%s/v1/ws (page http://%s%s), admin %s, hub connected",
		d.kiosk, d.kiosk, web.KioskPath, a.AdminAddr())
	return nil
}

// agentReady reports whether the lane has a card and the hub client is
// connected, from the agent's status.
func (d *demo) agentReady() (card, hub bool) {
	b, err := json.Marshal(d.agent.Status())
	if err != nil {
		return false, false
	}
	var st struct {
		Lanes []struct {
			CardPresent bool   `json:"cardPresent"`
			PSAMSlot    string `json:"psamSlot"`
		} `json:"lanes"`
		Hub *struct {
			Connected bool `json:"connected"`
		} `json:"hub"`
	}
	if json.Unmarshal(b, &st) != nil {
		return false, false
	}
	card = len(st.Lanes) == 1 && st.Lanes[0].CardPresent && st.Lanes[0].PSAMSlot != ""
	return card, st.Hub != nil && st.Hub.Connected
}

// demoReceipt is the kiosk API's receipt (docs/kiosk-api.md).
type demoReceipt struct {
	Kind          string `json:"kind"`
	State         string `json:"state"`
	TerminalID    string `json:"terminalId"`
	TerminalSeq   uint64 `json:"terminalSeq"`
	CardID        string `json:"cardId"`
	Amount        uint32 `json:"amount"`
	BalanceBefore uint32 `json:"balanceBefore"`
	BalanceAfter  uint32 `json:"balanceAfter"`
	Merchant      string `json:"merchant"`
	Fund          string `json:"fund"`
	CardDate      string `json:"cardDate"`
	TAC           string `json:"tac"`
	CardSigned    bool   `json:"cardSigned"`
}

// story runs the card operations through the kiosk API, then syncs and
// prints the hub's report.
func (d *demo) story(ctx context.Context) error {
	api, err := dialDemoAPI(ctx, d.kiosk)
	if err != nil {
		return err
	}
	defer api.close()

	// Identity.
	var id struct {
		Masked   bool `json:"masked"`
		Identity struct {
			Mode       string `json:"mode"`
			Genuine    bool   `json:"genuine"`
			Generation int    `json:"generation"`
			Suite      string `json:"suite"`
			CardNumber string `json:"card_number"`
			PersonID   string `json:"person_id"`
			Name       string `json:"name"`
		} `json:"identity"`
	}
	if _, err := api.call(ctx, "readIdentity", map[string]any{}, &id); err != nil {
		return fmt.Errorf("identity: %w", err)
	}
	if !id.Masked {
		return errors.New("identity: the agent sent unmasked data to the demo's origin")
	}
	in := id.Identity
	d.stepf("identity", "%s · %s · card %s · generation %d, %s · genuine: %t (%s)",
		in.Name, in.PersonID, in.CardNumber, in.Generation, in.Suite, in.Genuine, in.Mode)

	// A pharmacy payment.
	var pay demoReceipt
	stages, err := api.call(ctx, "pay", map[string]any{"amount": demoPayAmount, "merchant": demoMerchant,
		"fund": demoPayFund, "pin": demoPIN}, &pay)
	if err != nil {
		return fmt.Errorf("pay: %w", err)
	}
	d.stepf("pay", "%s CNY at %s (fund %s), PIN entered at the kiosk: balance %s → %s",
		demoYuan(int64(pay.Amount)), pay.Merchant, pay.Fund, demoYuan(int64(pay.BalanceBefore)), demoYuan(int64(pay.BalanceAfter)))
	d.more("TAC %s, terminal %s seq %d, %s; progress %s", pay.TAC, pay.TerminalID, pay.TerminalSeq, pay.State, strings.Join(stages, " → "))

	// A subsidy: programme, funding and grant on the hub; the load is
	// authorised online by the hub.
	card, _ := record.ParseCardID(demoCardID)
	if err := d.led.CreateProgramme(ctx, store.Programme{ID: demoProgramme, Name: "2026 living subsidy", Fund: demoProgFund}); err != nil {
		return fmt.Errorf("create programme: %w", err)
	}
	if _, err := d.led.Fund(ctx, ledger.Request{Ref: "demo/fund/" + demoProgramme, Programme: demoProgramme, Amount: demoFunding}); err != nil {
		return fmt.Errorf("fund programme: %w", err)
	}
	if _, err := d.led.Grant(ctx, ledger.Request{Ref: "demo/grant/" + demoCardID, Programme: demoProgramme, Card: card, Amount: demoGrant}); err != nil {
		return fmt.Errorf("grant: %w", err)
	}
	var load demoReceipt
	stages, err = api.call(ctx, "load", map[string]any{"amount": demoGrant, "programme": demoProgramme, "fund": demoProgFund}, &load)
	if err != nil {
		return fmt.Errorf("load: %w", err)
	}
	d.stepf("load", "hub: programme %s (fund %s) created, funded %s CNY, %s CNY granted to card %s",
		demoProgramme, demoProgFund, demoYuan(demoFunding), demoYuan(demoGrant), shortCardID(demoCardID))
	d.more("load of %s CNY authorised online by the hub (card MAC1 checked, MAC2 returned): balance %s → %s",
		demoYuan(int64(load.Amount)), demoYuan(int64(load.BalanceBefore)), demoYuan(int64(load.BalanceAfter)))
	d.more("TAC %s, terminal seq %d, %s; progress %s", load.TAC, load.TerminalSeq, load.State, strings.Join(stages, " → "))

	// An eligibility certification.
	var cert demoReceipt
	if _, err = api.call(ctx, "certify", map[string]any{"programme": demoCertify, "fund": demoCertifyFund, "pin": demoPIN}, &cert); err != nil {
		return fmt.Errorf("certify: %w", err)
	}
	signed := "no card signature (second-generation card)"
	if cert.CardSigned {
		signed = "the card's SM2 signature over a terminal challenge"
	}
	d.stepf("certify", "%s: authenticated card, PIN verified, %s; terminal seq %d, %s",
		demoCertify, signed, cert.TerminalSeq, cert.State)

	// Sync: wait until the hub has acknowledged the three records.
	counts, err := d.waitSynced(ctx, 3)
	if err != nil {
		return err
	}
	hs := d.hub.Stats()
	bal, err := d.led.Balance(ctx, card, demoPayFund)
	if err != nil {
		return err
	}
	sub, err := d.led.Balance(ctx, card, demoProgFund)
	if err != nil {
		return err
	}
	d.stepf("sync", "journal: %d records cleared (acknowledged by the hub); hub: %d accepted, %d rejected",
		counts["cleared"], hs.Accepted, hs.Rejected)
	d.more("hub books for card %s: %s %s CNY, %s %s CNY", shortCardID(demoCardID), demoPayFund, demoYuan(bal), demoProgFund, demoYuan(sub))

	// The clearing report of the card transaction day.
	rep, err := d.led.Report(ctx, pay.CardDate)
	if err != nil {
		return err
	}
	d.stepf("report", "the hub's clearing report of %s:", pay.CardDate)
	var buf bytes.Buffer
	if err := writeReport(&buf, rep); err != nil {
		return err
	}
	d.printf("\n")
	for _, line := range strings.Split(strings.TrimRight(buf.String(), "\n"), "\n") {
		d.printf("%s\n", strings.TrimRight("    "+line, " \t"))
	}
	for _, dsc := range rep.Discrepancies {
		if dsc.Kind == ledger.TotalsMissing {
			d.printf("\n    (totals-missing: the sync protocol has no end-of-day totals message yet, so the terminal submitted none.)\n")
			break
		}
	}
	return nil
}

// waitSynced polls the agent's journal until n records are cleared.
func (d *demo) waitSynced(ctx context.Context, n int) (map[string]int, error) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		b, err := json.Marshal(d.agent.Status()["journal"])
		if err != nil {
			return nil, err
		}
		var j struct {
			Records map[string]int `json:"records"`
		}
		if err := json.Unmarshal(b, &j); err != nil {
			return nil, err
		}
		if j.Records["cleared"] >= n {
			return j.Records, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("sync: records not acknowledged by the hub after 30 s: journal %v", j.Records)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// close stops everything started, in reverse order.
func (d *demo) close() {
	for i := len(d.closers) - 1; i >= 0; i-- {
		d.closers[i]()
	}
	d.closers = nil
	if d.store != nil {
		_ = d.store.Close()
	}
}

// demoYuan formats an amount in fen as yuan.
func demoYuan(v int64) string {
	sign := ""
	if v < 0 {
		sign, v = "-", -v
	}
	return fmt.Sprintf("%s%d.%02d", sign, v/100, v%100)
}

// shortCardID shortens a card ID (卡识别码) for display.
func shortCardID(id string) string {
	if len(id) < 12 {
		return id
	}
	return id[:6] + "…" + id[len(id)-5:]
}

// demoAPI is a kiosk API client, as a page on the agent's own origin.
type demoAPI struct {
	ws   *websocket.Conn
	next int
}

// demoAPIError is an error answer of the kiosk API.
type demoAPIError struct {
	Code      string `json:"code"`
	Message   string `json:"message"`
	TriesLeft *int   `json:"triesLeft"`
}

func (e *demoAPIError) Error() string { return e.Code + ": " + e.Message }

func dialDemoAPI(ctx context.Context, addr string) (*demoAPI, error) {
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	h := http.Header{"Origin": {"http://" + addr}}
	ws, resp, err := websocket.DefaultDialer.DialContext(dctx, "ws://"+addr+"/v1/ws", h)
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	if err != nil {
		return nil, fmt.Errorf("connect to the kiosk API: %w", err)
	}
	api := &demoAPI{ws: ws}
	var hello struct {
		Authorised bool `json:"authorised"`
	}
	if _, err := api.call(ctx, "hello", nil, &hello); err != nil {
		ws.Close()
		return nil, err
	}
	if !hello.Authorised {
		ws.Close()
		return nil, errors.New("the agent does not allow the demo's origin")
	}
	return api, nil
}

func (c *demoAPI) close() { _ = c.ws.Close() }

// call sends one request and waits for its answer, collecting the
// progress stages reported for it.
func (c *demoAPI) call(ctx context.Context, method string, params, out any) ([]string, error) {
	c.next++
	id := c.next
	req := map[string]any{"id": id, "method": method}
	if params != nil {
		req["params"] = params
	}
	deadline := time.Now().Add(90 * time.Second)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	_ = c.ws.SetWriteDeadline(deadline)
	if err := c.ws.WriteJSON(req); err != nil {
		return nil, fmt.Errorf("%s: %w", method, err)
	}
	_ = c.ws.SetReadDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { _ = c.ws.Close() }) // Ctrl-C ends the wait
	defer stop()
	var stages []string
	for {
		var m struct {
			ID     *int            `json:"id"`
			Event  string          `json:"event"`
			Data   json.RawMessage `json:"data"`
			Result json.RawMessage `json:"result"`
			Error  *demoAPIError   `json:"error"`
		}
		if err := c.ws.ReadJSON(&m); err != nil {
			return stages, fmt.Errorf("%s: %w", method, err)
		}
		if m.ID == nil || *m.ID != id {
			continue // an event for everyone (card inserted, ...)
		}
		if m.Event == "progress" {
			var p struct {
				Stage string `json:"stage"`
			}
			if json.Unmarshal(m.Data, &p) == nil && p.Stage != "" {
				stages = append(stages, p.Stage)
			}
			continue
		}
		if m.Error != nil {
			return stages, m.Error
		}
		if out != nil {
			if err := json.Unmarshal(m.Result, out); err != nil {
				return stages, fmt.Errorf("%s: decode result: %w", method, err)
			}
		}
		return stages, nil
	}
}
