package server_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/onecard-hub/onecard/hub/ledger"
	"github.com/onecard-hub/onecard/hub/server"
	"github.com/onecard-hub/onecard/hub/server/servertest"
	"github.com/onecard-hub/onecard/hub/store"
	"github.com/onecard-hub/onecard/terminal/record"
)

const adminToken = "operator-token-0123456789abcdef"

// adminBooks posts records of term1 for servertest.At's day: pays at
// 09:xx and 14:xx on card 1 with a counter gap (2 missing), one certify,
// and a conflicting resend (a dead letter).
func adminBooks(t *testing.T) (store.Store, *ledger.Ledger) {
	t.Helper()
	st := servertest.OpenStore(t, "", false)
	led, _ := servertest.Books(t, st, servertest.Cards(1, 4)...)
	key := servertest.TerminalKey(t)
	servertest.Register(t, st, term1, key.PublicKey())
	keys := servertest.Keys(t)
	mk := func(kind record.Kind, seq uint64, card int, counter uint16, amount uint32, hhmmss string) *record.Record {
		r := servertest.Record(kind, term1, servertest.Card(card), counter, amount)
		r.CardTime, r.TerminalSeq = hhmmss, seq
		res := servertest.Result(t, keys, r)
		r.TAC, r.MAC2, r.BalanceAfter = res.TAC, res.MAC2, res.BalanceAfter
		return r
	}
	recs := []*record.Record{
		mk(record.KindPay, 1, 1, 1, 150, "090203"),
		mk(record.KindPay, 2, 1, 3, 250, "091500"), // counter 2 never arrives
		mk(record.KindPay, 3, 2, 1, 600, "140000"),
		mk(record.KindCertify, 4, 3, 0, 0, "141000"),
	}
	ctx := context.Background()
	if res, err := led.Post(ctx, recs...); err != nil {
		t.Fatal(err)
	} else {
		for i, r := range res {
			if r.Err != nil {
				t.Fatalf("record %d: %v", i, r.Err)
			}
		}
	}
	conflict := mk(record.KindPay, 3, 2, 1, 601, "140000")
	if res, err := led.Post(ctx, conflict); err != nil || res[0].Err == nil {
		t.Fatalf("conflicting resend: %v %+v", err, res)
	}
	return st, led
}

func adminGet(t *testing.T, h http.Handler, remote, host, path, auth string) (int, http.Header, string) {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, "http://"+host+path, nil)
	req.RemoteAddr = remote
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	body, _ := io.ReadAll(w.Result().Body)
	return w.Code, w.Result().Header, string(body)
}

func TestAdminPageAccess(t *testing.T) {
	st, led := adminBooks(t)
	open, err := server.AdminPage(server.AdminPageOptions{Store: st, Ledger: led})
	if err != nil {
		t.Fatal(err)
	}
	withToken, err := server.AdminPage(server.AdminPageOptions{Store: st, Ledger: led, Token: adminToken})
	if err != nil {
		t.Fatal(err)
	}
	const ov = "/admin/api/overview?day=20260314"
	tests := []struct {
		name         string
		h            http.Handler
		remote, host string
		path, auth   string
		want         int
	}{
		{"loopback page", open, "127.0.0.1:5000", "127.0.0.1:8443", "/admin/", "", 200},
		{"loopback api", open, "127.0.0.1:5000", "localhost:8443", ov, "", 200},
		{"ipv6 loopback api", open, "[::1]:5000", "[::1]:8443", ov, "", 200},
		{"remote page", open, "192.0.2.7:5000", "hub.example:8443", "/admin/", "", 403},
		{"remote api", open, "192.0.2.7:5000", "127.0.0.1:8443", ov, "", 403},
		{"dns rebinding", open, "127.0.0.1:5000", "evil.example:8443", ov, "", 403},
		{"token: remote page", withToken, "192.0.2.7:5000", "hub.example:8443", "/admin/", "", 200},
		{"token: remote api without token", withToken, "192.0.2.7:5000", "hub.example", ov, "", 401},
		{"token: loopback api without token", withToken, "127.0.0.1:5000", "127.0.0.1", ov, "", 401},
		{"token: wrong token", withToken, "192.0.2.7:5000", "hub.example", ov, "Bearer " + adminToken + "x", 401},
		{"token: not bearer", withToken, "192.0.2.7:5000", "hub.example", ov, "Basic " + adminToken, 401},
		{"token: right token", withToken, "192.0.2.7:5000", "hub.example", ov, "Bearer " + adminToken, 200},
		{"bad day", open, "127.0.0.1:5000", "127.0.0.1", "/admin/api/overview?day=2026-03-14", "", 400},
		{"unknown endpoint", open, "127.0.0.1:5000", "127.0.0.1", "/admin/api/keys", "", 404},
		{"unknown file", open, "127.0.0.1:5000", "127.0.0.1", "/admin/secret.txt", "", 404},
		{"script", open, "127.0.0.1:5000", "127.0.0.1", "/admin/admin.js", "", 200},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, hdr, body := adminGet(t, tc.h, tc.remote, tc.host, tc.path, tc.auth)
			if code != tc.want {
				t.Fatalf("status %d, want %d: %s", code, tc.want, body)
			}
			if code == 200 && !strings.HasPrefix(tc.path, "/admin/api/") && hdr.Get("Content-Security-Policy") == "" {
				t.Error("no Content-Security-Policy on a page file")
			}
		})
	}
	req := httptest.NewRequest(http.MethodPost, "http://127.0.0.1/admin/api/overview", nil)
	req.RemoteAddr = "127.0.0.1:1"
	w := httptest.NewRecorder()
	open.ServeHTTP(w, req)
	if w.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST: status %d, want 405", w.Code)
	}
	if _, err := server.AdminPage(server.AdminPageOptions{Store: st, Ledger: led, Token: "short"}); err == nil {
		t.Error("a 5-byte operator token was accepted")
	}
	if _, err := server.AdminPage(server.AdminPageOptions{Ledger: led}); err == nil {
		t.Error("no store accepted")
	}
}

