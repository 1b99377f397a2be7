package client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	hubsync "github.com/onecard-hub/onecard/hub/sync"
	"github.com/onecard-hub/onecard/sm"
)

// reply is the answer to one request.
type reply struct {
	m   hubsync.Message
	err error
}

// conn is one authenticated WebSocket connection to the hub: a reader
// goroutine dispatches answers to waiting requests (by frame ID) and
// pushes to the push handler.
type conn struct {
	ws           *websocket.Conn
	lim          hubsync.Limits
	log          *slog.Logger
	writeTimeout time.Duration
	readWait     time.Duration

	wmu    sync.Mutex
	nextID atomic.Uint64

	mu      sync.Mutex
	pending map[uint64]chan reply
	err     error // why the connection ended; set before closed is closed

	closed    chan struct{}
	closeOnce sync.Once

	hubID   string
	welcome hubsync.Welcome
	push    func(*conn, hubsync.Message)
}

// handshake reads the hub's challenge and answers it with msg (made by
// answer from the challenge); it returns the hub's reply (Welcome or
// Enrolled). A hub Error comes back as ErrRefused wrapping it.
func handshake(ws *websocket.Conn, timeout time.Duration, expectHub string,
	answer func(ch *hubsync.Challenge) (hubsync.Message, error)) (*hubsync.Challenge, hubsync.Message, error) {
	lim := hubsync.Limits{MaxMessage: 64 << 10}
	ws.SetReadDeadline(time.Now().Add(timeout))
	ws.SetWriteDeadline(time.Now().Add(timeout))
	_, b, err := ws.ReadMessage()
	if err != nil {
		return nil, nil, fmt.Errorf("read challenge: %w: %v", ErrUnreachable, err)
	}
	_, m, err := hubsync.Decode(b, lim)
	if err != nil {
		return nil, nil, fmt.Errorf("read challenge: %w: %w", ErrProtocol, err)
	}
	if e, ok := m.(*hubsync.Error); ok {
		return nil, nil, fmt.Errorf("read challenge: %w: %w", ErrRefused, e)
	}
	ch, ok := m.(*hubsync.Challenge)
	if !ok {
		return nil, nil, fmt.Errorf("read challenge: %w: got %s", ErrProtocol, m.Type())
	}
	if !slices.Contains(ch.Versions, hubsync.Version) {
		return nil, nil, fmt.Errorf("read challenge: %w: hub speaks versions %v, not %d", ErrProtocol, ch.Versions, hubsync.Version)
	}
	if expectHub != "" && ch.HubID != expectHub {
		return nil, nil, fmt.Errorf("read challenge: %w: hub ID %q, want %q", ErrProtocol, ch.HubID, expectHub)
	}
	out, err := answer(ch)
	if err != nil {
		return nil, nil, err
	}
	frame, err := hubsync.Encode(1, out)
	if err != nil {
		return nil, nil, fmt.Errorf("send %s: %w", out.Type(), err)
	}
	if err := ws.WriteMessage(websocket.TextMessage, frame); err != nil {
		return nil, nil, fmt.Errorf("send %s: %w: %v", out.Type(), ErrUnreachable, err)
	}
	_, b, err = ws.ReadMessage()
	if err != nil {
		return nil, nil, fmt.Errorf("read %s answer: %w: %v", out.Type(), ErrUnreachable, err)
	}
	id, m, err := hubsync.Decode(b, lim)
	if err != nil {
		return nil, nil, fmt.Errorf("read %s answer: %w: %w", out.Type(), ErrProtocol, err)
	}
	if e, ok := m.(*hubsync.Error); ok {
		return nil, nil, fmt.Errorf("%s: %w: %w", out.Type(), ErrRefused, e)
	}
	if id != 1 {
		return nil, nil, fmt.Errorf("read %s answer: %w: frame ID %d", out.Type(), ErrProtocol, id)
	}
	return ch, m, nil
}

// connect dials and says hello; the returned conn's reader runs until the
// connection ends.
func connect(ctx context.Context, o *Options, hello func(ch *hubsync.Challenge) *hubsync.Hello, push func(*conn, hubsync.Message)) (*conn, error) {
	ws, err := dial(ctx, o.URL, o.Pin, o.DialTimeout, 64<<10)
	if err != nil {
		return nil, err
	}
	ch, m, err := handshake(ws, o.DialTimeout, o.HubID, func(ch *hubsync.Challenge) (hubsync.Message, error) {
		h := hello(ch)
		sig, err := hubsync.SignHello(o.Key, ch.HubID, o.TerminalID, ch.Nonce)
		if err != nil {
			return nil, fmt.Errorf("sign hello: %w", err)
		}
		h.Signature = sig
		return h, nil
	})
	if err != nil {
		ws.Close()
		return nil, err
	}
	w, ok := m.(*hubsync.Welcome)
	if !ok || w.TerminalID != o.TerminalID {
		ws.Close()
		return nil, fmt.Errorf("hello: %w: unexpected answer %s", ErrProtocol, m.Type())
	}
	lim := hubsync.Limits{MaxMessage: w.MaxMessage, MaxBatch: w.MaxBatch}
	ws.SetReadLimit(int64(w.MaxMessage) + 1024)
	c := &conn{
		ws: ws, lim: lim, log: o.Logger, writeTimeout: o.RequestTimeout,
		pending: map[uint64]chan reply{}, closed: make(chan struct{}),
		hubID: ch.HubID, welcome: *w, push: push,
	}
	c.nextID.Store(1)
	ping := time.Duration(w.PingIntervalMS) * time.Millisecond
	if ping <= 0 {
		ping = 30 * time.Second
	}
	c.readWait = 2*ping + 10*time.Second
	ws.SetReadDeadline(time.Now().Add(c.readWait))
	ws.SetWriteDeadline(time.Time{})
	ws.SetPingHandler(func(data string) error {
		ws.SetReadDeadline(time.Now().Add(c.readWait))
		err := ws.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(c.writeTimeout))
		if errors.Is(err, websocket.ErrCloseSent) {
			return nil
		}
		return err
	})
	go c.readLoop()
	return c, nil
}

