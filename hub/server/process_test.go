package server_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/onecard-hub/onecard/hub/client"
	"github.com/onecard-hub/onecard/hub/server"
	"github.com/onecard-hub/onecard/hub/server/servertest"
	"github.com/onecard-hub/onecard/hub/store/boltstore"
	hubsync "github.com/onecard-hub/onecard/hub/sync"
	"github.com/onecard-hub/onecard/sm"
	"github.com/onecard-hub/onecard/terminal/journal"
	"github.com/onecard-hub/onecard/terminal/journal/journaltest"
	"github.com/onecard-hub/onecard/terminal/record"
)

// Child processes: the test binary re-executed with ONECARD_SYNC_CHILD set
// runs a hub or an agent instead of the tests.
func TestMain(m *testing.M) {
	switch os.Getenv("ONECARD_SYNC_CHILD") {
	case "hub":
		os.Exit(childHub())
	case "agent":
		os.Exit(childAgent())
	}
	os.Exit(m.Run())
}

func killSelf() {
	syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {}
}

// killLedger SIGKILLs its own process on batch number at, before or after
// the store committed it.
type killLedger struct {
	server.Ledger
	at     int64
	after  bool
	batchN atomic.Int64
}

func (k *killLedger) PostRecords(ctx context.Context, recs []*record.Record) ([]server.PostResult, error) {
	n := k.batchN.Add(1)
	if n == k.at && !k.after {
		killSelf()
	}
	res, err := k.Ledger.PostRecords(ctx, recs)
	if n == k.at && k.after {
		killSelf()
	}
	return res, err
}

