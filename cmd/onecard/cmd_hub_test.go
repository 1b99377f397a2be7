package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/onecard-hub/onecard/hub/client"
	"github.com/onecard-hub/onecard/hub/server/servertest"
	"github.com/onecard-hub/onecard/hub/store/boltstore"
	"github.com/onecard-hub/onecard/sm"
	"github.com/onecard-hub/onecard/terminal/journal"
	"github.com/onecard-hub/onecard/terminal/journal/journaltest"
)

func onecard(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

func TestHubUsage(t *testing.T) {
	dir := t.TempDir()
	keys := filepath.Join(dir, "keys.json")
	ks, err := sm.TestKeySet("cmd hub usage")
	if err != nil {
		t.Fatal(err)
	}
	if err := ks.Save(keys); err != nil {
		t.Fatal(err)
	}
	spec := "bbolt:" + filepath.Join(dir, "hub.db")
	t.Setenv(hubStoreEnv, "")
	for _, tt := range []struct {
		args []string
		code int
	}{
		{[]string{"hub", "--store", spec}, 2},                                          // no keys
		{[]string{"hub", "--keys", keys}, 2},                                           // no store
		{[]string{"hub", "--store", "mysql://x", "--keys", keys}, 2},                   // bad store
		{[]string{"hub", "--store", spec, "--keys", keys, "--listen", "0.0.0.0:0"}, 2}, // plain ws off loopback
		{[]string{"hub", "--store", spec, "--keys", keys, "--tls-cert", "c.pem"}, 2},   // cert without key
		{[]string{"hub", "bogus"}, 2},                                                  // unknown subcommand
		{[]string{"hub", "help"}, 0},                                                   // help
		{[]string{"hub", "terminals"}, 2},                                              // no action
		{[]string{"hub", "terminals", "approve", "--store", spec}, 2},                  // no number
		{[]string{"hub", "token", "new", "--store", spec}, 2},                          // no terminal
		{[]string{"hub", "report", "--store", spec, "--day", "2026"}, 2},               // bad day
		{[]string{"hub", "lost", "add", "--store", spec, "XYZ"}, 2},                    // bad card
		{[]string{"agent", "enroll", "--hub", "ws://127.0.0.1:1/sync"}, 2},             // missing flags
		{[]string{"agent", "enroll", "--hub", "ws://192.0.2.1/sync", "--token", "t", "--terminal", "370100000001", "--key-out", filepath.Join(dir, "k.pem")}, 2},  // plain ws off loopback
		{[]string{"agent", "enroll", "--hub", "wss://192.0.2.1/sync", "--token", "t", "--terminal", "370100000001", "--key-out", filepath.Join(dir, "k.pem")}, 2}, // wss without pin
	} {
		code, _, stderr := onecard(t, tt.args...)
		if code != tt.code {
			t.Errorf("onecard %q: exit %d, want %d (stderr %q)", tt.args, code, tt.code, stderr)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "k.pem")); err == nil {
		t.Error("a refused enrolment wrote a key")
	}
}

// writeTLS writes a self-signed certificate and its key as PEM files.
func writeTLS(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	cert, _, err := servertest.NewSelfSigned([]string{"127.0.0.1"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "hub.crt"), filepath.Join(dir, "hub.key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// TestHubEnrollSyncReport runs "onecard hub" over wss and drives the
// operator and agent commands against it: token, enrolment, approval,
// an upload, the report, the lost-card list and a suspension.
func TestHubEnrollSyncReport(t *testing.T) {
	dir := t.TempDir()
	keysFile := filepath.Join(dir, "keys.json")
	ks, err := sm.TestKeySet(servertest.KeySetLabel)
	if err != nil {
		t.Fatal(err)
	}
	if err := ks.Save(keysFile); err != nil {
		t.Fatal(err)
	}
	storeFile := filepath.Join(dir, "hub.db")
	spec := "bbolt:" + storeFile
	t.Setenv(hubStoreEnv, spec)
	{ // Books: the test programme and the cards' opening balances.
		st, err := boltstore.Open(boltstore.Options{Path: storeFile})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := servertest.SetUpBooks(st, servertest.Cards(1, 3)...); err != nil {
			t.Fatal(err)
		}
		st.Close()
	}
	certFile, tlsKey := writeTLS(t, dir)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	var hubErr bytes.Buffer
	hubDone := make(chan int, 1)
	go func() {
		hubDone <- run(ctx, []string{"hub", "--keys", keysFile, "--listen", "127.0.0.1:0", "--tls-cert", certFile, "--tls-key", tlsKey,
			"--hub-id", "hub-cmd-test"}, pw, &hubErr)
		pw.Close()
	}()
	lines := bufio.NewScanner(pr)
	var url, pin, adminURL string
	for (url == "" || pin == "") && lines.Scan() {
		l := lines.Text()
		if i := strings.Index(l, "https://"); i >= 0 && strings.HasPrefix(l, "admin page") {
			adminURL = l[i:]
		}
		if i := strings.Index(l, "wss://"); i >= 0 {
			url = l[i:]
		}
		if i := strings.Index(l, "sha256/"); i >= 0 {
			pin = l[i:]
		}
	}
	if url == "" || pin == "" || !strings.HasSuffix(adminURL, "/admin/") {
		t.Fatalf("hub did not start (admin page %q): %s", adminURL, hubErr.String())
	}
	go io.Copy(io.Discard, pr)

	const term = "370100000055"
	code, stdout, stderr := onecard(t, "hub", "token", "new", "--terminal", term, "--name", "hall 5")
	if code != 0 {
		t.Fatalf("token new: %d %s", code, stderr)
	}
	token := strings.TrimSpace(stdout)
	keyFile := filepath.Join(dir, "terminal.pem")
	code, stdout, stderr = onecard(t, "agent", "enroll", "--hub", url, "--pin", pin, "--token", token, "--terminal", term, "--key-out", keyFile)
	if code != 0 || !strings.Contains(stdout, "pending") {
		t.Fatalf("enroll: %d %q %q", code, stdout, stderr)
	}
	if fi, err := os.Stat(keyFile); err != nil || (runtime.GOOS != "windows" && fi.Mode().Perm() != 0o600) {
		t.Fatalf("key file: %v %v", fi, err)
	}
	if code, _, _ := onecard(t, "agent", "enroll", "--hub", url, "--pin", pin, "--token", token, "--terminal", term, "--key-out", keyFile); code != 1 {
		t.Fatalf("token reused: exit %d", code)
	}
	code, stdout, _ = onecard(t, "hub", "terminals", "list")
	if code != 0 || !strings.Contains(stdout, term) || !strings.Contains(stdout, "enrolled") || !strings.Contains(stdout, "hall 5") {
		t.Fatalf("list: %d %q", code, stdout)
	}
	if code, stdout, _ = onecard(t, "hub", "terminals", "approve", term); code != 0 || !strings.Contains(stdout, "active") {
		t.Fatalf("approve: %d %q", code, stdout)
	}

	// The enrolled agent uploads.
	key, err := sm.LoadPrivateKeyPEM(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	j := journaltest.MustOpenPath(t, filepath.Join(dir, "journal.db"), nil)
	servertest.Fill(t, j, ks, term, 1, 3, 12, 250)
	c, err := client.New(client.Options{URL: url, Pin: pin, HubID: "hub-cmd-test", TerminalID: term, Key: key, Journal: j})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if js, _ := j.Stats(); js.Counts[journal.Cleared] != 12 {
		t.Fatalf("journal %v", js.Counts)
	}

	code, stdout, stderr = onecard(t, "hub", "report", "--day", "20260314")
	if code != 0 || !strings.Contains(stdout, "P2026") || !strings.Contains(stdout, "30.00") || !strings.Contains(stdout, term) {
		t.Fatalf("report: %d %q %q", code, stdout, stderr)
	}
	code, stdout, _ = onecard(t, "hub", "report", "--day", "20260314", "--csv")
	if code != 0 || !strings.HasPrefix(stdout, "section,day,terminal") || !strings.Contains(stdout, "3000") {
		t.Fatalf("csv report: %d %q", code, stdout)
	}
	{ // The admin page's API (loopback, no token) shows the terminal and the day's totals.
		hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
		resp, err := hc.Get(adminURL + "api/overview?day=20260314")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"no":"`+term+`"`) || !strings.Contains(string(body), `"Amount":3000`) {
			t.Fatalf("admin overview: %d %s", resp.StatusCode, body)
		}
	}
	// The agent submitted its signed end-of-day totals: they match.
	if _, stdout, _ = onecard(t, "hub", "report", "--day", "20260314"); !strings.Contains(stdout, " match") || !strings.Contains(stdout, "0 discrepancies") {
		t.Fatalf("report without matching totals: %q", stdout)
	}
	// The books, through the running hub's admin socket.
	card2 := servertest.Card(2).String()
	for _, tc := range []struct {
		args []string
		code int
		out  string
	}{
		{[]string{"hub", "programme", "create", "WINTER", "--name", "winter heating", "--fund", "320"}, 0, "created"},
		{[]string{"hub", "programme", "list"}, 0, "winter heating"},
		{[]string{"hub", "programme", "fund", "WINTER", "--amount", "100000", "--ref", "f1"}, 0, "posted"},
		{[]string{"hub", "programme", "fund", "WINTER", "--amount", "100000", "--ref", "f1"}, 0, "duplicate"},
		{[]string{"hub", "programme", "fund", "WINTER", "--amount", "100000"}, 2, ""}, // no reference
		{[]string{"hub", "grant", card2, "--programme", "WINTER", "--amount", "3000", "--ref", "g1"}, 0, "posted"},
		{[]string{"hub", "grant", card2, "--programme", "WINTER", "--amount", "999999", "--ref", "g2"}, 1, ""}, // beyond the funds
		{[]string{"hub", "opening", card2, "--fund", "320", "--amount", "150", "--ref", "o1"}, 0, "posted"},
		{[]string{"hub", "holds", card2}, 0, "no load reservations"},
		{[]string{"hub", "holds", card2, "--release", "02-9"}, 1, ""}, // nothing held
		{[]string{"hub", "dead", "list"}, 0, "REASON"},
		{[]string{"hub", "dead", "delete", "99"}, 1, ""},
		{[]string{"hub", "dead", "retry", "99"}, 1, ""},
		{[]string{"hub", "dead", "retry", "x"}, 2, ""},
	} {
		code, out, errOut := onecard(t, tc.args...)
		if code != tc.code || !strings.Contains(out, tc.out) {
			t.Fatalf("%v: exit %d %q %q; want exit %d and %q", tc.args, code, out, errOut, tc.code, tc.out)
		}
	}
	if code, stdout, _ = onecard(t, "hub", "lost", "add", servertest.Card(2).String()); code != 0 || !strings.Contains(stdout, "version 1") {
		t.Fatalf("lost add: %d %q", code, stdout)
	}
	if code, stdout, _ = onecard(t, "hub", "terminals", "suspend", term); code != 0 || !strings.Contains(stdout, "suspended") {
		t.Fatalf("suspend: %d %q", code, stdout)
	}
	if err := c.Sync(ctx); err == nil {
		t.Fatal("a suspended terminal synced")
	}

	cancel()
	select {
	case code := <-hubDone:
		if code != 0 {
			t.Fatalf("hub exit %d: %s", code, hubErr.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("hub did not stop")
	}
	// Without a running hub the commands open the store.
	code, stdout, stderr = onecard(t, "hub", "terminals", "list", "--json")
	if code != 0 || !strings.Contains(stdout, `"State": "suspended"`) {
		t.Fatalf("list after stop: %d %q %q", code, stdout, stderr)
	}
}
