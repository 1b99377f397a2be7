package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	firmwareprofiles "github.com/onecard-hub/onecard/firmware-profiles"
	"github.com/onecard-hub/onecard/hub/client"
	"github.com/onecard-hub/onecard/hub/ledger"
	"github.com/onecard-hub/onecard/hub/proof"
	"github.com/onecard-hub/onecard/hub/store"
	"github.com/onecard-hub/onecard/hub/store/pgstore"
	"github.com/onecard-hub/onecard/internal/pcsctest"
	"github.com/onecard-hub/onecard/internal/pgtest"
	"github.com/onecard-hub/onecard/internal/simcard"
	"github.com/onecard-hub/onecard/reader"
	"github.com/onecard-hub/onecard/reader/pcsc"
	"github.com/onecard-hub/onecard/reader/serial"
	"github.com/onecard-hub/onecard/reader/virtual"
	"github.com/onecard-hub/onecard/sm"
	"github.com/onecard-hub/onecard/terminal"
	"github.com/onecard-hub/onecard/terminal/journal"
	"github.com/onecard-hub/onecard/terminal/record"
)

// The books of the multi-hub test: one programme whose loads credit the
// same fund the payments draw on, so a card has one account.
// The reader paths of the terminals.
const (
	viaInProcess = "in-process"
	viaPCSC      = "pcscd/vpcd"
	viaSerial    = "serial crt591"
)

const (
	pgProgramme = "SUBSIDY-2026"
	pgFund      = "310"
	pgKeyLabel  = "demo" // the test key set the shipped card files use
	pgHubID     = "onecard-hub"
	pgPIN       = "123456"
)

// pinAlways answers every PIN request with the card's PIN.
type pinAlways struct{}

func (pinAlways) ReadPIN(context.Context, terminal.PINPurpose) (*terminal.PIN, error) {
	return terminal.NewPIN([]byte(pgPIN))
}

// hubProc is one "onecard hub" process.
type hubProc struct {
	t    *testing.T
	bin  string
	args []string
	addr string
	cmd  *exec.Cmd
	out  *syncBuffer
}

func (h *hubProc) start() {
	h.t.Helper()
	cmd := exec.Command(h.bin, h.args...)
	cmd.Env = append(os.Environ(), "GODEBUG=cpu.adx=off", "FORCE_SM4BLOCK_AESNI=1")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		h.t.Fatal(err)
	}
	cmd.Stderr = h.out
	if err := cmd.Start(); err != nil {
		h.t.Fatal(err)
	}
	h.cmd = cmd
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		ok := false
		for sc.Scan() {
			fmt.Fprintln(h.out, sc.Text())
			if !ok && strings.Contains(sc.Text(), "listening on ws://") {
				ok = true
				ready <- true
			}
		}
		if !ok {
			ready <- false
		}
		io.Copy(io.Discard, stdout)
	}()
	select {
	case ok := <-ready:
		if !ok {
			h.t.Fatalf("hub %s did not start:\n%s", h.addr, h.out.String())
		}
	case <-time.After(30 * time.Second):
		h.t.Fatalf("hub %s did not start in 30 s:\n%s", h.addr, h.out.String())
	}
}

// kill9 kills the process (SIGKILL) and reaps it.
func (h *hubProc) kill9() {
	h.cmd.Process.Signal(syscall.SIGKILL)
	h.cmd.Wait()
}

func (h *hubProc) stop() {
	if h.cmd == nil || h.cmd.ProcessState != nil {
		return
	}
	h.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { h.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		h.kill9()
	}
}

func (h *hubProc) url() string { return "ws://" + h.addr + "/sync" }

