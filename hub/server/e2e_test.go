package server_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/onecard-hub/onecard/hub/client"
	"github.com/onecard-hub/onecard/hub/ledger"
	"github.com/onecard-hub/onecard/hub/server"
	"github.com/onecard-hub/onecard/hub/server/servertest"
	"github.com/onecard-hub/onecard/hub/store"
	"github.com/onecard-hub/onecard/sm"
	"github.com/onecard-hub/onecard/terminal/journal"
	"github.com/onecard-hub/onecard/terminal/journal/journaltest"
)

const term1 = "370100000001"

// agent is a terminal under test: key, journal and client options.
type agent struct {
	term string
	key  *sm.PrivateKey
	j    *journal.Journal
	opts client.Options
}

func newAgent(t *testing.T, term string, h *servertest.Hub) *agent {
	t.Helper()
	a := &agent{term: term, key: servertest.TerminalKey(t)}
	dir := t.TempDir()
	a.j = journaltest.MustOpenPath(t, filepath.Join(dir, "journal.db"), nil)
	a.opts = client.Options{
		URL: h.URL, Pin: h.Pin, HubID: servertest.HubID, TerminalID: term, Key: a.key, Journal: a.j,
		MinBackoff: 10 * time.Millisecond, MaxBackoff: 200 * time.Millisecond,
		PollInterval: 50 * time.Millisecond, RequestTimeout: 10 * time.Second, DialTimeout: 5 * time.Second,
	}
	return a
}

func (a *agent) client(t *testing.T) *client.Client {
	t.Helper()
	c, err := client.New(a.opts)
	if err != nil {
		t.Fatalf("new client: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// testCards are the cards the tests' records use (with opening balances).
var testCards = append(servertest.Cards(1, 20), servertest.Card(50), servertest.Card(200), servertest.Card(201))

// startHub runs a hub on a fresh store whose books have the test
// programme and the test cards' opening balances.
func startHub(t *testing.T, tlsOn bool, mod func(*server.Options)) (*servertest.Hub, store.Store, *ledger.Ledger) {
	t.Helper()
	st := servertest.OpenStore(t, "", false)
	led, adapter := servertest.Books(t, st, testCards...)
	opts := server.Options{Store: st, Ledger: adapter, PingInterval: time.Second}
	if mod != nil {
		mod(&opts)
	}
	return servertest.Start(t, opts, tlsOn), st, led
}

// wantStates fails unless every record of the journal is in state want.
func wantStates(t *testing.T, j *journal.Journal, want journal.State, n int) {
	t.Helper()
	st, err := j.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.Counts[want] != n || st.Records != n {
		t.Fatalf("journal: %d records, counts %v; want all %d %s", st.Records, st.Counts, n, want)
	}
}

// balanceOf returns an account's balance, failing the test on an error.
func balanceOf(t *testing.T, st store.Store, account string) int64 {
	t.Helper()
	got, err := st.Balance(context.Background(), account)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func wantBalance(t *testing.T, st store.Store, account string, want int64) {
	t.Helper()
	if got := balanceOf(t, st, account); got != want {
		t.Fatalf("balance of %s = %d, want %d", account, got, want)
	}
}

func TestSyncEndToEnd(t *testing.T) {
	for _, tlsOn := range []bool{false, true} {
		name := "ws"
		if tlsOn {
			name = "wss-pinned"
		}
		t.Run(name, func(t *testing.T) {
			h, st, _ := startHub(t, tlsOn, nil)
			a := newAgent(t, term1, h)
			servertest.Register(t, st, term1, a.key.PublicKey())
			keys := servertest.Keys(t)
			const n, amount = 530, 125
			servertest.Fill(t, a.j, keys, term1, 1, 7, n, amount)
			a.opts.BatchSize = 64
			c := a.client(t)
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			if err := c.Sync(ctx); err != nil {
				t.Fatalf("sync: %v", err)
			}
			wantStates(t, a.j, journal.Cleared, n)
			wantBalance(t, st, servertest.MerchantAccount, n*amount)
			s, err := c.Status()
			if err != nil {
				t.Fatal(err)
			}
			if s.Accepted != n || s.Waiting != 0 || s.Rejected != 0 {
				t.Fatalf("status %+v", s)
			}
			hs := h.Server.Stats()
			if hs.Accepted != n || hs.Rejected != 0 {
				t.Fatalf("hub stats %+v", hs)
			}
			// A second sync has nothing to send; the hub's high-water mark
			// is the last sequence.
			if err := c.Sync(ctx); err != nil {
				t.Fatalf("second sync: %v", err)
			}
			js, _ := a.j.Stats()
			if js.HubAck != js.HighWater {
				t.Fatalf("hub ack %d, high water %d", js.HubAck, js.HighWater)
			}
			if err := st.Check(ctx); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestSyncSmallFrames: a hub with a small frame limit still gets
// everything: the client cuts its batches to fit.
func TestSyncSmallFrames(t *testing.T) {
	keys := servertest.Keys(t)
	h, st, _ := startHub(t, false, func(o *server.Options) { o.MaxMessage = 16 << 10 })
	a := newAgent(t, term1, h)
	servertest.Register(t, st, term1, a.key.PublicKey())
	const n = 200
	servertest.Fill(t, a.j, keys, term1, 1, 10, n, 2)
	a.opts.BatchSize = 256
	if err := a.client(t).Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	wantStates(t, a.j, journal.Cleared, n)
	if b := h.Server.Stats().Batches; b < 4 {
		t.Fatalf("%d batches for %d records in 16 KiB frames", b, n)
	}
	wantBalance(t, st, servertest.MerchantAccount, n*2)
}
