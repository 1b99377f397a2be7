package agent_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/onecard-hub/onecard/agent/kioskapi"
	"github.com/onecard-hub/onecard/terminal/national"
)

func TestKioskHelloStatusReaders(t *testing.T) {
	e := startAgent(t, "")
	c := e.dial(kioskOrigin)
	defer c.close()
	var hello struct {
		Agent      string   `json:"agent"`
		API        int      `json:"api"`
		Authorised bool     `json:"authorised"`
		Origin     string   `json:"origin"`
		Methods    []string `json:"methods"`
		Version    string   `json:"version"`
	}
	if err := json.Unmarshal(c.mustCall("hello", nil), &hello); err != nil {
		t.Fatal(err)
	}
	if !hello.Authorised || hello.Origin != kioskOrigin || hello.API != kioskapi.APIVersion || hello.Version != "test" {
		t.Errorf("hello = %+v", hello)
	}
	for _, m := range []string{"status", "readers", "readIdentity", "verifyPIN", "changePIN", "pay", "load", "certify", "journalStatus", "iReadCardBas"} {
		if !strings.Contains(strings.Join(hello.Methods, ","), m) {
			t.Errorf("hello methods %v lack %s", hello.Methods, m)
		}
	}
	var st struct {
		DeviceID   string `json:"deviceId"`
		MoneyReady bool   `json:"moneyReady"`
		Readers    int    `json:"readers"`
		Journal    struct {
			Records map[string]int `json:"records"`
		} `json:"journal"`
		Hub *struct{} `json:"hub"`
	}
	if err := json.Unmarshal(c.mustCall("status", nil), &st); err != nil {
		t.Fatal(err)
	}
	if st.DeviceID != "KIOSK-T1" || !st.MoneyReady || st.Readers != 1 || st.Journal.Records == nil || st.Hub != nil {
		t.Errorf("status = %+v", st)
	}
	var rd struct {
		Readers []struct {
			ID    string `json:"id"`
			Slots []struct {
				ID      string `json:"id"`
				Role    string `json:"role"`
				Present bool   `json:"present"`
				ATR     string `json:"atr"`
			} `json:"slots"`
		} `json:"readers"`
		Lanes []struct {
			Name, CardSlot, PSAMSlot string
		} `json:"lanes"`
	}
	if err := json.Unmarshal(c.mustCall("readers", map[string]any{}), &rd); err != nil {
		t.Fatal(err)
	}
	if len(rd.Readers) != 1 || rd.Readers[0].ID != "test:kiosk" || len(rd.Readers[0].Slots) != 2 {
		t.Fatalf("readers = %+v", rd)
	}
	if s := rd.Readers[0].Slots; s[0].Role != "card" || s[1].Role != "psam" || !s[0].Present || s[0].ATR == "" {
		t.Errorf("slots = %+v", s)
	}
	if len(rd.Lanes) != 1 || rd.Lanes[0].CardSlot != userSlot || rd.Lanes[0].PSAMSlot != psamSlot {
		t.Errorf("lanes = %+v", rd.Lanes)
	}
	var js struct {
		Journal struct {
			Records map[string]int `json:"records"`
			Unsent  int            `json:"unsent"`
		} `json:"journal"`
	}
	if err := json.Unmarshal(c.mustCall("journalStatus", nil), &js); err != nil {
		t.Fatal(err)
	}
	if _, ok := js.Journal.Records["card-done"]; !ok || js.Journal.Unsent != 0 {
		t.Errorf("journalStatus = %+v", js)
	}
}

// identityOf decodes readIdentity's result.
type identityRes struct {
	Reader   string `json:"reader"`
	Masked   bool   `json:"masked"`
	Identity struct {
		Mode       string `json:"mode"`
		Genuine    bool   `json:"genuine"`
		CardID     string `json:"card_id"`
		PersonID   string `json:"person_id"`
		Name       string `json:"name"`
		CardNumber string `json:"card_number"`
		BirthDate  string `json:"birth_date"`
	} `json:"identity"`
}

