package kioskapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// APIVersion is the protocol version reported by hello.
const APIVersion = 1

// Defaults of Options.
const (
	DefaultMaxMessage   = 16 << 10
	DefaultMaxConns     = 8
	DefaultMaxUnpaired  = 2
	DefaultMaxInFlight  = 4
	DefaultRate         = 10 // requests per second per connection
	DefaultBurst        = 20
	DefaultPingInterval = 30 * time.Second
	DefaultWriteTimeout = 10 * time.Second
	// eventBuffer is the per-connection queue of outgoing messages;
	// events beyond it are dropped for a slow page (responses wait).
	eventBuffer = 64
)

// Built-in methods, available before the page is authorised.
const (
	MethodHello = "hello"
	MethodPair  = "pair"
	MethodAuth  = "auth"
)

// OriginRule allows one web origin without pairing.
type OriginRule struct {
	// Origin is scheme://host[:port] (see NormaliseOrigin).
	Origin string
	// FullIdentity lets the origin see unmasked personal data (name,
	// 社会保障号码, card number): a hospital HIS that must match the
	// patient. Default (false): masked, as on a public kiosk screen.
	FullIdentity bool
}

// Method serves one API method. It returns the result (marshalled to
// JSON; nil becomes {}) or an error (classified with Classify).
type Method func(ctx context.Context, c *Call) (any, error)

// Options configures a Server. Zero values take the defaults; without
// Origins and Pairing every browser page is refused.
type Options struct {
	// Origins are allowed without pairing.
	Origins []OriginRule
	// Pairing, when set, lets other origins connect to pair (method pair)
	// or present their token (method auth); until then they can call
	// hello, pair and auth only.
	Pairing *Pairing
	// AllowNoOrigin admits clients that send no Origin header (native
	// programs such as a desktop HIS; browsers always send one) as
	// authorised, with masked identities. Default false.
	AllowNoOrigin bool
	// NativeToken, when set, admits clients without an Origin that send
	// "Authorization: Bearer <NativeToken>" as authorised with full
	// identity (local programs that can read the agent's token file, see
	// native.go); a wrong token is refused (403). Independent of
	// AllowNoOrigin.
	NativeToken string
	// MaxMessage bounds an incoming message in bytes (default
	// DefaultMaxMessage); a larger one closes the connection with 1009.
	MaxMessage int64
	// MaxConns bounds open connections (default DefaultMaxConns); more are
	// refused with 503. MaxUnpaired bounds connections not yet authorised
	// (default DefaultMaxUnpaired).
	MaxConns, MaxUnpaired int
	// MaxInFlight bounds requests running at once per connection (default
	// DefaultMaxInFlight; more get too_many_requests).
	MaxInFlight int
	// Rate and Burst bound requests per second per connection (token
	// bucket; defaults DefaultRate and DefaultBurst; more get
	// rate_limited).
	Rate  float64
	Burst int
	// PingInterval: the server pings idle pages and drops a page silent for
	// three intervals (default DefaultPingInterval).
	PingInterval time.Duration
	// WriteTimeout bounds one write (default DefaultWriteTimeout).
	WriteTimeout time.Duration
	// Methods are the API methods besides hello, pair and auth.
	Methods map[string]Method
	// Hello adds fields to hello's result (agent version, terminal).
	Hello func() map[string]any
	// Observe, when set, is told about every request (outcome "ok" or the
	// error code) and refusal (reason), for metrics.
	Observe Observer
	// Logger gets connection and request events (method, outcome; never
	// parameters). Default: discard.
	Logger *slog.Logger
}

// Observer receives counts for metrics. Every func may be nil.
type Observer struct {
	Request     func(method, outcome string, d time.Duration)
	Refused     func(reason string)
	Connections func(open int)
	Dropped     func() // an event dropped for a slow page
}

// Server is the kiosk API's WebSocket endpoint (ServeHTTP). It checks the
// Host and Origin headers before the upgrade, runs the pairing handshake,
// enforces the limits, dispatches requests to Methods (each in its own
// goroutine, not cancelled when the page goes away: a card operation that
// started always finishes) and pushes events (Broadcast, Call.Progress).
type Server struct {
	opts     Options
	log      *slog.Logger
	origins  map[string]OriginRule
	upgrader websocket.Upgrader

	mu       sync.Mutex
	conns    map[*conn]struct{}
	unpaired int
	// pending counts admitted requests between the limit check and the
	// end of their WebSocket handshake: their slots (and, when not
	// authorised, their unpaired slots) are reserved, so a client that
	// starts its next handshake before the server registered the last
	// connection cannot exceed the limits.
	pending int

	draining atomic.Bool
	inflight sync.WaitGroup
}

