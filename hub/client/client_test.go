package client_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/onecard-hub/onecard/hub/client"
	"github.com/onecard-hub/onecard/hub/server"
	"github.com/onecard-hub/onecard/hub/server/servertest"
	"github.com/onecard-hub/onecard/terminal/journal"
	"github.com/onecard-hub/onecard/terminal/journal/journaltest"
)

func TestSyncCheckURL(t *testing.T) {
	pin := "sha256/" + strings.Repeat("A", 43) + "="
	tests := []struct {
		url, pin string
		ok       bool
		path     string
	}{
		{"wss://hub.example.cn:8443", pin, true, "/sync"},
		{"wss://hub.example.cn/custom", pin, true, "/custom"},
		{"wss://hub.example.cn", "", false, ""},
		{"wss://hub.example.cn", "sha256/short", false, ""},
		{"ws://127.0.0.1:9000/sync", "", true, "/sync"},
		{"ws://127.8.9.10:9000", "", true, "/sync"},
		{"ws://[::1]:9000", "", true, "/sync"},
		{"ws://localhost:9000", "", true, "/sync"},
		{"ws://hub.example.cn:9000", "", false, ""},
		{"ws://10.0.0.1:9000", "", false, ""},
		{"ws://0.0.0.0:9000", "", false, ""},
		{"http://127.0.0.1:9000", "", false, ""},
		{"ws://", "", false, ""},
		{"::", "", false, ""},
	}
	for _, tt := range tests {
		u, err := client.CheckURL(tt.url, tt.pin)
		if tt.ok != (err == nil) {
			t.Errorf("CheckURL(%q, %q) = %v", tt.url, tt.pin, err)
			continue
		}
		if err != nil {
			if !errors.Is(err, client.ErrConfig) {
				t.Errorf("CheckURL(%q): %v is not ErrConfig", tt.url, err)
			}
			continue
		}
		if u.Path != tt.path {
			t.Errorf("CheckURL(%q) path %q, want %q", tt.url, u.Path, tt.path)
		}
	}
}

func TestSyncBackoff(t *testing.T) {
	base, max := 100*time.Millisecond, 3*time.Second
	for n := 0; n < 12; n++ {
		want := base << n
		if want > max || n > 6 {
			want = max
		}
		for i := 0; i < 50; i++ {
			d := client.Backoff(base, max, n)
			if d < want/2 || d > want {
				t.Fatalf("Backoff(%d) = %v, want in [%v, %v]", n, d, want/2, want)
			}
		}
	}
	// Jitter: not all the same.
	seen := map[time.Duration]bool{}
	for i := 0; i < 20; i++ {
		seen[client.Backoff(time.Second, time.Minute, 3)] = true
	}
	if len(seen) < 5 {
		t.Fatalf("backoff has no jitter: %v", seen)
	}
}

func TestSyncOptions(t *testing.T) {
	j := journaltest.MustOpen(t, nil)
	key := servertest.TerminalKey(t)
	good := client.Options{URL: "ws://127.0.0.1:1/sync", TerminalID: "370100000001", Key: key, Journal: j}
	tests := []struct {
		name string
		mod  func(o *client.Options)
	}{
		{"no journal", func(o *client.Options) { o.Journal = nil }},
		{"no key", func(o *client.Options) { o.Key = nil }},
		{"short terminal", func(o *client.Options) { o.TerminalID = "3701" }},
		{"plain ws to a remote host", func(o *client.Options) { o.URL = "ws://192.0.2.1/sync" }},
		{"wss without pin", func(o *client.Options) { o.URL = "wss://192.0.2.1/sync" }},
	}
	for _, tt := range tests {
		o := good
		tt.mod(&o)
		if _, err := client.New(o); !errors.Is(err, client.ErrConfig) {
			t.Errorf("%s: %v, want ErrConfig", tt.name, err)
		}
	}
	c, err := client.New(good)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// No hub listening: unreachable, status says so.
	if err := c.Sync(context.Background()); !errors.Is(err, client.ErrUnreachable) {
		t.Fatalf("sync to nothing: %v", err)
	}
	if s, _ := c.Status(); s.Connected || s.LastError == "" {
		t.Fatalf("status %+v", s)
	}
}

// TestSyncPinMismatch: a hub whose certificate is not the pinned one gets
// nothing.
func TestSyncPinMismatch(t *testing.T) {
	st := servertest.OpenStore(t, "", false)
	_, led := servertest.Books(t, st)
	h := servertest.Start(t, server.Options{Store: st, Ledger: led}, true)
	_, otherPin := servertest.SelfSigned(t)
	j := journaltest.MustOpenPath(t, filepath.Join(t.TempDir(), "j.db"), nil)
	key := servertest.TerminalKey(t)
	servertest.Register(t, st, "370100000001", key.PublicKey())
	servertest.Fill(t, j, servertest.Keys(t), "370100000001", 1, 1, 3, 1)
	c, err := client.New(client.Options{URL: h.URL, Pin: otherPin, TerminalID: "370100000001", Key: key, Journal: j})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Sync(context.Background()); !errors.Is(err, client.ErrPinMismatch) {
		t.Fatalf("sync with the wrong pin: %v", err)
	}
	if st := h.Server.Stats(); st.Sessions != 0 || st.Batches != 0 {
		t.Fatalf("hub saw %+v", st)
	}
	js, _ := j.Stats()
	if js.Counts[journal.CardDone] != 3 {
		t.Fatalf("journal moved: %v", js.Counts)
	}
	// The right pin works.
	c2, err := client.New(client.Options{URL: h.URL, Pin: h.Pin, TerminalID: "370100000001", Key: key, Journal: j,
		StatePath: filepath.Join(t.TempDir(), "s")})
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if err := c2.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
}
