package agent_test

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"runtime"
	"strings"
	"testing"

	"github.com/onecard-hub/onecard/agent/kioskapi"
	"github.com/onecard-hub/onecard/sm"
	"github.com/onecard-hub/onecard/terminal"
	"github.com/onecard-hub/onecard/terminal/national"
)

type compatRes struct {
	Result   int    `json:"result"`
	POutInfo string `json:"pOutInfo"`
	Message  string `json:"message"`
}

// dialNative connects like a native program: no Origin, the token from
// the agent's token file (tok "" = none).
func (e *env) dialNative(tok string) (*client, int) {
	e.t.Helper()
	h := http.Header{}
	if tok != "" {
		h.Set(kioskapi.NativeTokenHeader, "Bearer "+tok)
	}
	ws, resp, err := dialRaw(e.wsURL(), h)
	if err != nil {
		if resp == nil {
			e.t.Fatal(err)
		}
		return nil, resp.StatusCode
	}
	return &client{t: e.t, ws: ws}, 101
}

func (e *env) nativeToken() string {
	e.t.Helper()
	b, err := os.ReadFile(e.a.NativeTokenPath())
	if err != nil {
		e.t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func TestNativeTokenFullIdentity(t *testing.T) {
	e := startAgent(t, "")
	fi, err := os.Stat(e.a.NativeTokenPath())
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "windows" && fi.Mode().Perm() != 0o640 {
		t.Errorf("token file mode %v, want 0640", fi.Mode().Perm())
	}
	tok := e.nativeToken()
	if len(tok) != 64 {
		t.Fatalf("token %d characters, want 64", len(tok))
	}
	if _, status := e.dialNative(strings.Repeat("0", 64)); status != http.StatusForbidden {
		t.Errorf("wrong token: HTTP %d, want 403", status)
	}
	if _, status := e.dialNative(""); status != http.StatusForbidden {
		t.Errorf("no token, allow_no_origin off: HTTP %d, want 403", status)
	}
	c, status := e.dialNative(tok)
	if c == nil {
		t.Fatalf("token: HTTP %d", status)
	}
	defer c.close()
	var r compatRes
	if err := json.Unmarshal(c.mustCall("iReadCardBas", map[string]any{"iType": 3}), &r); err != nil {
		t.Fatal(err)
	}
	b, err := national.ParseBasic(r.POutInfo)
	if r.Result != 0 || err != nil || b.PersonID != cardSSN || b.Name != cardName {
		t.Errorf("iReadCardBas with the token = %+v (%v); want the full identity", r, err)
	}
}

func TestHSMSteps(t *testing.T) {
	e := startAgent(t, "")
	c, _ := e.dialNative(e.nativeToken())
	if c == nil {
		t.Fatal("native dial refused")
	}
	defer c.close()
	keys, err := sm.TestKeySet("demo")
	if err != nil {
		t.Fatal(err)
	}
	ks := &terminal.LocalKeyService{Keys: keys}
	step := func(method string, params map[string]any) compatRes {
		t.Helper()
		var r compatRes
		if err := json.Unmarshal(c.mustCall(method, params), &r); err != nil {
			t.Fatal(err)
		}
		return r
	}
	var want compatRes
	if err := json.Unmarshal(c.mustCall("iReadCardBas", map[string]any{"iType": 1}), &want); err != nil || want.Result != 0 {
		t.Fatalf("iReadCardBas = %+v, %v", want, err)
	}
	for _, tt := range []struct {
		name   string
		iType  int
		key    func(terminal.Step1) string
		result int
	}{
		{"HSM answer", 1, func(s terminal.Step1) string {
			k, err := ks.AuthenticateRead(context.Background(), s)
			if err != nil {
				t.Fatal(err)
			}
			return national.FormatStep2Key(k)
		}, 0},
		{"wrong RESULT1", 4, func(terminal.Step1) string { return strings.Repeat("00", 16) + "|" + strings.Repeat("00", 16) + "|" }, national.CodeHSMMismatch},
		{"illegal character", 2, func(terminal.Step1) string { return strings.Repeat("0G", 16) + "||" }, national.CodeCryptoChar},
		{"short", 3, func(terminal.Step1) string { return "0011|" + strings.Repeat("00", 16) + "|" }, national.CodeCryptoLength},
		{"no layout", 3, func(terminal.Step1) string { return "nonsense" }, national.CodeInputInvalid},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r1 := step("iReadCardBas_HSM_Step1", map[string]any{"iType": tt.iType})
			st, err := national.ParseStep1(r1.POutInfo)
			if r1.Result != 0 || err != nil {
				t.Fatalf("Step1 = %+v (%v)", r1, err)
			}
			r2 := step("iReadCardBas_HSM_Step2", map[string]any{"pKey": tt.key(st)})
			if r2.Result != tt.result {
				t.Fatalf("Step2 = %+v, want result %d", r2, tt.result)
			}
			if tt.result == 0 && r2.POutInfo != want.POutInfo {
				t.Errorf("Step2 output %q, want iReadCardBas's %q", r2.POutInfo, want.POutInfo)
			}
		})
	}
	if r := step("iReadCardBas_HSM_Step1", map[string]any{"iType": 5}); r.Result != national.CodeBadParameter {
		t.Errorf("iType 5: %+v", r)
	}
	// A malformed key leaves Step1's state; the next Step2 uses it up, and
	// one more has no Step1.
	zero := map[string]any{"pKey": strings.Repeat("00", 16) + "|" + strings.Repeat("00", 16) + "|"}
	if r := step("iReadCardBas_HSM_Step2", zero); r.Result != national.CodeHSMMismatch {
		t.Errorf("Step2 after a malformed key: %+v, want %d", r, national.CodeHSMMismatch)
	}
	if r := step("iReadCardBas_HSM_Step2", zero); r.Result != national.CodeInputInvalid {
		t.Errorf("Step2 without Step1: %+v, want %d", r, national.CodeInputInvalid)
	}
}
