package agent_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/onecard-hub/onecard/agent"
	"github.com/onecard-hub/onecard/agent/kioskapi"
)

// TestAgentShutdownWaitsForCardOperation: stopping the agent refuses new
// work at once but lets a payment that reached the card finish and
// answer; Run returns only then.
func TestAgentShutdownWaitsForCardOperation(t *testing.T) {
	e := startAgent(t, "")
	c := e.dial(kioskOrigin)
	defer c.close()
	e.user.armed.Store(true)
	id := c.request("pay", map[string]any{"amount": 250, "pin": cardPIN})
	select {
	case <-e.user.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("payment never reached the card")
	}
	e.cancel()
	// The drain has started once new connections are refused.
	for i := 0; ; i++ {
		ws, resp, err := dialRaw(e.wsURL(), http.Header{"Origin": {kioskOrigin}})
		if err != nil && resp != nil && resp.StatusCode == http.StatusServiceUnavailable {
			break
		}
		if ws != nil {
			ws.Close()
		}
		if i > 1000 {
			t.Fatal("agent kept accepting connections after stop")
		}
		time.Sleep(5 * time.Millisecond)
	}
	c.wantError("status", nil, kioskapi.CodeShuttingDown)
	select {
	case err := <-e.done:
		t.Fatalf("Run returned (%v) while a payment was on the card", err)
	default:
	}
	close(e.user.release)
	res, perr := c.wait(id)
	if perr != nil {
		t.Fatalf("payment during shutdown: %+v", perr)
	}
	var r receiptRes
	if err := json.Unmarshal(res, &r); err != nil || r.State != "card-done" || r.Amount != 250 {
		t.Fatalf("receipt %s: %v", res, err)
	}
	select {
	case err := <-e.done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
		e.done <- nil
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after the payment finished")
	}
}

