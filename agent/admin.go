package agent

import (
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"
)

// AdminHeader must be present (value "1") on every /v1/ admin request:
// browsers cannot add it to a cross-origin request without a CORS
// preflight, which the admin endpoint never grants.
const AdminHeader = "X-Onecard-Admin"

// adminHandler serves the loopback admin endpoint:
//
//	GET    /metrics                 Prometheus text format
//	GET    /healthz                 "ok"
//	GET    /v1/status               the agent's status (JSON)
//	POST   /v1/pair                 a new pairing code {"code","expires"}
//	GET    /v1/pairs                paired origins
//	DELETE /v1/pairs?origin=O       unpair O
//	GET    /v1/loglevel             {"level"}
//	PUT    /v1/loglevel?level=L     change the log level
//
// Requests from other hosts, with an Origin header (a browser), or (for
// /v1/) without AdminHeader are refused with 403.
func (a *Agent) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", a.m.reg)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, a.Status()) })
	mux.HandleFunc("POST /v1/pair", func(w http.ResponseWriter, r *http.Request) {
		code, exp, err := a.NewPairingCode()
		if err != nil {
			http.Error(w, err.Error(), http.StatusConflict)
			return
		}
		writeJSON(w, map[string]any{"code": code, "expires": exp.UTC().Format(time.RFC3339)})
	})
	mux.HandleFunc("GET /v1/pairs", func(w http.ResponseWriter, r *http.Request) {
		if a.pairing == nil {
			writeJSON(w, map[string]any{"pairing": false, "pairs": []any{}})
			return
		}
		type pair struct {
			Origin   string    `json:"origin"`
			PairedAt time.Time `json:"pairedAt"`
		}
		out := []pair{}
		for _, p := range a.pairing.List() {
			out = append(out, pair{p.Origin, p.PairedAt})
		}
		writeJSON(w, map[string]any{"pairing": true, "pairs": out})
	})
	mux.HandleFunc("DELETE /v1/pairs", func(w http.ResponseWriter, r *http.Request) {
		if a.pairing == nil {
			http.Error(w, "pairing is disabled", http.StatusConflict)
			return
		}
		ok, err := a.pairing.Revoke(r.URL.Query().Get("origin"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if ok {
			a.log.Info("kiosk origin unpaired", "origin", r.URL.Query().Get("origin"))
		}
		writeJSON(w, map[string]any{"revoked": ok})
	})
	mux.HandleFunc("GET /v1/loglevel", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, map[string]any{"level": strings.ToLower(a.level.Level().String())})
	})
	mux.HandleFunc("PUT /v1/loglevel", func(w http.ResponseWriter, r *http.Request) {
		l, err := ParseLevel(r.URL.Query().Get("level"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		a.SetLevel(l)
		writeJSON(w, map[string]any{"level": strings.ToLower(l.String())})
	})
	return adminGuard(mux, a.log)
}

// adminGuard refuses non-loopback peers, browsers and /v1/ requests
// without AdminHeader.
func adminGuard(next http.Handler, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, _, err := net.SplitHostPort(r.RemoteAddr)
		ip := net.ParseIP(host)
		switch {
		case err != nil || ip == nil || !ip.IsLoopback():
			http.Error(w, "forbidden", http.StatusForbidden)
			return
		case r.Header.Get("Origin") != "":
			log.Warn("admin request from a browser refused", "origin", r.Header.Get("Origin"), "path", r.URL.Path)
			http.Error(w, "forbidden", http.StatusForbidden)
			return
		case strings.HasPrefix(r.URL.Path, "/v1/") && r.Header.Get(AdminHeader) != "1":
			http.Error(w, "forbidden: missing "+AdminHeader+" header", http.StatusForbidden)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