// NewServer checks opts and returns a Server. Errors: an origin that does
// not normalise (ErrBadOrigin).
func NewServer(opts Options) (*Server, error) {
	if opts.MaxMessage <= 0 {
		opts.MaxMessage = DefaultMaxMessage
	}
	if opts.MaxConns <= 0 {
		opts.MaxConns = DefaultMaxConns
	}
	if opts.MaxUnpaired <= 0 {
		opts.MaxUnpaired = DefaultMaxUnpaired
	}
	if opts.MaxInFlight <= 0 {
		opts.MaxInFlight = DefaultMaxInFlight
	}
	if opts.Rate <= 0 {
		opts.Rate = DefaultRate
	}
	if opts.Burst <= 0 {
		opts.Burst = DefaultBurst
	}
	if opts.PingInterval <= 0 {
		opts.PingInterval = DefaultPingInterval
	}
	if opts.WriteTimeout <= 0 {
		opts.WriteTimeout = DefaultWriteTimeout
	}
	s := &Server{opts: opts, log: opts.Logger, origins: map[string]OriginRule{}, conns: map[*conn]struct{}{}}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	for _, r := range opts.Origins {
		o, err := NormaliseOrigin(r.Origin)
		if err != nil {
			return nil, fmt.Errorf("kiosk API origins: %w", err)
		}
		r.Origin = o
		s.origins[o] = r
	}
	for name := range opts.Methods {
		if name == MethodHello || name == MethodPair || name == MethodAuth {
			return nil, fmt.Errorf("kiosk API: method %q is built in", name)
		}
	}
	s.upgrader = websocket.Upgrader{
		HandshakeTimeout: 10 * time.Second,
		ReadBufferSize:   4096,
		WriteBufferSize:  4096,
		// The origin was checked by admit before Upgrade is called; this
		// repeats the check so the upgrader can never admit more.
		CheckOrigin: s.checkOrigin,
	}
	return s, nil
}

// admission is what the upgrade learned about a page.
type admission struct {
	origin     string // normalised; "" for a native client
	authorised bool
	full       bool
}

// admit decides on an upgrade request before any upgrade: ok=false comes
// with the HTTP status and refusal reason.
func (s *Server) admit(r *http.Request) (admission, int, string) {
	if r.Method != http.MethodGet {
		return admission{}, http.StatusMethodNotAllowed, "method"
	}
	if !IsLoopbackHostPort(r.Host) {
		return admission{}, http.StatusForbidden, "host"
	}
	raw, present := r.Header["Origin"]
	if !present || len(raw) == 0 {
		if adm, status, reason, ok := s.admitNative(r); ok {
			return adm, status, reason
		}
		if s.opts.AllowNoOrigin {
			return admission{authorised: true}, 0, ""
		}
		return admission{}, http.StatusForbidden, "no_origin"
	}
	if len(raw) != 1 {
		return admission{}, http.StatusForbidden, "origin"
	}
	o, err := NormaliseOrigin(raw[0])
	if err != nil {
		return admission{}, http.StatusForbidden, "origin"
	}
	if rule, ok := s.origins[o]; ok {
		return admission{origin: o, authorised: true, full: rule.FullIdentity}, 0, ""
	}
	if s.opts.Pairing != nil {
		return admission{origin: o}, 0, ""
	}
	return admission{}, http.StatusForbidden, "origin"
}

// checkOrigin is the upgrader's CheckOrigin: true only for what admit
// accepts.
func (s *Server) checkOrigin(r *http.Request) bool {
	_, status, _ := s.admit(r)
	return status == 0
}

