package kioskapi

import (
	"crypto/subtle"
	"net/http"
	"strings"
)

// NativeTokenHeader carries a native client's token: "Bearer <token>".
// Browsers cannot add headers to a WebSocket handshake and always send
// an Origin, so a request with this header and without an Origin comes
// from a local program (the SSCardDriver replacement, sscard/).
const NativeTokenHeader = "Authorization"

// admitNative decides on an upgrade request without an Origin that
// presents a token in NativeTokenHeader. handled=false: no token header,
// the caller applies AllowNoOrigin. A token equal to
// Options.NativeToken (constant-time) is admitted authorised with full
// identity — whoever can read the agent's token file may see what the
// card holds, like the vendor DLL it replaces; any other token, or a
// token when the agent has none, is refused (403, reason "token").
func (s *Server) admitNative(r *http.Request) (adm admission, status int, reason string, handled bool) {
	h := r.Header.Get(NativeTokenHeader)
	if h == "" {
		return admission{}, 0, "", false
	}
	tok, ok := strings.CutPrefix(h, "Bearer ")
	if !ok || s.opts.NativeToken == "" || len(tok) != len(s.opts.NativeToken) ||
		subtle.ConstantTimeCompare([]byte(tok), []byte(s.opts.NativeToken)) != 1 {
		return admission{}, http.StatusForbidden, "token", true
	}
	return admission{authorised: true, full: true}, 0, "", true
}
