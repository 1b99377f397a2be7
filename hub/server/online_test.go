package server_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/onecard-hub/onecard/apdu"
	"github.com/onecard-hub/onecard/hub/client"
	"github.com/onecard-hub/onecard/hub/proof"
	"github.com/onecard-hub/onecard/hub/server"
	"github.com/onecard-hub/onecard/hub/server/servertest"
	"github.com/onecard-hub/onecard/hub/store"
	hubsync "github.com/onecard-hub/onecard/hub/sync"
	"github.com/onecard-hub/onecard/sm"
	"github.com/onecard-hub/onecard/terminal"
	"github.com/onecard-hub/onecard/terminal/journal"
	"github.com/onecard-hub/onecard/terminal/record"
)

// cardMAC1 computes the MAC1 a genuine card returns from INITIALIZE FOR
// LOAD (the rule in hub/proof's package doc), independently of hub/proof.
func cardMAC1(t *testing.T, keys *sm.KeySet, a terminal.LoadAuthorisation) []byte {
	t.Helper()
	s := sm.SuiteSM4
	master, err := keys.Master(s.Alg, sm.KeyDLK)
	if err != nil {
		t.Fatal(err)
	}
	dlk, err := s.Diversify(master, a.CardID[8:])
	if err != nil {
		t.Fatal(err)
	}
	key, err := s.LoadSessionKey(dlk, a.Random[:], []byte{byte(a.OnlineSeq >> 8), byte(a.OnlineSeq)})
	if err != nil {
		t.Fatal(err)
	}
	term, _ := apdu.EncodeCN(a.TerminalID, 6)
	data := append(apdu.EncodeAmount(a.Balance), apdu.EncodeAmount(a.Amount)...)
	data = append(append(data, byte(a.TxType)), term...)
	mac, err := s.MAC(key, nil, data)
	if err != nil {
		t.Fatal(err)
	}
	return mac
}