// ServeHTTP upgrades an admitted request to a WebSocket and serves it
// until the page leaves. Refusals: 405 (not GET), 403 (Host not loopback,
// Origin missing, malformed, or neither allowed nor pairable), 503 (too
// many connections, or the server is shutting down).
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	adm, status, reason := s.admit(r)
	if status == 0 && s.draining.Load() {
		status, reason = http.StatusServiceUnavailable, "shutting_down"
	}
	if status == 0 {
		s.mu.Lock()
		switch {
		case len(s.conns)+s.pending >= s.opts.MaxConns:
			status, reason = http.StatusServiceUnavailable, "connections"
		case !adm.authorised && s.unpaired >= s.opts.MaxUnpaired:
			status, reason = http.StatusServiceUnavailable, "unpaired_connections"
		default:
			s.pending++
			if !adm.authorised {
				s.unpaired++
			}
		}
		s.mu.Unlock()
	}
	if status != 0 {
		s.refused(reason)
		s.log.Info("kiosk connection refused", "reason", reason, "origin", truncate(r.Header.Get("Origin")), "remote", r.RemoteAddr)
		http.Error(w, "onecard: connection refused ("+reason+")", status)
		return
	}
	ws, err := s.upgrader.Upgrade(w, r, nil)
	if err != nil {
		s.mu.Lock()
		s.pending--
		if !adm.authorised {
			s.unpaired--
		}
		s.mu.Unlock()
		s.refused("upgrade")
		return // the upgrader wrote the HTTP error
	}
	c := s.newConn(ws, adm)
	s.serve(c)
}

func (s *Server) refused(reason string) {
	if s.opts.Observe.Refused != nil {
		s.opts.Observe.Refused(reason)
	}
}

// conn is one page.
type conn struct {
	s      *Server
	ws     *websocket.Conn
	origin string

	mu         sync.Mutex
	authorised bool
	full       bool
	counted    bool // counted in s.unpaired

	out      chan []byte
	closed   chan struct{}
	once     sync.Once
	inflight chan struct{}
	bucket   tokenBucket
}

func (s *Server) newConn(ws *websocket.Conn, adm admission) *conn {
	c := &conn{
		s: s, ws: ws, origin: adm.origin, authorised: adm.authorised, full: adm.full,
		out: make(chan []byte, eventBuffer), closed: make(chan struct{}),
		inflight: make(chan struct{}, s.opts.MaxInFlight),
		bucket:   newTokenBucket(s.opts.Rate, s.opts.Burst),
	}
	s.mu.Lock()
	s.pending-- // the slot reserved in ServeHTTP is now this connection
	s.conns[c] = struct{}{}
	if !c.authorised {
		c.counted = true // s.unpaired was incremented in ServeHTTP
	}
	n := len(s.conns)
	s.mu.Unlock()
	if s.opts.Observe.Connections != nil {
		s.opts.Observe.Connections(n)
	}
	s.log.Debug("kiosk connection", "origin", c.origin, "authorised", adm.authorised)
	return c
}

// authorise marks the connection authorised.
func (c *conn) authorise() {
	c.mu.Lock()
	c.authorised = true
	counted := c.counted
	c.counted = false
	c.mu.Unlock()
	if counted {
		c.s.mu.Lock()
		c.s.unpaired--
		c.s.mu.Unlock()
	}
}

func (c *conn) state() (authorised, full bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.authorised, c.full
}

// close ends the connection (idempotent).
func (c *conn) close(code int, text string) {
	c.once.Do(func() {
		close(c.closed)
		_ = c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, text), time.Now().Add(time.Second))
		_ = c.ws.Close()
		s := c.s
		s.mu.Lock()
		delete(s.conns, c)
		c.mu.Lock()
		if c.counted {
			c.counted = false
			s.unpaired--
		}
		c.mu.Unlock()
		n := len(s.conns)
		s.mu.Unlock()
		if s.opts.Observe.Connections != nil {
			s.opts.Observe.Connections(n)
		}
	})
}

// serve reads requests until the page leaves.
func (s *Server) serve(c *conn) {
	defer c.close(websocket.CloseNormalClosure, "")
	go c.writer()
	c.ws.SetReadLimit(s.opts.MaxMessage)
	deadline := func() { _ = c.ws.SetReadDeadline(time.Now().Add(3 * s.opts.PingInterval)) }
	deadline()
	c.ws.SetPongHandler(func(string) error { deadline(); return nil })
	for {
		mt, msg, err := c.ws.ReadMessage()
		if err != nil {
			if errors.Is(err, websocket.ErrReadLimit) {
				s.refused("too_large")
				s.log.Info("kiosk message too large; connection closed", "origin", c.origin, "limit", s.opts.MaxMessage)
			}
			return
		}
		deadline()
		if mt != websocket.TextMessage {
			clear(msg)
			c.reply(nil, nil, Errorf(CodeMalformed, "binary messages are not accepted"), "", 0)
			continue
		}
		s.handle(c, msg)
	}
}

