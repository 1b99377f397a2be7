package soak_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/onecard-hub/onecard/hub/client"
	"github.com/onecard-hub/onecard/hub/ledger"
	"github.com/onecard-hub/onecard/hub/server"
	"github.com/onecard-hub/onecard/hub/store"
	"github.com/onecard-hub/onecard/hub/store/boltstore"
	"github.com/onecard-hub/onecard/hub/store/pgstore"
	"github.com/onecard-hub/onecard/internal/logbuf"
	"github.com/onecard-hub/onecard/internal/pcsctest"
	"github.com/onecard-hub/onecard/internal/pgtest"
	"github.com/onecard-hub/onecard/internal/simcard"
	"github.com/onecard-hub/onecard/sm"
	"github.com/onecard-hub/onecard/soak"
	"github.com/onecard-hub/onecard/terminal/journal"
	"github.com/onecard-hub/onecard/terminal/record"
)

const (
	agentEnv  = "ONECARD_SOAK_AGENT"
	keyLabel  = "demo"
	hubID     = "soak-hub"
	programme = "SUBSIDY-2026"
	fund      = "310"
	pin       = "123456"
)

func TestMain(m *testing.M) {
	if cfg := os.Getenv(agentEnv); cfg != "" {
		var c soak.AgentConfig
		if err := json.Unmarshal([]byte(cfg), &c); err != nil {
			fmt.Fprintln(os.Stderr, "agent config:", err)
			os.Exit(2)
		}
		if err := soak.AgentMain(context.Background(), c, os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// settings of one campaign: the short variant in make test, a long one
// with ONECARD_SOAK_DURATION (make soak DURATION=10m).
type settings struct {
	seed     uint64
	agents   int
	cards    int
	opsEach  int           // short variant: operations per agent
	duration time.Duration // long variant: run until
	remote   bool          // agent 0 behind pcscd/vpcd, agent 1 on a pty serial reader
	pg       bool          // two hubs on PostgreSQL instead of one on bbolt
}

func campaignSettings(t *testing.T) settings {
	s := settings{seed: 20261130, agents: 4, cards: 2, opsEach: 40, remote: true}
	if v := os.Getenv("ONECARD_SOAK_SEED"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("ONECARD_SOAK_SEED: %v", err)
		}
		s.seed = n
	}
	if v := os.Getenv("ONECARD_SOAK_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("ONECARD_SOAK_DURATION: %v", err)
		}
		s.duration, s.agents, s.cards, s.remote, s.pg = d, 8, 3, true, true
	}
	if os.Getenv("ONECARD_SOAK_PG") == "1" {
		s.pg = true
	}
	return s
}

// syncBuffer is a goroutine-safe log of a process's output.
type syncBuffer = logbuf.Buffer

// journalFileLimit is the file size limit (RLIMIT_FSIZE, set with
// prlimit) of agent 2, the kiosk whose disk is full: every file it writes
// stays below it. bbolt grows its file in powers of two from 32 KiB, so
// the journal cannot pass 32 KiB (a dozen records): a commit that needs
// more fails (the truncate returns EFBIG; Go ignores SIGXFSZ) and is
// rolled back. Prepare comes before any money command, so a kiosk whose
// journal cannot take the record refuses the transaction before the card
// is touched. A later write of a record already journaled (the TAC after
// the card answered, an acknowledgement, the recovery after a SIGKILL)
// can fail the same way: the terminal keeps such a record for settling,
// and a kiosk that cannot recover stays down. The closing phase frees the
// disk (restarts the agent without the limit) before it settles and
// drains, and the reconciliation then finds nothing lost. The agent's
// other files (card state, client state) stay well below the limit.
const journalFileLimit = 48 << 10

// Bounds of the campaign's waits: every wait on a process, a reader or
// the fault injector ends, and a stuck step fails the test naming the
// agent or the fault and the step, with the stuck process's goroutines.
const (
	hubStartTimeout = 30 * time.Second
	agentStartWait  = 60 * time.Second
	replyTimeout    = 90 * time.Second // one command (an operation, a settle, a drain)
	quitTimeout     = 20 * time.Second
	dumpWait        = 5 * time.Second // for a SIGQUIT goroutine dump
	waitDelay       = 5 * time.Second // exec.Cmd.WaitDelay: output copying after exit
	// faultStepTimeout bounds one fault step (a PostgreSQL restart may
	// take pg_ctl's 60 s to stop and 60 s to start).
	faultStepTimeout = 3 * time.Minute
	// agentGrace is how long after the deadline (or the last operation of
	// the short variant) the agents may take to finish their last
	// operation: a reply, a kill and restart, a card presentation.
	agentGrace = replyTimeout + agentStartWait + 2*time.Minute
)

// dumpAndKill asks a Go child process for its goroutines (SIGQUIT makes
// it print them to its stderr and exit), waits for it up to dumpWait and
// then kills it. done is closed when the process has exited (its Wait
// returned); the wait after SIGKILL is bounded by exec.Cmd.WaitDelay.
func dumpAndKill(cmd *exec.Cmd, done <-chan struct{}) {
	_ = cmd.Process.Signal(syscall.SIGQUIT)
	select {
	case <-done:
		return
	case <-time.After(dumpWait):
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	<-done
}

// tail returns the last n bytes of s.
func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// step is what a goroutine of the campaign is doing now, for the message
// of a watchdog.
type step struct {
	mu    sync.Mutex
	what  string
	since time.Time
}

func (s *step) set(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.what, s.since = fmt.Sprintf(format, args...), time.Now()
}

func (s *step) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.what == "" {
		return "idle"
	}
	return fmt.Sprintf("%s (for %v)", s.what, time.Since(s.since).Round(time.Second))
}

// hubProc is one "onecard hub" process.
type hubProc struct {
	bin, addr string
	args      []string
	cmd       *exec.Cmd
	done      chan struct{} // closed when cmd has exited (after Wait)
	out       syncBuffer
	killed    bool // by the campaign (kill9), not on its own
}

// exited reports whether the hub process has ended.
func (h *hubProc) exited() bool {
	select {
	case <-h.done:
		return true
	default:
		return false
	}
}

// start starts the hub and waits until it listens (at most
// hubStartTimeout); a hub that does not come up is killed.
func (h *hubProc) start() error {
	cmd := exec.Command(h.bin, h.args...)
	cmd.Env = append(os.Environ(), "GODEBUG=cpu.adx=off", "FORCE_SM4BLOCK_AESNI=1")
	cmd.SysProcAttr = childAttr()
	cmd.WaitDelay = waitDelay
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	cmd.Stderr = &h.out
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan struct{})
	h.cmd, h.done, h.killed = cmd, done, false
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		ok := false
		for sc.Scan() {
			fmt.Fprintln(&h.out, sc.Text())
			if !ok && strings.Contains(sc.Text(), "listening on ws://") {
				ok = true
				ready <- true
			}
		}
		if !ok {
			ready <- false
		}
		_ = cmd.Wait() // after the last read (see exec.Cmd.StdoutPipe)
		close(done)
	}()
	select {
	case ok := <-ready:
		if ok {
			return nil
		}
		h.kill9()
		return fmt.Errorf("hub %s did not start:\n%s", h.addr, h.out.String())
	case <-time.After(hubStartTimeout):
		dumpAndKill(cmd, done)
		return fmt.Errorf("hub %s did not start in %v:\n%s", h.addr, hubStartTimeout, h.out.String())
	}
}

