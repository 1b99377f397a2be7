package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"time"

	"github.com/onecard-hub/onecard/hub/ledger"
	"github.com/onecard-hub/onecard/hub/store"
	hubsync "github.com/onecard-hub/onecard/hub/sync"
	"github.com/onecard-hub/onecard/terminal/record"
)

// Operator is what an operator does to a hub: the terminal registry,
// enrolment tokens, the lost-card list, the clearing report, programmes
// and their funding and grants, load reservations and dead letters. Ops does
// it on the store directly; AdminClient through a running hub's admin
// socket (a bbolt store is locked by the hub process).
type Operator interface {
	Terminals(ctx context.Context) ([]store.Terminal, error)
	Approve(ctx context.Context, no string) (store.Terminal, error)
	Suspend(ctx context.Context, no string) (store.Terminal, error)
	Invite(ctx context.Context, no, name string, replace bool) (string, error)
	SetLost(ctx context.Context, card record.CardID, lost bool) (uint64, error)
	Report(ctx context.Context, day string) (*ledger.Report, error)
	// Holds lists a card's load reservations that still hold money.
	Holds(ctx context.Context, card record.CardID) ([]ledger.Hold, error)
	// ReleaseHold returns a reservation's money to the card's grant (the
	// load never happened) and says how much that was (0: none held).
	ReleaseHold(ctx context.Context, h ledger.Hold) (int64, error)
	// CreateProgramme registers a benefit or subsidy programme. Errors:
	// store.ErrExists, store.ErrInvalid.
	CreateProgramme(ctx context.Context, p store.Programme) error
	// Programmes lists the programmes.
	Programmes(ctx context.Context) ([]store.Programme, error)
	// Post makes an operator posting: kind is store.KindFund (deposit
	// into a programme), store.KindGrant (credits for a card) or
	// store.KindOpening (a card's opening balance). Errors: as the
	// ledger's Fund, Grant and OpeningBalance; store.ErrInvalid for
	// another kind.
	Post(ctx context.Context, kind store.Kind, q ledger.Request) (store.Outcome, error)
	// DeadLetters lists up to limit records the hub could not post, with
	// IDs above after.
	DeadLetters(ctx context.Context, after uint64, limit int) ([]store.DeadLetter, error)
	// DeleteDeadLetter removes a resolved letter. Errors: store.ErrNotFound.
	DeleteDeadLetter(ctx context.Context, id uint64) error
	// RetryDeadLetter posts a letter's record again (after what it lacked
	// arrived: the load that funds a purchase uploaded late by another
	// terminal) and deletes the letter when it is posted. Only records
	// the hub verified can be retried. Errors: store.ErrNotFound,
	// store.ErrInvalid (not a verified record), the ledger's rejection
	// (the letter stays, its count raised).
	RetryDeadLetter(ctx context.Context, id uint64) (store.Outcome, error)
}

// Ops performs operator actions on a store (and, when Server is set,
// tells the running server: suspended terminals are disconnected, lost
// cards pushed at once).
type Ops struct {
	Store  store.Store
	Ledger *ledger.Ledger
	Server *Server
}

var (
	_ Operator = (*Ops)(nil)
	_ Operator = (*AdminClient)(nil)
)

// Terminals lists the registry.
func (o *Ops) Terminals(ctx context.Context) ([]store.Terminal, error) {
	return Terminals(ctx, o.Store)
}

// Approve makes a terminal active.
func (o *Ops) Approve(ctx context.Context, no string) (store.Terminal, error) {
	return Approve(ctx, o.Store, no)
}

// Suspend suspends a terminal and ends its session.
func (o *Ops) Suspend(ctx context.Context, no string) (store.Terminal, error) {
	t, err := Suspend(ctx, o.Store, no)
	if err == nil && o.Server != nil {
		o.Server.Disconnect(no, hubsync.CodeSuspended, "terminal suspended by an operator")
	}
	return t, err
}

// Invite mints a one-time enrolment token.
func (o *Ops) Invite(ctx context.Context, no, name string, replace bool) (string, error) {
	return Invite(ctx, o.Store, no, name, replace)
}

// SetLost marks a card lost or found and pushes the change.
func (o *Ops) SetLost(ctx context.Context, card record.CardID, lost bool) (uint64, error) {
	v, err := o.Store.SetLost(ctx, card, lost)
	if err == nil && o.Server != nil {
		o.Server.NotifyLost()
	}
	return v, err
}