// readLoop runs until the connection fails or closes.
func (c *conn) readLoop() {
	for {
		_, b, err := c.ws.ReadMessage()
		if err != nil {
			c.close(fmt.Errorf("%w: %v", ErrDisconnected, err))
			return
		}
		c.ws.SetReadDeadline(time.Now().Add(c.readWait))
		id, m, err := hubsync.Decode(b, c.lim)
		if err != nil {
			c.close(fmt.Errorf("%w: %w", ErrProtocol, err))
			return
		}
		if id == 0 {
			if e, ok := m.(*hubsync.Error); ok {
				if e.Fatal {
					c.close(fmt.Errorf("%w: %w", ErrRefused, e))
					return
				}
				c.log.Warn("hub: error", "code", e.Code, "reason", e.Reason)
				continue
			}
			if c.push != nil {
				c.push(c, m)
			}
			continue
		}
		c.mu.Lock()
		ch, ok := c.pending[id]
		delete(c.pending, id)
		c.mu.Unlock()
		if !ok {
			c.log.Warn("hub: answer to no request", "id", id, "type", m.Type())
			continue
		}
		ch <- reply{m: m}
	}
}

// close ends the connection (once) and fails every waiting request.
func (c *conn) close(err error) {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.err = err
		pend := c.pending
		c.pending = map[uint64]chan reply{}
		c.mu.Unlock()
		for _, ch := range pend {
			ch <- reply{err: err}
		}
		c.wmu.Lock()
		c.ws.SetWriteDeadline(time.Now().Add(time.Second))
		c.ws.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""))
		c.wmu.Unlock()
		c.ws.Close()
		close(c.closed)
	})
}

// Err returns why the connection ended (nil while it is open).
func (c *conn) Err() error {
	select {
	case <-c.closed:
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.err
	default:
		return nil
	}
}

// send writes one frame.
func (c *conn) send(id uint64, m hubsync.Message) error {
	b, err := hubsync.EncodeLimits(id, m, c.lim)
	if err != nil {
		return err
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.ws.SetWriteDeadline(time.Now().Add(c.writeTimeout))
	if err := c.ws.WriteMessage(websocket.TextMessage, b); err != nil {
		werr := fmt.Errorf("%w: %v", ErrDisconnected, err)
		go c.close(werr)
		return werr
	}
	return nil
}

// begin sends a request and returns the channel its answer (or the
// connection's failure) arrives on.
func (c *conn) begin(m hubsync.Message) (<-chan reply, error) {
	id := c.nextID.Add(1)
	ch := make(chan reply, 1)
	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return nil, err
	}
	c.pending[id] = ch
	c.mu.Unlock()
	if err := c.send(id, m); err != nil {
		c.mu.Lock()
		delete(c.pending, id)
		c.mu.Unlock()
		return nil, err
	}
	return ch, nil
}

// request sends m and waits for its answer. A hub Error answer is
// returned as the error (*hubsync.Error).
func (c *conn) request(ctx context.Context, m hubsync.Message, timeout time.Duration) (hubsync.Message, error) {
	ch, err := c.begin(m)
	if err != nil {
		return nil, err
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case r := <-ch:
		if r.err != nil {
			return nil, r.err
		}
		if e, ok := r.m.(*hubsync.Error); ok {
			return nil, e
		}
		return r.m, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-t.C:
		return nil, fmt.Errorf("%w: no answer to %s within %v", ErrDisconnected, m.Type(), timeout)
	}
}

// helloFor builds the Hello (without its signature) for a challenge.
func helloFor(o *Options, lostVersion, configVersion uint64) func(*hubsync.Challenge) *hubsync.Hello {
	return func(ch *hubsync.Challenge) *hubsync.Hello {
		return &hubsync.Hello{TerminalID: o.TerminalID, Nonce: ch.Nonce, Agent: o.Agent,
			LostVersion: lostVersion, ConfigVersion: configVersion}
	}
}

// keyCheck makes sure the key matches what a hello needs.
func keyCheck(k *sm.PrivateKey) error {
	if k == nil {
		return fmt.Errorf("%w: no terminal key", ErrConfig)
	}
	return nil
}