// runAgent starts client.Run for a and waits until it is connected; stop
// (also run when the test ends) stops and closes the client.
func runAgent(t *testing.T, a *agent) (c *client.Client, stop func()) {
	t.Helper()
	c, err := client.New(a.opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(ctx); close(done) }()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done; c.Close() }) }
	t.Cleanup(stop)
	waitFor(t, "connection", func() bool { s, _ := c.Status(); return s.Connected })
	return c, stop
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestSyncOnlineRequests(t *testing.T) {
	keys := servertest.Keys(t)
	h, st, led := startHub(t, true, nil)
	card := servertest.Card(77)
	servertest.Grant(t, led, card, 5000)
	a := newAgent(t, term1, h)
	servertest.Register(t, st, term1, a.key.PublicKey())
	c, _ := runAgent(t, a)
	ctx := context.Background()

	base := terminal.LoadAuthorisation{
		TerminalID: term1, TerminalSeq: 9, CardID: card, AlgFlag: terminal.AlgFlagSM4, Programme: "P2026",
		Amount: 5000, TxType: record.TxLoadEP, Balance: 120, OnlineSeq: 4, Random: [4]byte{9, 8, 7, 6},
		CardDate: "20260314", CardTime: "090203",
	}
	base.MAC1 = cardMAC1(t, keys, base)
	term, _ := apdu.EncodeCN(term1, 6)
	want := proof.LoadAuth{CardID: card[:], Balance: 120, OnlineSeq: 4, Random: base.Random, Amount: 5000, Type: 2}
	copy(want.Terminal[:], term)
	want.Date, want.Time = [4]byte{0x20, 0x26, 0x03, 0x14}, [3]byte{0x09, 0x02, 0x03}
	wantMAC2, err := proof.Verifier{Keys: keys, Suite: sm.SuiteSM4}.LoadMAC2(want)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("credits before the load", func(t *testing.T) {
		cs, err := c.PendingCredits(ctx, card)
		if err != nil || len(cs) != 1 || cs[0].Programme != "P2026" || cs[0].Amount != 5000 {
			t.Fatalf("credits %+v, %v", cs, err)
		}
	})
	t.Run("load authorised", func(t *testing.T) {
		mac2, err := c.AuthoriseLoad(ctx, base)
		if err != nil {
			t.Fatal(err)
		}
		if string(mac2) != string(wantMAC2) {
			t.Fatalf("MAC2 %X, want %X", mac2, wantMAC2)
		}
	})
	refusals := []struct {
		name string
		mod  func(a *terminal.LoadAuthorisation)
		want error
	}{
		{"bad MAC1", func(a *terminal.LoadAuthorisation) { a.MAC1 = []byte{1, 2, 3, 4} }, terminal.ErrNotAuthorised},
		{"balance not the card's", func(a *terminal.LoadAuthorisation) { a.Balance = 999999 }, terminal.ErrNotAuthorised},
		{"not entitled (amount)", func(a *terminal.LoadAuthorisation) {
			a.Amount = 9000
			a.MAC1 = cardMAC1(t, keys, *a)
		}, terminal.ErrNotAuthorised},
		{"not entitled (programme)", func(a *terminal.LoadAuthorisation) { a.Programme = "OTHER" }, terminal.ErrNotAuthorised},
		{"other terminal", func(a *terminal.LoadAuthorisation) { a.TerminalID = "370100000009" }, terminal.ErrBadRequest},
		{"bad date", func(a *terminal.LoadAuthorisation) { a.CardDate = "2026" }, terminal.ErrBadRequest},
	}
	for _, tc := range refusals {
		t.Run(tc.name, func(t *testing.T) {
			a := base
			tc.mod(&a)
			mac2, err := c.AuthoriseLoad(ctx, a)
			if !errors.Is(err, tc.want) || mac2 != nil {
				t.Fatalf("AuthoriseLoad = %X, %v; want %v", mac2, err, tc.want)
			}
		})
	}

	t.Run("key service", func(t *testing.T) {
		for _, flag := range []byte{terminal.AlgFlagSM4, terminal.AlgFlag3DES} {
			s1 := terminal.Step1{Region: "411600", AlgFlag: flag, CardID: card, TerminalID: term1,
				Randoms: [4][8]byte{{1}, {2}, {3}, {4}}}
			got, err := c.AuthenticateRead(ctx, s1)
			if err != nil {
				t.Fatal(err)
			}
			want, err := (&terminal.LocalKeyService{Keys: keys}).AuthenticateRead(ctx, s1)
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprintf("%X %X", got.Result1, got.Result2) != fmt.Sprintf("%X %X", want.Result1, want.Result2) {
				t.Fatalf("flag %02X: got %X/%X, want %X/%X", flag, got.Result1, got.Result2, want.Result1, want.Result2)
			}
			if len(got.Result1) != 16 || (flag == terminal.AlgFlagSM4) != (len(got.Result2) == 16) {
				t.Fatalf("flag %02X: result sizes %d/%d", flag, len(got.Result1), len(got.Result2))
			}
		}
		if _, err := c.AuthenticateRead(ctx, terminal.Step1{AlgFlag: 2, CardID: card}); !errors.Is(err, terminal.ErrBadRequest) {
			t.Fatalf("bad flag: %v", err)
		}
	})

	t.Run("credits held by the authorised load", func(t *testing.T) {
		cs, err := c.PendingCredits(ctx, card)
		if err != nil || len(cs) != 0 {
			t.Fatalf("credits %+v, %v; want none (held for the authorised load)", cs, err)
		}
		cs, err = c.PendingCredits(ctx, servertest.Card(78))
		if err != nil || len(cs) != 0 {
			t.Fatalf("credits of another card %+v, %v", cs, err)
		}
	})
}

func TestSyncOffline(t *testing.T) {
	h, st, _ := startHub(t, false, nil)
	a := newAgent(t, term1, h)
	servertest.Register(t, st, term1, a.key.PublicKey())
	a.opts.RequestTimeout = 200 * time.Millisecond
	c := a.client(t) // Run not started: offline
	_, err := c.AuthoriseLoad(context.Background(), terminal.LoadAuthorisation{TerminalID: term1, CardID: servertest.Card(1),
		AlgFlag: 3, Programme: "P", Amount: 1, TxType: 2, MAC1: []byte{1, 2, 3, 4}, CardDate: "20260101", CardTime: "000000"})
	if !errors.Is(err, client.ErrOffline) || !errors.Is(err, terminal.ErrNotAuthorised) {
		t.Fatalf("offline load: %v", err)
	}
	_, err = c.AuthenticateRead(context.Background(), terminal.Step1{AlgFlag: 3, CardID: servertest.Card(1)})
	if !errors.Is(err, client.ErrOffline) || !errors.Is(err, terminal.ErrKeyService) {
		t.Fatalf("offline key service: %v", err)
	}
}