// Report builds the clearing report of day.
func (o *Ops) Report(ctx context.Context, day string) (*ledger.Report, error) {
	if o.Ledger == nil {
		return nil, errors.New("report: no ledger")
	}
	return o.Ledger.Report(ctx, day)
}

// Holds lists a card's load reservations.
func (o *Ops) Holds(ctx context.Context, card record.CardID) ([]ledger.Hold, error) {
	if o.Ledger == nil {
		return nil, errors.New("holds: no ledger")
	}
	return o.Ledger.Holds(ctx, card)
}

// ReleaseHold releases one load reservation (a fresh operator reference
// each time: a second release finds nothing held).
func (o *Ops) ReleaseHold(ctx context.Context, h ledger.Hold) (int64, error) {
	if o.Ledger == nil {
		return 0, errors.New("release hold: no ledger")
	}
	ref := fmt.Sprintf("release/%s/%02X-%d/%d", h.Card, uint8(h.TxType), h.Counter, time.Now().UnixNano())
	return o.Ledger.ReleaseHold(ctx, ref, h)
}

// CreateProgramme registers a programme.
func (o *Ops) CreateProgramme(ctx context.Context, p store.Programme) error {
	return o.Store.CreateProgramme(ctx, p)
}

// Programmes lists the programmes.
func (o *Ops) Programmes(ctx context.Context) ([]store.Programme, error) {
	return o.Store.Programmes(ctx)
}

// Post makes an operator posting (fund, grant, opening balance).
func (o *Ops) Post(ctx context.Context, kind store.Kind, q ledger.Request) (store.Outcome, error) {
	if o.Ledger == nil {
		return 0, errors.New("post: no ledger")
	}
	switch kind {
	case store.KindFund:
		return o.Ledger.Fund(ctx, q)
	case store.KindGrant:
		return o.Ledger.Grant(ctx, q)
	case store.KindOpening:
		return o.Ledger.OpeningBalance(ctx, q)
	}
	return 0, fmt.Errorf("post: %w: operators post fund, grant or opening, not %s", store.ErrInvalid, kind)
}

// DeadLetters lists dead letters.
func (o *Ops) DeadLetters(ctx context.Context, after uint64, limit int) ([]store.DeadLetter, error) {
	return o.Store.DeadLetters(ctx, after, limit)
}

// DeleteDeadLetter removes a dead letter.
func (o *Ops) DeleteDeadLetter(ctx context.Context, id uint64) error {
	return o.Store.DeleteDeadLetter(ctx, id)
}

// RetryDeadLetter posts a dead letter's record again.
func (o *Ops) RetryDeadLetter(ctx context.Context, id uint64) (store.Outcome, error) {
	if o.Ledger == nil || id == 0 {
		return 0, fmt.Errorf("retry dead letter: %w: no ledger or no ID", store.ErrInvalid)
	}
	ds, err := o.Store.DeadLetters(ctx, id-1, 1)
	if err != nil {
		return 0, fmt.Errorf("retry dead letter: %w", err)
	}
	if len(ds) == 0 || ds[0].ID != id {
		return 0, fmt.Errorf("retry dead letter %d: %w", id, store.ErrNotFound)
	}
	// Letters the ledger filed hold the verified record's canonical bytes;
	// those the server filed (bad signature, TAC, ...) hold what was
	// received, which is not a record and is never posted.
	rec, err := record.Decode(ds[0].Content)
	if err != nil || !ds[0].Key.IsRecord() || rec.TerminalID != ds[0].Key.TerminalNo || rec.TerminalSeq != ds[0].Key.TerminalSeq {
		return 0, fmt.Errorf("retry dead letter %d: %w: it holds no record the hub verified", id, store.ErrInvalid)
	}
	res, err := o.Ledger.Post(ctx, rec)
	if err != nil {
		return 0, fmt.Errorf("retry dead letter %d: %w", id, err)
	}
	if res[0].Err != nil {
		return 0, fmt.Errorf("retry dead letter %d: %w", id, res[0].Err)
	}
	if err := o.Store.DeleteDeadLetter(ctx, id); err != nil {
		return res[0].Outcome, fmt.Errorf("retry dead letter %d: posted, letter not deleted: %w", id, err)
	}
	return res[0].Outcome, nil
}

