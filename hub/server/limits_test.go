package server_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/onecard-hub/onecard/hub/client"
	"github.com/onecard-hub/onecard/hub/ledger"
	"github.com/onecard-hub/onecard/hub/store"
	"github.com/onecard-hub/onecard/terminal/record"

	"github.com/onecard-hub/onecard/hub/server"
	"github.com/onecard-hub/onecard/hub/server/servertest"
	hubsync "github.com/onecard-hub/onecard/hub/sync"
	"github.com/onecard-hub/onecard/terminal/journal"
)

// TestSyncRateLimit: a terminal over its rate is told to retry and still
// gets everything posted, once.
func TestSyncRateLimit(t *testing.T) {
	keys := servertest.Keys(t)
	h, st, _ := startHub(t, false, func(o *server.Options) {
		o.Rate, o.Burst, o.MaxRateWait, o.MaxBatch = 400, 50, 20*time.Millisecond, 50
	})
	a := newAgent(t, term1, h)
	servertest.Register(t, st, term1, a.key.PublicKey())
	const n = 300
	servertest.Fill(t, a.j, keys, term1, 1, 10, n, 3)
	a.opts.BatchSize, a.opts.Window = 50, 4
	c, _ := runAgent(t, a)
	waitFor(t, "all cleared", func() bool { s, _ := c.Status(); return s.Waiting == 0 })
	wantStates(t, a.j, journal.Cleared, n)
	wantBalance(t, st, servertest.MerchantAccount, n*3)
	if s, _ := c.Status(); s.Retried == 0 || h.Server.Stats().Retried == 0 {
		t.Fatalf("no retry was asked: client %+v, hub %+v", s, h.Server.Stats())
	}
}

// outageHub starts a hub whose ledger fails ("database down") until
// flaky.SetFail(nil), and an enrolled agent with 12 purchases of 5 fen
// journaled.
func outageHub(t *testing.T) (*servertest.FlakyLedger, store.Store, *agent) {
	t.Helper()
	var flaky *servertest.FlakyLedger
	h, st, _ := startHub(t, false, func(o *server.Options) {
		flaky = &servertest.FlakyLedger{Ledger: o.Ledger}
		o.Ledger = flaky
	})
	flaky.SetFail(errors.New("database down"))
	a := newAgent(t, term1, h)
	servertest.Register(t, st, term1, a.key.PublicKey())
	servertest.Fill(t, a.j, servertest.Keys(t), term1, 1, 3, 12, 5)
	return flaky, st, a
}

// TestSyncLedgerOutage: while the ledger fails the records are retried,
// never lost nor dead-lettered.
func TestSyncLedgerOutage(t *testing.T) {
	flaky, st, a := outageHub(t)
	c := a.client(t)
	if err := c.Sync(context.Background()); !errors.Is(err, errRetryLater()) {
		t.Fatalf("sync during the outage: %v", err)
	}
	wantStates(t, a.j, journal.Sent, 12)
	flaky.SetFail(nil)
	if err := c.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	wantStates(t, a.j, journal.Cleared, 12)
	wantBalance(t, st, servertest.MerchantAccount, 60)
}

// TestSyncKickDuringRetryPause: kicks while the uploader sits out a
// pause the hub asked for (AckRetry) neither cut the pause short nor
// stall the uploader: it sends again when the pause ends, posts
// everything once the ledger is back, and Run returns when its context
// ends. (The uploader used to wait on the channel of a timer it had just
// stopped, and hung at the first kick in a pause.)
func TestSyncKickDuringRetryPause(t *testing.T) {
	flaky, _, a := outageHub(t)
	a.opts.MinBackoff, a.opts.MaxBackoff = 50*time.Millisecond, 200*time.Millisecond
	c := a.client(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	go func() { // a kiosk journaling records: a kick after each
		for ctx.Err() == nil {
			c.Kick()
			time.Sleep(time.Millisecond)
		}
	}()
	waitFor(t, "retries", func() bool { s, _ := c.Status(); return s.Retried >= 3 })
	flaky.SetFail(nil)
	waitFor(t, "all cleared after the outage", func() bool { s, _ := c.Status(); return s.Waiting == 0 })
	wantStates(t, a.j, journal.Cleared, 12)
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Run returned %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return 10 s after its context ended")
	}
}