func TestKioskReadIdentityMaskedAndFull(t *testing.T) {
	e := startAgent(t, "")
	tests := []struct {
		origin     string
		wantMasked bool
		wantSSN    string
		wantName   string
	}{
		{kioskOrigin, true, "650*************26", "阿" + strings.Repeat("*", len([]rune(cardName))-1)},
		{hisOrigin, false, cardSSN, cardName},
	}
	for _, tt := range tests {
		t.Run(tt.origin, func(t *testing.T) {
			c := e.dial(tt.origin)
			defer c.close()
			id := c.request("readIdentity", map[string]any{"mode": "psam"})
			res, perr := c.wait(id)
			if perr != nil {
				t.Fatalf("readIdentity: %+v", perr)
			}
			var r identityRes
			if err := json.Unmarshal(res, &r); err != nil {
				t.Fatal(err)
			}
			if r.Masked != tt.wantMasked || r.Identity.PersonID != tt.wantSSN || r.Identity.Name != tt.wantName {
				t.Errorf("identity = %+v", r)
			}
			if r.Identity.Mode != "psam" || !r.Identity.Genuine || r.Identity.CardID != "330100D15600000593E4B7026C1AF5D8" || r.Reader != userSlot {
				t.Errorf("identity = %+v", r)
			}
			if got := c.stages(id); len(got) == 0 || got[0] != "reading" {
				t.Errorf("progress stages %v, want reading first", got)
			}
		})
	}
	c := e.dial(kioskOrigin)
	defer c.close()
	c.wantError("readIdentity", map[string]any{"mode": "sideways"}, kioskapi.CodeBadRequest)
	c.wantError("readIdentity", map[string]any{"reader": "no-such-reader"}, kioskapi.CodeUnknownReader)
}

func TestKioskVerifyAndChangePIN(t *testing.T) {
	e := startAgent(t, "")
	c := e.dial(kioskOrigin)
	defer c.close()
	perr := c.wantError("verifyPIN", map[string]any{"pin": "000000"}, kioskapi.CodePINWrong)
	if perr.TriesLeft == nil || *perr.TriesLeft != 2 || !perr.Retriable || perr.National != national.CodePINWrong {
		t.Errorf("wrong PIN error = %+v", perr)
	}
	c.mustCall("verifyPIN", map[string]any{"pin": cardPIN})
	c.wantError("verifyPIN", map[string]any{}, kioskapi.CodePINRequired)
	c.wantError("verifyPIN", map[string]any{"pin": "12ab"}, kioskapi.CodePINFormat)
	c.wantError("verifyPIN", map[string]any{"pin": 123456}, kioskapi.CodePINFormat)
	c.wantError("changePIN", map[string]any{"pin": cardPIN}, kioskapi.CodeBadRequest)
	c.mustCall("changePIN", map[string]any{"pin": cardPIN, "newPin": "8642"})
	c.wantError("verifyPIN", map[string]any{"pin": cardPIN}, kioskapi.CodePINWrong)
	c.mustCall("verifyPIN", map[string]any{"pin": "8642"})
	c.mustCall("changePIN", map[string]any{"pin": "8642", "newPin": cardPIN})
	c.mustCall("verifyPIN", map[string]any{"pin": cardPIN})
}

type receiptRes struct {
	Kind          string `json:"kind"`
	State         string `json:"state"`
	TerminalID    string `json:"terminalId"`
	CardID        string `json:"cardId"`
	PersonID      string `json:"personId"`
	Masked        bool   `json:"masked"`
	Amount        uint32 `json:"amount"`
	AmountText    string `json:"amountText"`
	BalanceBefore uint32 `json:"balanceBefore"`
	BalanceAfter  uint32 `json:"balanceAfter"`
	Purse         string `json:"purse"`
	TAC           string `json:"tac"`
	CardSigned    bool   `json:"cardSigned"`
	Signature     string `json:"signature"`
}

