package server

import (
	"context"
	"crypto/rand"
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/onecard-hub/onecard/hub/store"
	hubsync "github.com/onecard-hub/onecard/hub/sync"
	"github.com/onecard-hub/onecard/sm"
)

// preHelloLimit bounds frames before the hello.
const preHelloLimit = 16 << 10

// session is one connection. The reader (run's goroutine) handles one
// message at a time; the writer goroutine owns every write: queued
// frames, pings, lost-card pushes and the final error.
type session struct {
	s      *Server
	ws     *websocket.Conn
	remote string
	log    *slog.Logger
	lim    hubsync.Limits

	term string
	pub  *sm.PublicKey

	out      chan []byte
	lostPoke chan struct{}
	lostHave atomic.Uint64 // the version the agent holds, as far as the hub knows
	lostOn   atomic.Bool   // pushes enabled (after the welcome)

	ctx    context.Context // cancelled when the session ends
	cancel context.CancelFunc

	done      chan struct{} // closed by fail
	finished  chan struct{} // closed when reader and writer have stopped
	closeOnce sync.Once
	mu        sync.Mutex
	last      *hubsync.Error // sent as the last frame (nil: none)
}

func newSession(s *Server, ws *websocket.Conn, remote string) *session {
	ctx, cancel := context.WithCancel(context.Background())
	return &session{
		s: s, ws: ws, remote: remote, log: s.o.Logger.With("remote", remote),
		lim: hubsync.Limits{MaxMessage: s.o.MaxMessage, MaxBatch: s.o.MaxBatch},
		out: make(chan []byte, s.o.SendQueue), lostPoke: make(chan struct{}, 1),
		ctx: ctx, cancel: cancel, done: make(chan struct{}), finished: make(chan struct{}),
	}
}

// run serves the connection until it ends.
func (ss *session) run() {
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		ss.writeLoop()
	}()
	if ss.handshake() {
		ss.readLoop()
		ss.s.unregister(ss)
	}
	ss.fail(nil)
	<-writerDone
	ss.ws.Close()
	close(ss.finished)
}

// fail ends the session; last (if any) is the final frame sent.
func (ss *session) fail(last *hubsync.Error) {
	ss.closeOnce.Do(func() {
		ss.mu.Lock()
		ss.last = last
		ss.mu.Unlock()
		if last != nil && ss.term != "" {
			ss.log.Info("hub: session ended", "terminal", ss.term, "code", last.Code)
		}
		ss.cancel()
		close(ss.done)
		// Unblock a reader waiting for the peer once the writer had its
		// chance to send the final frame.
		go func() {
			t := time.NewTimer(ss.s.o.WriteTimeout + time.Second)
			defer t.Stop()
			select {
			case <-ss.finished:
			case <-t.C:
				ss.ws.Close()
			}
		}()
	})
}

func (ss *session) isDone() bool {
	select {
	case <-ss.done:
		return true
	default:
		return false
	}
}

// writeLoop sends queued frames, pings and lost-card pushes.
func (ss *session) writeLoop() {
	ping := time.NewTicker(ss.s.o.PingInterval)
	defer ping.Stop()
	write := func(b []byte) bool {
		ss.ws.SetWriteDeadline(time.Now().Add(ss.s.o.WriteTimeout))
		if err := ss.ws.WriteMessage(websocket.TextMessage, b); err != nil {
			ss.fail(nil)
			return false
		}
		return true
	}
	for {
		select {
		case b := <-ss.out:
			if !write(b) {
				return
			}
		case <-ping.C:
			if err := ss.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(ss.s.o.WriteTimeout)); err != nil {
				ss.fail(nil)
				return
			}
		case <-ss.lostPoke:
			if ss.lostOn.Load() {
				for _, b := range ss.s.lostFrames(ss.ctx, ss) {
					if !write(b) {
						return
					}
				}
			}
		case <-ss.done:
			// Flush what was queued before the end (answers the peer is
			// owed), then the final error and a close frame.
			for flushing := true; flushing; {
				select {
				case b := <-ss.out:
					if !write(b) {
						return
					}
				default:
					flushing = false
				}
			}
			ss.mu.Lock()
			last := ss.last
			ss.mu.Unlock()
			if last != nil {
				if b, err := hubsync.Encode(0, last); err == nil {
					write(b)
				}
			}
			ss.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""),
				time.Now().Add(time.Second))
			return
		}
	}
}