// buildOnecard builds the onecard binary into dir ($ONECARD_BIN, when
// set, names a binary built already).
func buildOnecard(t *testing.T, dir string) string {
	t.Helper()
	if bin := os.Getenv("ONECARD_BIN"); bin != "" {
		return bin
	}
	bin := filepath.Join(dir, "onecard")
	cmd := exec.Command("go", "build", "-o", bin, "../cmd/onecard")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// oc runs the onecard binary and returns its stdout.
func oc(t *testing.T, bin string, args ...string) string {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "GODEBUG=cpu.adx=off", "FORCE_SM4BLOCK_AESNI=1")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("onecard %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return string(out)
}

// pgTerminal is one kiosk: its readers, PSAM, journal, enrolled key, hub
// client and session, and the cards presented at it.
type pgTerminal struct {
	no      string
	hub     int
	via     string // the reader path: in-process, pcscd/vpcd, serial crt591
	j       *journal.Journal
	c       *client.Client
	sess    *terminal.Session
	rd      pgReaders
	cards   []*simcard.SSC
	opening []int64 // each card's purse balances (EP+ED) at the start
	ops     int     // records made
}

// pgReaders are a terminal's user-card and PSAM slots, how a card is
// presented in the user slot, and how many commands reached the reader
// (through its real path: pcscd and vpcd, or the serial line).
type pgReaders struct {
	user, psam reader.Slot
	present    func(*simcard.SSC) error
	commands   func() uint64
}

// inProcessReaders: the simulated cards behind in-process slots.
func inProcessReaders(no string, psam virtual.Card) pgReaders {
	user := virtual.NewSlot("user-"+no, nil)
	return pgReaders{
		user: user, psam: virtual.NewSlot("psam-"+no, psam),
		present:  func(c *simcard.SSC) error { user.Insert(c); return nil },
		commands: func() uint64 { return 0 },
	}
}

// pcscReaders: a private pcscd with two vpcd slots, the user card and the
// PSAM behind virtual.VPCD bridges, reached through reader/pcsc slots.
// Presenting another card removes the current one and waits until pcscd
// has seen it go and the new one arrive.
func pcscReaders(t *testing.T, ctx context.Context, psam virtual.Card) pgReaders {
	t.Helper()
	env := pcsctest.Start(t, pcsctest.Options{})
	user := virtual.NewVPCD(virtual.VPCDOptions{Addr: env.Slots[0].Addr})
	pb := virtual.NewVPCD(virtual.VPCDOptions{Addr: env.Slots[1].Addr, Card: psam})
	for _, b := range []*virtual.VPCD{user, pb} {
		bctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- b.Run(bctx) }()
		t.Cleanup(func() {
			cancel()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Error("vpcd bridge did not stop")
			}
		})
	}
	wait := func(name string, present bool) error {
		wctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		defer cancel()
		_, err := pcsctest.WaitCard(wctx, name, present)
		return err
	}
	if err := wait(env.Slots[1].Name, true); err != nil {
		t.Fatalf("PSAM behind vpcd: %v", err)
	}
	us := pcsc.NewSlot(env.Slots[0].Name, pcsc.Options{})
	ps := pcsc.NewSlot(env.Slots[1].Name, pcsc.Options{})
	t.Cleanup(func() { _ = us.Disconnect(); _ = ps.Disconnect() })
	var current *simcard.SSC
	return pgReaders{
		user: us, psam: ps,
		present: func(c *simcard.SSC) error {
			if c == current {
				return nil
			}
			user.Remove()
			if err := wait(env.Slots[0].Name, false); err != nil {
				return fmt.Errorf("card removal: %w", err)
			}
			user.Insert(c)
			if err := wait(env.Slots[0].Name, true); err != nil {
				return fmt.Errorf("card insertion: %w", err)
			}
			current = c
			return nil
		},
		commands: func() uint64 { return user.Status().APDUs + pb.Status().APDUs },
	}
}

