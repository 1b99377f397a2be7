package kioskapi

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
)

// ErrBadOrigin: an origin that is not scheme://host[:port] with scheme
// http or https (browsers send "null" for file:// pages and sandboxed
// frames; that is refused too).
var ErrBadOrigin = errors.New("invalid origin")

// MaxOriginLen bounds an origin (as Web eID does).
const MaxOriginLen = 255

// NormaliseOrigin returns origin in canonical form: lower-case scheme and
// host, default port (80 for http, 443 for https) removed, no trailing
// slash. It refuses anything with a path, query, fragment or user info,
// any scheme but http and https, and origins longer than MaxOriginLen.
// Errors wrap ErrBadOrigin.
func NormaliseOrigin(origin string) (string, error) {
	if origin == "" || len(origin) > MaxOriginLen {
		return "", fmt.Errorf("%w: %q", ErrBadOrigin, truncate(origin))
	}
	u, err := url.Parse(origin)
	if err != nil {
		return "", fmt.Errorf("%w: %q", ErrBadOrigin, truncate(origin))
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme != "http" && scheme != "https" {
		return "", fmt.Errorf("%w: %q: scheme must be http or https", ErrBadOrigin, truncate(origin))
	}
	if u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" || u.ForceQuery {
		return "", fmt.Errorf("%w: %q: want scheme://host[:port] only", ErrBadOrigin, truncate(origin))
	}
	host := strings.ToLower(u.Hostname())
	if host == "" {
		return "", fmt.Errorf("%w: %q: no host", ErrBadOrigin, truncate(origin))
	}
	port := u.Port()
	if (scheme == "http" && port == "80") || (scheme == "https" && port == "443") {
		port = ""
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if port != "" {
		return scheme + "://" + host + ":" + port, nil
	}
	return scheme + "://" + host, nil
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

// IsLoopbackHostPort reports whether a Host header names this machine by
// a loopback literal or "localhost" (with any port). The kiosk API refuses
// other Host values, so a page on a domain rebound to 127.0.0.1 (DNS
// rebinding) never reaches it.
func IsLoopbackHostPort(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