func (h *hubProc) kill9() {
	h.killed = true
	_ = h.cmd.Process.Signal(syscall.SIGKILL)
	<-h.done // bounded: SIGKILL, then WaitDelay
}

// stop stops the hub (SIGTERM; a goroutine dump and SIGKILL after 15 s).
func (h *hubProc) stop() {
	if h.cmd == nil || h.exited() {
		return
	}
	h.killed = true
	_ = h.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-h.done:
	case <-time.After(15 * time.Second):
		dumpAndKill(h.cmd, h.done)
	}
}

// agentProc is one agent process (this test binary in agent mode).
type agentProc struct {
	cfg    soak.AgentConfig
	kind   string        // the reader kind
	remote *remoteReader // the campaign's side of a pcscd or serial reader
	hub    int           // the hub (and proxy) it syncs with
	wrap   []string      // a command line the agent runs under (prlimit)
	cmd    *exec.Cmd
	done   chan struct{} // closed when cmd has exited (after Wait)
	in     io.WriteCloser
	lines  chan string
	stderr syncBuffer
	kills  int
	step   step // what the campaign's goroutine for this agent is doing

	mu sync.Mutex // guards cmd, lines and done for other goroutines (kill)
}

// kill asks the agent for its goroutines and kills it (dumpAndKill),
// dropping what it still writes on stdout so that its reader, and so its
// Wait, can finish. Safe from any goroutine.
func (a *agentProc) kill() {
	a.mu.Lock()
	cmd, lines, done := a.cmd, a.lines, a.done
	a.mu.Unlock()
	if cmd == nil {
		return
	}
	go func() {
		for range lines {
		}
	}()
	dumpAndKill(cmd, done)
}

func (a *agentProc) name() string { return fmt.Sprintf("agent %s (%s)", a.cfg.TerminalID, a.kind) }