// TestSyncSlowReader: a peer that sends requests and never reads the
// answers is disconnected; memory stays bounded and others are served.
func TestSyncSlowReader(t *testing.T) {
	h, st, led := startHub(t, false, func(o *server.Options) {
		o.SendQueue, o.WriteTimeout = 4, 300*time.Millisecond
		o.Rate, o.Burst = 1e6, 1e6
	})
	// Many credits for one card make every answer large.
	card := servertest.Card(1)
	for i := 0; i < 40; i++ {
		p := fmt.Sprintf("PROG-%02d", i)
		if err := led.CreateProgramme(context.Background(), storeProgramme(p)); err != nil {
			t.Fatal(err)
		}
		grantIn(t, led, p, card, 100)
	}
	no, key := "370100000077", servertest.TerminalKey(t)
	servertest.Register(t, st, no, key.PublicKey())
	r, err := servertest.DialRaw(h.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if m, err := r.Hello(no, key); err != nil {
		t.Fatal(err)
	} else if _, ok := m.(*hubsync.Welcome); !ok {
		t.Fatalf("hello answered %#v", m)
	}
	var sendErr error
	for i := 0; i < 200000 && sendErr == nil; i++ {
		sendErr = r.Send(uint64(i+1), &hubsync.CreditsQuery{CardID: card.String()})
		if h.Server.Stats().SlowDisconnects > 0 {
			break
		}
	}
	waitFor(t, "slow reader disconnected", func() bool { return h.Server.Stats().SlowDisconnects > 0 })
	waitFor(t, "session gone", func() bool { return h.Server.Stats().Sessions == 0 })
	// Someone else is still served.
	a := newAgent(t, term1, h)
	servertest.Register(t, st, term1, a.key.PublicKey())
	servertest.Fill(t, a.j, servertest.Keys(t), term1, 2, 2, 4, 1)
	if err := a.client(t).Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestSyncIdleTimeout: a connection that answers no ping is dropped.
func TestSyncIdleTimeout(t *testing.T) {
	h, st, _ := startHub(t, false, func(o *server.Options) {
		o.PingInterval, o.PongWait = 50*time.Millisecond, 300*time.Millisecond
	})
	no, key := "370100000078", servertest.TerminalKey(t)
	servertest.Register(t, st, no, key.PublicKey())
	r, err := servertest.DialRaw(h.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := r.Hello(no, key); err != nil {
		t.Fatal(err)
	}
	// Not reading means not answering pings.
	waitFor(t, "idle session dropped", func() bool { return h.Server.Stats().Sessions == 0 })
	// A client that reads (answers pings) stays.
	a := newAgent(t, term1, h)
	servertest.Register(t, st, term1, a.key.PublicKey())
	c, _ := runAgent(t, a)
	time.Sleep(600 * time.Millisecond)
	if s, _ := c.Status(); !s.Connected || h.Server.Stats().Sessions != 1 {
		t.Fatalf("live client dropped: %+v", s)
	}
}

// TestSyncIdleAgents connects N idle agents (ONECARD_IDLE_AGENTS, default
// 200) and reports the hub's goroutines and heap per connection; each
// connection must cost a bounded number of goroutines.
func TestSyncIdleAgents(t *testing.T) {
	n := envInt("ONECARD_IDLE_AGENTS", 200)
	h, st, _ := startHub(t, false, nil)
	runtime.GC()
	g0 := runtime.NumGoroutine()
	var m0 runtime.MemStats
	runtime.ReadMemStats(&m0)
	conns := make([]*servertest.Raw, 0, n)
	defer func() {
		for _, r := range conns {
			r.Close()
		}
	}()
	for i := 0; i < n; i++ {
		no, key := fmt.Sprintf("3702%08d", i), servertest.TerminalKey(t)
		servertest.Register(t, st, no, key.PublicKey())
		r, err := servertest.DialRaw(h.URL)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, r)
		if m, err := r.Hello(no, key); err != nil {
			t.Fatal(err)
		} else if _, ok := m.(*hubsync.Welcome); !ok {
			t.Fatalf("hello answered %#v", m)
		}
	}
	waitFor(t, "sessions", func() bool { return h.Server.Stats().Sessions == n })
	runtime.GC()
	var m1 runtime.MemStats
	runtime.ReadMemStats(&m1)
	// Per connection: the hub's reader and writer, the client side's
	// reader (none: Raw reads synchronously) and net/http's connection
	// goroutine is the reader.
	perConn := float64(runtime.NumGoroutine()-g0) / float64(n)
	heap := float64(int64(m1.HeapAlloc)-int64(m0.HeapAlloc)) / float64(n)
	t.Logf("%d idle agents: %.2f goroutines and %.0f bytes of heap per connection (both ends in one process)", n, perConn, heap)
	if perConn > 3 {
		t.Fatalf("%.2f goroutines per idle connection, want at most 3", perConn)
	}
}

func errRetryLater() error { return client.ErrRetryLater }

func storeProgramme(id string) store.Programme {
	return store.Programme{ID: id, Name: strings.Repeat("长", 80), Fund: servertest.Fund}
}

// grantIn funds programme and grants card amount fen of it.
func grantIn(t *testing.T, l *ledger.Ledger, programme string, card record.CardID, amount int64) {
	t.Helper()
	ctx := context.Background()
	if _, err := l.Fund(ctx, ledger.Request{Ref: "fund/" + programme, Programme: programme, Amount: amount}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Grant(ctx, ledger.Request{Ref: "grant/" + programme + "/" + card.String(), Programme: programme, Card: card, Amount: amount}); err != nil {
		t.Fatal(err)
	}
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}