func TestAdminPageOverview(t *testing.T) {
	st, led := adminBooks(t)
	now := time.Date(2026, 3, 14, 12, 0, 0, 0, time.UTC)
	h, err := server.AdminPage(server.AdminPageOptions{Store: st, Ledger: led, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	code, _, body := adminGet(t, h, "127.0.0.1:1", "127.0.0.1", "/admin/api/overview?day=20260314", "")
	if code != 200 {
		t.Fatalf("status %d: %s", code, body)
	}
	var ov server.AdminOverview
	if err := json.Unmarshal([]byte(body), &ov); err != nil {
		t.Fatal(err)
	}
	if len(ov.Terminals) != 1 || ov.Terminals[0].No != term1 || ov.Terminals[0].State != "active" || ov.Terminals[0].AckedSeq != 0 ||
		!strings.HasPrefix(ov.Terminals[0].Key, "sm3:") {
		t.Errorf("terminals %+v", ov.Terminals)
	}
	if len(ov.Merchants) != 1 || ov.Merchants[0].Count != 3 || ov.Merchants[0].Amount != 1000 {
		t.Errorf("merchants %+v, want 3 pays of 1000 fen", ov.Merchants)
	}
	kinds := map[string]int{}
	for _, d := range ov.Discrepancies {
		kinds[d.Kind]++
		if d.Card != "" && !strings.Contains(d.Card, "**") {
			t.Errorf("card ID not masked: %q", d.Card)
		}
	}
	for _, k := range []ledger.DiscrepancyKind{ledger.MissingRecord, ledger.Rejected, ledger.TotalsMissing} {
		if kinds[string(k)] != 1 {
			t.Errorf("discrepancies %v: want one %s", kinds, k)
		}
	}
	// Nothing personal or secret: no holder name, person ID, card number,
	// full card ID, public key or token hash.
	pub, _ := st.Terminal(context.Background(), term1)
	for _, bad := range []string{"张三", "110000199001010000", "C00000001", servertest.Card(1).String(), servertest.Card(2).String()} {
		if strings.Contains(body, bad) {
			t.Errorf("overview exposes %q", bad)
		}
	}
	if b, _ := json.Marshal(pub.PublicKey); strings.Contains(body, strings.Trim(string(b), `"`)) {
		t.Error("overview exposes the terminal's public key")
	}

	code, _, body = adminGet(t, h, "127.0.0.1:1", "127.0.0.1", "/admin/api/hourly?day=20260314", "")
	if code != 200 {
		t.Fatalf("hourly: status %d: %s", code, body)
	}
	var hr server.AdminHourly
	if err := json.Unmarshal([]byte(body), &hr); err != nil {
		t.Fatal(err)
	}
	want := map[int][3]int64{9: {2, 0, 0}, 14: {1, 0, 1}}
	if len(hr.Hours) != 24 || hr.Total != 4 {
		t.Fatalf("hourly: %d hours, total %d; want 24, 4", len(hr.Hours), hr.Total)
	}
	for _, x := range hr.Hours {
		if got := [3]int64{x.Pay, x.Load, x.Certify}; got != want[x.Hour] {
			t.Errorf("hour %d: %v, want %v", x.Hour, got, want[x.Hour])
		}
	}
	// The default day is today in China Standard Time (12:00 UTC = 20:00 CST, same day).
	code, _, body = adminGet(t, h, "127.0.0.1:1", "127.0.0.1", "/admin/api/hourly", "")
	if code != 200 || !strings.Contains(body, `"day":"20260314"`) {
		t.Errorf("default day: %d %s", code, body)
	}
}

func TestMaskCardID(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"411600D156000005C38275EEFC9B0001", "411600**********************0001"},
		{"1234", "****"},
	}
	for _, tc := range tests {
		if got := server.MaskCardID(tc.in); got != tc.want {
			t.Errorf("MaskCardID(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