// start starts the agent process and waits for its "ready" (at most
// agentStartWait).
func (a *agentProc) start() error {
	cfg, err := json.Marshal(a.cfg)
	if err != nil {
		return err
	}
	args := append(append([]string(nil), a.wrap...), os.Args[0], "-test.run=^$")
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(os.Environ(), agentEnv+"="+string(cfg), "GODEBUG=cpu.adx=off", "FORCE_SM4BLOCK_AESNI=1")
	cmd.SysProcAttr = childAttr()
	cmd.WaitDelay = waitDelay
	cmd.Stderr = &a.stderr
	if a.in, err = cmd.StdinPipe(); err != nil {
		return err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	lines := make(chan string, 4)
	done := make(chan struct{})
	a.mu.Lock()
	a.cmd, a.lines, a.done = cmd, lines, done
	a.mu.Unlock()
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		// Wait only after the last read (see exec.Cmd.StdoutPipe).
		_ = cmd.Wait()
		close(done)
	}()
	r, err := a.read("start", agentStartWait)
	if err != nil {
		return err
	}
	if r.Class != "ready" {
		return fmt.Errorf("%s: start: %+v", a.name(), r)
	}
	return nil
}

// read waits for the agent's next reply, at most timeout. An agent that
// does not answer in time is stuck: its goroutines are dumped and it is
// killed, and the error names the agent and the step (what) and holds
// the dump.
func (a *agentProc) read(what string, timeout time.Duration) (soak.Reply, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case l, ok := <-a.lines:
		if !ok {
			<-a.done // bounded: the process's output ended; WaitDelay
			return soak.Reply{}, fmt.Errorf("%s exited during %s (%v): %s", a.name(), what, a.cmd.ProcessState, tail(a.stderr.String(), 8<<10))
		}
		var r soak.Reply
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			return soak.Reply{}, fmt.Errorf("%s: %s: bad reply %q: %w", a.name(), what, l, err)
		}
		return r, nil
	case <-t.C:
		a.kill()
		return soak.Reply{}, fmt.Errorf("%s stuck: no reply to %s in %v; killed it; its stderr and goroutines:\n%s",
			a.name(), what, timeout, tail(a.stderr.String(), 64<<10))
	}
}

func (a *agentProc) send(c soak.Command) error {
	b, err := json.Marshal(c)
	if err != nil {
		return err
	}
	// The agent reads one line per command; a line never fills the pipe,
	// so the write does not block on a live agent, and fails on a dead one.
	if _, err := a.in.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("%s: send %s: %w", a.name(), c.Op, err)
	}
	return nil
}

func describe(c soak.Command) string {
	s := fmt.Sprintf("%s card %d", c.Op, c.Card)
	if c.Fault != "" {
		s += " fault " + c.Fault
	}
	return s
}

func (a *agentProc) do(c soak.Command) (soak.Reply, error) {
	if err := a.send(c); err != nil {
		return soak.Reply{}, err
	}
	return a.read(describe(c), replyTimeout)
}

// killDuring sends c and kills the process with SIGKILL after d, then
// starts it again (it recovers its journal).
func (a *agentProc) killDuring(c soak.Command, d time.Duration) error {
	if err := a.send(c); err != nil {
		return err
	}
	time.Sleep(d)
	_ = a.cmd.Process.Signal(syscall.SIGKILL)
	for range a.lines {
	}
	<-a.done // bounded: SIGKILL, then WaitDelay
	a.kills++
	return a.start()
}

// quit asks the agent to stop and waits for it (at most quitTimeout); an
// agent that does not exit is stuck: the error holds its goroutines.
func (a *agentProc) quit() error {
	if a.cmd == nil {
		return nil
	}
	select {
	case <-a.done:
		return nil
	default:
	}
	_ = a.send(soak.Command{Op: soak.OpQuit})
	_ = a.in.Close()
	select {
	case <-a.done:
		return nil
	case <-time.After(quitTimeout):
	}
	a.kill()
	return fmt.Errorf("%s stuck: did not exit within %v of quit; its stderr and goroutines:\n%s",
		a.name(), quitTimeout, tail(a.stderr.String(), 64<<10))
}

// watchAgents waits until done is closed, and returns "" then. When no
// agent has finished an operation for agentGrace, it returns what every
// unfinished agent is doing instead.
func watchAgents(done <-chan struct{}, agents []*agentProc, cnt *counters) string {
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	last, since := cnt.count(), time.Now()
	for {
		select {
		case <-done:
			return ""
		case <-tick.C:
		}
		if n := cnt.count(); n != last {
			last, since = n, time.Now()
			continue
		}
		if time.Since(since) < agentGrace {
			continue
		}
		var b strings.Builder
		fmt.Fprintf(&b, "no operation finished for %v; stuck:", agentGrace)
		for _, a := range agents {
			if st := a.step.String(); !strings.HasPrefix(st, "finished") {
				fmt.Fprintf(&b, "\n  %s: %s", a.name(), st)
			}
		}
		fmt.Fprintf(&b, "\nthe campaign's goroutines:\n%s", goroutines())
		return b.String()
	}
}

