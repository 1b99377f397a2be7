package main

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/onecard-hub/onecard/internal/logbuf"
)

// syncWriter is a buffer safe for the agent's concurrent log writes.
type syncWriter = logbuf.Buffer

// freeAddr returns a loopback address that was free a moment ago.
func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// copyTestCard copies testdata/cards/name into dir.
func copyTestCard(t testing.TB, dir, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "cards", name))
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// wsCall sends one request and returns its response (skipping events).
func wsCall(t testing.TB, ws *websocket.Conn, req string) map[string]json.RawMessage {
	t.Helper()
	if err := ws.WriteMessage(websocket.TextMessage, []byte(req)); err != nil {
		t.Fatal(err)
	}
	for {
		_ = ws.SetReadDeadline(time.Now().Add(20 * time.Second))
		_, b, err := ws.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		if _, ev := m["event"]; !ev {
			return m
		}
	}
}

func TestAgentCommand(t *testing.T) {
	dir := t.TempDir()
	listen, admin := freeAddr(t), freeAddr(t)
	cfg := writeConfig(t, dir, "readers: {pcsc: false}\nlog: {format: json}\n")
	card, psam := copyTestCard(t, dir, "ssc-gen3.yaml"), copyTestCard(t, dir, "psam.yaml")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type result struct {
		code         int
		stdout, errs string
	}
	done := make(chan result, 1)
	go func() {
		var so, se syncWriter
		code := run(ctx, []string{"agent", "--config", cfg, "--listen", listen, "--admin", admin,
			"--sim", card, "--sim-psam", psam, "--test-keys", "demo", "--origin", "https://kiosk.example", "--log-level", "debug"}, &so, &se)
		done <- result{code, so.String(), se.String()}
	}()
	var ws *websocket.Conn
	for i := 0; ; i++ {
		var err error
		ws, _, err = websocket.DefaultDialer.Dial("ws://"+listen+"/v1/ws", http.Header{"Origin": {"https://kiosk.example"}})
		if err == nil {
			break
		}
		if i > 500 {
			cancel()
			r := <-done
			t.Fatalf("agent never listened: %v\n%s", err, r.errs)
		}
		time.Sleep(20 * time.Millisecond)
	}
	defer ws.Close()
	var res map[string]json.RawMessage
	for i := 0; ; i++ {
		res = wsCall(t, ws, `{"id":1,"method":"readIdentity","params":{"mode":"psam"}}`)
		if _, ok := res["result"]; ok || i > 100 {
			break
		}
		time.Sleep(20 * time.Millisecond) // the simulated reader appears on the first poll
	}
	if !strings.Contains(string(res["result"]), `"card_id":"330100D15600000593E4B7026C1AF5D8"`) {
		t.Errorf("readIdentity = %s", res)
	}

	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"agent", "pair", "--admin", admin}, "pairing code: "},
		{[]string{"agent", "loglevel", "warn", "--admin", admin}, `"warn"`},
		{[]string{"agent", "loglevel", "--admin", admin}, `"warn"`},
		{[]string{"agent", "status", "--admin", admin}, `"terminalId"`},
		{[]string{"agent", "pairs", "--admin", admin}, `"pairs"`},
		{[]string{"agent", "loglevel", "info", "--admin", admin}, `"info"`},
		{[]string{"agent", "unpair", "https://nobody.example", "--admin", admin}, `"revoked": false`},
	} {
		code, out, errs := rdRun(t, tt.args...)
		if code != 0 || !strings.Contains(out, tt.want) {
			t.Errorf("%v: exit %d, out %q, err %q", tt.args, code, out, errs)
		}
	}
	cancel()
	select {
	case r := <-done:
		if r.code != 0 {
			t.Errorf("agent exit %d: %s", r.code, r.errs)
		}
		for _, leak := range []string{"650102199208154026", "123456\""} {
			if strings.Contains(r.errs, leak) {
				t.Errorf("log leaks %q", leak)
			}
		}
		if !strings.Contains(r.errs, `"agent stopped"`) {
			t.Errorf("no clean stop in the log:\n%s", r.errs)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("agent did not stop")
	}
}

func TestAgentCommandUsage(t *testing.T) {
	for _, tt := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"agent", "--listen", "0.0.0.0:17300", "--no-pcsc"}, 2, "loopback only"},
		{[]string{"agent", "--sim-psam", "x"}, 2, "--sim-psam needs --sim"},
		{[]string{"agent", "frobnicate"}, 2, "unknown agent subcommand"},
		{[]string{"agent", "unpair"}, 2, "one ORIGIN"},
		{[]string{"agent", "pair", "--admin", "10.0.0.1:1"}, 2, "loopback only"},
		{[]string{"agent", "pair", "--admin", freeAddr(t)}, 1, "is the agent running"},
		{[]string{"agent", "--config", "/nonexistent/agent.yaml"}, 1, "no such file"},
	} {
		code, _, errs := rdRun(t, tt.args...)
		if code != tt.code || !strings.Contains(errs, tt.want) {
			t.Errorf("%v: exit %d, stderr %q; want %d and %q", tt.args, code, errs, tt.code, tt.want)
		}
	}
}

// goTool finds the go command the tests run with.
func goTool(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("go command not on PATH: %v", err)
	}
	return p
}

// TestAgentCrossBuild builds the binary for the kiosks' platforms: the
// Windows build must need no cgo (ebfe/scard uses winscard.dll there).
func TestAgentCrossBuild(t *testing.T) {
	gobin := goTool(t)
	for _, tt := range []struct{ goos, goarch, cgo string }{
		{"linux", "amd64", "1"},
		{"windows", "amd64", "0"},
	} {
		t.Run(tt.goos+"/"+tt.goarch, func(t *testing.T) {
			cmd := exec.Command(gobin, "build", "-o", filepath.Join(t.TempDir(), "onecard.bin"), "github.com/onecard-hub/onecard/cmd/onecard")
			cmd.Env = append(os.Environ(), "GOOS="+tt.goos, "GOARCH="+tt.goarch, "CGO_ENABLED="+tt.cgo)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("build %s/%s: %v\n%s", tt.goos, tt.goarch, err, out)
			}
		})
	}
}