// serialReaders: the CRT-591 firmware-profile emulator on a pty holding
// the user card and PSAM 1, and reader/serial's Reader opened on the pty
// with the shipped crt591 profile.
func serialReaders(t *testing.T, ctx context.Context, psam virtual.Card) pgReaders {
	t.Helper()
	p, err := firmwareprofiles.Load("crt591.yaml")
	if err != nil {
		t.Fatal(err)
	}
	emu, err := serial.NewEmulator(p, serial.EmulatorOptions{Cards: map[string]virtual.Card{"psam1": psam}})
	if err != nil {
		t.Fatal(err)
	}
	pt, err := emu.ServePTY(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pt.Close() })
	rd, err := serial.Open(ctx, serial.Options{Port: pt.Path, Profile: p})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rd.Close() })
	us, err := rd.Slot("user")
	if err != nil {
		t.Fatal(err)
	}
	ps, err := rd.Slot("psam1")
	if err != nil {
		t.Fatal(err)
	}
	var current *simcard.SSC
	return pgReaders{
		user: us, psam: ps,
		// A swap as at a dispenser: the card is taken out, the host
		// powers the slot down (the card is gone), the next goes in.
		present: func(c *simcard.SSC) error {
			if c == current {
				return nil
			}
			if err := emu.Remove("user"); err != nil {
				return err
			}
			if err := us.Disconnect(); err != nil {
				return fmt.Errorf("power down the user slot: %w", err)
			}
			current = c
			return emu.Insert("user", c)
		},
		commands: func() uint64 { return uint64(emu.Stats().Commands) },
	}
}

