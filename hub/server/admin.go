package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"time"

	"github.com/onecard-hub/onecard/hub/ledger"
	"github.com/onecard-hub/onecard/hub/store"
	hubsync "github.com/onecard-hub/onecard/hub/sync"
	"github.com/onecard-hub/onecard/terminal/record"
)

// Operator is what an operator does to a hub: the terminal registry,
// enrolment tokens, the lost-card list and the clearing report. Ops does
// it on the store directly; AdminClient through a running hub's admin
// socket (a bbolt store is locked by the hub process).
type Operator interface {
	Terminals(ctx context.Context) ([]store.Terminal, error)
	Approve(ctx context.Context, no string) (store.Terminal, error)
	Suspend(ctx context.Context, no string) (store.Terminal, error)
	Invite(ctx context.Context, no, name string, replace bool) (string, error)
	SetLost(ctx context.Context, card record.CardID, lost bool) (uint64, error)
	Report(ctx context.Context, day string) (*ledger.Report, error)
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

// AdminHandler serves o over HTTP, for the admin socket:
//
//	GET  /terminals                    → [Terminal]
//	POST /terminals/approve?no=N       → Terminal
//	POST /terminals/suspend?no=N       → Terminal
//	POST /tokens?no=N&name=S&replace=1 → {"token": "..."}
//	POST /lost?card=HEX&lost=1|0       → {"version": V}
//	GET  /report?day=YYYYMMDD          → ledger.Report
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
	req, err := http.NewRequestWithContext(ctx, method, "http://hub"+path+"?"+q.Encode(), nil)
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
