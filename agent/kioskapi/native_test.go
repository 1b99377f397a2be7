package kioskapi

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestAdmitNativeToken(t *testing.T) {
	const tok = "0123456789abcdef0123456789abcdef"
	for _, tt := range []struct {
		name          string
		token         string // Options.NativeToken
		allowNoOrigin bool
		origin, auth  string
		status        int
		reason        string
		authorised    bool
		full          bool
	}{
		{name: "token", token: tok, auth: "Bearer " + tok, authorised: true, full: true},
		{name: "token beats allow_no_origin", token: tok, allowNoOrigin: true, auth: "Bearer " + tok, authorised: true, full: true},
		{name: "wrong token", token: tok, auth: "Bearer " + tok[:31] + "0", status: 403, reason: "token"},
		{name: "short token", token: tok, auth: "Bearer 01", status: 403, reason: "token"},
		{name: "not bearer", token: tok, auth: tok, status: 403, reason: "token"},
		{name: "agent without token", auth: "Bearer " + tok, allowNoOrigin: true, status: 403, reason: "token"},
		{name: "no header, allow_no_origin", token: tok, allowNoOrigin: true, authorised: true},
		{name: "no header", token: tok, status: 403, reason: "no_origin"},
		{name: "browser with header stays a browser", token: tok, origin: "https://evil.example", auth: "Bearer " + tok, status: 403, reason: "origin"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s, err := NewServer(Options{NativeToken: tt.token, AllowNoOrigin: tt.allowNoOrigin})
			if err != nil {
				t.Fatal(err)
			}
			r := httptest.NewRequest(http.MethodGet, "http://127.0.0.1:17300/v1/ws", nil)
			if tt.origin != "" {
				r.Header.Set("Origin", tt.origin)
			}
			if tt.auth != "" {
				r.Header.Set(NativeTokenHeader, tt.auth)
			}
			adm, status, reason := s.admit(r)
			if status != tt.status || reason != tt.reason || adm.authorised != tt.authorised || adm.full != tt.full {
				t.Errorf("admit = %+v, %d, %q; want authorised %v full %v, %d, %q", adm, status, reason, tt.authorised, tt.full, tt.status, tt.reason)
			}
		})
	}
}