func TestAgentAdminEndpoint(t *testing.T) {
	e := startAgent(t, "")
	for _, tt := range []struct {
		method, path string
		hdr          bool
		origin       string
		want         int
	}{
		{"GET", "/healthz", false, "", 200},
		{"GET", "/metrics", false, "", 200},
		{"GET", "/v1/status", true, "", 200},
		{"GET", "/v1/status", false, "", http.StatusForbidden},
		{"GET", "/metrics", false, "https://evil.example", http.StatusForbidden},
		{"POST", "/v1/pair", true, "https://evil.example", http.StatusForbidden},
		{"PUT", "/v1/loglevel?level=loud", true, "", http.StatusBadRequest},
		{"POST", "/metrics", false, "", http.StatusMethodNotAllowed},
	} {
		req, _ := http.NewRequest(tt.method, "http://"+e.a.AdminAddr()+tt.path, nil)
		if tt.hdr {
			req.Header.Set(agent.AdminHeader, "1")
		}
		if tt.origin != "" {
			req.Header.Set("Origin", tt.origin)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tt.want {
			t.Errorf("%s %s hdr=%v origin=%q: HTTP %d, want %d", tt.method, tt.path, tt.hdr, tt.origin, resp.StatusCode, tt.want)
		}
	}

	// Log level at run time: debug lines appear only after the change.
	if code, b := e.admin("PUT", "/v1/loglevel?level=warn", true); code != 200 || !strings.Contains(string(b), "warn") {
		t.Fatalf("set warn: %d %s", code, b)
	}
	c := e.dial(kioskOrigin)
	defer c.close()
	mark := len(e.logs.String())
	c.mustCall("status", nil)
	if strings.Contains(e.logs.String()[mark:], `"kiosk request"`) {
		t.Errorf("debug line logged at level warn")
	}
	if code, _ := e.admin("PUT", "/v1/loglevel?level=debug", true); code != 200 {
		t.Fatal("set debug")
	}
	mark = len(e.logs.String())
	c.mustCall("status", nil)
	if !strings.Contains(e.logs.String()[mark:], `"kiosk request"`) {
		t.Errorf("debug line missing at level debug")
	}
	_, b := e.admin("GET", "/v1/loglevel", true)
	if !strings.Contains(string(b), "debug") {
		t.Errorf("loglevel = %s", b)
	}
	_, b = e.admin("GET", "/v1/status", true)
	if !strings.Contains(string(b), `"terminalId"`) {
		t.Errorf("status = %s", b)
	}
}

// TestAgentLogsAreMasked runs a full-identity read and a payment at debug
// level and checks that no PIN, name or ID number reached the log.
func TestAgentLogsAreMasked(t *testing.T) {
	e := startAgent(t, "")
	c := e.dial(hisOrigin)
	defer c.close()
	c.mustCall("readIdentity", nil)
	c.mustCall("iReadCardBas", map[string]any{"iType": 3})
	c.mustCall("pay", map[string]any{"amount": 99, "pin": cardPIN})
	c.wantError("verifyPIN", map[string]any{"pin": "975310"}, kioskapi.CodePINWrong)
	c.mustCall("verifyPIN", map[string]any{"pin": cardPIN})
	logs := e.logs.String()
	for _, secret := range []string{cardPIN, "975310", cardSSN, "199208154", "B98765432", "依古丽", "买买提"} {
		if strings.Contains(logs, secret) {
			t.Errorf("log contains %q", secret)
		}
	}
	if !strings.Contains(logs, `"card operation"`) || !strings.Contains(logs, `"kind":"pay"`) {
		t.Errorf("operations not logged:\n%s", logs)
	}
}

func TestAgentConfiguredLanes(t *testing.T) {
	e := startAgentYAML(t, `
lanes:
  - {name: counter, card: "test kiosk reader", psam: psam1}
  - {name: spare, card: "virtual:nowhere"}
`, "")
	c := e.dial(kioskOrigin)
	defer c.close()
	var rd struct {
		Lanes []struct {
			Name, CardSlot, PSAMSlot, Error string
			CardPresent                     bool
		} `json:"lanes"`
	}
	if err := json.Unmarshal(c.mustCall("readers", nil), &rd); err != nil {
		t.Fatal(err)
	}
	if len(rd.Lanes) != 2 || rd.Lanes[0].CardSlot != userSlot || rd.Lanes[0].PSAMSlot != psamSlot || rd.Lanes[1].Error == "" {
		t.Fatalf("lanes = %+v", rd.Lanes)
	}
	// Without "reader" the lane with a card is chosen.
	var id identityRes
	if err := json.Unmarshal(c.mustCall("readIdentity", nil), &id); err != nil || id.Reader != "counter" {
		t.Fatalf("readIdentity = %+v, %v", id, err)
	}
	c.wantError("readIdentity", map[string]any{"reader": "spare"}, kioskapi.CodeReaderGone)
	c.wantError("readIdentity", map[string]any{"reader": "nope"}, kioskapi.CodeUnknownReader)
	if err := json.Unmarshal(c.mustCall("readIdentity", map[string]any{"reader": "counter"}), &id); err != nil || id.Reader != "counter" {
		t.Fatalf("readIdentity counter = %+v, %v", id, err)
	}
}

func TestAgentServesClientJS(t *testing.T) {
	e := startAgent(t, "")
	resp, err := http.Get("http://" + e.a.KioskAddr() + "/onecard-client.js")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/javascript") {
		t.Errorf("client JS: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	resp2, err := http.Get("http://" + e.a.KioskAddr() + "/version")
	if err != nil {
		t.Fatal(err)
	}
	defer resp2.Body.Close()
	var v struct {
		Agent string `json:"agent"`
		API   int    `json:"api"`
	}
	if err := json.NewDecoder(resp2.Body).Decode(&v); err != nil || v.Agent != "onecard" || v.API != kioskapi.APIVersion {
		t.Errorf("version = %+v %v", v, err)
	}
}

func TestAgentNewRefusesBadSetup(t *testing.T) {
	dir := t.TempDir()
	for _, tt := range []struct{ name, yml, want string }{
		{"hub without factory", "terminal: {id: \"330100000001\"}\nhub: {url: \"ws://127.0.0.1:1/sync\"}\nkeys: {test: demo}\n", "no hub client"},
		{"missing key file", "keys: {file: nope.keys}\n", "load key set"},
		{"missing sim card", "readers: {pcsc: false, sim: [{name: a, card: nope.yaml}]}\n", "readers.sim a"},
		{"bad profile", "readers: {pcsc: false, serial: [{port: /dev/null, profile: nope}]}\n", "readers.serial"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := agent.ParseConfig([]byte("listen: 127.0.0.1:0\nadmin: off\n"+tt.yml), dir)
			if err != nil {
				t.Fatal(err)
			}
			a, err := agent.New(agent.Options{Config: cfg, LogOutput: &syncBuffer{}})
			if err == nil {
				a.Close()
				t.Fatal("New succeeded")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q lacks %q", err, tt.want)
			}
		})
	}
	// The journal is closed again after a failed New: a second agent can
	// open it.
	cfg, err := agent.ParseConfig([]byte("listen: 127.0.0.1:0\nadmin: off\nreaders: {pcsc: false}\n"), dir)
	if err != nil {
		t.Fatal(err)
	}
	a, err := agent.New(agent.Options{Config: cfg, LogOutput: &syncBuffer{}})
	if err != nil {
		t.Fatalf("New after failures: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := a.Run(ctx); err != nil {
		t.Errorf("Run with a cancelled context: %v", err)
	}
}
