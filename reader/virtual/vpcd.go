package virtual

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"
)

// DefaultVPCDAddr is where vpcd's first slot listens in the default
// vsmartcard configuration (CHANNELID 0x8C7B; the second slot is 35964).
const DefaultVPCDAddr = "127.0.0.1:35963"

// ErrAlreadyRunning is returned by VPCD.Run when Run is already active on
// the same bridge.
var ErrAlreadyRunning = errors.New("vpcd bridge already running")

// VPCDOptions configures a VPCD bridge. The zero value is usable except
// that no card is inserted until Insert is called.
type VPCDOptions struct {
	// Addr is vpcd's listening address for the slot, host:port. Default
	// DefaultVPCDAddr.
	Addr string
	// Card is inserted from the start; nil starts with an empty slot.
	Card Card
	// DialTimeout bounds one connection attempt. Default 2 s.
	DialTimeout time.Duration
	// RetryMin and RetryMax bound the exponential back-off between
	// connection attempts while vpcd is unreachable (pcscd not running or
	// restarting). Defaults 20 ms and 1 s.
	RetryMin, RetryMax time.Duration
	// DisableQuickAck leaves TCP delayed ACKs on. Only for measuring their
	// cost: every APDU then takes ~40 ms longer on Linux.
	DisableQuickAck bool
	// Logger receives connection events (never APDU contents). Default:
	// discard.
	Logger *slog.Logger
}

// VPCDStatus is a snapshot of a bridge.
type VPCDStatus struct {
	Inserted  bool   // the card is in the (virtual) slot
	Connected bool   // the card is connected to vpcd right now
	APDUs     uint64 // command APDUs received since the bridge was made
}

// VPCD puts a simulated Card behind pcscd: it plays the card side ("vicc")
// of the vsmartcard vpcd protocol over TCP. Insertion is a connection to
// vpcd, removal closes it. Run keeps the card connected while it is
// inserted and redials (with bounded back-off) when vpcd goes away, e.g.
// when pcscd restarts.
//
// Insert, Remove, PullDuring, Status and WaitConnected are safe to call
// from any goroutine while Run is active.
type VPCD struct {
	opts VPCDOptions
	log  *slog.Logger

	mu       sync.Mutex
	card     Card
	inserted bool
	running  bool
	conn     net.Conn      // live connection to vpcd, nil when none
	up       chan struct{} // closed while conn != nil
	wake     chan struct{} // insert/remove happened (capacity 1)
	pullIn   int
	apdus    uint64
}

// NewVPCD returns a bridge; call Run to start it.
func NewVPCD(opts VPCDOptions) *VPCD {
	if opts.Addr == "" {
		opts.Addr = DefaultVPCDAddr
	}
	if opts.DialTimeout <= 0 {
		opts.DialTimeout = 2 * time.Second
	}
	if opts.RetryMin <= 0 {
		opts.RetryMin = 20 * time.Millisecond
	}
	if opts.RetryMax < opts.RetryMin {
		opts.RetryMax = max(time.Second, opts.RetryMin)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &VPCD{
		opts:     opts,
		log:      log.With("vpcd", opts.Addr),
		card:     opts.Card,
		inserted: opts.Card != nil,
		up:       make(chan struct{}),
		wake:     make(chan struct{}, 1),
	}
}

// Addr returns the vpcd address the bridge dials.
func (v *VPCD) Addr() string { return v.opts.Addr }

// Insert puts card into the slot; the bridge connects it to vpcd. A
// different card already inserted is removed first. Insert(nil)
// re-inserts the last card; with no card ever given it does nothing.
func (v *VPCD) Insert(card Card) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if card != nil && card != v.card {
		v.dropLocked()
		v.card = card
	}
	if v.card == nil {
		return
	}
	v.inserted = true
	v.signal()
}

// Remove takes the card out: the connection to vpcd is closed and pcscd
// reports the card removed at its next presence poll.
func (v *VPCD) Remove() {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.inserted = false
	v.pullIn = 0
	v.dropLocked()
	v.signal()
}

// PullDuring pulls the card out during the n-th next command APDU (n = 1:
// the next one): that APDU never reaches the card, the connection is
// closed without an answer and the slot is empty until Insert. n <= 0
// cancels a pending pull.
func (v *VPCD) PullDuring(n int) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.pullIn = max(n, 0)
}

// Card returns the card the bridge holds (inserted or not).
func (v *VPCD) Card() Card {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.card
}

// Status returns a snapshot of the bridge.
func (v *VPCD) Status() VPCDStatus {
	v.mu.Lock()
	defer v.mu.Unlock()
	return VPCDStatus{Inserted: v.inserted, Connected: v.conn != nil, APDUs: v.apdus}
}

// WaitConnected blocks until the card is connected to vpcd or ctx is
// done (returning ctx's error).
func (v *VPCD) WaitConnected(ctx context.Context) error {
	v.mu.Lock()
	up := v.up
	v.mu.Unlock()
	select {
	case <-up:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("wait for vpcd connection to %s: %w", v.opts.Addr, ctx.Err())
	}
}