// AdminHandler serves o over HTTP, for the admin socket:
//
//	GET  /terminals                    → [Terminal]
//	POST /terminals/approve?no=N       → Terminal
//	POST /terminals/suspend?no=N       → Terminal
//	POST /tokens?no=N&name=S&replace=1 → {"token": "..."}
//	POST /lost?card=HEX&lost=1|0       → {"version": V}
//	GET  /report?day=YYYYMMDD          → ledger.Report
//	GET  /holds?card=HEX               → [ledger.Hold]
//	POST /holds/release (body: ledger.Hold) → {"released": fen}
//	GET  /programmes                   → [store.Programme]
//	POST /programmes (body: store.Programme) → {}
//	POST /postings?kind=fund|grant|opening (body: ledger.Request) → {"outcome": "posted"|"duplicate"}
//	GET  /dead?after=ID&limit=N        → [store.DeadLetter]
//	POST /dead/delete?id=ID            → {}
//	POST /dead/retry?id=ID             → {"outcome": "posted"|"duplicate"}
//
// Errors are {"error": "..."} with status 400 (bad request), 404 (not
// found), 409 (exists or state) or 500.
func AdminHandler(o Operator) http.Handler {
	mux := http.NewServeMux()
	reply := func(w http.ResponseWriter, v any, err error) {
		w.Header().Set("Content-Type", "application/json")
		if err != nil {
			status := http.StatusInternalServerError
			switch {
			case errors.Is(err, store.ErrNotFound):
				status = http.StatusNotFound
			case errors.Is(err, store.ErrExists), errors.Is(err, store.ErrState):
				status = http.StatusConflict
			case errors.Is(err, store.ErrInvalid):
				status = http.StatusBadRequest
			}
			w.WriteHeader(status)
			json.NewEncoder(w).Encode(map[string]string{"error": err.Error()})
			return
		}
		json.NewEncoder(w).Encode(v)
	}
	mux.HandleFunc("GET /terminals", func(w http.ResponseWriter, r *http.Request) {
		ts, err := o.Terminals(r.Context())
		reply(w, ts, err)
	})
	mux.HandleFunc("POST /terminals/approve", func(w http.ResponseWriter, r *http.Request) {
		t, err := o.Approve(r.Context(), r.URL.Query().Get("no"))
		reply(w, t, err)
	})
	mux.HandleFunc("POST /terminals/suspend", func(w http.ResponseWriter, r *http.Request) {
		t, err := o.Suspend(r.Context(), r.URL.Query().Get("no"))
		reply(w, t, err)
	})
	mux.HandleFunc("POST /tokens", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		tok, err := o.Invite(r.Context(), q.Get("no"), q.Get("name"), q.Get("replace") == "1")
		reply(w, map[string]string{"token": tok}, err)
	})
	mux.HandleFunc("POST /lost", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		card, err := record.ParseCardID(q.Get("card"))
		if err != nil {
			reply(w, nil, fmt.Errorf("%w: %w", store.ErrInvalid, err))
			return
		}
		v, err := o.SetLost(r.Context(), card, q.Get("lost") == "1")
		reply(w, map[string]uint64{"version": v}, err)
	})
	mux.HandleFunc("GET /report", func(w http.ResponseWriter, r *http.Request) {
		rep, err := o.Report(r.Context(), r.URL.Query().Get("day"))
		reply(w, rep, err)
	})
	mux.HandleFunc("GET /holds", func(w http.ResponseWriter, r *http.Request) {
		card, err := record.ParseCardID(r.URL.Query().Get("card"))
		if err != nil {
			reply(w, nil, fmt.Errorf("%w: %w", store.ErrInvalid, err))
			return
		}
		hs, err := o.Holds(r.Context(), card)
		reply(w, hs, err)
	})
	mux.HandleFunc("POST /holds/release", func(w http.ResponseWriter, r *http.Request) {
		var h ledger.Hold
		if err := json.NewDecoder(io.LimitReader(r.Body, 4096)).Decode(&h); err != nil {
			reply(w, nil, fmt.Errorf("%w: hold: %w", store.ErrInvalid, err))
			return
		}
		n, err := o.ReleaseHold(r.Context(), h)
		reply(w, map[string]int64{"released": n}, err)
	})
	mux.HandleFunc("GET /programmes", func(w http.ResponseWriter, r *http.Request) {
		ps, err := o.Programmes(r.Context())
		reply(w, ps, err)
	})
	mux.HandleFunc("POST /programmes", func(w http.ResponseWriter, r *http.Request) {
		var p store.Programme
		if err := json.NewDecoder(io.LimitReader(r.Body, 16<<10)).Decode(&p); err != nil {
			reply(w, nil, fmt.Errorf("%w: programme: %w", store.ErrInvalid, err))
			return
		}
		reply(w, struct{}{}, o.CreateProgramme(r.Context(), p))
	})
	mux.HandleFunc("POST /postings", func(w http.ResponseWriter, r *http.Request) {
		kind, ok := map[string]store.Kind{"fund": store.KindFund, "grant": store.KindGrant, "opening": store.KindOpening}[r.URL.Query().Get("kind")]
		var q ledger.Request
		if err := json.NewDecoder(io.LimitReader(r.Body, 16<<10)).Decode(&q); err != nil || !ok {
			reply(w, nil, fmt.Errorf("%w: want kind fund, grant or opening and a request", store.ErrInvalid))
			return
		}
		out, err := o.Post(r.Context(), kind, q)
		reply(w, map[string]string{"outcome": out.String()}, err)
	})
	mux.HandleFunc("GET /dead", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		after, _ := strconv.ParseUint(q.Get("after"), 10, 64)
		limit, _ := strconv.Atoi(q.Get("limit"))
		ds, err := o.DeadLetters(r.Context(), after, limit)
		reply(w, ds, err)
	})
	mux.HandleFunc("POST /dead/delete", func(w http.ResponseWriter, r *http.Request) {
		id, err := strconv.ParseUint(r.URL.Query().Get("id"), 10, 64)
		if err != nil {
			reply(w, nil, fmt.Errorf("%w: dead letter ID", store.ErrInvalid))
			return
		}
		reply(w, struct{}{}, o.DeleteDeadLetter(r.Context(), id))
	})
	mux.HandleFunc("POST /dead/retry", func(w http.ResponseWriter, r *http.Request) {
		id, err := strconv.ParseUint(r.URL.Query().Get("id"), 10, 64)
		if err != nil {
			reply(w, nil, fmt.Errorf("%w: dead letter ID", store.ErrInvalid))
			return
		}
		out, err := o.RetryDeadLetter(r.Context(), id)
		reply(w, map[string]string{"outcome": out.String()}, err)
	})
	return mux
}