// request is one incoming message.
type request struct {
	ID     json.RawMessage `json:"id"`
	Method string          `json:"method"`
	Params json.RawMessage `json:"params"`
}

// response is the answer to a request.
type response struct {
	ID     json.RawMessage `json:"id"`
	Result json.RawMessage `json:"result,omitempty"`
	Error  *Error          `json:"error,omitempty"`
}

// eventMsg is a pushed event; ID names the request a progress event
// belongs to.
type eventMsg struct {
	Event string          `json:"event"`
	ID    json.RawMessage `json:"id,omitempty"`
	Data  any             `json:"data,omitempty"`
}

var nullID = json.RawMessage("null")

// validID accepts a JSON number or a string of at most 64 bytes.
func validID(id json.RawMessage) bool {
	if len(id) == 0 || len(id) > 66 {
		return false
	}
	var v any
	if err := json.Unmarshal(id, &v); err != nil {
		return false
	}
	switch v.(type) {
	case float64, string:
		return true
	}
	return false
}

// decodeRequest parses a message strictly: a JSON object with id (number
// or string), method (non-empty string) and optional params (object),
// nothing else. Errors are *Error with CodeMalformed; id is returned when
// it could be read.
func decodeRequest(msg []byte) (request, *Error) {
	var req request
	dec := json.NewDecoder(bytes.NewReader(msg))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return request{}, Errorf(CodeMalformed, "not a request object: want {\"id\":..,\"method\":..,\"params\":{..}}")
	}
	if dec.More() {
		return request{}, Errorf(CodeMalformed, "trailing data after the request object")
	}
	if !validID(req.ID) {
		return request{}, Errorf(CodeMalformed, "id must be a number or a string of at most 64 bytes")
	}
	if req.Method == "" || len(req.Method) > 64 {
		return request{ID: req.ID}, Errorf(CodeMalformed, "method missing")
	}
	p := bytes.TrimSpace(req.Params)
	if len(p) > 0 && !bytes.Equal(p, []byte("null")) && p[0] != '{' {
		return request{ID: req.ID}, Errorf(CodeMalformed, "params must be an object")
	}
	return req, nil
}

// handle checks and dispatches one message; msg is zeroed when the
// request is done (it may hold a PIN).
func (s *Server) handle(c *conn, msg []byte) {
	start := time.Now()
	req, perr := decodeRequest(msg)
	if limited := !c.bucket.take(start); perr == nil && limited {
		perr = Errorf(CodeRateLimited, "more than %g requests per second", s.opts.Rate)
		s.refused("rate")
	}
	if perr != nil {
		id := req.ID
		clear(msg)
		c.reply(id, nil, perr, req.Method, time.Since(start))
		return
	}
	authorised, full := c.state()
	builtin := req.Method == MethodHello || req.Method == MethodPair || req.Method == MethodAuth
	m, known := s.opts.Methods[req.Method]
	switch {
	case !builtin && !known:
		clear(msg)
		c.reply(req.ID, nil, Errorf(CodeUnknownMethod, "unknown method %q", truncate(req.Method)), req.Method, time.Since(start))
		return
	case !builtin && !authorised:
		clear(msg)
		c.reply(req.ID, nil, Errorf(CodeUnauthorised, "this page is not paired with the agent: call pair with the operator's code, or auth with the page's token"), req.Method, time.Since(start))
		return
	case s.draining.Load():
		clear(msg)
		c.reply(req.ID, nil, Errorf(CodeShuttingDown, "the agent is shutting down"), req.Method, time.Since(start))
		return
	}
	select {
	case c.inflight <- struct{}{}:
	default:
		clear(msg)
		c.reply(req.ID, nil, Errorf(CodeTooMany, "more than %d requests in flight on this connection", s.opts.MaxInFlight), req.Method, time.Since(start))
		return
	}
	call := &Call{Method: req.Method, Params: req.Params, Origin: c.origin, FullIdentity: full, c: c, id: req.ID}
	s.inflight.Add(1)
	go func() {
		defer s.inflight.Done()
		defer func() { <-c.inflight }()
		defer clear(msg)
		var res any
		var err error
		if builtin {
			res, err = s.builtin(c, call)
		} else {
			res, err = s.run(m, call)
		}
		c.reply(req.ID, res, err, req.Method, time.Since(start))
	}()
}

