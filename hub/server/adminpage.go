package server

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/onecard-hub/onecard/hub/ledger"
	"github.com/onecard-hub/onecard/hub/store"
	"github.com/onecard-hub/onecard/sm"
	"github.com/onecard-hub/onecard/terminal/record"
	"github.com/onecard-hub/onecard/web/admin"
)

// MinAdminToken is the shortest operator token AdminPage accepts (bytes).
const MinAdminToken = 16

// maxHourlyPostings bounds the postings the hourly endpoint reads for one
// day; beyond it the answer is marked truncated.
const maxHourlyPostings = 500_000

// AdminPageOptions configures AdminPage. Store and Ledger are required.
type AdminPageOptions struct {
	Store  store.Store
	Ledger *ledger.Ledger
	// Server, when set, tells which terminals are connected now and the
	// hub's counters.
	Server *Server
	// Token is the operator bearer token. Empty: the page and its API
	// answer loopback clients only (addressed by a loopback host, which
	// also defeats DNS rebinding). Set: every API request must carry
	// "Authorization: Bearer TOKEN", from any address (a reverse proxy on
	// the hub's host would make every client look local); the static
	// files, which hold no data, are served to anyone. At least
	// MinAdminToken bytes; never logged.
	Token string
	// Now is the clock (default time.Now); days are China Standard Time.
	Now func() time.Time
}

// AdminPage returns the handler of the operator page (package web/admin)
// and its read-only JSON API, to mount at admin.Prefix on the hub's
// listener:
//
//	GET /admin/                       the page (index.html, admin.css, admin.js)
//	GET /admin/api/overview?day=D     AdminOverview of day D (YYYYMMDD; default today, CST)
//	GET /admin/api/hourly?day=D       AdminHourly: the day's records per card-time hour
//
// Nothing it serves holds a key, a token, a public key (only its SM3
// fingerprint), a name or a personal number; card IDs are masked
// (first 6 and last 4 hex digits). Refusals: 403 (not loopback, without a
// token), 401 (missing or wrong token), 405 (not GET or HEAD), 400 (bad
// day), 500 (store error); API errors are {"error": "..."}. Errors of
// AdminPage: a missing store or ledger, a token shorter than
// MinAdminToken.
func AdminPage(o AdminPageOptions) (http.Handler, error) {
	switch {
	case o.Store == nil:
		return nil, errors.New("admin page: no store")
	case o.Ledger == nil:
		return nil, errors.New("admin page: no ledger")
	case o.Token != "" && len(o.Token) < MinAdminToken:
		return nil, fmt.Errorf("admin page: operator token shorter than %d bytes", MinAdminToken)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	p := &adminPage{o: o}
	if o.Token != "" {
		h := sha256.Sum256([]byte(o.Token))
		p.tokenHash = h[:]
	}
	return p, nil
}

type adminPage struct {
	o         AdminPageOptions
	tokenHash []byte
}

var cstZone = time.FixedZone("CST", 8*3600)

func (p *adminPage) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		h.Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	api, isAPI := strings.CutPrefix(r.URL.Path, admin.APIPrefix)
	if status, msg := p.allow(r, isAPI); status != 0 {
		if isAPI {
			adminJSON(w, status, map[string]string{"error": msg})
		} else {
			http.Error(w, msg, status)
		}
		return
	}
	if !isAPI {
		p.serveFile(w, r)
		return
	}
	h.Set("Cache-Control", "no-store")
	day := r.URL.Query().Get("day")
	if day == "" {
		day = p.o.Now().In(cstZone).Format("20060102")
	}
	if !store.ValidDay(day) {
		adminJSON(w, http.StatusBadRequest, map[string]string{"error": "day: want YYYYMMDD"})
		return
	}
	var (
		v   any
		err error
	)
	switch api {
	case "overview":
		v, err = p.overview(r.Context(), day)
	case "hourly":
		v, err = p.hourly(r.Context(), day)
	default:
		adminJSON(w, http.StatusNotFound, map[string]string{"error": "no such endpoint"})
		return
	}
	if err != nil {
		status := http.StatusInternalServerError
		if errors.Is(err, store.ErrInvalid) {
			status = http.StatusBadRequest
		}
		adminJSON(w, status, map[string]string{"error": err.Error()})
		return
	}
	adminJSON(w, http.StatusOK, v)
}