// send queues a frame. A full queue means the peer does not read: the
// session ends (memory stays bounded).
func (ss *session) send(id uint64, m hubsync.Message) bool {
	b, err := hubsync.EncodeLimits(id, m, ss.lim)
	if err != nil {
		ss.log.Error("hub: cannot encode answer", "type", m.Type(), "err", err)
		b, _ = hubsync.Encode(id, hubsync.NewError(hubsync.CodeUnavailable, "answer could not be encoded", false))
	}
	select {
	case ss.out <- b:
		return true
	case <-ss.done:
		return false
	default:
		ss.s.st.slow.Add(1)
		ss.log.Warn("hub: peer does not read its answers; disconnecting", "terminal", ss.term)
		ss.fail(nil)
		return false
	}
}

// refuse sends a fatal error and ends the session.
func (ss *session) refuse(code, reason string) {
	ss.s.st.refused.Add(1)
	ss.fail(hubsync.NewError(code, reason, true))
}

// handshake sends the challenge and handles the hello or enrolment. It
// reports whether a terminal session was established.
func (ss *session) handshake() bool {
	nonce := make([]byte, hubsync.NonceLen)
	if _, err := rand.Read(nonce); err != nil {
		ss.fail(hubsync.NewError(hubsync.CodeUnavailable, "no randomness", true))
		return false
	}
	ss.send(0, &hubsync.Challenge{HubID: ss.s.o.HubID, Versions: []int{hubsync.Version}, Nonce: nonce,
		MaxMessage: ss.s.o.MaxMessage, MaxBatch: ss.s.o.MaxBatch})
	ss.ws.SetReadLimit(preHelloLimit)
	ss.ws.SetReadDeadline(time.Now().Add(ss.s.o.HelloTimeout))
	_, b, err := ss.ws.ReadMessage()
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			ss.refuse(hubsync.CodeTimeout, "no hello in time")
		} else {
			ss.fail(nil)
		}
		return false
	}
	id, m, err := hubsync.Decode(b, hubsync.Limits{MaxMessage: preHelloLimit, MaxBatch: 1})
	if err != nil {
		ss.refuse(codeFor(err), err.Error())
		return false
	}
	switch m := m.(type) {
	case *hubsync.Hello:
		return ss.hello(id, m, nonce)
	case *hubsync.Enroll:
		ss.enroll(id, m, nonce)
		return false
	}
	ss.refuse(hubsync.CodeUnexpected, "want hello or enroll, got "+string(m.Type()))
	return false
}

func codeFor(err error) string {
	switch {
	case errors.Is(err, hubsync.ErrTooLarge):
		return hubsync.CodeTooLarge
	case errors.Is(err, hubsync.ErrVersion):
		return hubsync.CodeVersion
	}
	return hubsync.CodeBadMessage
}

// hello authenticates the terminal.
func (ss *session) hello(id uint64, h *hubsync.Hello, nonce []byte) bool {
	log := ss.log.With("terminal", h.TerminalID)
	t, err := ss.s.o.Store.Terminal(ss.ctx, h.TerminalID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		log.Warn("hub: hello from an unknown terminal")
		ss.refuse(hubsync.CodeUnknownTerminal, "terminal not enrolled")
		return false
	case err != nil:
		log.Error("hub: terminal lookup failed", "err", err)
		ss.fail(hubsync.NewError(hubsync.CodeUnavailable, "registry unavailable", true))
		return false
	}
	pub, perr := sm.PublicKeyFromPoint(t.PublicKey)
	if t.State != store.StateInvited && (perr != nil || !hubsync.VerifyHello(pub, ss.s.o.HubID, h.TerminalID, nonce, h.Signature)) {
		log.Warn("hub: hello signature invalid")
		ss.refuse(hubsync.CodeBadSignature, "hello signature does not verify")
		return false
	}
	switch t.State {
	case store.StateActive:
	case store.StateSuspended:
		log.Warn("hub: hello from a suspended terminal")
		ss.refuse(hubsync.CodeSuspended, "terminal suspended")
		return false
	case store.StateInvited:
		ss.refuse(hubsync.CodeUnknownTerminal, "terminal not enrolled")
		return false
	default:
		ss.refuse(hubsync.CodePending, "terminal awaits approval")
		return false
	}
	ss.term, ss.pub = h.TerminalID, pub
	ss.log = log
	if !ss.s.register(ss) {
		ss.fail(hubsync.NewError(hubsync.CodeShutdown, "hub stopping", true))
		return false
	}
	ss.ws.SetReadLimit(int64(ss.s.o.MaxMessage))
	ss.send(id, &hubsync.Welcome{TerminalID: h.TerminalID, LastAck: t.AckedSeq, MaxBatch: ss.s.o.MaxBatch,
		MaxMessage: ss.s.o.MaxMessage, PingIntervalMS: ss.s.o.PingInterval.Milliseconds()})
	if ss.s.o.Config != nil && h.ConfigVersion != ss.s.o.ConfigVersion {
		ss.send(0, &hubsync.Config{Version: ss.s.o.ConfigVersion, Values: ss.s.o.Config})
	}
	ss.lostHave.Store(h.LostVersion)
	ss.lostOn.Store(true)
	ss.pokeLost()
	log.Info("hub: terminal connected", "last_ack", t.AckedSeq)
	return true
}