// goroutines returns the stacks of the test binary's goroutines.
func goroutines() string {
	var b strings.Builder
	_ = pprof.Lookup("goroutine").WriteTo(&b, 2)
	return b.String()
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func buildOnecard(t *testing.T, dir string) string {
	t.Helper()
	if bin := os.Getenv("ONECARD_BIN"); bin != "" {
		return bin
	}
	bin := filepath.Join(dir, "onecard")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/onecard").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// counters tallies operations and faults across goroutines.
type counters struct {
	mu      sync.Mutex
	ops     int
	faults  map[string]int
	classes map[string]int
}

func (c *counters) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ops
}

func (c *counters) op(class string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ops++
	c.classes[class]++
}

func (c *counters) fault(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.faults[name]++
}

func (c *counters) totalFaults() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, v := range c.faults {
		n += v
	}
	return n
}

// TestSoak is the soak and fault campaign (see the package doc): agents
// as processes against hub processes behind cutting proxies (one hub on
// bbolt; two on PostgreSQL with ONECARD_SOAK_PG=1 or in the long
// variant), agent 0's cards behind pcscd/vpcd and agent 1's behind a pty
// serial reader, a seeded mix of operations and faults, then the
// three-way reconciliation.
func TestSoak(t *testing.T) {
	if testing.Short() {
		t.Skip("soak campaign: not in -short")
	}
	set := campaignSettings(t)
	prlimit, err := exec.LookPath("prlimit")
	if err != nil {
		t.Fatalf("prlimit (util-linux) runs an agent with a file size limit: %v", err)
	}
	dir := t.TempDir()
	bin := buildOnecard(t, dir)
	ctx, cancelAll := context.WithCancel(context.Background())
	defer cancelAll()

	keys, err := sm.TestKeySet(keyLabel)
	if err != nil {
		t.Fatal(err)
	}
	keysFile := filepath.Join(dir, "issuer-keys.json")
	if err := keys.Save(keysFile); err != nil {
		t.Fatal(err)
	}
	cardYAML, err := os.ReadFile(filepath.Join("..", "testdata", "cards", "ssc-gen3.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	psamYAML, err := os.ReadFile(filepath.Join("..", "testdata", "cards", "psam.yaml"))
	if err != nil {
		t.Fatal(err)
	}

	// The books, written before the hub processes start: a bbolt file the
	// hub then takes over, or a PostgreSQL database the two hubs share
	// (this store stays open: it reads the ledger at the end).
	var (
		st        store.Store
		pg        *pgtest.Server
		storeSpec string
		storeFile = filepath.Join(dir, "hub.db")
	)
	if set.pg {
		pg = pgtest.New(t)
		storeSpec = pg.CreateDB(t)
		if st, err = pgstore.Open(ctx, pgstore.Options{DSN: storeSpec}); err != nil {
			t.Fatal(err)
		}
		defer st.Close()
	} else {
		storeSpec = "bbolt:" + storeFile
		if st, err = boltstore.Open(boltstore.Options{Path: storeFile}); err != nil {
			t.Fatal(err)
		}
	}
	led, err := ledger.New(ledger.Options{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	if err := led.CreateProgramme(ctx, store.Programme{ID: programme, Name: "soak subsidy", Fund: fund}); err != nil {
		t.Fatal(err)
	}
	if _, err := led.Fund(ctx, ledger.Request{Ref: "fund-1", Programme: programme, Amount: 1 << 40}); err != nil {
		t.Fatal(err)
	}
	nHubs := 1
	if set.pg {
		nHubs = 2
	}
	agents := make([]*agentProc, set.agents)
	var views []soak.CardView
	var pcscEnv *pcsctest.Env
	var pcscAgent *agentProc
	pcscGate := &sync.RWMutex{}
	for i := range agents {
		adir := filepath.Join(dir, fmt.Sprintf("agent%02d", i))
		if err := os.MkdirAll(adir, 0o700); err != nil {
			t.Fatal(err)
		}
		term := fmt.Sprintf("3301000002%02d", i+1)
		cfg := soak.AgentConfig{Dir: adir, TerminalID: term, HubID: hubID, KeyLabel: keyLabel, PIN: pin,
			KeyFile: filepath.Join(adir, "terminal.pem"), PSAM: filepath.Join(adir, "psam.yaml")}
		ps := strings.Replace(string(psamYAML), `terminal: "330100000001"`, `terminal: "`+term+`"`, 1)
		if err := os.WriteFile(cfg.PSAM, []byte(ps), 0o600); err != nil {
			t.Fatal(err)
		}
		var cards []*simcard.SSC
		for k := 0; k < set.cards; k++ {
			id := fmt.Sprintf("330100D15600000593E4B702%04X%04X", 0x6000+i, k)
			f := filepath.Join(adir, fmt.Sprintf("card%d.yaml", k))
			body := strings.Replace(string(cardYAML), "330100D15600000593E4B7026C1AF5D8", id, 1)
			if err := os.WriteFile(f, []byte(body), 0o600); err != nil {
				t.Fatal(err)
			}
			c, err := simcard.LoadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			ssc := c.(*simcard.SSC)
			cards = append(cards, ssc)
			cid, err := record.ParseCardID(id)
			if err != nil {
				t.Fatal(err)
			}
			open := int64(ssc.EP().Balance) + int64(ssc.ED().Balance)
			views = append(views, soak.CardView{ID: cid, Opening: open,
				OfflineStart: ssc.EP().OfflineSeq + ssc.ED().OfflineSeq, OnlineStart: ssc.EP().OnlineSeq + ssc.ED().OnlineSeq})
			if _, err := led.OpeningBalance(ctx, ledger.Request{Ref: "open/" + id, Card: cid, Fund: fund, Amount: open}); err != nil {
				t.Fatal(err)
			}
			if _, err := led.Grant(ctx, ledger.Request{Ref: "grant/" + id, Programme: programme, Card: cid, Amount: 1 << 30}); err != nil {
				t.Fatal(err)
			}
			cfg.Cards = append(cfg.Cards, f)
		}
		a := &agentProc{cfg: cfg, kind: kindInProcess, hub: i % nHubs}
		if i == 2 {
			// The full disk of this kiosk: a real file size limit, hit
			// early in the run (see journalFileLimit).
			a.wrap = []string{prlimit, fmt.Sprintf("--fsize=%d", journalFileLimit), "--"}
			a.kind += ", journal file limit"
		}
		if set.remote && i < 2 {
			// The campaign holds this agent's cards (state beside the
			// files) and its PSAM behind a real reader path.
			psam, err := simcard.LoadFile(cfg.PSAM)
			if err != nil {
				t.Fatal(err)
			}
			if i == 0 {
				a.remote, pcscEnv = startPCSC(t, ctx, &a.cfg, cards, psam)
				a.remote.gate, a.kind, pcscAgent = pcscGate, kindPCSC, a
			} else {
				a.remote, a.kind = startSerial(t, ctx, &a.cfg, cards, psam), kindSerial
			}
		}
		agents[i] = a
	}
	if !set.pg {
		if err := st.Close(); err != nil {
			t.Fatal(err)
		}
	}

	// The hub processes, each behind a proxy the campaign cuts.
	hubs := make([]*hubProc, nHubs)
	proxies := make([]*soak.Proxy, nHubs)
	for h := range hubs {
		addr := freePort(t)
		hubs[h] = &hubProc{bin: bin, addr: addr, args: []string{"hub", "--store", storeSpec, "--keys", keysFile, "--listen", addr, "--hub-id", hubID}}
		if err := hubs[h].start(); err != nil {
			t.Fatal(err)
		}
		defer hubs[h].stop()
		if proxies[h], err = soak.NewProxy(addr); err != nil {
			t.Fatal(err)
		}
		defer proxies[h].Close()
	}
	defer func() {
		if t.Failed() {
			for h, hub := range hubs {
				t.Logf("hub %d output:\n%s", h, hub.out.String())
			}
			for _, a := range agents {
				t.Logf("agent %s stderr:\n%s", a.cfg.TerminalID, a.stderr.String())
			}
		}
	}()
	// operator: the running hub's admin socket (bbolt), or the shared
	// database itself (PostgreSQL).
	operator := func() (server.Operator, error) {
		if set.pg {
			return &server.Ops{Store: st, Ledger: led}, nil
		}
		return server.DialAdmin(server.AdminSocket(storeFile))
	}

	// Enrolment: the operator's token and approval, the terminal's own key.
	op, err := operator()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range agents {
		key, err := sm.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		if err := sm.SavePrivateKeyPEM(a.cfg.KeyFile, key); err != nil {
			t.Fatal(err)
		}
		token, err := op.Invite(ctx, a.cfg.TerminalID, "soak kiosk", false)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := client.Enroll(ctx, client.EnrollOptions{URL: "ws://" + hubs[a.hub].addr + "/sync", HubID: hubID, TerminalID: a.cfg.TerminalID, Token: token, Key: key}); err != nil {
			t.Fatal(err)
		}
		if _, err := op.Approve(ctx, a.cfg.TerminalID); err != nil {
			t.Fatal(err)
		}
		a.cfg.HubURL = "ws://" + proxies[a.hub].Addr() + "/sync"
		if err := a.start(); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = a.quit() }()
	}

	cnt := &counters{faults: map[string]int{}, classes: map[string]int{}}
	deadline := time.Now().Add(set.duration)
	more := func(n int) bool {
		if set.duration > 0 {
			return time.Now().Before(deadline)
		}
		return n < set.opsEach
	}

	// The system faults, on their own seeded schedule of operation counts
	// (so the short variant injects them whatever the machine's speed):
	// connection cuts, a SIGKILL of a hub, a card reported lost, pcscd
	// restarts, PostgreSQL restarts. The next fault is due a few
	// operations after the previous one ENDED: a restart takes seconds,
	// in which the agents run many operations, and a schedule counted
	// from the start would fall ever further behind and keep injecting
	// its backlog long after the agents stopped (the long run's hang).
	// The injector stops at the next fault boundary once stopFaults is
	// closed; each of its steps is bounded (faultStepTimeout).
	var hubMu sync.Mutex // held while a hub is down or being restarted
	stopFaults := make(chan struct{})
	faultsDone := make(chan struct{})
	hubErr := make(chan error, 2)
	gtb := goroutineTB{TB: t, errs: hubErr}
	var faultStep step
	go func() {
		defer close(faultsDone)
		rng := mrand.New(mrand.NewPCG(set.seed, 1<<32))
		next := 5
		for n := 0; ; n++ {
			faultStep.set("waiting for operation %d", next)
			for cnt.count() < next {
				select {
				case <-stopFaults:
					return
				case <-time.After(10 * time.Millisecond):
				}
			}
			select {
			case <-stopFaults:
				return
			default:
			}
			x := rng.IntN(10)
			h := rng.IntN(nHubs)
			gap := 4 + rng.IntN(12)
			switch {
			case n == 2: // the lost card, once
				faultStep.set("report card %s lost", views[1].ID)
				o, err := operator()
				if err == nil {
					_, err = o.SetLost(ctx, views[1].ID, true)
				}
				if err != nil {
					hubErr <- fmt.Errorf("report card lost: %w", err)
					return
				}
				cnt.fault("card reported lost")
			case pcscEnv != nil && (n == 3 || x == 3):
				faultStep.set("pcscd restart (waiting for agent %s's card presentation to end)", pcscAgent.cfg.TerminalID)
				err := func() error {
					pcscGate.Lock()
					defer pcscGate.Unlock()
					faultStep.set("pcscd restart")
					pcscEnv.Restart(gtb)
					// The bridge, not the test's bookkeeping, knows whether
					// a card is in the slot: a torn card left it empty.
					faultStep.set("after the pcscd restart: wait for the PSAM and the user card")
					return waitPCSCCards(ctx, pcscAgent.cfg, pcscAgent.remote.inserted())
				}()
				if err != nil {
					hubErr <- fmt.Errorf("after the pcscd restart: %w", err)
					return
				}
				cnt.fault("pcscd restart")
			case pg != nil && (n == 4 || x == 4):
				faultStep.set("PostgreSQL restart")
				pg.Restart(gtb)
				cnt.fault("PostgreSQL restart")
			case n == 1 || x < 3:
				faultStep.set("hub %d SIGKILL and restart", h)
				hubMu.Lock()
				hubs[h].kill9()
				cnt.fault("hub SIGKILL")
				time.Sleep(time.Duration(100+rng.IntN(400)) * time.Millisecond)
				err := hubs[h].start()
				hubMu.Unlock()
				if err != nil {
					hubErr <- err
					return
				}
			default:
				proxies[h].CutAll()
				cnt.fault("connection cut")
			}
			next = cnt.count() + gap
		}
	}()

	// The agents: each its own seeded mix of operations and agent-side faults.
	var wg sync.WaitGroup
	errs := make(chan error, len(agents))
	for i, a := range agents {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer a.step.set("finished")
			rng := mrand.New(mrand.NewPCG(set.seed, uint64(i)))
			full := false // the agent refused a transaction: journal full
			for n := 0; more(n); n++ {
				c := soak.Command{Card: rng.IntN(set.cards), Fund: fund}
				switch x := rng.IntN(100); {
				case x < 15:
					c.Op = soak.OpIdentity
				case x < 55:
					c.Op, c.Amount, c.Merchant = soak.OpPay, uint32(1+rng.IntN(2000)), fmt.Sprintf("pharmacy-%02d", rng.IntN(3))
				case x < 70:
					c.Op, c.Amount, c.Programme = soak.OpLoad, uint32(100+rng.IntN(3000)), programme
				default:
					c.Op, c.Programme = soak.OpCertify, programme
				}
				kill := time.Duration(-1)
				if c.Op == soak.OpPay || c.Op == soak.OpLoad {
					switch x := rng.IntN(100); {
					case x < 8:
						c.Fault = soak.FaultTorn
					case x < 16:
						c.Fault, c.PullAt = soak.FaultPull, 1+rng.IntN(12)
					case x < 22 && c.Op == soak.OpPay:
						c.Fault = soak.FaultWrongPIN
					case x < 27:
						// SIGKILL of the agent in the middle of the operation.
						kill = time.Duration(rng.IntN(60)) * time.Millisecond
					}
				}
				if a.wrap != nil && !full {
					// The full-disk kiosk is killed only once its disk is
					// full, so every run sees it refuse a transaction.
					kill = -1
				}
				if a.remote != nil {
					a.step.set("operation %d: present card %d", n, c.Card)
					if err := a.remote.prepare(ctx, &c); err != nil {
						errs <- fmt.Errorf("%s: operation %d: %w", a.name(), n, err)
						return
					}
				}
				if kill >= 0 {
					a.step.set("operation %d: %s, SIGKILL after %v and restart", n, describe(c), kill)
					err := a.killDuring(c, kill)
					if a.remote != nil {
						a.remote.finish(c)
					}
					if err != nil && a.wrap != nil && strings.Contains(err.Error(), syscall.EFBIG.Error()) {
						// A kiosk whose disk is full cannot recover its
						// journal (marking its prepared records uncertain
						// is a write): it stays down until the closing
						// frees the disk.
						cnt.op("killed")
						cnt.fault("agent SIGKILL")
						cnt.fault("kiosk down: journal cannot recover on the full disk")
						t.Logf("%s: down after a SIGKILL: %v", a.name(), err)
						return
					}
					if err != nil {
						errs <- err
						return
					}
					cnt.op("killed")
					cnt.fault("agent SIGKILL")
					continue
				}
				a.step.set("operation %d: %s", n, describe(c))
				r, err := a.do(c)
				if a.remote != nil {
					a.step.set("operation %d: %s: take the card back", n, describe(c))
					a.remote.finish(c)
				}
				if err != nil {
					errs <- err
					return
				}
				cnt.op(r.Class)
				switch {
				case c.Fault != "":
					cnt.fault(c.Fault)
				case r.Class == soak.ClassFull:
					full = true
					cnt.fault("journal full")
				}
				if r.Class == soak.ClassError {
					t.Logf("agent %s (%s) %s: %s", a.cfg.TerminalID, a.kind, c.Op, r.Err)
				}
			}
		}()
	}
	// Every step of an agent's loop is bounded, so the loop ends; the
	// watchdog turns a step that does not end anyway into a failure that
	// names it, rather than a hang.
	agentsDone := make(chan struct{})
	go func() { wg.Wait(); close(agentsDone) }()
	if msg := watchAgents(agentsDone, agents, cnt); msg != "" {
		cancelAll()
		close(stopFaults)
		for _, a := range agents {
			a.kill()
		}
		select {
		case <-agentsDone:
		case <-time.After(time.Minute):
			debug.SetTraceback("all")
			panic("soak: agent goroutines still stuck after their processes were killed: " + msg)
		}
		t.Fatalf("soak: %s", msg)
	}
	close(stopFaults)
	select {
	case <-faultsDone:
	case <-time.After(faultStepTimeout):
		t.Fatalf("soak: the fault injector is stuck in %s; the campaign's goroutines:\n%s", &faultStep, goroutines())
	}
	close(hubErr)
	for err := range hubErr {
		t.Fatal(err)
	}
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	// Closing: the hubs up, every card settled on its agent, every journal
	// drained, the agents stopped.
	hubMu.Lock()
	for h, hub := range hubs {
		if hub.exited() {
			if !hub.killed {
				t.Errorf("hub %d exited on its own (%v):\n%s", h, hub.cmd.ProcessState, tail(hub.out.String(), 16<<10))
			}
			if err := hub.start(); err != nil {
				t.Fatal(err)
			}
		}
	}
	hubMu.Unlock()
	for _, a := range agents {
		if a.wrap != nil {
			// The operator frees the full disk: the agent starts again
			// without the limit, recovers its journal, and its settles
			// and drain below advance what the full disk held back.
			if err := a.quit(); err != nil {
				t.Error(err)
			}
			a.wrap, a.kind = nil, kindInProcess+", disk freed"
			if err := a.start(); err != nil {
				t.Fatalf("%s: closing: %v", a.name(), err)
			}
		}
		for k := 0; k < set.cards; k++ {
			c := soak.Command{Op: soak.OpSettle, Card: k}
			if a.remote != nil {
				if err := a.remote.prepare(ctx, &c); err != nil {
					t.Fatalf("%s: closing: %v", a.name(), err)
				}
			}
			r, err := a.do(c)
			if a.remote != nil {
				a.remote.finish(c)
			}
			if err != nil || r.Class == soak.ClassError || r.Class == soak.ClassReader {
				t.Logf("settle %s card %d: %+v %v", a.cfg.TerminalID, k, r, err)
			}
		}
		r, err := a.do(soak.Command{Op: soak.OpDrain, TimeoutMS: 60_000})
		if err != nil || r.Class != soak.ClassOK {
			t.Errorf("drain %s: %+v %v", a.cfg.TerminalID, r, err)
		}
		if err := a.quit(); err != nil {
			t.Error(err)
		}
	}
	for _, hub := range hubs {
		hub.stop()
	}
	for _, a := range agents {
		if a.remote != nil {
			n := a.remote.stats()
			if n == 0 {
				t.Errorf("agent %s (%s): no command reached the reader", a.cfg.TerminalID, a.kind)
			}
			t.Logf("agent %s (%s): %d reader commands, %d kills", a.cfg.TerminalID, a.kind, n, a.kills)
		}
	}

	// The three views.
	in := soak.Input{Ledger: map[record.CardID]int64{}}
	for ai, a := range agents {
		j, err := journal.Open(a.cfg.JournalPath(), &journal.Options{ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		es, err := j.List(0, 1<<20)
		j.Close()
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range es {
			in.Journals = append(in.Journals, soak.JournalRecord{Terminal: a.cfg.TerminalID, Entry: e})
			if e.State == journal.Uncertain {
				t.Logf("uncertain: terminal %s seq %d %s card %s counter %d: %s", a.cfg.TerminalID, e.Seq,
					e.Record.Kind, e.Record.CardID, e.Record.CardCounter, e.Reason)
			}
		}
		for k, f := range a.cfg.Cards {
			c, err := simcard.LoadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			ssc := c.(*simcard.SSC)
			v := &views[ai*set.cards+k]
			v.Final = int64(ssc.EP().Balance) + int64(ssc.ED().Balance)
			v.OfflineEnd = ssc.EP().OfflineSeq + ssc.ED().OfflineSeq
			v.OnlineEnd = ssc.EP().OnlineSeq + ssc.ED().OnlineSeq
		}
	}
	in.Cards = views
	if !set.pg {
		if st, err = boltstore.Open(boltstore.Options{Path: storeFile}); err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		if led, err = ledger.New(ledger.Options{Store: st}); err != nil {
			t.Fatal(err)
		}
	}
	for _, a := range agents {
		ps, err := st.Postings(ctx, store.Query{TerminalNo: a.cfg.TerminalID, Limit: 1 << 20})
		if err != nil {
			t.Fatal(err)
		}
		in.Postings = append(in.Postings, ps...)
	}
	for _, v := range views {
		if in.Ledger[v.ID], err = led.Balance(ctx, v.ID, fund); err != nil {
			t.Fatal(err)
		}
	}
	if in.Dead, err = st.DeadLetters(ctx, 0, 0); err != nil {
		t.Fatal(err)
	}
	for _, d := range in.Dead {
		kind, card := "?", "?"
		if r, err := record.Decode(d.Content); err == nil {
			kind, card = r.Kind.String(), r.CardID.String()
		}
		t.Logf("dead letter %s (%s, card %s, %d time(s)): %s", d.Key, kind, card, d.Count, d.Reason)
	}
	if err := st.Check(ctx); err != nil {
		t.Errorf("ledger invariants: %v", err)
	}
	cnt.mu.Lock()
	in.Operations = cnt.ops
	t.Logf("store %s, %d hub(s); faults: %v; outcomes: %v", strings.SplitN(storeSpec, ":", 2)[0], nHubs, cnt.faults, cnt.classes)
	cnt.mu.Unlock()
	in.Faults = cnt.totalFaults()
	res := soak.Reconcile(in)
	var b strings.Builder
	res.Print(&b)
	t.Logf("three views (card | journals | ledger):\n%s", b.String())
	t.Log(res.Summary())
	fmt.Println(res.Summary())
	for _, p := range res.Problems {
		t.Error(p)
	}
	if !res.OK() {
		t.Fatalf("soak failed: %s", res.Summary())
	}
	if in.Faults == 0 || res.Lost != 0 || res.Duplicated != 0 {
		t.Fatalf("soak: %s", res.Summary())
	}
}