// AdminSocket is the admin socket path of a bbolt store file.
func AdminSocket(storeFile string) string { return storeFile + ".admin" }

// ListenAdmin listens on the unix socket at path (mode 0600: only the
// hub's user may administer it), replacing a stale socket file.
func ListenAdmin(path string) (net.Listener, error) {
	if fi, err := os.Lstat(path); err == nil && fi.Mode()&os.ModeSocket != 0 {
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("admin socket %s: another hub is running", path)
		}
		os.Remove(path)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("admin socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("admin socket: %w", err)
	}
	return ln, nil
}

// AdminClient performs operator actions through a running hub's admin
// socket.
type AdminClient struct {
	c *http.Client
}

// DialAdmin returns a client of the admin socket at path, or an error if
// no hub answers there.
func DialAdmin(path string) (*AdminClient, error) {
	c, err := net.DialTimeout("unix", path, time.Second)
	if err != nil {
		return nil, fmt.Errorf("admin socket %s: %w", path, err)
	}
	c.Close()
	return &AdminClient{c: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
	}}}, nil
}

func (a *AdminClient) do(ctx context.Context, method, path string, q url.Values, out any) error {
	return a.doBody(ctx, method, path, q, nil, out)
}

func (a *AdminClient) doBody(ctx context.Context, method, path string, q url.Values, in, out any) error {
	var payload io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("admin socket: %w", err)
		}
		payload = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://hub"+path+"?"+q.Encode(), payload)
	if err != nil {
		return err
	}
	resp, err := a.c.Do(req)
	if err != nil {
		return fmt.Errorf("admin socket: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("admin socket: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct{ Error string }
		json.Unmarshal(body, &e)
		sentinel := map[int]error{http.StatusNotFound: store.ErrNotFound, http.StatusConflict: store.ErrState,
			http.StatusBadRequest: store.ErrInvalid}[resp.StatusCode]
		if sentinel != nil {
			return fmt.Errorf("hub: %w: %s", sentinel, e.Error)
		}
		return fmt.Errorf("hub: %s", e.Error)
	}
	return json.Unmarshal(body, out)
}

// Terminals implements Operator.
func (a *AdminClient) Terminals(ctx context.Context) ([]store.Terminal, error) {
	var ts []store.Terminal
	return ts, a.do(ctx, http.MethodGet, "/terminals", nil, &ts)
}

