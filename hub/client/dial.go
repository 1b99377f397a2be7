package client

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gorilla/websocket"

	hubsync "github.com/onecard-hub/onecard/hub/sync"
)

// CheckURL checks a hub URL: wss:// (a pin is then required) or ws:// to
// a loopback host only (127.0.0.0/8, ::1 or "localhost"). Errors wrap
// ErrConfig.
func CheckURL(raw string, pin string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: hub URL: %v", ErrConfig, err)
	}
	switch u.Scheme {
	case "wss":
		if pin == "" {
			return nil, fmt.Errorf("%w: wss needs the hub's certificate pin (sha256/... of its public key)", ErrConfig)
		}
		if _, err := hubsync.ParsePin(pin); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrConfig, err)
		}
	case "ws":
		if !IsLoopback(u.Hostname()) {
			return nil, fmt.Errorf("%w: plain ws:// only to a loopback address, use wss:// for %s", ErrConfig, u.Hostname())
		}
	default:
		return nil, fmt.Errorf("%w: hub URL scheme %q, want wss or ws", ErrConfig, u.Scheme)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("%w: hub URL without a host", ErrConfig)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = hubsync.Path
	}
	return u, nil
}

// IsLoopback reports whether host (a name or literal address, without
// port) is a loopback host: "localhost" or an address in 127.0.0.0/8 or
// ::1.
func IsLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}

// pinTLS returns a TLS configuration that accepts exactly the certificate
// whose SubjectPublicKeyInfo hashes to pin (chain and name are not
// checked: the pin is the trust anchor).
func pinTLS(pin string) (*tls.Config, error) {
	want, err := hubsync.ParsePin(pin)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		// The pin replaces chain verification; VerifyConnection enforces it.
		InsecureSkipVerify: true, //nolint:gosec // pinned below
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return fmt.Errorf("%w: no certificate", ErrPinMismatch)
			}
			got := sha256.Sum256(cs.PeerCertificates[0].RawSubjectPublicKeyInfo)
			if subtle.ConstantTimeCompare(got[:], want) != 1 {
				return ErrPinMismatch
			}
			return nil
		},
	}, nil
}

// dial opens the WebSocket connection.
func dial(ctx context.Context, rawURL, pin string, timeout time.Duration, maxMessage int) (*websocket.Conn, error) {
	u, err := CheckURL(rawURL, pin)
	if err != nil {
		return nil, err
	}
	d := websocket.Dialer{
		HandshakeTimeout: timeout,
		Subprotocols:     []string{hubsync.Subprotocol},
		ReadBufferSize:   4096,
		WriteBufferSize:  4096,
		Proxy:            nil, // a kiosk talks to its hub directly
	}
	if u.Scheme == "wss" {
		if d.TLSClientConfig, err = pinTLS(pin); err != nil {
			return nil, err
		}
	}
	dctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	ws, resp, err := d.DialContext(dctx, u.String(), http.Header{})
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	if err != nil {
		if errors.Is(err, ErrPinMismatch) {
			return nil, fmt.Errorf("dial hub %s: %w", u.Host, ErrPinMismatch)
		}
		return nil, fmt.Errorf("dial hub %s: %w: %v", u.Host, ErrUnreachable, err)
	}
	if ws.Subprotocol() != hubsync.Subprotocol {
		ws.Close()
		return nil, fmt.Errorf("dial hub %s: %w: subprotocol %q", u.Host, ErrProtocol, ws.Subprotocol())
	}
	ws.SetReadLimit(int64(maxMessage))
	return ws, nil
}
