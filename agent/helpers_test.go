package agent_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/onecard-hub/onecard/agent"
	"github.com/onecard-hub/onecard/agent/kioskapi"
	"github.com/onecard-hub/onecard/internal/logbuf"
	"github.com/onecard-hub/onecard/internal/simcard"
	"github.com/onecard-hub/onecard/reader"
	"github.com/onecard-hub/onecard/reader/virtual"
)

const (
	userSlot    = "virtual:test:kiosk:user"
	psamSlot    = "virtual:test:kiosk:psam1"
	kioskOrigin = "https://kiosk.example"
	hisOrigin   = "https://his.example"
	cardSSN     = "650102199208154026"
	cardName    = "阿依古丽·买买提艾力·阿不都热依木江"
	cardPIN     = "123456"
)

// copyCard copies a test card file into dir (the simulator keeps its
// state beside the file) and returns the copy's path.
func copyCard(t testing.TB, dir, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", "cards", name))
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// gateSlot is an in-process slot that can hold a Transmit until released
// and counts the APDUs that reached the card.
type gateSlot struct {
	*virtual.Slot
	armed   atomic.Bool
	entered chan struct{}
	release chan struct{}
	apdus   atomic.Int64
}

func newGateSlot(id string, card virtual.Card) *gateSlot {
	return &gateSlot{Slot: virtual.NewSlot(id, card), entered: make(chan struct{}, 1), release: make(chan struct{})}
}

func (g *gateSlot) Transmit(ctx context.Context, cmd []byte) ([]byte, error) {
	if g.armed.CompareAndSwap(true, false) {
		g.entered <- struct{}{}
		select {
		case <-g.release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	g.apdus.Add(1)
	return g.Slot.Transmit(ctx, cmd)
}

// env is a running agent with a simulated card.
type env struct {
	t      testing.TB
	a      *agent.Agent
	dir    string
	user   *gateSlot
	cancel context.CancelFunc
	done   chan error
	logs   *syncBuffer
}

// syncBuffer is a goroutine-safe log of a process's or component's output.
type syncBuffer = logbuf.Buffer

// startAgent runs an agent whose only reader is the in-process reader
// "test:kiosk" (slots test:kiosk:user with the generation-3 card and
// test:kiosk:psam1 with the PSAM), with the TEST key set "demo", local
// loads, kioskOrigin (masked) and hisOrigin (full identity) allowed, and
// pairing on. kiosk is YAML added to the kiosk section ("  rate: 1\n").
func startAgent(t testing.TB, kiosk string) *env { return startAgentYAML(t, "", kiosk) }

// startAgentYAML is startAgent with top-level YAML too.
func startAgentYAML(t testing.TB, top, kiosk string) *env {
	t.Helper()
	dir := t.TempDir()
	card, err := simcard.LoadFile(copyCard(t, dir, "ssc-gen3.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	psam, err := simcard.LoadFile(copyCard(t, dir, "psam.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	user := newGateSlot("test:kiosk:user", card)
	backend := reader.NewStaticBackend(reader.StaticOptions{Name: "test", Interval: 20 * time.Millisecond, Readers: []reader.StaticReader{{
		ID: "test:kiosk", Name: "test kiosk reader", Slots: []reader.Slot{user, virtual.NewSlot("test:kiosk:psam1", psam)},
	}}})
	yml := fmt.Sprintf(`
listen: 127.0.0.1:0
admin: 127.0.0.1:0
state_dir: %q
log: {level: debug, format: json}
terminal: {device_id: KIOSK-T1}
keys: {test: demo, local_loads: true}
readers: {pcsc: false}
kiosk:
  origins:
    - %s
    - {origin: %s, full_identity: true}
`, dir, kioskOrigin, hisOrigin) + kiosk + top
	cfg, err := agent.ParseConfig([]byte(yml), dir)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, dir: dir, user: user, done: make(chan error, 1), logs: &syncBuffer{}}
	e.a, err = agent.New(agent.Options{Config: cfg, Backends: []reader.Backend{backend}, Version: "test", LogOutput: e.logs})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	e.cancel = cancel
	go func() { e.done <- e.a.Run(ctx) }()
	t.Cleanup(e.stop)
	e.waitReaders()
	return e
}

// stop stops the agent and waits for Run.
func (e *env) stop() {
	e.cancel()
	select {
	case err := <-e.done:
		if err != nil {
			e.t.Errorf("agent Run: %v", err)
		}
		e.done <- nil // later stops return at once
	case <-time.After(60 * time.Second):
		e.t.Errorf("agent did not stop")
	}
}

// waitReaders waits until the test reader and its card are listed.
func (e *env) waitReaders() {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		c := e.dial(kioskOrigin) // a new connection each time: tests may set tight rate limits
		res := c.mustCall("readers", nil)
		c.close()
		var r struct {
			Lanes []struct {
				CardPresent bool   `json:"cardPresent"`
				PSAMSlot    string `json:"psamSlot"`
			} `json:"lanes"`
		}
		if err := json.Unmarshal(res, &r); err != nil {
			e.t.Fatal(err)
		}
		for _, l := range r.Lanes {
			if l.CardPresent && l.PSAMSlot != "" {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	e.t.Fatal("the test reader never appeared")
}

func (e *env) wsURL() string { return "ws://" + e.a.KioskAddr() + "/v1/ws" }

// client is a kiosk API connection.
type client struct {
	t      testing.TB
	ws     *websocket.Conn
	nextID int
	mu     sync.Mutex
	events []event
}

type event struct {
	Event string          `json:"event"`
	ID    json.RawMessage `json:"id"`
	Data  json.RawMessage `json:"data"`
}

type reply struct {
	ID     json.RawMessage `json:"id"`
	Result json.RawMessage `json:"result"`
	Error  *kioskapi.Error `json:"error"`
	Event  string          `json:"event"`
	Data   json.RawMessage `json:"data"`
}

// dialRaw dials with the given headers and returns the connection or the
// HTTP response of a refusal.
func dialRaw(url string, h http.Header) (*websocket.Conn, *http.Response, error) {
	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second}
	return d.Dial(url, h)
}

func (e *env) dial(origin string) *client {
	e.t.Helper()
	h := http.Header{}
	if origin != "" {
		h.Set("Origin", origin)
	}
	ws, resp, err := dialRaw(e.wsURL(), h)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		e.t.Fatalf("dial %s: %v (HTTP %d)", origin, err, status)
	}
	c := &client{t: e.t, ws: ws}
	return c
}

func (c *client) close() { _ = c.ws.Close() }

// send writes a raw message.
func (c *client) send(msg string) {
	c.t.Helper()
	if err := c.ws.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// request sends a request and returns its id.
func (c *client) request(method string, params any) int {
	c.t.Helper()
	c.nextID++
	b, err := json.Marshal(map[string]any{"id": c.nextID, "method": method, "params": params})
	if err != nil {
		c.t.Fatal(err)
	}
	if params == nil {
		b, _ = json.Marshal(map[string]any{"id": c.nextID, "method": method})
	}
	c.send(string(b))
	return c.nextID
}

// next reads the next message (an event or a response).
func (c *client) next() reply {
	c.t.Helper()
	_ = c.ws.SetReadDeadline(time.Now().Add(30 * time.Second))
	_, b, err := c.ws.ReadMessage()
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	var r reply
	if err := json.Unmarshal(b, &r); err != nil {
		c.t.Fatalf("decode %s: %v", b, err)
	}
	return r
}

// wait reads until the response with id, recording events.
func (c *client) wait(id int) (json.RawMessage, *kioskapi.Error) {
	c.t.Helper()
	want := fmt.Sprint(id)
	for {
		r := c.next()
		if r.Event != "" {
			c.mu.Lock()
			c.events = append(c.events, event{Event: r.Event, ID: r.ID, Data: r.Data})
			c.mu.Unlock()
			continue
		}
		if string(r.ID) == want {
			return r.Result, r.Error
		}
		c.t.Fatalf("response for id %s while waiting for %s", r.ID, want)
	}
}

func (c *client) call(method string, params any) (json.RawMessage, *kioskapi.Error) {
	c.t.Helper()
	return c.wait(c.request(method, params))
}

func (c *client) mustCall(method string, params any) json.RawMessage {
	c.t.Helper()
	res, err := c.call(method, params)
	if err != nil {
		c.t.Fatalf("%s: %s: %s", method, err.Code, err.Message)
	}
	return res
}

// wantError calls and checks the error code.
func (c *client) wantError(method string, params any, code string) *kioskapi.Error {
	c.t.Helper()
	res, err := c.call(method, params)
	if err == nil {
		c.t.Fatalf("%s: succeeded (%s), want %s", method, res, code)
	}
	if err.Code != code {
		c.t.Fatalf("%s: error %s (%s), want %s", method, err.Code, err.Message, code)
	}
	return err
}

// stages returns the progress stages received for request id.
func (c *client) stages(id int) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, ev := range c.events {
		if ev.Event != "progress" || string(ev.ID) != fmt.Sprint(id) {
			continue
		}
		var d struct {
			Stage string `json:"stage"`
		}
		_ = json.Unmarshal(ev.Data, &d)
		out = append(out, d.Stage)
	}
	return out
}

// admin calls the admin endpoint.
func (e *env) admin(method, path string, hdr bool) (int, []byte) {
	e.t.Helper()
	req, err := http.NewRequest(method, "http://"+e.a.AdminAddr()+path, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	if hdr {
		req.Header.Set(agent.AdminHeader, "1")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func (e *env) metrics() string {
	e.t.Helper()
	code, b := e.admin("GET", "/metrics", false)
	if code != 200 {
		e.t.Fatalf("metrics: HTTP %d", code)
	}
	return string(b)
}

// metricValue returns the value of the series line starting with prefix
// (name and labels), or "" when absent.
func metricValue(text, series string) string {
	for _, l := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(l, series+" "); ok {
			return v
		}
	}
	return ""
}