// Approve implements Operator.
func (a *AdminClient) Approve(ctx context.Context, no string) (store.Terminal, error) {
	var t store.Terminal
	return t, a.do(ctx, http.MethodPost, "/terminals/approve", url.Values{"no": {no}}, &t)
}

// Suspend implements Operator.
func (a *AdminClient) Suspend(ctx context.Context, no string) (store.Terminal, error) {
	var t store.Terminal
	return t, a.do(ctx, http.MethodPost, "/terminals/suspend", url.Values{"no": {no}}, &t)
}

// Invite implements Operator.
func (a *AdminClient) Invite(ctx context.Context, no, name string, replace bool) (string, error) {
	q := url.Values{"no": {no}, "name": {name}}
	if replace {
		q.Set("replace", "1")
	}
	var out struct{ Token string }
	return out.Token, a.do(ctx, http.MethodPost, "/tokens", q, &out)
}

// SetLost implements Operator.
func (a *AdminClient) SetLost(ctx context.Context, card record.CardID, lost bool) (uint64, error) {
	q := url.Values{"card": {card.String()}, "lost": {"0"}}
	if lost {
		q.Set("lost", "1")
	}
	var out struct{ Version uint64 }
	return out.Version, a.do(ctx, http.MethodPost, "/lost", q, &out)
}

// Report implements Operator.
func (a *AdminClient) Report(ctx context.Context, day string) (*ledger.Report, error) {
	var r ledger.Report
	if err := a.do(ctx, http.MethodGet, "/report", url.Values{"day": {day}}, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// Holds implements Operator.
func (a *AdminClient) Holds(ctx context.Context, card record.CardID) ([]ledger.Hold, error) {
	var hs []ledger.Hold
	return hs, a.do(ctx, http.MethodGet, "/holds", url.Values{"card": {card.String()}}, &hs)
}

// ReleaseHold implements Operator.
func (a *AdminClient) ReleaseHold(ctx context.Context, h ledger.Hold) (int64, error) {
	var out struct{ Released int64 }
	return out.Released, a.doBody(ctx, http.MethodPost, "/holds/release", nil, h, &out)
}

// CreateProgramme implements Operator.
func (a *AdminClient) CreateProgramme(ctx context.Context, p store.Programme) error {
	return a.doBody(ctx, http.MethodPost, "/programmes", nil, p, &struct{}{})
}

// Programmes implements Operator.
func (a *AdminClient) Programmes(ctx context.Context) ([]store.Programme, error) {
	var ps []store.Programme
	return ps, a.do(ctx, http.MethodGet, "/programmes", nil, &ps)
}

// Post implements Operator.
func (a *AdminClient) Post(ctx context.Context, kind store.Kind, q ledger.Request) (store.Outcome, error) {
	var out struct{ Outcome string }
	if err := a.doBody(ctx, http.MethodPost, "/postings", url.Values{"kind": {kind.String()}}, q, &out); err != nil {
		return 0, err
	}
	return parseOutcome(out.Outcome)
}

// RetryDeadLetter implements Operator.
func (a *AdminClient) RetryDeadLetter(ctx context.Context, id uint64) (store.Outcome, error) {
	var out struct{ Outcome string }
	if err := a.do(ctx, http.MethodPost, "/dead/retry", url.Values{"id": {strconv.FormatUint(id, 10)}}, &out); err != nil {
		return 0, err
	}
	return parseOutcome(out.Outcome)
}

func parseOutcome(s string) (store.Outcome, error) {
	switch s {
	case store.Posted.String():
		return store.Posted, nil
	case store.Duplicate.String():
		return store.Duplicate, nil
	}
	return 0, fmt.Errorf("hub: unexpected outcome %q", s)
}

// DeadLetters implements Operator.
func (a *AdminClient) DeadLetters(ctx context.Context, after uint64, limit int) ([]store.DeadLetter, error) {
	var ds []store.DeadLetter
	q := url.Values{"after": {strconv.FormatUint(after, 10)}, "limit": {strconv.Itoa(limit)}}
	return ds, a.do(ctx, http.MethodGet, "/dead", q, &ds)
}

// DeleteDeadLetter implements Operator.
func (a *AdminClient) DeleteDeadLetter(ctx context.Context, id uint64) error {
	return a.do(ctx, http.MethodPost, "/dead/delete", url.Values{"id": {strconv.FormatUint(id, 10)}}, &struct{}{})
}