func TestKioskPayLoadCertify(t *testing.T) {
	e := startAgent(t, "")
	c := e.dial(kioskOrigin)
	defer c.close()

	id := c.request("pay", map[string]any{"amount": 1234, "merchant": "H001", "fund": "310", "pin": cardPIN})
	res, perr := c.wait(id)
	if perr != nil {
		t.Fatalf("pay: %+v", perr)
	}
	var pay receiptRes
	if err := json.Unmarshal(res, &pay); err != nil {
		t.Fatal(err)
	}
	if pay.Kind != "pay" || pay.State != "card-done" || pay.Amount != 1234 || pay.BalanceBefore != 120000 ||
		pay.BalanceAfter != 120000-1234 || len(pay.TAC) != 8 || pay.TerminalID != "330100000001" || !pay.Masked ||
		pay.Signature == "" || pay.Purse != "ep" {
		t.Errorf("pay receipt = %+v", pay)
	}
	if got := strings.Join(c.stages(id), ","); got != "reading,writing" {
		t.Errorf("pay progress = %s, want reading,writing", got)
	}
	c.wantError("pay", map[string]any{"amount": 1234}, kioskapi.CodePINRequired)
	c.wantError("pay", map[string]any{"amount": 0, "pin": cardPIN}, kioskapi.CodeBadRequest)
	c.wantError("pay", map[string]any{"amount": -5, "pin": cardPIN}, kioskapi.CodeBadRequest)
	c.wantError("pay", map[string]any{"amount": 12.5, "pin": cardPIN}, kioskapi.CodeBadRequest)
	c.wantError("pay", map[string]any{"amount": 5, "purse": "xx", "pin": cardPIN}, kioskapi.CodeBadRequest)
	ins := c.wantError("pay", map[string]any{"amount": 10_000_000, "pin": cardPIN}, kioskapi.CodeInsufficient)
	if ins.Retriable || ins.National == 0 {
		t.Errorf("insufficient balance error = %+v", ins)
	}

	var load receiptRes
	if err := json.Unmarshal(c.mustCall("load", map[string]any{"amount": 500, "programme": "SUBSIDY1"}), &load); err != nil {
		t.Fatal(err)
	}
	if load.Kind != "load" || load.BalanceAfter != 120000-1234+500 || load.State != "card-done" {
		t.Errorf("load receipt = %+v", load)
	}
	c.wantError("load", map[string]any{"amount": 500, "merchant": "x"}, kioskapi.CodeBadRequest)

	var cert receiptRes
	if err := json.Unmarshal(c.mustCall("certify", map[string]any{"programme": "PENSION", "pin": cardPIN}), &cert); err != nil {
		t.Fatal(err)
	}
	if cert.Kind != "certify" || !cert.CardSigned {
		t.Errorf("certify receipt = %+v", cert)
	}

	var js struct {
		Journal struct {
			Records map[string]int `json:"records"`
			Unsent  int            `json:"unsent"`
		} `json:"journal"`
	}
	if err := json.Unmarshal(c.mustCall("journalStatus", nil), &js); err != nil {
		t.Fatal(err)
	}
	if js.Journal.Records["card-done"] != 3 || js.Journal.Unsent != 3 || js.Journal.Records["failed"] != 1 {
		t.Errorf("journal = %+v", js.Journal)
	}
	m := e.metrics()
	for series, want := range map[string]string{
		`onecard_operations_total{kind="pay",outcome="ok"}`:                   "1",
		`onecard_operations_total{kind="pay",outcome="insufficient_balance"}`: "1",
		`onecard_operations_total{kind="load",outcome="ok"}`:                  "1",
		`onecard_journal_records{state="card-done"}`:                          "3",
		`onecard_journal_unsent_records`:                                      "3",
		`onecard_journal_dead_letters`:                                        "0",
		`onecard_kiosk_requests_total{method="pay",outcome="ok"}`:             "1",
	} {
		if got := metricValue(m, series); got != want {
			t.Errorf("%s = %q, want %s", series, got, want)
		}
	}
	if metricValue(m, `onecard_apdu_duration_seconds_count{role="card"}`) == "" || metricValue(m, `onecard_apdu_duration_seconds_count{role="psam"}`) == "" {
		t.Errorf("no APDU latency series:\n%s", m)
	}
	if v := metricValue(m, `onecard_journal_oldest_unsent_age_seconds`); v == "" || v == "0" {
		t.Errorf("oldest unsent age = %q", v)
	}
}