// Run serves the card until ctx is done, then disconnects and returns nil.
// It returns ErrAlreadyRunning if another Run is active.
func (v *VPCD) Run(ctx context.Context) error {
	v.mu.Lock()
	if v.running {
		v.mu.Unlock()
		return ErrAlreadyRunning
	}
	v.running = true
	v.mu.Unlock()
	defer func() {
		v.mu.Lock()
		v.running = false
		v.dropLocked()
		v.mu.Unlock()
	}()
	for ctx.Err() == nil {
		card, ok := v.waitInserted(ctx)
		if !ok {
			break
		}
		conn, ok := v.dial(ctx, card)
		if !ok {
			continue
		}
		v.serve(ctx, conn, card)
	}
	return nil
}

// signal wakes Run after an insert or remove. Callers hold v.mu.
func (v *VPCD) signal() {
	select {
	case v.wake <- struct{}{}:
	default:
	}
}

// dropLocked closes the live connection, if any. Callers hold v.mu.
func (v *VPCD) dropLocked() {
	if v.conn == nil {
		return
	}
	_ = v.conn.Close()
	v.conn = nil
	v.up = make(chan struct{})
}

// current returns the card if it is inserted.
func (v *VPCD) current() (Card, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.card, v.inserted && v.card != nil
}

func (v *VPCD) waitInserted(ctx context.Context) (Card, bool) {
	for {
		if card, ok := v.current(); ok {
			return card, true
		}
		select {
		case <-v.wake:
		case <-ctx.Done():
			return nil, false
		}
	}
}

// dial connects to vpcd, retrying with back-off. It gives up (false) when
// ctx is done or the card was removed or replaced meanwhile.
func (v *VPCD) dial(ctx context.Context, card Card) (net.Conn, bool) {
	d := net.Dialer{Timeout: v.opts.DialTimeout}
	delay := v.opts.RetryMin
	for attempt := 1; ; attempt++ {
		conn, err := d.DialContext(ctx, "tcp", v.opts.Addr)
		if err == nil {
			v.mu.Lock()
			defer v.mu.Unlock()
			if !v.inserted || v.card != card || ctx.Err() != nil {
				_ = conn.Close()
				return nil, false
			}
			v.conn = conn
			close(v.up)
			v.log.Info("card connected to vpcd", "attempts", attempt)
			return conn, true
		}
		if ctx.Err() != nil {
			return nil, false
		}
		if attempt == 1 {
			v.log.Info("vpcd not reachable, retrying", "err", err)
		} else {
			v.log.Debug("vpcd dial failed", "attempt", attempt, "err", err)
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, false
		case <-v.wake:
			t.Stop()
			// Re-check insertion; keep dialling if still inserted.
			if c, ok := v.current(); !ok || c != card {
				v.signal() // let waitInserted see the change too
				return nil, false
			}
		case <-t.C:
		}
		delay = min(delay*2, v.opts.RetryMax)
	}
}

// serve answers vpcd on conn until the connection ends.
func (v *VPCD) serve(ctx context.Context, conn net.Conn, card Card) {
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	defer stop()
	defer card.PowerOff()
	qa := newQuickAcker(conn)
	if v.opts.DisableQuickAck {
		qa = quickAcker{}
	}
	cs := newCardSession(card)
	cs.onError = func(msg string, err error) { v.log.Warn(msg, "err", err) }
	var out []byte
	for {
		qa.arm()
		msg, err := readFrame(conn)
		if err != nil {
			v.closed(ctx, conn, err)
			return
		}
		if len(msg) > 1 && v.pullNow() {
			v.torn(conn, "card pulled before answering")
			return
		}
		reply, act := cs.handle(msg)
		switch act {
		case actNone:
			continue
		case actTorn:
			v.torn(conn, "card pulled mid-command")
			return
		}
		out, err = appendFrame(out[:0], reply)
		if err == nil {
			_, err = conn.Write(out)
		}
		if err != nil {
			v.closed(ctx, conn, err)
			return
		}
	}
}

// pullNow counts an APDU and reports whether the card is to be pulled now.
func (v *VPCD) pullNow() bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.apdus++
	if v.pullIn == 0 {
		return false
	}
	v.pullIn--
	return v.pullIn == 0
}

// torn empties the slot and drops conn without answering.
func (v *VPCD) torn(conn net.Conn, why string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.inserted = false
	if v.conn == conn {
		v.dropLocked()
	} else {
		_ = conn.Close()
	}
	v.log.Info(why)
}

// closed handles the end of a connection that serve did not end itself.
func (v *VPCD) closed(ctx context.Context, conn net.Conn, err error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	mine := v.conn == conn
	if mine {
		v.dropLocked()
	} else {
		_ = conn.Close()
	}
	switch {
	case ctx.Err() != nil:
		v.log.Info("card disconnected: stopping")
	case !mine || !v.inserted:
		v.log.Info("card removed")
	case errors.Is(err, io.EOF):
		v.log.Info("vpcd closed the connection; redialling")
	default:
		v.log.Warn("vpcd connection failed; redialling", "err", err)
	}
}
