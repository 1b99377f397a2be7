// Package admin is the hub's operator page: plain HTML, CSS and
// JavaScript (no framework, no build step, no external library or CDN)
// embedded in the binary and served by the hub at Prefix
// (hub/server.AdminPage), next to a small read-only JSON API under
// APIPrefix.
//
// The page shows the terminals (state, connected or not, last
// acknowledged sequence, time since the last acknowledgement), the day's
// totals per merchant and per programme, the terminals' posted figures
// against their submitted totals, the discrepancies of the clearing
// report, and a bar chart of the day's transactions per hour, drawn as an
// inline SVG by the page's own script from the hourly endpoint.
//
// Query parameters of the page: day (YYYYMMDD; default: today in China
// Standard Time, as the hub counts days). When the hub requires an
// operator token the page takes it from the URL fragment (#token=...),
// keeps it in the tab's sessionStorage, removes it from the address bar
// and sends it as "Authorization: Bearer" with every API request.
//
// window.onecardAdmin.state() reports what the page shows (for tests).
package admin

import (
	"embed"
	"strings"
)

// Prefix is the URL path the hub serves the page under.
const Prefix = "/admin/"

// APIPrefix is the path of the page's JSON API (served by hub/server).
const APIPrefix = Prefix + "api/"

//go:embed index.html admin.css admin.js
var files embed.FS

// contentTypes are the page's files and their media types.
var contentTypes = map[string]string{
	"index.html": "text/html; charset=utf-8",
	"admin.css":  "text/css; charset=utf-8",
	"admin.js":   "text/javascript; charset=utf-8",
}

// ContentSecurityPolicy is sent with every file: everything from the
// hub's own origin only, no inline script or style, no framing.
const ContentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// File returns the content and media type of one of the page's files
// ("" or "index.html", "admin.css", "admin.js"; a leading Prefix is
// accepted) and whether it exists.
func File(name string) (content []byte, contentType string, ok bool) {
	if n, cut := strings.CutPrefix(name, Prefix); cut {
		name = n
	}
	name = strings.TrimPrefix(name, "/")
	if name == "" {
		name = "index.html"
	}
	ct, known := contentTypes[name]
	if !known {
		return nil, "", false
	}
	b, err := files.ReadFile(name)
	if err != nil {
		return nil, "", false
	}
	return b, ct, true
}