// run calls m, turning a panic into an internal error (a bug must not
// take the agent down).
func (s *Server) run(m Method, call *Call) (res any, err error) {
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("kiosk method panicked", "method", call.Method, "panic", fmt.Sprint(p))
			res, err = nil, Errorf(CodeInternal, "internal error")
		}
	}()
	return m(context.Background(), call)
}

// builtin serves hello, pair and auth.
func (s *Server) builtin(c *conn, call *Call) (any, error) {
	switch call.Method {
	case MethodHello:
		authorised, full := c.state()
		methods := make([]string, 0, len(s.opts.Methods))
		for n := range s.opts.Methods {
			methods = append(methods, n)
		}
		sort.Strings(methods)
		res := map[string]any{
			"agent": "onecard", "api": APIVersion, "origin": c.origin,
			"authorised": authorised, "fullIdentity": full, "pairing": s.opts.Pairing != nil,
		}
		if authorised {
			res["methods"] = methods
			if s.opts.Hello != nil {
				for k, v := range s.opts.Hello() {
					if _, taken := res[k]; !taken {
						res[k] = v
					}
				}
			}
		}
		return res, nil
	case MethodPair:
		if s.opts.Pairing == nil {
			return nil, Errorf(CodePairingDisabled, "this agent does not pair pages; ask for the origin to be added to kiosk.origins")
		}
		if c.origin == "" {
			return nil, Errorf(CodeBadRequest, "a client without an Origin cannot pair")
		}
		var p struct {
			Code string `json:"code"`
		}
		if err := call.Decode(&p); err != nil {
			return nil, err
		}
		tok, err := s.opts.Pairing.Pair(c.origin, p.Code)
		switch {
		case errors.Is(err, ErrBadCode), errors.Is(err, ErrNoCode):
			s.refused("pairing")
			s.log.Warn("kiosk pairing failed", "origin", c.origin, "err", err)
			return nil, Wrap(CodePairingFailed, err)
		case err != nil:
			return nil, Wrap(CodeInternal, err)
		}
		c.authorise()
		s.log.Info("kiosk page paired", "origin", c.origin)
		return map[string]any{"token": tok, "origin": c.origin}, nil
	case MethodAuth:
		var p struct {
			Token string `json:"token"`
		}
		if err := call.Decode(&p); err != nil {
			return nil, err
		}
		if authorised, _ := c.state(); authorised {
			return map[string]any{"authorised": true}, nil
		}
		if s.opts.Pairing == nil || !s.opts.Pairing.Check(c.origin, p.Token) {
			s.refused("token")
			return nil, Errorf(CodeUnauthorised, "token not valid for origin %s: pair again", c.origin)
		}
		c.authorise()
		return map[string]any{"authorised": true}, nil
	}
	return nil, Errorf(CodeUnknownMethod, "unknown method %q", call.Method)
}

// reply sends a response and reports the outcome.
func (c *conn) reply(id json.RawMessage, res any, err error, method string, d time.Duration) {
	if len(id) == 0 {
		id = nullID
	}
	r := response{ID: id}
	outcome := "ok"
	if err != nil {
		r.Error = Classify(err)
		outcome = r.Error.Code
	} else {
		b, merr := json.Marshal(res)
		if merr != nil {
			r.Error = Errorf(CodeInternal, "encode result: %v", merr)
			outcome = CodeInternal
		} else if res == nil || bytes.Equal(b, []byte("null")) {
			r.Result = json.RawMessage("{}")
		} else {
			r.Result = b
		}
	}
	if _, known := c.s.opts.Methods[method]; !known && method != MethodHello && method != MethodPair && method != MethodAuth {
		method = "-" // bounded metric labels: unknown names are not echoed
	}
	if o := c.s.opts.Observe.Request; o != nil {
		o(method, outcome, d)
	}
	if r.Error != nil && r.Error.Code == CodeInternal {
		c.s.log.Error("kiosk request failed", "method", method, "err", r.Error.Message)
	} else {
		c.s.log.Debug("kiosk request", "method", method, "outcome", outcome, "duration", d)
	}
	b, merr := json.Marshal(r)
	if merr != nil {
		return
	}
	select {
	case c.out <- b:
	case <-c.closed:
	}
}

// push queues an event without waiting; a full queue drops it.
func (c *conn) push(b []byte) {
	select {
	case c.out <- b:
	case <-c.closed:
	default:
		if d := c.s.opts.Observe.Dropped; d != nil {
			d()
		}
	}
}