// childHub serves a hub on ONECARD_HUB_ADDR with the bbolt store at
// ONECARD_HUB_STORE (fsync on); ONECARD_HUB_KILL = "before:N" or
// "after:N" kills it at the N-th batch.
func childHub() int {
	st, err := boltstore.Open(boltstore.Options{Path: os.Getenv("ONECARD_HUB_STORE")})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	keys, err := sm.TestKeySet(servertest.KeySetLabel)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	books, err := servertest.SetUpBooks(st)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	led := &killLedger{Ledger: server.NewLedger(books)}
	if mode, n, ok := strings.Cut(os.Getenv("ONECARD_HUB_KILL"), ":"); ok {
		led.at, _ = strconv.ParseInt(n, 10, 64)
		led.after = mode == "after"
	}
	srv, err := server.New(server.Options{HubID: servertest.HubID, Store: st, Ledger: led, Keys: keys})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ln, err := net.Listen("tcp", os.Getenv("ONECARD_HUB_ADDR"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println("ready")
	mux := http.NewServeMux()
	mux.Handle(hubsync.Path, srv)
	http.Serve(ln, mux)
	return 0
}

// childAgent syncs the journal ONECARD_AGENT_JOURNAL with the key in
// ONECARD_AGENT_KEY to ONECARD_AGENT_URL; ONECARD_AGENT_KILL = "NAME:N"
// kills it at the N-th journal failpoint NAME.
func childAgent() int {
	name, n, _ := strings.Cut(os.Getenv("ONECARD_AGENT_KILL"), ":")
	at, _ := strconv.Atoi(n)
	count := 0
	j, err := journal.Open(os.Getenv("ONECARD_AGENT_JOURNAL"), &journal.Options{Failpoint: func(fp string) error {
		if fp == name {
			if count++; count == at {
				killSelf()
			}
		}
		return nil
	}})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	key, err := sm.LoadPrivateKeyPEM(os.Getenv("ONECARD_AGENT_KEY"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	c, err := client.New(client.Options{URL: os.Getenv("ONECARD_AGENT_URL"), TerminalID: term1, Key: key, Journal: j,
		BatchSize: 10, Window: 2})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := c.Sync(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// child starts the test binary as a child of the given kind.
func child(t *testing.T, kind string, env ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), append(env, "ONECARD_SYNC_CHILD="+kind)...)
	cmd.Stderr = os.Stderr
	return cmd
}

// startChildHub starts a hub child and waits until it listens.
func startChildHub(t *testing.T, addr, storePath, kill string) *exec.Cmd {
	t.Helper()
	cmd := child(t, "hub", "ONECARD_HUB_ADDR="+addr, "ONECARD_HUB_STORE="+storePath, "ONECARD_HUB_KILL="+kill)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "ready" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("hub child did not start: %q %v", line, err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return cmd
}

func killedBySignal(err error) bool {
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestSyncHubKilledMidBatch kills a real hub process in the middle of a
// batch (before and after its store commit), restarts it on the same store
// and checks that the agent's records end posted exactly once.
func TestSyncHubKilledMidBatch(t *testing.T) {
	if testing.Short() {
		t.Skip("child processes")
	}
	keys := servertest.Keys(t)
	for _, kill := range []string{"before:3", "after:3", "after:1"} {
		t.Run(kill, func(t *testing.T) {
			const n, amount = 60, 10
			dir := t.TempDir()
			storePath := filepath.Join(dir, "hub.db")
			st, err := boltstore.Open(boltstore.Options{Path: storePath})
			if err != nil {
				t.Fatal(err)
			}
			key := servertest.TerminalKey(t)
			servertest.Register(t, st, term1, key.PublicKey())
			servertest.Books(t, st, testCards...)
			st.Close()

			addr := freeAddr(t)
			hub := startChildHub(t, addr, storePath, kill)
			j := journaltest.MustOpenPath(t, filepath.Join(dir, "journal.db"), nil)
			servertest.Fill(t, j, keys, term1, 1, 4, n, amount)
			c, err := client.New(client.Options{URL: "ws://" + addr + hubsync.Path, TerminalID: term1, Key: key, Journal: j,
				BatchSize: 10, Window: 2, MinBackoff: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond,
				PollInterval: 20 * time.Millisecond, RequestTimeout: 5 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			runDone := make(chan error, 1)
			go func() { runDone <- c.Run(ctx) }()

			if err := hub.Wait(); !killedBySignal(err) {
				t.Fatalf("hub child ended with %v, want SIGKILL", err)
			}
			js, _ := j.Stats()
			if js.Counts[journal.Cleared] == n {
				t.Fatal("everything cleared before the kill")
			}
			hub2 := startChildHub(t, addr, storePath, "")
			for {
				js, err := j.Stats()
				if err != nil {
					t.Fatal(err)
				}
				if js.Counts[journal.Cleared] == n {
					break
				}
				if ctx.Err() != nil {
					t.Fatalf("not all cleared: %v", js.Counts)
				}
				time.Sleep(20 * time.Millisecond)
			}
			cancel()
			<-runDone
			s, _ := c.Status()
			if kill != "before:3" && s.Duplicates == 0 {
				t.Error("the batch posted before the kill was not resent as a duplicate")
			}
			// Stop the hub and look at its books.
			hub2.Process.Kill()
			hub2.Wait()
			st, err = boltstore.Open(boltstore.Options{Path: storePath, Timeout: 10 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			wantBalance(t, st, servertest.MerchantAccount, n*amount)
			if err := st.Check(context.Background()); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestSyncAgentKilledMidUpload kills a real agent process at journal
// failpoints of the upload (after marking a batch sent, before and after
// marking acknowledged records cleared), then lets a new agent finish:
// every record ends posted exactly once.
func TestSyncAgentKilledMidUpload(t *testing.T) {
	if testing.Short() {
		t.Skip("child processes")
	}
	keys := servertest.Keys(t)
	for _, kill := range []string{"after-sent-commit:2", "before-cleared-commit:2", "after-cleared-commit:1", "before-sent-commit:3"} {
		t.Run(kill, func(t *testing.T) {
			const n, amount = 45, 10
			h, st, _ := startHub(t, false, nil)
			dir := t.TempDir()
			key := servertest.TerminalKey(t)
			keyPath := filepath.Join(dir, "terminal.pem")
			if err := sm.SavePrivateKeyPEM(keyPath, key); err != nil {
				t.Fatal(err)
			}
			servertest.Register(t, st, term1, key.PublicKey())
			jpath := filepath.Join(dir, "journal.db")
			j, err := journal.Open(jpath, nil)
			if err != nil {
				t.Fatal(err)
			}
			servertest.Fill(t, j, keys, term1, 1, 3, n, amount)
			j.Close()

			cmd := child(t, "agent", "ONECARD_AGENT_JOURNAL="+jpath, "ONECARD_AGENT_KEY="+keyPath,
				"ONECARD_AGENT_URL="+h.URL, "ONECARD_AGENT_KILL="+kill)
			if err := cmd.Run(); !killedBySignal(err) {
				t.Fatalf("agent child ended with %v, want SIGKILL", err)
			}
			j = journaltest.MustOpenPath(t, jpath, nil)
			js, _ := j.Stats()
			if js.Counts[journal.Cleared] == n {
				t.Fatal("everything cleared before the kill")
			}
			c, err := client.New(client.Options{URL: h.URL, TerminalID: term1, Key: key, Journal: j, BatchSize: 10})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if err := c.Sync(context.Background()); err != nil {
				t.Fatal(err)
			}
			wantStates(t, j, journal.Cleared, n)
			wantBalance(t, st, servertest.MerchantAccount, n*amount)
			if err := st.Check(context.Background()); err != nil {
				t.Fatal(err)
			}
		})
	}
}