// allow decides whether r may be served: 0, or the refusal's status and
// message.
func (p *adminPage) allow(r *http.Request, isAPI bool) (int, string) {
	if p.tokenHash != nil {
		if !isAPI {
			return 0, ""
		}
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		got := sha256.Sum256([]byte(strings.TrimSpace(tok)))
		if !ok || subtle.ConstantTimeCompare(got[:], p.tokenHash) != 1 {
			return http.StatusUnauthorized, "operator token required (Authorization: Bearer)"
		}
		return 0, ""
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil || !loopbackHost(host) {
		return http.StatusForbidden, "admin page: loopback clients only (or start the hub with an operator token)"
	}
	reqHost := r.Host
	if hh, _, err := net.SplitHostPort(reqHost); err == nil {
		reqHost = hh
	}
	if !loopbackHost(reqHost) {
		return http.StatusForbidden, "admin page: address the hub by a loopback host (127.0.0.1, [::1] or localhost)"
	}
	return 0, ""
}

func loopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}

func (p *adminPage) serveFile(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == strings.TrimSuffix(admin.Prefix, "/") {
		http.Redirect(w, r, admin.Prefix, http.StatusMovedPermanently)
		return
	}
	b, ct, ok := admin.File(r.URL.Path)
	if !ok || !strings.HasPrefix(r.URL.Path, admin.Prefix) {
		http.NotFound(w, r)
		return
	}
	h := w.Header()
	h.Set("Content-Type", ct)
	h.Set("Content-Security-Policy", admin.ContentSecurityPolicy)
	h.Set("Cache-Control", "no-cache")
	if r.Method == http.MethodHead {
		return
	}
	_, _ = w.Write(b)
}

func adminJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// AdminOverview is the answer of /admin/api/overview.
type AdminOverview struct {
	Day string    `json:"day"`
	Now time.Time `json:"now"`
	// Hub: the running server's counters since start (nil without one).
	Hub *AdminHubStats `json:"hub,omitempty"`
	// Terminals: the registry, by number.
	Terminals []AdminTerminal `json:"terminals"`
	// Merchants and Programmes: the day's totals (the clearing report's).
	Merchants  []ledger.MerchantLine  `json:"merchants"`
	Programmes []ledger.ProgrammeLine `json:"programmes"`
	// Reconciliation: each terminal's posted figures against its
	// submitted end-of-day totals.
	Reconciliation []ledger.TerminalLine `json:"reconciliation"`
	// Discrepancies of the day, card IDs masked.
	Discrepancies []AdminDiscrepancy `json:"discrepancies"`
}

// AdminHubStats are the running hub's counters.
type AdminHubStats struct {
	Sessions   int    `json:"sessions"`
	Accepted   uint64 `json:"accepted"`
	Duplicates uint64 `json:"duplicates"`
	Rejected   uint64 `json:"rejected"`
	Retried    uint64 `json:"retried"`
}

// AdminTerminal is one terminal as the page shows it. The hub does not
// know how many records wait in a terminal's journal (agents do not say):
// the sync lag shown is the time since the last acknowledgement
// (LastAck, the registry entry's last change) unless the terminal is
// connected now.
type AdminTerminal struct {
	No        string `json:"no"`
	Name      string `json:"name"`
	State     string `json:"state"`
	Connected bool   `json:"connected"`
	AckedSeq  uint64 `json:"acked_seq"`
	// LastAck is when the registry entry last changed (an acknowledgement,
	// or the state change before the first).
	LastAck time.Time `json:"last_ack"`
	// SinceSeconds is Now - LastAck.
	SinceSeconds int64 `json:"since_seconds"`
	// Key is the SM3 fingerprint of the enrolled public key ("-": none).
	Key string `json:"key"`
}

// AdminDiscrepancy is a ledger.Discrepancy with the card ID masked and
// the records as "TERMINAL/SEQ" strings.
type AdminDiscrepancy struct {
	Kind     string   `json:"kind"`
	Terminal string   `json:"terminal"`
	Card     string   `json:"card"`
	Detail   string   `json:"detail"`
	Records  []string `json:"records"`
}

// MaskCardID shows a card ID's first 6 and last 4 hex digits ("" stays
// "").
func MaskCardID(id string) string {
	if len(id) <= 10 {
		return strings.Repeat("*", len(id))
	}
	return id[:6] + strings.Repeat("*", len(id)-10) + id[len(id)-4:]
}

// KeyFingerprint is the SM3 fingerprint of a terminal's public key as
// the operator tools show it ("sm3:" + 12 hex digits, "-" for none).
func KeyFingerprint(point []byte) string {
	if len(point) == 0 {
		return "-"
	}
	h := sm.NewSM3()
	h.Write(point)
	return fmt.Sprintf("sm3:%X", h.Sum(nil)[:6])
}