// TestHubPGMultiHub: two "onecard hub" processes on one PostgreSQL
// database; four terminals (enrolled with the real commands, two per hub)
// pay, load and certify against virtual cards (internal/simcard) and sync
// through hub/client. The cards sit behind every reader path: terminal 1
// (hub 0) has a CRT-591 serial reader (the firmware-profile emulator on a
// pty, reader/serial with the shipped profile), terminal 2 (hub 1) reads
// through pcscd (vpcd bridges, reader/pcsc), terminals 3 and 4 use
// in-process readers. During the payments
// one hub is killed with SIGKILL and restarted, and PostgreSQL is
// restarted (immediate stop). Afterwards every record is posted exactly
// once and each card's ledger account equals its purse balances exactly;
// the merchant and programme totals equal the sums of the receipts.
func TestHubPGMultiHub(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	dir := t.TempDir()
	bin := buildOnecard(t, dir)
	pg := pgtest.New(t)
	dsn := pg.CreateDB(t)

	keys, err := sm.TestKeySet(pgKeyLabel)
	if err != nil {
		t.Fatal(err)
	}
	keysFile := filepath.Join(dir, "issuer-keys.json")
	if err := keys.Save(keysFile); err != nil {
		t.Fatal(err)
	}
	cardFile, err := os.ReadFile(filepath.Join("..", "testdata", "cards", "ssc-gen3.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	psamFile, err := os.ReadFile(filepath.Join("..", "testdata", "cards", "psam.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cardSpec, err := simcard.ParseCardFile(cardFile)
	if err != nil {
		t.Fatal(err)
	}
	psamSpec, err := simcard.ParseCardFile(psamFile)
	if err != nil {
		t.Fatal(err)
	}

	// Terminals and cards; the books: programme, opening balances equal to
	// the cards' purses, and grants for the loads.
	const nTerm, cardsPer, loadAmt = 4, 2, 5_000
	st, err := pgstore.Open(ctx, pgstore.Options{DSN: dsn})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	led, err := ledger.New(ledger.Options{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	if err := led.CreateProgramme(ctx, store.Programme{ID: pgProgramme, Name: "heating subsidy", Fund: pgFund}); err != nil {
		t.Fatal(err)
	}
	if _, err := led.Fund(ctx, ledger.Request{Ref: "fund-1", Programme: pgProgramme, Amount: 10_000_000}); err != nil {
		t.Fatal(err)
	}
	terms := make([]*pgTerminal, nTerm)
	for i := range terms {
		tm := &pgTerminal{no: fmt.Sprintf("3301000001%02d", i+1), hub: i % 2, via: []string{viaSerial, viaPCSC, viaInProcess, viaInProcess}[i]}
		for k := 0; k < cardsPer; k++ {
			spec := *cardSpec.SSC
			spec.CardID = spec.CardID[:28] + fmt.Sprintf("%04X", 0x1000+i*16+k)
			card, err := simcard.NewSSC(spec, simcard.Options{Keys: keys})
			if err != nil {
				t.Fatal(err)
			}
			id, _ := record.ParseCardID(spec.CardID)
			open := int64(card.EP().Balance) + int64(card.ED().Balance)
			if _, err := led.OpeningBalance(ctx, ledger.Request{Ref: "open/" + spec.CardID, Card: id, Fund: pgFund, Amount: open}); err != nil {
				t.Fatal(err)
			}
			if _, err := led.Grant(ctx, ledger.Request{Ref: "grant/" + spec.CardID, Programme: pgProgramme, Card: id, Amount: loadAmt}); err != nil {
				t.Fatal(err)
			}
			tm.cards, tm.opening = append(tm.cards, card), append(tm.opening, open)
		}
		terms[i] = tm
	}

	// Two hub processes on the same database.
	hubs := make([]*hubProc, 2)
	for i := range hubs {
		addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
		hubs[i] = &hubProc{t: t, bin: bin, addr: addr, out: &syncBuffer{},
			args: []string{"hub", "--store", dsn, "--keys", keysFile, "--listen", addr, "--hub-id", pgHubID}}
		hubs[i].start()
		defer hubs[i].stop()
	}
	defer func() {
		if t.Failed() {
			for i, h := range hubs {
				t.Logf("hub %d output:\n%s", i, tail(h.out.String(), 4<<10))
			}
		}
	}()

	// Enrolment with the operator and agent commands.
	for _, tm := range terms {
		token := strings.TrimSpace(oc(t, bin, "hub", "token", "new", "--store", dsn, "--terminal", tm.no, "--name", "kiosk "+tm.no))
		keyFile := filepath.Join(dir, tm.no+".pem")
		if out := oc(t, bin, "agent", "enroll", "--hub", hubs[tm.hub].url(), "--token", token, "--terminal", tm.no, "--key-out", keyFile); !strings.Contains(out, "pending") {
			t.Fatalf("enroll %s: %q", tm.no, out)
		}
		if out := oc(t, bin, "hub", "terminals", "approve", "--store", dsn, tm.no); !strings.Contains(out, "active") {
			t.Fatalf("approve %s: %q", tm.no, out)
		}
		key, err := sm.LoadPrivateKeyPEM(keyFile)
		if err != nil {
			t.Fatal(err)
		}
		tm.j, err = journal.Open(filepath.Join(dir, tm.no+".journal"), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer tm.j.Close()
		if _, err := tm.j.Recover(ctx, time.Now()); err != nil {
			t.Fatal(err)
		}
		tm.c, err = client.New(client.Options{URL: hubs[tm.hub].url(), HubID: pgHubID, TerminalID: tm.no, Key: key, Journal: tm.j,
			BatchSize: 4, MinBackoff: 20 * time.Millisecond, MaxBackoff: 300 * time.Millisecond,
			PollInterval: 50 * time.Millisecond, RequestTimeout: 10 * time.Second, DialTimeout: 3 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		defer tm.c.Close()
		ps := *psamSpec.PSAM
		ps.Terminal = tm.no
		psam, err := simcard.NewPSAM(ps, simcard.Options{Keys: keys})
		if err != nil {
			t.Fatal(err)
		}
		switch tm.via {
		case viaSerial:
			tm.rd = serialReaders(t, ctx, psam)
		case viaPCSC:
			tm.rd = pcscReaders(t, ctx, psam)
		default:
			tm.rd = inProcessReaders(tm.no, psam)
		}
		tm.sess, err = terminal.New(terminal.Options{
			Card: tm.rd.user, PSAM: tm.rd.psam, Journal: tm.j, TerminalKey: key, TerminalID: tm.no,
			PINPad: pinAlways{}, Authoriser: tm.c, LostCards: tm.c.LostCards(), CardVerifier: proof.Verifier{Keys: keys, Suite: sm.SuiteSM4},
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	runCtx, stopRun := context.WithCancel(ctx)
	var runWG sync.WaitGroup
	for _, tm := range terms {
		runWG.Add(1)
		go func() { defer runWG.Done(); tm.c.Run(runCtx) }()
	}
	defer func() { stopRun(); runWG.Wait() }()

	// Phase 1, every hub up: each card is loaded (online authorisation by
	// its terminal's hub) and certified.
	var wg sync.WaitGroup
	errs := make(chan error, 256)
	for _, tm := range terms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range tm.cards {
				if err := tm.rd.present(tm.cards[k]); err != nil {
					errs <- fmt.Errorf("terminal %s (%s): %w", tm.no, tm.via, err)
					return
				}
				if _, err := tm.sess.Load(ctx, terminal.LoadRequest{Amount: loadAmt, Programme: pgProgramme, Fund: pgFund}); err != nil {
					errs <- fmt.Errorf("terminal %s load: %w", tm.no, err)
					return
				}
				if _, err := tm.sess.Certify(ctx, terminal.CertifyRequest{Programme: pgProgramme, Fund: pgFund}); err != nil {
					errs <- fmt.Errorf("terminal %s certify: %w", tm.no, err)
					return
				}
				tm.ops += 2
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	// Phase 2: payments (offline-capable) while hub 0 is killed and
	// restarted and PostgreSQL restarts.
	const pays = 12
	var payWG sync.WaitGroup
	payErrs := make(chan error, 64)
	progress := make(chan int, nTerm*pays) // the terminal's index, per payment
	for i, tm := range terms {
		payWG.Add(1)
		go func() {
			defer payWG.Done()
			for n := 0; n < pays; n++ {
				k := n % len(tm.cards)
				if err := tm.rd.present(tm.cards[k]); err != nil {
					payErrs <- fmt.Errorf("terminal %s (%s): %w", tm.no, tm.via, err)
					return
				}
				merchant := fmt.Sprintf("pharmacy-%02d", n%3)
				if _, err := tm.sess.Pay(ctx, terminal.PayRequest{Amount: uint32(101 + 37*n), Merchant: merchant, Fund: pgFund}); err != nil {
					payErrs <- fmt.Errorf("terminal %s pay %d: %w", tm.no, n, err)
					return
				}
				tm.ops++
				progress <- i
				time.Sleep(40 * time.Millisecond)
			}
		}()
	}
	// waitProgress waits for n payments, and for at least one by each
	// terminal of hub (-1: any hub).
	waitProgress := func(n, hub int) {
		by := map[int]int{}
		need := func() bool {
			for i, tm := range terms {
				if tm.hub == hub && by[i] == 0 {
					return true
				}
			}
			return false
		}
		for got := 0; got < n || need(); got++ {
			select {
			case i := <-progress:
				by[i]++
			case <-ctx.Done():
				t.Fatal("payments stalled")
			}
		}
	}
	waitProgress(nTerm*3, -1)
	hubs[0].kill9()
	waitProgress(nTerm*2, 0)
	// Hub 0's terminals have records it could not acknowledge.
	for _, tm := range terms {
		if js, err := tm.j.Stats(); err != nil || (tm.hub == 0 && js.Counts[journal.Cleared] == js.Records) {
			t.Fatalf("terminal %s with hub 0 down: journal %v, %v", tm.no, js.Counts, err)
		}
	}
	hubs[0].start()
	waitProgress(nTerm*2, -1)
	pg.Restart(t)
	payWG.Wait()
	close(payErrs)
	for err := range payErrs {
		t.Fatal(err)
	}

	// Every journal drains: all records acknowledged.
	total := 0
	for _, tm := range terms {
		total += tm.ops
		for {
			js, err := tm.j.Stats()
			if err != nil {
				t.Fatal(err)
			}
			if js.Counts[journal.Cleared] == tm.ops && js.Records == tm.ops {
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("terminal %s: journal %v after %d operations", tm.no, js.Counts, tm.ops)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	stopRun()
	runWG.Wait()

	// The setup store's pooled connections died with the PostgreSQL
	// restart: the store reconnects by itself (no fresh pool here).

	// The real reader paths carried the commands.
	for _, tm := range terms {
		if tm.via != viaInProcess && tm.rd.commands() == 0 {
			t.Errorf("terminal %s (%s): no command reached the reader", tm.no, tm.via)
		}
	}
	// Exactly once: each journal record has exactly one posting, no more
	// postings than records.
	postings := 0
	payBy := map[string]int64{}
	var loaded int64
	for _, tm := range terms {
		entries, err := tm.j.List(0, 10_000)
		if err != nil {
			t.Fatal(err)
		}
		ps, err := st.Postings(ctx, store.Query{TerminalNo: tm.no, Limit: 10_000})
		if err != nil {
			t.Fatal(err)
		}
		if len(ps) != len(entries) || len(ps) != tm.ops {
			t.Errorf("terminal %s: %d postings, %d journal records, %d operations", tm.no, len(ps), len(entries), tm.ops)
		}
		seen := map[uint64]bool{}
		for _, p := range ps {
			if seen[p.Key.TerminalSeq] {
				t.Errorf("posted twice: %s", p.Key)
			}
			seen[p.Key.TerminalSeq] = true
			switch p.Kind {
			case store.KindPay:
				payBy[p.Party] += p.Amount
			case store.KindLoad:
				loaded += p.Amount
			}
		}
		for _, e := range entries {
			if !seen[e.Seq] {
				t.Errorf("terminal %s record %d never posted", tm.no, e.Seq)
			}
		}
		postings += len(ps)
	}
	if postings != total {
		t.Errorf("%d postings for %d records", postings, total)
	}

	// The ledger equals the cards, card by card, to the fen.
	for _, tm := range terms {
		for k, card := range tm.cards {
			id, _ := record.ParseCardID(fmt.Sprintf("%X", card.CardID()))
			bal, err := led.Balance(ctx, id, pgFund)
			if err != nil {
				t.Fatal(err)
			}
			purse := int64(card.EP().Balance) + int64(card.ED().Balance)
			if bal != purse {
				t.Errorf("card %s: ledger %d fen, purses %d fen (opening %d)", id, bal, purse, tm.opening[k])
			}
			if purse == tm.opening[k] {
				t.Errorf("card %s: balance never changed", id)
			}
		}
	}
	// Merchant and programme totals: the accounts and the day's report.
	var payTotal int64
	for m, want := range payBy {
		got, err := st.Balance(ctx, ledger.MerchantAccount(m, pgFund))
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("merchant %s: account %d, pays %d", m, got, want)
		}
		payTotal += want
	}
	if loaded != int64(nTerm*cardsPer*loadAmt) {
		t.Errorf("loaded %d fen, want %d", loaded, nTerm*cardsPer*loadAmt)
	}
	day := time.Now().Format("20060102")
	rep, err := led.Report(ctx, day)
	if err != nil {
		t.Fatal(err)
	}
	var repPay, repLoad int64
	for _, m := range rep.Merchants {
		repPay += m.Amount
	}
	for _, p := range rep.Programmes {
		repLoad += p.Loaded
	}
	if repPay != payTotal || repLoad != loaded {
		t.Errorf("report %s: pays %d loads %d; receipts %d, %d", day, repPay, repLoad, payTotal, loaded)
	}
	// Every terminal signed its totals; they equal the postings.
	for _, d := range rep.Discrepancies {
		t.Errorf("discrepancy %+v", d)
	}
	if len(rep.Terminals) != nTerm {
		t.Errorf("report has %d terminals, want %d", len(rep.Terminals), nTerm)
	}
	for _, tl := range rep.Terminals {
		if !tl.Match {
			t.Errorf("terminal %s: posted %+v, submitted %+v", tl.TerminalNo, tl.Posted, tl.Submitted)
		}
	}
	if err := st.Check(ctx); err != nil {
		t.Errorf("ledger invariants: %v", err)
	}
	for _, tm := range terms {
		t.Logf("terminal %s (hub %d, %s): %d records, %d reader commands", tm.no, tm.hub, tm.via, tm.ops, tm.rd.commands())
	}
	t.Logf("%d records from %d terminals on 2 hubs, %d fen paid, %d fen loaded", total, nTerm, payTotal, loaded)
}