func TestSyncPushes(t *testing.T) {
	h, st, _ := startHub(t, false, func(o *server.Options) {
		o.Config, o.ConfigVersion = map[string]string{"receipt.footer": "谢谢惠顾", "upload.batch": "50"}, 3
		o.LostPollInterval = 20 * time.Millisecond
	})
	ctx := context.Background()
	const many = hubsync.MaxLostPerMessage + 300 // two messages
	for i := 1; i <= many; i++ {
		if _, err := st.SetLost(ctx, servertest.Card(i), true); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.SetLost(ctx, servertest.Card(5), false); err != nil { // found again
		t.Fatal(err)
	}
	a := newAgent(t, term1, h)
	servertest.Register(t, st, term1, a.key.PublicKey())
	statePath := filepath.Join(t.TempDir(), "agent.hub")
	a.opts.StatePath = statePath
	{
		c, stop := runAgent(t, a)
		l := c.LostCards()
		waitFor(t, "lost list", func() bool { return l.Len() == many-1 })
		if !l.Contains(servertest.Card(1)) || l.Contains(servertest.Card(5)) || l.Contains(servertest.Card(many+1)) {
			t.Fatal("lost list content")
		}
		if lost, err := l.IsLost(ctx, servertest.Card(many)); !lost || err != nil {
			t.Fatal("IsLost")
		}
		v, cfg := c.Config()
		waitFor(t, "config", func() bool { v, cfg = c.Config(); return v == 3 })
		if cfg["receipt.footer"] != "谢谢惠顾" || len(cfg) != 2 {
			t.Fatalf("config %v", cfg)
		}
		// Changes while connected are pushed.
		st.SetLost(ctx, servertest.Card(many+1), true)
		st.SetLost(ctx, servertest.Card(1), false)
		h.Server.NotifyLost()
		waitFor(t, "pushed change", func() bool { return l.Contains(servertest.Card(many+1)) && !l.Contains(servertest.Card(1)) })
		if l.Len() != many-1 {
			t.Fatalf("list has %d cards", l.Len())
		}
		stop()
	}
	// The list and the configuration survive a restart, offline.
	c, err := client.New(a.opts)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	lv, _ := st.LostCards(ctx, 0)
	if l := c.LostCards(); l.Len() != many-1 || !l.Contains(servertest.Card(many+1)) || l.Version() != lv.Version {
		t.Fatalf("restored list: %d cards, version %d (hub %d)", l.Len(), l.Version(), lv.Version)
	}
	if v, cfg := c.Config(); v != 3 || cfg["upload.batch"] != "50" {
		t.Fatalf("restored config %d %v", v, cfg)
	}
}

func TestSyncEnrolment(t *testing.T) {
	keys := servertest.Keys(t)
	h, st, _ := startHub(t, true, nil)
	ctx := context.Background()
	const no = "370100000042"
	token, err := server.Invite(ctx, st, no, "kiosk 42", false)
	if err != nil {
		t.Fatal(err)
	}
	key := servertest.TerminalKey(t)
	eo := client.EnrollOptions{URL: h.URL, Pin: h.Pin, TerminalID: no, Token: token, Key: key}
	other := eo
	other.Token = token + "x"
	if _, err := client.Enroll(ctx, other); !refusedWith(err, hubsync.CodeBadToken) {
		t.Fatalf("wrong token: %v", err)
	}
	status, err := client.Enroll(ctx, eo)
	if err != nil || status != hubsync.StatusPending {
		t.Fatalf("enroll = %q, %v", status, err)
	}
	if _, err := client.Enroll(ctx, eo); !refusedWith(err, hubsync.CodeBadToken) {
		t.Fatalf("token reused: %v", err)
	}
	// Pending: hello refused until approved.
	a := newAgent(t, no, h)
	a.key, a.opts.Key = key, key
	servertest.Fill(t, a.j, keys, no, 1, 2, 4, 10)
	c := a.client(t)
	if err := c.Sync(ctx); !refusedWith(err, hubsync.CodePending) {
		t.Fatalf("pending sync: %v", err)
	}
	if _, err := server.Approve(ctx, st, no); err != nil {
		t.Fatal(err)
	}
	if err := c.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	wantStates(t, a.j, journal.Cleared, 4)
	// Suspension ends the session at the next batch and refuses hellos.
	if _, err := server.Suspend(ctx, st, no); err != nil {
		t.Fatal(err)
	}
	servertest.Fill(t, a.j, keys, no, 10, 1, 1, 10)
	if err := c.Sync(ctx); !refusedWith(err, hubsync.CodeSuspended) {
		t.Fatalf("suspended sync: %v", err)
	}
	ts, err := server.Terminals(ctx, st)
	if err != nil || len(ts) != 1 || ts[0].No != no || ts[0].State != store.StateSuspended {
		t.Fatalf("terminals %+v, %v", ts, err)
	}
}

func refusedWith(err error, code string) bool {
	var he *hubsync.Error
	return errors.Is(err, client.ErrRefused) && errors.As(err, &he) && he.Code == code
}