func (p *adminPage) overview(ctx context.Context, day string) (*AdminOverview, error) {
	now := p.o.Now()
	ts, err := p.o.Store.Terminals(ctx)
	if err != nil {
		return nil, fmt.Errorf("list terminals: %w", err)
	}
	rep, err := p.o.Ledger.Report(ctx, day)
	if err != nil {
		return nil, err
	}
	out := &AdminOverview{Day: day, Now: now, Terminals: []AdminTerminal{},
		Merchants: nonNil(rep.Merchants), Programmes: nonNil(rep.Programmes),
		Reconciliation: nonNil(rep.Terminals), Discrepancies: []AdminDiscrepancy{}}
	var live map[string]bool
	if s := p.o.Server; s != nil {
		st := s.Stats()
		out.Hub = &AdminHubStats{Sessions: st.Sessions, Accepted: st.Accepted, Duplicates: st.Duplicates,
			Rejected: st.Rejected, Retried: st.Retried}
		live = s.liveTerminals()
	}
	for _, t := range ts {
		out.Terminals = append(out.Terminals, AdminTerminal{
			No: t.No, Name: t.Name, State: t.State.String(), Connected: live[t.No], AckedSeq: t.AckedSeq,
			LastAck: t.UpdatedAt, SinceSeconds: int64(now.Sub(t.UpdatedAt) / time.Second), Key: KeyFingerprint(t.PublicKey),
		})
	}
	for _, d := range rep.Discrepancies {
		keys := make([]string, 0, len(d.Records))
		for _, k := range d.Records {
			keys = append(keys, k.String())
		}
		out.Discrepancies = append(out.Discrepancies, AdminDiscrepancy{Kind: string(d.Kind), Terminal: d.TerminalNo,
			Card: MaskCardID(d.CardID), Detail: d.Detail, Records: keys})
	}
	return out, nil
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// liveTerminals returns the terminals with an authenticated session.
func (s *Server) liveTerminals() map[string]bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]bool, len(s.sessions))
	for no := range s.sessions {
		out[no] = true
	}
	return out
}

// AdminHourly is the answer of /admin/api/hourly: the day's records by
// the hour of their card time (00..23, China Standard Time as the
// terminals write it).
type AdminHourly struct {
	Day       string      `json:"day"`
	Hours     []AdminHour `json:"hours"` // always 24, hour 0 first
	Total     int64       `json:"total"`
	Truncated bool        `json:"truncated,omitempty"` // more than the endpoint reads for a day
}

// AdminHour counts one hour's records by kind, with the money moved.
type AdminHour struct {
	Hour       int   `json:"hour"`
	Pay        int64 `json:"pay"`
	Load       int64 `json:"load"`
	Certify    int64 `json:"certify"`
	PayAmount  int64 `json:"pay_amount"`
	LoadAmount int64 `json:"load_amount"`
}

func (p *adminPage) hourly(ctx context.Context, day string) (*AdminHourly, error) {
	out := &AdminHourly{Day: day, Hours: make([]AdminHour, 24)}
	for i := range out.Hours {
		out.Hours[i].Hour = i
	}
	var after uint64
	read := 0
	for {
		ps, err := p.o.Store.Postings(ctx, store.Query{Day: day, AfterID: after, Limit: 1000})
		if err != nil {
			return nil, fmt.Errorf("hourly counts: %w", err)
		}
		if len(ps) == 0 {
			return out, nil
		}
		for _, ps := range ps {
			if !ps.Key.IsRecord() || !ps.Kind.FromRecord() {
				continue
			}
			hour := ps.PostedAt.In(cstZone).Hour()
			if rec, err := record.Decode(ps.Content); err == nil && len(rec.CardTime) >= 2 {
				if h := int(rec.CardTime[0]-'0')*10 + int(rec.CardTime[1]-'0'); h >= 0 && h < 24 {
					hour = h
				}
			}
			hr := &out.Hours[hour]
			switch ps.Kind {
			case store.KindPay:
				hr.Pay++
				hr.PayAmount += ps.Amount
			case store.KindLoad:
				hr.Load++
				hr.LoadAmount += ps.Amount
			case store.KindCertify:
				hr.Certify++
			}
			out.Total++
		}
		read += len(ps)
		if read >= maxHourlyPostings {
			out.Truncated = true
			return out, nil
		}
		after = ps[len(ps)-1].ID
	}
}