func TestKioskIReadCardBas(t *testing.T) {
	e := startAgent(t, "")
	type res struct {
		Result   int    `json:"result"`
		POutInfo string `json:"pOutInfo"`
		Message  string `json:"message"`
	}
	for _, tt := range []struct {
		origin  string
		wantSSN string
	}{{hisOrigin, cardSSN}, {kioskOrigin, "650*************26"}} {
		c := e.dial(tt.origin)
		var r res
		if err := json.Unmarshal(c.mustCall("iReadCardBas", map[string]any{"iType": 3}), &r); err != nil {
			t.Fatal(err)
		}
		c.close()
		if r.Result != 0 || r.Message != "成功" {
			t.Fatalf("%s: iReadCardBas = %+v", tt.origin, r)
		}
		b, err := national.ParseBasic(r.POutInfo)
		if err != nil {
			t.Fatalf("parse %q: %v", r.POutInfo, err)
		}
		if b.PersonID != tt.wantSSN || b.CardID != "330100D15600000593E4B7026C1AF5D8" || b.Region != "330100" || b.DeviceID != "KIOSK-T1" || b.TerminalID != "330100000001" {
			t.Errorf("%s: basic = %+v", tt.origin, b)
		}
	}
	c := e.dial(hisOrigin)
	defer c.close()
	var r res
	if err := json.Unmarshal(c.mustCall("iReadCardBas", map[string]any{"iType": 9}), &r); err != nil {
		t.Fatal(err)
	}
	if r.Result != national.CodeBadParameter || r.POutInfo != "" {
		t.Errorf("iType 9: %+v", r)
	}
	e.user.Remove()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if err := json.Unmarshal(c.mustCall("iReadCardBas", map[string]any{"iType": 1}), &r); err != nil {
			t.Fatal(err)
		}
		if r.Result == national.CodeNoCard || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if r.Result != national.CodeNoCard || r.Message != "无卡" {
		t.Errorf("no card: %+v", r)
	}
}

func TestKioskCardEvents(t *testing.T) {
	e := startAgent(t, "")
	c := e.dial(kioskOrigin)
	defer c.close()
	c.mustCall("hello", nil)
	card := e.user.Card()
	e.user.Remove()
	want := []string{"cardRemoved", "cardInserted"}
	go func() {
		time.Sleep(100 * time.Millisecond)
		e.user.Insert(card)
	}()
	for len(want) > 0 {
		r := c.next()
		if r.Event == "" {
			continue
		}
		if r.Event == want[0] {
			var d struct{ Slot, ATR string }
			_ = json.Unmarshal(r.Data, &d)
			if d.Slot != userSlot {
				t.Errorf("%s data %s", r.Event, r.Data)
			}
			want = want[1:]
		}
	}
	if v := metricValue(e.metrics(), `onecard_reader_events_total{kind="card-removed"}`); v != "1" {
		t.Errorf("card-removed events = %q", v)
	}
}

