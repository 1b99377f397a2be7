// Package kiosk is the agent's self-service kiosk page: plain HTML, CSS
// and JavaScript (no framework, no build step) embedded in the binary and
// served by the agent at Prefix (http://127.0.0.1:17300/kiosk/).
//
// The page talks to the agent through onecard-client.js and the kiosk API
// (docs/kiosk-api.md): insert the card → masked identity → choose a
// service (pay a bill, load a benefit, certify eligibility) → amount → PIN
// on an on-screen keypad (or "enter your PIN on the PIN pad" when the
// agent reports one) → result and receipt, with the operation's progress
// stages (reading, enter PIN, writing, syncing), every error code of the
// API explained in Chinese or English (a toggle), and a pairing screen
// when the page's origin is not yet allowed by the agent.
//
// The page finds the agent at its own host when served by the agent
// (path under Prefix), else at the "agent" query parameter (a loopback
// host:port only) or 127.0.0.1:17300. Query parameters set the business
// fields: merchant (default pharmacy-01), fund (medical), programme
// (subsidy-2026), programmeFund (subsidy), certify (pension-2026),
// certifyFund (pension), reader (lane; default: the agent picks), lang
// (zh or en).
package kiosk

import (
	"embed"
	"net/http"
	"strings"
)

// Prefix is the URL path the agent serves the page under.
const Prefix = "/kiosk/"

//go:embed index.html kiosk.css kiosk.js
var files embed.FS

// contentTypes are the page's files and their media types.
var contentTypes = map[string]string{
	"index.html": "text/html; charset=utf-8",
	"kiosk.css":  "text/css; charset=utf-8",
	"kiosk.js":   "text/javascript; charset=utf-8",
}

// ContentSecurityPolicy is sent with every file: scripts from the page's
// origin and the agent's loopback origin only (onecard-client.js), no
// inline script or style, WebSocket connections to loopback only, no
// framing by other sites.
const ContentSecurityPolicy = "default-src 'none'; script-src 'self' http://127.0.0.1:* http://localhost:* http://[::1]:*; " +
	"style-src 'self'; img-src 'self' data:; connect-src 'self' ws://127.0.0.1:* ws://localhost:* ws://[::1]:*; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'self'"

// File returns the content of one of the page's files (index.html,
// kiosk.css, kiosk.js) and whether it exists.
func File(name string) ([]byte, bool) {
	if _, ok := contentTypes[name]; !ok {
		return nil, false
	}
	b, err := files.ReadFile(name)
	return b, err == nil
}

// Handler serves the page. It accepts paths with or without Prefix
// ("/kiosk/kiosk.js" or "/kiosk.js"); the directory itself is
// index.html, and "/kiosk" redirects to Prefix. GET and HEAD only (405 otherwise); unknown files are 404.
// Responses carry ContentSecurityPolicy, nosniff, no-referrer and
// no-cache (an updated agent serves an updated page at once).
func Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		if r.URL.Path == strings.TrimSuffix(Prefix, "/") {
			http.Redirect(w, r, Prefix, http.StatusMovedPermanently)
			return
		}
		name, ok := strings.CutPrefix(r.URL.Path, Prefix)
		if !ok {
			name = strings.TrimPrefix(r.URL.Path, "/")
		}
		if name == "" {
			name = "index.html"
		}
		b, ok := File(name)
		if !ok {
			http.NotFound(w, r)
			return
		}
		h := w.Header()
		h.Set("Content-Type", contentTypes[name])
		h.Set("Content-Security-Policy", ContentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-cache")
		if r.Method == http.MethodHead {
			return
		}
		_, _ = w.Write(b)
	})
}
