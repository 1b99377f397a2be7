package server

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	hubsync "github.com/onecard-hub/onecard/hub/sync"
	"github.com/onecard-hub/onecard/terminal"
	"github.com/onecard-hub/onecard/terminal/record"
)

// Server is the hub's sync endpoint. Create it with New, mount it as an
// http.Handler (at hubsync.Path), and Close it to end every connection.
type Server struct {
	o        Options
	upgrader websocket.Upgrader
	verify   chan struct{} // verification worker slots
	keys     *terminal.LocalKeyService

	conns atomic.Int64

	mu       sync.Mutex
	sessions map[string]*session // terminal number → live session
	buckets  map[string]*bucket  // terminal number → rate bucket
	closed   bool

	lostKick chan struct{}
	lost     lostCache
	stop     chan struct{}
	wg       sync.WaitGroup

	st stats

	cardLocks [64]sync.Mutex // load authorisations, by card (cardLock)
}

// cardLock returns the lock that serialises load authorisations of card
// in this hub (striped: cards share 64 locks).
func (s *Server) cardLock(card record.CardID) *sync.Mutex {
	var h byte
	for _, b := range card {
		h = h*31 + b
	}
	return &s.cardLocks[h%byte(len(s.cardLocks))]
}

type stats struct {
	accepted, duplicates, rejected, retried atomic.Uint64
	batches, refused, slow                  atomic.Uint64
}

// Stats is a snapshot of the server's counters.
type Stats struct {
	Connections int // open WebSocket connections (authenticated or not)
	Sessions    int // authenticated terminals connected
	// Records acknowledged since start, by verdict.
	Accepted, Duplicates, Rejected, Retried uint64
	Batches                                 uint64
	Refused                                 uint64 // connections refused at hello or enrolment
	SlowDisconnects                         uint64 // peers dropped for not reading
}

// New checks the options and returns a server with its lost-card pusher
// running. Errors: a description of the bad option.
func New(opts Options) (*Server, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	s := &Server{
		o:        o,
		verify:   make(chan struct{}, o.VerifyWorkers),
		keys:     &terminal.LocalKeyService{Keys: o.Keys},
		sessions: map[string]*session{},
		buckets:  map[string]*bucket{},
		lostKick: make(chan struct{}, 1),
		stop:     make(chan struct{}),
	}
	s.upgrader = websocket.Upgrader{
		HandshakeTimeout: o.HelloTimeout,
		ReadBufferSize:   4096,
		WriteBufferSize:  4096,
		WriteBufferPool:  &sync.Pool{},
		Subprotocols:     []string{hubsync.Subprotocol},
		CheckOrigin:      s.checkOrigin,
	}
	s.wg.Add(1)
	go s.lostPusher()
	return s, nil
}

// checkOrigin allows requests without an Origin header (agents) and
// browser origins in the explicit allowlist; never "any origin".
func (s *Server) checkOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	return slices.ContainsFunc(s.o.AllowedOrigins, func(a string) bool { return strings.EqualFold(a, origin) })
}

// ServeHTTP upgrades the request to a sync connection and serves it until
// it ends.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != hubsync.Path {
		http.NotFound(w, r)
		return
	}
	if n := s.conns.Add(1); n > int64(s.o.MaxConns) {
		s.conns.Add(-1)
		http.Error(w, "hub: too many connections", http.StatusServiceUnavailable)
		return
	}
	defer s.conns.Add(-1)
	if s.isClosed() {
		http.Error(w, "hub: shutting down", http.StatusServiceUnavailable)
		return
	}
	if !slices.Contains(websocket.Subprotocols(r), hubsync.Subprotocol) {
		http.Error(w, "hub: subprotocol "+hubsync.Subprotocol+" required", http.StatusBadRequest)
		return
	}
	ws, err := s.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader answered the client
	}
	ss := newSession(s, ws, r.RemoteAddr)
	ss.run()
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// register makes ss the terminal's live session, closing an older one.
// It fails when the server is closing.
func (s *Server) register(ss *session) bool {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return false
	}
	old := s.sessions[ss.term]
	s.sessions[ss.term] = ss
	s.mu.Unlock()
	if old != nil {
		old.fail(hubsync.NewError(hubsync.CodeReplaced, "a newer connection of this terminal took over", true))
	}
	return true
}

func (s *Server) unregister(ss *session) {
	s.mu.Lock()
	if s.sessions[ss.term] == ss {
		delete(s.sessions, ss.term)
	}
	s.mu.Unlock()
}

// bucketFor returns the terminal's rate bucket (kept across reconnections).
func (s *Server) bucketFor(term string) *bucket {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.buckets[term]
	if b == nil {
		b = newBucket(s.o.Rate, float64(s.o.Burst), s.o.Now())
		s.buckets[term] = b
	}
	return b
}

// Disconnect ends the terminal's session (after a suspension, say); it
// reports whether one was open.
func (s *Server) Disconnect(term, code, reason string) bool {
	s.mu.Lock()
	ss := s.sessions[term]
	s.mu.Unlock()
	if ss == nil {
		return false
	}
	ss.fail(hubsync.NewError(code, reason, true))
	return true
}

// NotifyLost makes the server push lost-card changes now rather than at
// the next poll.
func (s *Server) NotifyLost() {
	select {
	case s.lostKick <- struct{}{}:
	default:
	}
}

// Stats returns the counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	n := len(s.sessions)
	s.mu.Unlock()
	return Stats{
		Connections: int(s.conns.Load()), Sessions: n,
		Accepted: s.st.accepted.Load(), Duplicates: s.st.duplicates.Load(),
		Rejected: s.st.rejected.Load(), Retried: s.st.retried.Load(),
		Batches: s.st.batches.Load(), Refused: s.st.refused.Load(), SlowDisconnects: s.st.slow.Load(),
	}
}

// Close ends every session (error "shutdown") and stops the pusher. It
// does not close the listener (shut the http.Server down for that) nor
// the store. It waits for the sessions to finish their current message, at
// most until ctx ends.
func (s *Server) Close(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	all := make([]*session, 0, len(s.sessions))
	for _, ss := range s.sessions {
		all = append(all, ss)
	}
	s.mu.Unlock()
	close(s.stop)
	for _, ss := range all {
		ss.fail(hubsync.NewError(hubsync.CodeShutdown, "hub stopping", true))
	}
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		for _, ss := range all {
			<-ss.finished
		}
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// now is the server's clock.
func (s *Server) now() time.Time { return s.o.Now() }