// TestKioskRefusals checks every refusal happens before any card access.
func TestKioskRefusals(t *testing.T) {
	e := startAgent(t, "  max_message: 2048\n  max_connections: 4\n")
	before := e.user.apdus.Load()

	t.Run("upgrade", func(t *testing.T) {
		for _, tt := range []struct {
			name string
			hdr  http.Header
			want int
		}{
			{"unknown origin, no pairing needed to refuse", http.Header{"Origin": {"https://evil.example"}}, 0},
			{"no origin", http.Header{}, http.StatusForbidden},
			{"null origin", http.Header{"Origin": {"null"}}, http.StatusForbidden},
			{"origin with path", http.Header{"Origin": {"https://kiosk.example/x"}}, http.StatusForbidden},
			{"file origin", http.Header{"Origin": {"file://"}}, http.StatusForbidden},
			{"rebound host", http.Header{"Origin": {kioskOrigin}, "Host": {"evil.example:17300"}}, http.StatusForbidden},
		} {
			t.Run(tt.name, func(t *testing.T) {
				var ws *websocket.Conn
				var resp *http.Response
				var err error
				if host := tt.hdr.Get("Host"); host != "" {
					// Dial the agent but claim another Host header.
					ws, resp, err = dialHost(e.a.KioskAddr(), host, tt.hdr)
				} else {
					ws, resp, err = dialRaw(e.wsURL(), tt.hdr)
				}
				if tt.want == 0 {
					// Pairing is on: the page may connect but not use cards.
					if err != nil {
						t.Fatalf("dial: %v", err)
					}
					c := &client{t: t, ws: ws}
					defer c.close()
					var hello struct{ Authorised, Pairing bool }
					_ = json.Unmarshal(c.mustCall("hello", nil), &hello)
					if hello.Authorised || !hello.Pairing {
						t.Errorf("hello = %+v", hello)
					}
					for _, m := range []string{"readIdentity", "pay", "status", "readers", "iReadCardBas", "journalStatus"} {
						c.wantError(m, map[string]any{"amount": 1, "pin": cardPIN, "iType": 3}, kioskapi.CodeUnauthorised)
					}
					return
				}
				if err == nil {
					ws.Close()
					t.Fatalf("dial succeeded, want HTTP %d", tt.want)
				}
				if resp == nil || resp.StatusCode != tt.want {
					t.Fatalf("dial: %v, response %v, want HTTP %d", err, resp, tt.want)
				}
			})
		}
	})

	t.Run("messages", func(t *testing.T) {
		c := e.dial(kioskOrigin)
		defer c.close()
		for _, tt := range []struct {
			name, msg, code string
		}{
			{"not json", `hello`, kioskapi.CodeMalformed},
			{"array", `[1,2]`, kioskapi.CodeMalformed},
			{"no id", `{"method":"status"}`, kioskapi.CodeMalformed},
			{"object id", `{"id":{},"method":"status"}`, kioskapi.CodeMalformed},
			{"no method", `{"id":1}`, kioskapi.CodeMalformed},
			{"extra field", `{"id":1,"method":"status","x":1}`, kioskapi.CodeMalformed},
			{"params array", `{"id":1,"method":"status","params":[1]}`, kioskapi.CodeMalformed},
			{"trailing", `{"id":1,"method":"status"} {}`, kioskapi.CodeMalformed},
			{"unknown method", `{"id":1,"method":"formatCard"}`, kioskapi.CodeUnknownMethod},
			{"unknown param", `{"id":1,"method":"readIdentity","params":{"readr":"x"}}`, kioskapi.CodeBadRequest},
			{"wrong type", `{"id":1,"method":"pay","params":{"amount":"12"}}`, kioskapi.CodeBadRequest},
		} {
			t.Run(tt.name, func(t *testing.T) {
				c.send(tt.msg)
				r := c.next()
				if r.Error == nil || r.Error.Code != tt.code {
					t.Fatalf("reply %+v, want error %s", r, tt.code)
				}
				if strings.Contains(r.Error.Message, cardPIN) {
					t.Errorf("message echoes input: %s", r.Error.Message)
				}
			})
		}
		c.send(`{"id":"s1","method":"status"}`)
		if r := c.next(); string(r.ID) != `"s1"` || r.Error != nil {
			t.Errorf("string id: %+v", r)
		}
		// Binary frames are refused but the connection stays.
		if err := c.ws.WriteMessage(websocket.BinaryMessage, []byte(`{"id":1,"method":"status"}`)); err != nil {
			t.Fatal(err)
		}
		if r := c.next(); r.Error == nil || r.Error.Code != kioskapi.CodeMalformed {
			t.Errorf("binary: %+v", r)
		}
	})

	t.Run("oversized", func(t *testing.T) {
		c := e.dial(kioskOrigin)
		defer c.close()
		err := c.ws.WriteMessage(websocket.TextMessage, []byte(`{"id":1,"method":"status","params":{"pad":"`+strings.Repeat("x", 4096)+`"}}`))
		if err != nil && !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, syscall.EPIPE) {
			t.Fatal(err)
		}
		_ = c.ws.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, _, rerr := c.ws.ReadMessage()
		switch {
		case websocket.IsCloseError(rerr, websocket.CloseMessageTooBig):
		case err != nil && rerr != nil && !errors.Is(rerr, os.ErrDeadlineExceeded):
			// The agent closed the connection as soon as the frame
			// header announced too many bytes, while the rest was still
			// being written: the reset may discard its close frame.
		default:
			t.Fatalf("read after oversized message: %v (write: %v), want close 1009", rerr, err)
		}
	})

	t.Run("connections", func(t *testing.T) {
		for i := 0; metricValue(e.metrics(), "onecard_kiosk_connections") != "0"; i++ {
			if i > 500 {
				t.Fatal("earlier connections never closed")
			}
			time.Sleep(10 * time.Millisecond)
		}
		var cs []*client
		defer func() {
			for _, c := range cs {
				c.close()
			}
		}()
		deadline := time.Now().Add(5 * time.Second)
		for {
			ws, resp, err := dialRaw(e.wsURL(), http.Header{"Origin": {kioskOrigin}})
			if err != nil {
				if resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
					t.Fatalf("dial: %v (%v)", err, resp)
				}
				break
			}
			cs = append(cs, &client{t: t, ws: ws})
			if time.Now().After(deadline) || len(cs) > 4 {
				t.Fatalf("%d connections accepted, limit 4", len(cs))
			}
		}
		if len(cs) == 0 {
			t.Fatal("no connection accepted")
		}
	})

	if got := e.user.apdus.Load(); got != before {
		t.Errorf("%d APDUs reached the card during refusals", got-before)
	}
	// The server counts a refusal after it has answered it, so the last
	// one may land a moment after the client saw the answer.
	for _, reason := range []string{"no_origin", "origin", "host", "too_large", "connections"} {
		series := fmt.Sprintf(`onecard_kiosk_refused_total{reason=%q}`, reason)
		deadline := time.Now().Add(5 * time.Second)
		for metricValue(e.metrics(), series) == "" {
			if time.Now().After(deadline) {
				t.Errorf("no refusal counted for %s", reason)
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// dialHost dials addr with a forged Host header.
func dialHost(addr, host string, h http.Header) (*websocket.Conn, *http.Response, error) {
	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second}
	h = h.Clone()
	h.Set("Host", host)
	return d.Dial("ws://"+addr+"/v1/ws", h)
}

func TestKioskRateLimit(t *testing.T) {
	e := startAgent(t, "  rate: 1\n  burst: 3\n")
	c := e.dial(kioskOrigin)
	defer c.close()
	limited := 0
	for range 8 {
		if _, err := c.call("status", nil); err != nil {
			if err.Code != kioskapi.CodeRateLimited || !err.Retriable {
				t.Fatalf("error %+v, want rate_limited", err)
			}
			limited++
		}
	}
	if limited < 4 {
		t.Errorf("%d of 8 requests limited, want at least 4 (burst 3, 1/s)", limited)
	}
}

func TestKioskPairing(t *testing.T) {
	e := startAgent(t, "")
	const page = "https://clinic.example:8443"
	c := e.dial(page)
	c.wantError("pay", map[string]any{"amount": 1, "pin": cardPIN}, kioskapi.CodeUnauthorised)

	// Admin side: guard and code.
	if code, _ := e.admin("POST", "/v1/pair", false); code != http.StatusForbidden {
		t.Errorf("pair without admin header: HTTP %d", code)
	}
	status, body := e.admin("POST", "/v1/pair", true)
	if status != 200 {
		t.Fatalf("pair: HTTP %d %s", status, body)
	}
	var pc struct{ Code string }
	if err := json.Unmarshal(body, &pc); err != nil || len(pc.Code) != kioskapi.CodeDigits {
		t.Fatalf("pair code %s: %v", body, err)
	}
	if !strings.Contains(e.logs.String(), pc.Code) {
		t.Errorf("pairing code not logged")
	}
	wrong := "000000"
	if pc.Code == wrong {
		wrong = "111111"
	}
	c.wantError("pair", map[string]any{"code": wrong}, kioskapi.CodePairingFailed)
	c.wantError("readIdentity", nil, kioskapi.CodeUnauthorised)
	var tok struct{ Token, Origin string }
	if err := json.Unmarshal(c.mustCall("pair", map[string]any{"code": pc.Code}), &tok); err != nil {
		t.Fatal(err)
	}
	if tok.Token == "" || tok.Origin != page {
		t.Fatalf("pair result %+v", tok)
	}
	var id identityRes
	if err := json.Unmarshal(c.mustCall("readIdentity", nil), &id); err != nil {
		t.Fatal(err)
	}
	if !id.Masked {
		t.Errorf("paired page got unmasked identity")
	}
	c.close()

	// The code is used up; the token works for this origin only.
	c2 := e.dial(page)
	defer c2.close()
	c2.wantError("pair", map[string]any{"code": pc.Code}, kioskapi.CodePairingFailed)
	c2.mustCall("auth", map[string]any{"token": tok.Token})
	c2.mustCall("status", nil)
	c3 := e.dial("https://other.example")
	defer c3.close()
	c3.wantError("auth", map[string]any{"token": tok.Token}, kioskapi.CodeUnauthorised)
	c3.wantError("status", nil, kioskapi.CodeUnauthorised)

	// Listed, then revoked by the operator.
	_, body = e.admin("GET", "/v1/pairs", true)
	if !strings.Contains(string(body), page) {
		t.Errorf("pairs: %s", body)
	}
	if status, body := e.admin("DELETE", "/v1/pairs?origin="+page, true); status != 200 || !strings.Contains(string(body), "true") {
		t.Errorf("revoke: %d %s", status, body)
	}
	c4 := e.dial(page)
	defer c4.close()
	c4.wantError("auth", map[string]any{"token": tok.Token}, kioskapi.CodeUnauthorised)
}

func TestKioskPairingDisabled(t *testing.T) {
	e := startAgent(t, "  pairing: false\n")
	_, resp, err := dialRaw(e.wsURL(), http.Header{"Origin": {"https://clinic.example"}})
	if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("unknown origin without pairing: %v %v", err, resp)
	}
	c := e.dial(kioskOrigin)
	defer c.close()
	c.wantError("pair", map[string]any{"code": "123456"}, kioskapi.CodePairingDisabled)
}

// TestKioskConcurrentOnOneCard: a second request for a card in use is
// refused with busy (retriable), and the first one completes.
func TestKioskConcurrentOnOneCard(t *testing.T) {
	e := startAgent(t, "")
	c1 := e.dial(kioskOrigin)
	defer c1.close()
	c2 := e.dial(hisOrigin)
	defer c2.close()
	e.user.armed.Store(true)
	id := c1.request("pay", map[string]any{"amount": 100, "pin": cardPIN})
	select {
	case <-e.user.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("first request never reached the card")
	}
	for _, tt := range []struct {
		method string
		params map[string]any
	}{{"readIdentity", nil}, {"pay", map[string]any{"amount": 1, "pin": cardPIN}}, {"verifyPIN", map[string]any{"pin": cardPIN}}} {
		perr := c2.wantError(tt.method, tt.params, kioskapi.CodeBusy)
		if !perr.Retriable {
			t.Errorf("busy not retriable")
		}
	}
	// The same page's second request is refused too.
	c1id := c1.request("readIdentity", nil)
	close(e.user.release)
	var mu sync.Mutex
	got := map[int]*kioskapi.Error{}
	for range 2 {
		r := c1.next()
		for r.Event != "" {
			r = c1.next()
		}
		var n int
		_ = json.Unmarshal(r.ID, &n)
		mu.Lock()
		got[n] = r.Error
		mu.Unlock()
	}
	if got[id] != nil {
		t.Errorf("first pay failed: %+v", got[id])
	}
	if got[c1id] == nil || got[c1id].Code != kioskapi.CodeBusy {
		t.Errorf("overlapping readIdentity: %+v, want busy", got[c1id])
	}
	c2.mustCall("readIdentity", nil)
}

// TestKioskOwnPage: the kiosk page the agent serves itself may use the API
// without listing or pairing its origin (masked identities); with
// own_page: false it must pair like any other page.
func TestKioskOwnPage(t *testing.T) {
	for _, tt := range []struct {
		name   string
		kiosk  string
		authed bool
	}{
		{"default", "", true},
		{"own_page false", "  own_page: false\n", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := startAgent(t, tt.kiosk)
			_, port, err := net.SplitHostPort(e.a.KioskAddr())
			if err != nil {
				t.Fatal(err)
			}
			for _, origin := range []string{"http://" + e.a.KioskAddr(), "http://localhost:" + port} {
				c := e.dial(origin)
				var hello struct{ Authorised, FullIdentity bool }
				_ = json.Unmarshal(c.mustCall("hello", nil), &hello)
				c.close()
				if hello.Authorised != tt.authed || hello.FullIdentity {
					t.Errorf("%s: hello = %+v, want authorised %v, masked", origin, hello, tt.authed)
				}
			}
			// Another port on loopback is another origin.
			c := e.dial("http://127.0.0.1:1")
			defer c.close()
			var hello struct{ Authorised bool }
			_ = json.Unmarshal(c.mustCall("hello", nil), &hello)
			if hello.Authorised {
				t.Error("a page on another loopback port was authorised")
			}
		})
	}
}