// enroll registers a terminal key with its one-time token.
func (ss *session) enroll(id uint64, e *hubsync.Enroll, nonce []byte) {
	log := ss.log.With("terminal", e.TerminalID)
	pub, ok := hubsync.VerifyEnroll(ss.s.o.HubID, e)
	if !ok || string(e.Nonce) != string(nonce) {
		log.Warn("hub: enrolment signature invalid")
		ss.refuse(hubsync.CodeBadSignature, "enrolment signature does not verify")
		return
	}
	t, err := ss.s.o.Store.UpdateTerminal(ss.ctx, e.TerminalID, func(t *store.Terminal) error {
		return t.Enrol([]byte(e.Token), pub.Point())
	})
	switch {
	case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrToken):
		log.Warn("hub: enrolment refused: bad token")
		ss.refuse(hubsync.CodeBadToken, "unknown terminal, or token wrong or used")
		return
	case err != nil:
		log.Error("hub: enrolment failed", "err", err)
		ss.fail(hubsync.NewError(hubsync.CodeUnavailable, "registry unavailable", true))
		return
	}
	log.Info("hub: terminal enrolled; awaiting approval")
	ss.send(id, &hubsync.Enrolled{TerminalID: t.No, Status: statusName(t.State)})
	ss.fail(nil)
}

// statusName maps a store state to the protocol's status names.
func statusName(s store.TerminalState) string {
	switch s {
	case store.StateActive:
		return hubsync.StatusActive
	case store.StateSuspended:
		return hubsync.StatusSuspended
	}
	return hubsync.StatusPending
}

// readLoop handles messages until the connection ends.
func (ss *session) readLoop() {
	wait := ss.s.o.PongWait
	ss.ws.SetPongHandler(func(string) error {
		ss.ws.SetReadDeadline(time.Now().Add(wait))
		return nil
	})
	for !ss.isDone() {
		ss.ws.SetReadDeadline(time.Now().Add(wait))
		_, b, err := ss.ws.ReadMessage()
		if err != nil {
			if errors.Is(err, websocket.ErrReadLimit) {
				ss.log.Warn("hub: frame above the limit")
				ss.refuse(hubsync.CodeTooLarge, "frame above the limit")
				return
			}
			ss.fail(nil)
			return
		}
		id, m, err := hubsync.Decode(b, ss.lim)
		if err != nil {
			ss.log.Warn("hub: bad frame", "err", err)
			ss.refuse(codeFor(err), err.Error())
			return
		}
		ss.dispatch(id, m)
	}
}

// dispatch handles one message from an authenticated terminal.
func (ss *session) dispatch(id uint64, m hubsync.Message) {
	if _, push := m.(*hubsync.LostSync); !push && id == 0 {
		ss.refuse(hubsync.CodeBadMessage, "request without a frame ID")
		return
	}
	switch m := m.(type) {
	case *hubsync.Batch:
		ss.batch(id, m)
	case *hubsync.LostSync:
		ss.lostHave.Store(m.Version)
		ss.pokeLost()
	case *hubsync.LoadAuth:
		if ss.admit(id, 1) {
			ss.loadAuth(id, m)
		}
	case *hubsync.KeyRead:
		if ss.admit(id, 1) {
			ss.keyRead(id, m)
		}
	case *hubsync.CreditsQuery:
		if ss.admit(id, 1) {
			ss.credits(id, m)
		}
	case *hubsync.Totals:
		if ss.admit(id, 1) {
			ss.totals(id, m)
		}
	default:
		ss.refuse(hubsync.CodeUnexpected, "message "+string(m.Type())+" not expected from an agent")
	}
}

// admit takes n tokens from the terminal's bucket, waiting up to
// MaxRateWait; otherwise it answers rate_limited and returns false.
func (ss *session) admit(id uint64, n int) bool {
	wait, ok := ss.s.bucketFor(ss.term).take(float64(n), ss.s.now(), ss.s.o.MaxRateWait)
	if !ok {
		ss.send(id, hubsync.NewError(hubsync.CodeRateLimited, "over the terminal's rate; retry later", false))
		return false
	}
	if wait > 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ss.done:
			return false
		}
	}
	return true
}

func (ss *session) pokeLost() {
	select {
	case ss.lostPoke <- struct{}{}:
	default:
	}
}
