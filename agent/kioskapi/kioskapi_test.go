package kioskapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/onecard-hub/onecard/apdu"
	"github.com/onecard-hub/onecard/reader"
	"github.com/onecard-hub/onecard/terminal"
	"github.com/onecard-hub/onecard/terminal/national"
)

func TestNormaliseOrigin(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"https://His.Example", "https://his.example"},
		{"https://his.example:443", "https://his.example"},
		{"http://his.example:80", "http://his.example"},
		{"http://127.0.0.1:8080", "http://127.0.0.1:8080"},
		{"https://his.example/", "https://his.example"},
		{"http://[::1]:3000", "http://[::1]:3000"},
		{"null", ""},
		{"file://", ""},
		{"chrome-extension://abc", ""},
		{"https://his.example/path", ""},
		{"https://his.example?q", ""},
		{"https://his.example#f", ""},
		{"https://user@his.example", ""},
		{"https://", ""},
		{"", ""},
		{"https://" + strings.Repeat("a", 300) + ".example", ""},
	} {
		got, err := NormaliseOrigin(tt.in)
		if tt.want == "" {
			if err == nil || !errors.Is(err, ErrBadOrigin) {
				t.Errorf("NormaliseOrigin(%q) = %q, %v; want ErrBadOrigin", tt.in, got, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("NormaliseOrigin(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func FuzzNormaliseOrigin(f *testing.F) {
	for _, s := range []string{"https://his.example", "http://127.0.0.1:17300", "null", "https://a/b", "http://[::1]:1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		o, err := NormaliseOrigin(s)
		if err != nil {
			return
		}
		again, err := NormaliseOrigin(o)
		if err != nil || again != o {
			t.Fatalf("not idempotent: %q -> %q -> %q, %v", s, o, again, err)
		}
	})
}

func TestIsLoopbackHostPort(t *testing.T) {
	for in, want := range map[string]bool{
		"127.0.0.1:17300": true, "localhost:1": true, "LOCALHOST": true, "[::1]:5": true, "127.1.2.3:4": true,
		"evil.example:17300": false, "0.0.0.0:1": false, "192.0.2.1:80": false, "": false, "localhost.evil.example": false,
	} {
		if got := IsLoopbackHostPort(in); got != want {
			t.Errorf("IsLoopbackHostPort(%q) = %v", in, got)
		}
	}
}

func TestDecodeRequest(t *testing.T) {
	for _, tt := range []struct {
		msg    string
		ok     bool
		method string
	}{
		{`{"id":1,"method":"status"}`, true, "status"},
		{`{"id":"a","method":"pay","params":{"amount":1}}`, true, "pay"},
		{`{"id":1,"method":"status","params":null}`, true, "status"},
		{`{"id":1.5,"method":"x"}`, true, "x"},
		{`{"id":null,"method":"x"}`, false, ""},
		{`{"id":true,"method":"x"}`, false, ""},
		{`{"id":"` + strings.Repeat("a", 70) + `","method":"x"}`, false, ""},
		{`{"id":1,"method":""}`, false, ""},
		{`{"id":1,"method":"x","params":"s"}`, false, ""},
		{`{"id":1,"method":"x","extra":1}`, false, ""},
		{`{"id":1,"method":"x"}{"id":2}`, false, ""},
		{``, false, ""},
		{`[]`, false, ""},
	} {
		req, err := decodeRequest([]byte(tt.msg))
		if (err == nil) != tt.ok {
			t.Errorf("decodeRequest(%s) error %v, want ok=%v", tt.msg, err, tt.ok)
			continue
		}
		if err != nil && err.Code != CodeMalformed {
			t.Errorf("decodeRequest(%s) code %s", tt.msg, err.Code)
		}
		if tt.ok && req.Method != tt.method {
			t.Errorf("decodeRequest(%s) method %q", tt.msg, req.Method)
		}
	}
}

func FuzzDecodeRequest(f *testing.F) {
	for _, s := range []string{
		`{"id":1,"method":"status"}`,
		`{"id":7,"method":"pay","params":{"amount":1234,"pin":"123456"}}`,
		`{"id":"x","method":"iReadCardBas","params":{"iType":3}}`,
		`{"id":1}`, `[`, `{"id":1,"method":"a","params":[]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		req, err := decodeRequest(b)
		if err != nil {
			if err.Code != CodeMalformed {
				t.Fatalf("code %s", err.Code)
			}
			return
		}
		if !validID(req.ID) || req.Method == "" {
			t.Fatalf("accepted %q with id %s method %q", b, req.ID, req.Method)
		}
		// What was accepted re-encodes and decodes to the same request.
		out, merr := json.Marshal(req)
		if merr != nil {
			t.Fatal(merr)
		}
		again, err := decodeRequest(out)
		if err != nil || again.Method != req.Method || !bytes.Equal(again.ID, req.ID) {
			t.Fatalf("round trip %s: %+v %v", out, again, err)
		}
	})
}

func TestSecret(t *testing.T) {
	var p struct {
		PIN Secret `json:"pin"`
	}
	c := &Call{Params: json.RawMessage(`{"pin":"123456"}`)}
	if err := c.Decode(&p); err != nil || string(p.PIN) != "123456" {
		t.Fatalf("decode: %v %q", err, p.PIN)
	}
	for _, f := range []string{fmt.Sprint(p.PIN), fmt.Sprintf("%v %s %q %#v", p.PIN, p.PIN, p.PIN, p.PIN)} {
		if strings.Contains(f, "1234") {
			t.Errorf("formatted secret leaks: %s", f)
		}
	}
	if b, _ := json.Marshal(p); strings.Contains(string(b), "1234") {
		t.Errorf("marshalled secret leaks: %s", b)
	}
	p.PIN.Zero()
	if !bytes.Equal(p.PIN, make([]byte, 6)) {
		t.Errorf("not zeroed: %v", []byte(p.PIN))
	}
	for _, bad := range []string{`{"pin":"12"}`, `{"pin":"1234567890123"}`, `{"pin":"12a4"}`, `{"pin":1234}`, `{"pin":"12\u0033456"}`} {
		var q struct {
			PIN Secret `json:"pin"`
		}
		err := (&Call{Params: json.RawMessage(bad)}).Decode(&q)
		var e *Error
		if !errors.As(err, &e) || e.Code != CodePINFormat || !strings.HasPrefix(e.Message, "PIN must be ") || strings.Contains(e.Message, "a4") || strings.Contains(e.Message, "3456") {
			t.Errorf("%s: %v", bad, err)
		}
	}
}

func TestClassify(t *testing.T) {
	sw := func(v uint16) error { return apdu.Response{SW: v}.Err() }
	for _, tt := range []struct {
		err         error
		code        string
		retriable   bool
		cardRemoved bool
		tries       int // -1: none
		national    int
	}{
		{&terminal.PINError{TriesLeft: 2, Err: sw(0x63C2)}, CodePINWrong, true, false, 2, national.CodePINWrong},
		{&terminal.PINError{Blocked: true, Err: sw(0x6983)}, CodePINBlocked, false, false, -1, national.CodePINLocked},
		{fmt.Errorf("pay: %w", sw(0x9401)), CodeInsufficient, false, false, -1, apdu.NationalCode(0x9401)},
		{fmt.Errorf("pay: %w", reader.ErrCardRemoved), CodeCardRemoved, true, true, -1, 0},
		{&terminal.UnsettledError{Err: fmt.Errorf("%w: %w", terminal.ErrOutcomeUnknown, reader.ErrCardRemoved)}, CodeOutcomeUnknown, true, true, -1, national.CodeOutcomeUnknown},
		{fmt.Errorf("x: %w", reader.ErrNoCard), CodeNoCard, true, false, -1, national.CodeNoCard},
		{fmt.Errorf("x: %w", reader.ErrReaderBusy), CodeReaderBusy, true, false, -1, 0},
		{fmt.Errorf("x: %w", reader.ErrServiceDown), CodeServiceDown, true, false, -1, 0},
		{fmt.Errorf("x: %w", terminal.ErrNoPINPad), CodePINRequired, true, false, -1, 0},
		{fmt.Errorf("x: %w", terminal.ErrLostCard), CodeLostCard, false, false, -1, national.CodeLostCard},
		{fmt.Errorf("x: %w", terminal.ErrNoPSAM), CodeNoPSAM, false, false, -1, national.CodeNoPSAM},
		{fmt.Errorf("x: %w", terminal.ErrBadRequest), CodeBadRequest, false, false, -1, 0},
		{sw(0x6A82), CodeCardError, false, false, -1, apdu.NationalCode(0x6A82)},
		{errors.New("boom"), CodeInternal, false, false, -1, 0},
		{Errorf(CodeBusy, "x"), CodeBusy, true, false, -1, 0},
	} {
		got := Classify(tt.err)
		if got.Code != tt.code || got.Retriable != tt.retriable || got.CardRemoved != tt.cardRemoved {
			t.Errorf("Classify(%v) = %+v, want %s retriable=%v removed=%v", tt.err, got, tt.code, tt.retriable, tt.cardRemoved)
		}
		if (got.TriesLeft == nil) != (tt.tries < 0) || (got.TriesLeft != nil && *got.TriesLeft != tt.tries) {
			t.Errorf("Classify(%v) tries %v, want %d", tt.err, got.TriesLeft, tt.tries)
		}
		if tt.national != 0 && got.National != tt.national {
			t.Errorf("Classify(%v) national %d, want %d", tt.err, got.National, tt.national)
		}
	}
	if Classify(nil) != nil {
		t.Error("Classify(nil) != nil")
	}
	if m := Classify(errors.New("holder 650102199208154026")).Message; strings.Contains(m, "19920815") {
		t.Errorf("message not masked: %s", m)
	}
}

func TestPairing(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "pairs.json")
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	clock := func() time.Time { return now }
	p, err := OpenPairing(PairingOptions{Path: path, Now: clock, MaxAttempts: 3})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Pair("https://a.example", "123456"); !errors.Is(err, ErrNoCode) {
		t.Errorf("pair without code: %v", err)
	}
	code, exp, err := p.NewCode()
	if err != nil || len(code) != CodeDigits || !exp.Equal(now.Add(DefaultCodeTTL)) {
		t.Fatalf("NewCode = %q %v %v", code, exp, err)
	}
	wrong := "000000"
	if code == wrong {
		wrong = "999999"
	}
	if _, err := p.Pair("https://a.example", wrong); !errors.Is(err, ErrBadCode) {
		t.Errorf("wrong code: %v", err)
	}
	tok, err := p.Pair("https://A.example:443", code)
	if err != nil || tok == "" {
		t.Fatalf("pair: %v", err)
	}
	if _, err := p.Pair("https://b.example", code); !errors.Is(err, ErrNoCode) {
		t.Errorf("code reused: %v", err)
	}
	if !p.Check("https://a.example", tok) || p.Check("https://b.example", tok) || p.Check("https://a.example", tok+"x") || p.Check("https://a.example", "") {
		t.Error("Check")
	}
	if runtime.GOOS != "windows" {
		fi, err := os.Stat(path)
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("pairing file mode %v %v", fi.Mode(), err)
		}
	}
	b, _ := os.ReadFile(path)
	if strings.Contains(string(b), tok) {
		t.Error("token stored in clear")
	}

	// Persisted; attempts revoke the code; codes expire.
	p2, err := OpenPairing(PairingOptions{Path: path, Now: clock, MaxAttempts: 3})
	if err != nil || !p2.Check("https://a.example", tok) || len(p2.List()) != 1 {
		t.Fatalf("reopen: %v %v", err, p2.List())
	}
	code, _, _ = p2.NewCode()
	wrong = "000000"
	if code == wrong {
		wrong = "999999"
	}
	for range 3 {
		_, _ = p2.Pair("https://b.example", wrong)
	}
	if _, err := p2.Pair("https://b.example", code); !errors.Is(err, ErrNoCode) {
		t.Errorf("code survived 3 wrong attempts: %v", err)
	}
	code, _, _ = p2.NewCode()
	now = now.Add(DefaultCodeTTL)
	if _, err := p2.Pair("https://b.example", code); !errors.Is(err, ErrNoCode) {
		t.Errorf("expired code accepted: %v", err)
	}
	if ok, err := p2.Revoke("https://a.example"); !ok || err != nil {
		t.Errorf("revoke: %v %v", ok, err)
	}
	if p2.Check("https://a.example", tok) {
		t.Error("revoked token still valid")
	}
	if ok, _ := p2.Revoke("https://a.example"); ok {
		t.Error("revoked twice")
	}

	// A corrupt file is refused.
	if err := os.WriteFile(path, []byte(`{"version":1,"pairs":[{"origin":"null","token_sha256":"x"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenPairing(PairingOptions{Path: path}); !errors.Is(err, ErrPairingFile) {
		t.Errorf("corrupt file: %v", err)
	}
}

func TestTokenBucket(t *testing.T) {
	b := newTokenBucket(2, 3)
	t0 := time.Unix(0, 0)
	got := 0
	for range 5 {
		if b.take(t0) {
			got++
		}
	}
	if got != 3 {
		t.Errorf("burst: %d, want 3", got)
	}
	if !b.take(t0.Add(500*time.Millisecond)) || b.take(t0.Add(500*time.Millisecond)) {
		t.Error("refill at 2/s")
	}
}

func TestNewServerRefusesBadOptions(t *testing.T) {
	if _, err := NewServer(Options{Origins: []OriginRule{{Origin: "null"}}}); !errors.Is(err, ErrBadOrigin) {
		t.Errorf("bad origin: %v", err)
	}
	if _, err := NewServer(Options{Methods: map[string]Method{"pair": nil}}); err == nil {
		t.Error("built-in method overridden")
	}
}