// writer writes queued messages and pings.
func (c *conn) writer() {
	t := time.NewTicker(c.s.opts.PingInterval)
	defer t.Stop()
	for {
		select {
		case <-c.closed:
			return
		case b := <-c.out:
			if b == nil { // flushAndClose's marker
				c.close(websocket.CloseGoingAway, "agent shutting down")
				return
			}
			_ = c.ws.SetWriteDeadline(time.Now().Add(c.s.opts.WriteTimeout))
			if err := c.ws.WriteMessage(websocket.TextMessage, b); err != nil {
				c.close(websocket.CloseGoingAway, "")
				return
			}
		case <-t.C:
			if err := c.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(c.s.opts.WriteTimeout)); err != nil {
				c.close(websocket.CloseGoingAway, "")
				return
			}
		}
	}
}

// Broadcast pushes an event to every authorised page. Slow pages lose
// events (counted by Observer.Dropped), never block the agent.
func (s *Server) Broadcast(event string, data any) {
	b, err := json.Marshal(eventMsg{Event: event, Data: data})
	if err != nil {
		s.log.Error("kiosk event not encodable", "event", event, "err", err)
		return
	}
	s.mu.Lock()
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		if ok, _ := c.state(); ok {
			c.push(b)
		}
	}
}

// Connections returns the number of open connections.
func (s *Server) Connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// Shutdown stops taking requests (new ones get shutting_down, new
// connections 503), waits until every running request has answered or
// ctx is done, then closes every connection with 1001 (going away). It
// returns ctx's error when requests were still running.
func (s *Server) Shutdown(ctx context.Context) error {
	s.draining.Store(true)
	done := make(chan struct{})
	go func() { s.inflight.Wait(); close(done) }()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = fmt.Errorf("kiosk API shutdown: requests still running: %w", ctx.Err())
	}
	s.mu.Lock()
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Go(func() { c.flushAndClose(ctx) })
	}
	wg.Wait()
	return err
}

// flushAndClose lets the writer send what is queued (the answers of the
// requests that just finished), then closes with 1001.
func (c *conn) flushAndClose(ctx context.Context) {
	t := time.NewTimer(time.Second)
	defer t.Stop()
	select {
	case c.out <- nil: // the writer closes when it reaches this marker
		select {
		case <-c.closed:
			return
		case <-t.C:
		case <-ctx.Done():
		}
	case <-c.closed:
		return
	case <-t.C:
	case <-ctx.Done():
	}
	c.close(websocket.CloseGoingAway, "agent shutting down")
}

// Call is one request as a Method sees it.
type Call struct {
	// Method is the method's name.
	Method string
	// Params is the raw params object (may be empty). It is valid only
	// during the call: the server zeroes the message afterwards because
	// it may hold a PIN. Decode copies what the method needs.
	Params json.RawMessage
	// Origin is the page's normalised origin ("" for a native client).
	Origin string
	// FullIdentity: the origin may see unmasked personal data.
	FullIdentity bool

	c  *conn
	id json.RawMessage
}

// Decode unmarshals Params into v strictly (unknown fields are refused).
// Errors: *Error with CodeBadRequest.
func (c *Call) Decode(v any) error {
	p := bytes.TrimSpace(c.Params)
	if len(p) == 0 || bytes.Equal(p, []byte("null")) {
		p = []byte("{}")
	}
	dec := json.NewDecoder(bytes.NewReader(p))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var se *secretError
		if errors.As(err, &se) {
			return Errorf(CodePINFormat, "%s", se.msg)
		}
		return Errorf(CodeBadRequest, "params: %s", paramError(err))
	}
	return nil
}

// paramError describes a decoding error without echoing values.
func paramError(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Sprintf("field %q must be %s", te.Field, te.Type)
	}
	if s := err.Error(); len(s) < 120 && bytes.HasPrefix([]byte(s), []byte("json: unknown field")) {
		return s
	}
	return "not valid for this method"
}

// Progress pushes a progress event for this request to its page:
// {"event":"progress","id":<request id>,"data":{"stage":stage,...}}.
// Stages used by the agent: reading, enter_pin, writing, syncing.
func (c *Call) Progress(stage string, extra map[string]any) {
	if c.c == nil {
		return
	}
	data := map[string]any{"stage": stage}
	for k, v := range extra {
		data[k] = v
	}
	b, err := json.Marshal(eventMsg{Event: "progress", ID: c.id, Data: data})
	if err == nil {
		c.c.push(b)
	}
}
