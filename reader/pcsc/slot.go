package pcsc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/ebfe/scard"

	"github.com/onecard-hub/onecard/reader"
)

// Errors of the PC/SC slot that are not reader sentinels.
var (
	// ErrNotConnected: Transmit, Reset or Begin on a slot that was never
	// connected (or was disconnected). Call Connect.
	ErrNotConnected = errors.New("pcsc slot not connected")
	// ErrShortCommand: a command APDU shorter than the 4-byte header.
	ErrShortCommand = errors.New("command APDU shorter than 4 bytes")
	// ErrNoProtocol: the handle has no T=0/T=1 protocol (a direct
	// connection); APDUs cannot be sent on it.
	ErrNoProtocol = errors.New("no transmission protocol on the PC/SC handle")
	// ErrTxActive: Begin while this slot already has a transaction.
	ErrTxActive = errors.New("pcsc slot already in a transaction")
)

// Options configures the PC/SC backend and its slots. The zero value gives
// the defaults noted on each field.
type Options struct {
	// Timeout bounds every PC/SC call of a Slot when the caller's context
	// has no earlier deadline. Default 30 s.
	Timeout time.Duration
	// MaxTx is how long a transaction (Begin ... End) may last; the slot
	// ends it after that, so a forgotten End cannot lock other programs
	// out of the card. Default 10 s.
	MaxTx time.Duration
	// PollInterval: the monitor re-lists readers at least this often, to
	// find readers the PnP notification missed. Default 1 s.
	PollInterval time.Duration
	// RetryMin and RetryMax bound the back-off between attempts to reach
	// pcscd while it is not running. Defaults 50 ms and 2 s.
	RetryMin, RetryMax time.Duration
	// NoWatchdog makes a Slot's PC/SC calls on the caller's goroutine.
	// That saves one goroutine hand-off per call (about 25 µs on a
	// 2-vCPU machine: 15-20 % of an APDU to a virtual card behind
	// pcscd, well under 1 % of one to a real card), but a call in flight
	// can no longer be abandoned: ctx is checked before each call only,
	// and a hung reader blocks the caller until pcscd's driver gives up.
	NoWatchdog bool
	// NoPnP disables the \\?PnP?\Notification pseudo-reader; reader
	// changes are then found by polling only (macOS lacks it).
	NoPnP bool
	// Logger receives connection-level events, never APDU contents.
	// Default: discard.
	Logger *slog.Logger
}

func (o Options) withDefaults() Options {
	if o.Timeout <= 0 {
		o.Timeout = 30 * time.Second
	}
	if o.MaxTx <= 0 {
		o.MaxTx = 10 * time.Second
	}
	if o.PollInterval <= 0 {
		o.PollInterval = time.Second
	}
	if o.RetryMin <= 0 {
		o.RetryMin = 50 * time.Millisecond
	}
	if o.RetryMax < o.RetryMin {
		o.RetryMax = max(2*time.Second, o.RetryMin)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// Slot is one PC/SC reader slot. It implements reader.Slot and
// reader.Transactor.
//
// Each Slot has its own PC/SC context, established by Connect and released
// by Disconnect, so a call blocked in pcsc-lite holds up only this slot
// (pcsc-lite serialises the calls on one context). The card is connected
// in SHARED mode, any protocol; use Begin for an exclusive bracket around
// one logical card operation.
//
// Timeouts: pcsc-lite cannot cancel SCardTransmit, SCardConnect or
// SCardBeginTransaction in flight (SCardCancel only wakes
// SCardGetStatusChange). Every call therefore runs on a helper goroutine
// watched by the caller's context, bounded by Options.Timeout. When the
// context ends first the method returns an error wrapping
// reader.ErrTimeout (for a deadline) or context.Canceled, and the call is
// abandoned: it finishes in the background, its result is discarded (a
// transaction it obtained is ended at once), and the slot's next call
// waits for it, bounded by that call's own context. After an abandoned
// Transmit, whether the card applied the command is unknown.
//
// Errors wrap a reader sentinel and, for PC/SC failures, an *Error with the
// return code. After reader.ErrCardRemoved or reader.ErrServiceDown the
// slot's handle is gone and every call fails the same way until Connect
// succeeds again; after reader.ErrCardReset (another program reset the
// card) the handle has been re-armed and the next command is sent to the
// reset card — re-select the application first.
//
// A Slot is used by one goroutine at a time (see reader.Slot); the
// transaction timer is the only other goroutine that touches it.
type Slot struct {
	id      string
	opts    Options
	resolve func() (string, bool) // finds the slot's current PC/SC name; may be nil

	// sem is held while a PC/SC call runs (even an abandoned one). Every
	// field below is guarded by it.
	sem chan struct{}

	name string
	sc   *scard.Context
	card *scard.Card
	lost error // why the handle died, until the next Connect
	tx   *Tx
}

// NewSlot returns a slot for the PC/SC reader name, with ID "pcsc:" + name
// (Backend.Slot gives serial-number IDs where readers have one). Nothing is
// opened until Connect.
func NewSlot(name string, opts Options) *Slot {
	return newSlot("pcsc:"+name, name, opts.withDefaults(), nil)
}

func newSlot(id, name string, opts Options, resolve func() (string, bool)) *Slot {
	return &Slot{id: id, name: name, opts: opts, resolve: resolve, sem: make(chan struct{}, 1)}
}

// ID returns the slot's stable ID.
func (s *Slot) ID() string { return s.id }

// call tracks one PC/SC call that may be abandoned by its caller.
type call struct {
	mu        sync.Mutex
	finished  bool
	abandoned bool
	err       error
	done      chan struct{}
}

// do runs fn, which makes PC/SC calls, on a helper goroutine while holding
// the slot, and waits for it or for ctx (bounded by Options.Timeout). If
// ctx ends first, do returns a timeout or cancellation error and fn keeps
// running; late, if not nil, runs after an abandoned fn, still holding the
// slot, to undo what the caller will never see (e.g. end a transaction).
// With Options.NoWatchdog, fn runs on the caller's goroutine instead.
func (s *Slot) do(ctx context.Context, fn func() error, late func()) error {
	if err := ctxErr(ctx); err != nil {
		return err
	}
	if s.opts.NoWatchdog {
		select {
		case s.sem <- struct{}{}:
		case <-ctx.Done():
			return fmt.Errorf("slot busy: %w", ctxErr(ctx))
		}
		defer func() { <-s.sem }()
		return fn()
	}
	if d, ok := ctx.Deadline(); !ok || time.Until(d) > s.opts.Timeout {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.opts.Timeout)
		defer cancel()
	}
	select {
	case s.sem <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("previous PC/SC call on the slot still running: %w", ctxErr(ctx))
	}
	c := &call{done: make(chan struct{})}
	go func() {
		err := fn()
		c.mu.Lock()
		c.err, c.finished = err, true
		abandoned := c.abandoned
		c.mu.Unlock()
		if abandoned && late != nil {
			late()
		}
		<-s.sem
		close(c.done)
	}()
	select {
	case <-c.done:
		return c.err
	case <-ctx.Done():
	}
	c.mu.Lock()
	if c.finished {
		c.mu.Unlock()
		<-c.done
		return c.err
	}
	c.abandoned = true
	c.mu.Unlock()
	s.opts.Logger.Warn("PC/SC call abandoned; it finishes in the background", "slot", s.id, "err", ctx.Err())
	return fmt.Errorf("PC/SC call abandoned (pcsc-lite cannot cancel it): %w", ctxErr(ctx))
}

// ctxErr returns ctx's error, adding reader.ErrTimeout to an expired
// deadline.
func ctxErr(ctx context.Context) error {
	err := ctx.Err()
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w: %w", reader.ErrTimeout, err)
	}
	return err
}

// Connect connects to the card in SHARED mode (any protocol) and returns
// its ATR, replacing an earlier connection of this slot. Errors wrap
// reader.ErrNoCard (empty slot), reader.ErrReaderBusy (another program
// holds the card exclusively: SCARD_E_SHARING_VIOLATION),
// reader.ErrCardMute, reader.ErrReaderGone, reader.ErrServiceDown (pcscd
// not running) or reader.ErrTimeout. A context that died with a pcscd
// restart is established again.
func (s *Slot) Connect(ctx context.Context) ([]byte, error) {
	var atr []byte
	err := s.do(ctx, func() error {
		var err error
		atr, err = s.connect()
		return err
	}, nil)
	if err != nil {
		return nil, fmt.Errorf("connect %s: %w", s.id, err)
	}
	return atr, nil
}

func (s *Slot) connect() ([]byte, error) {
	s.dropCard(scard.LeaveCard)
	s.lost = nil
	fresh := s.sc == nil
	if err := s.ensureContext(); err != nil {
		return nil, err
	}
	card, err := s.sc.Connect(s.name, scard.ShareShared, scard.ProtocolAny)
	if contextLost(err) && !fresh {
		// The context died with an earlier pcscd: start over once.
		s.dropContext()
		if err := s.ensureContext(); err != nil {
			return nil, err
		}
		card, err = s.sc.Connect(s.name, scard.ShareShared, scard.ProtocolAny)
	}
	if errors.Is(err, scard.ErrUnknownReader) && s.resolve != nil {
		// The reader came back under another name (e.g. another index).
		if name, ok := s.resolve(); ok && name != s.name {
			s.opts.Logger.Info("PC/SC reader renamed", "slot", s.id, "from", s.name, "to", name)
			s.name = name
			card, err = s.sc.Connect(s.name, scard.ShareShared, scard.ProtocolAny)
		}
	}
	if err != nil {
		if contextLost(err) {
			s.dropContext()
		}
		return nil, wrap("SCardConnect", err)
	}
	s.card = card
	st, err := card.Status()
	if err != nil {
		return nil, s.failed("SCardStatus", err)
	}
	return append([]byte(nil), st.Atr...), nil
}

func (s *Slot) ensureContext() error {
	if s.sc != nil {
		return nil
	}
	sc, err := scard.EstablishContext()
	if err != nil {
		return wrap("SCardEstablishContext", err)
	}
	s.sc = sc
	return nil
}

// dropCard disconnects the handle (ignoring errors: it may be dead) and
// forgets any transaction.
func (s *Slot) dropCard(d scard.Disposition) {
	s.forgetTx()
	if s.card != nil {
		_ = s.card.Disconnect(d)
		s.card = nil
	}
}

// dropContext drops the handle and releases the context.
func (s *Slot) dropContext() {
	s.dropCard(scard.LeaveCard)
	if s.sc != nil {
		_ = s.sc.Release()
		s.sc = nil
	}
}

func (s *Slot) forgetTx() {
	if s.tx != nil {
		s.tx.timer.Stop()
		s.tx = nil
	}
}

// failed handles a PC/SC error on the card handle and returns it wrapped:
// a dead context or a removed card drops the handle (remembered in lost);
// a card reset by someone else re-arms the handle.
func (s *Slot) failed(op string, err error) error {
	werr := wrap(op, err)
	switch {
	case contextLost(err):
		s.dropContext()
		s.lost = werr
	case errors.Is(err, scard.ErrRemovedCard), errors.Is(err, scard.ErrNoSmartcard),
		errors.Is(err, scard.ErrUnknownReader), errors.Is(err, scard.ErrReaderUnavailable):
		s.dropCard(scard.LeaveCard)
		s.lost = werr
	case errors.Is(err, scard.ErrResetCard), errors.Is(err, scard.ErrUnpoweredCard):
		if s.card != nil {
			if rerr := s.card.Reconnect(scard.ShareShared, scard.ProtocolAny, scard.LeaveCard); rerr != nil {
				s.dropCard(scard.LeaveCard)
				s.lost = wrap("SCardReconnect", rerr)
				return fmt.Errorf("%w; re-arming the handle: %w", werr, s.lost)
			}
		}
	}
	return werr
}

// handle returns the live card handle or why there is none.
func (s *Slot) handle() (*scard.Card, error) {
	switch {
	case s.card != nil:
		return s.card, nil
	case s.lost != nil:
		return nil, s.lost
	}
	return nil, ErrNotConnected
}

// Transmit sends one command APDU and returns the response (data and SW1
// SW2, no T=0 chaining). Errors wrap ErrShortCommand (fewer than 4 bytes),
// ErrNotConnected, reader.ErrCardRemoved (the card left: from PC/SC, or a
// response without a status word — vpcd's sign of a card pulled
// mid-APDU), reader.ErrCardReset (another program reset the card; the
// command was not sent), reader.ErrServiceDown, reader.ErrTimeout (see the
// Slot doc on abandoned calls).
func (s *Slot) Transmit(ctx context.Context, cmd []byte) ([]byte, error) {
	resp, err := s.transmit(ctx, cmd, nil)
	if err != nil {
		return nil, fmt.Errorf("transmit %s: %w", s.id, err)
	}
	return resp, nil
}

// transmit sends cmd; with tx set, only while tx is the slot's transaction.
func (s *Slot) transmit(ctx context.Context, cmd []byte, tx *Tx) ([]byte, error) {
	if len(cmd) < 4 {
		return nil, fmt.Errorf("%w (%d bytes)", ErrShortCommand, len(cmd))
	}
	var resp []byte
	err := s.do(ctx, func() error {
		if tx != nil && s.tx != tx {
			return reader.ErrTxEnded
		}
		card, err := s.handle()
		if err != nil {
			return err
		}
		// ebfe/scard panics when the protocol is neither T=0 nor T=1.
		if p := card.ActiveProtocol(); p != scard.ProtocolT0 && p != scard.ProtocolT1 {
			return fmt.Errorf("%w (protocol %d)", ErrNoProtocol, p)
		}
		r, err := card.Transmit(cmd)
		if err != nil {
			return s.failed("SCardTransmit", err)
		}
		if len(r) < 2 {
			// pcsc-lite 1.9.9 + vpcd: a card pulled mid-APDU gives an
			// empty response without error.
			s.dropCard(scard.LeaveCard)
			s.lost = fmt.Errorf("card answered %d bytes without a status word: %w", len(r), reader.ErrCardRemoved)
			return s.lost
		}
		resp = r
		return nil
	}, nil)
	if err != nil {
		return nil, err // resp belongs to an abandoned call: do not read it
	}
	return resp, nil
}

// Reset cold-resets the card (SCardReconnect with SCARD_UNPOWER_CARD) and
// returns its ATR; card-side session state is lost, also for other
// programs sharing the card. Errors as for Transmit.
func (s *Slot) Reset(ctx context.Context) ([]byte, error) {
	var atr []byte
	err := s.do(ctx, func() error {
		card, err := s.handle()
		if err != nil {
			return err
		}
		if err := card.Reconnect(scard.ShareShared, scard.ProtocolAny, scard.UnpowerCard); err != nil {
			return s.failed("SCardReconnect", err)
		}
		st, err := card.Status()
		if err != nil {
			return s.failed("SCardStatus", err)
		}
		atr = append([]byte(nil), st.Atr...)
		return nil
	}, nil)
	if err != nil {
		return nil, fmt.Errorf("reset %s: %w", s.id, err)
	}
	return atr, nil
}

// Disconnect ends a transaction still open, powers the card down
// (SCARD_UNPOWER_CARD: security state such as a verified PIN does not
// outlive the session) and releases the slot's PC/SC context. Errors from a
// handle that is already dead (card removed, pcscd gone) are not reported.
// It first waits for an abandoned call to finish, bounded by
// Options.Timeout. Connect may be called again.
func (s *Slot) Disconnect() error {
	err := s.do(context.Background(), func() error {
		var err error
		if s.tx != nil && s.card != nil {
			s.forgetTx()
			if e := s.card.EndTransaction(scard.LeaveCard); e != nil && !gone(e) {
				err = wrap("SCardEndTransaction", e)
			}
		}
		if s.card != nil {
			if e := s.card.Disconnect(scard.UnpowerCard); e != nil && !gone(e) && err == nil {
				err = wrap("SCardDisconnect", e)
			}
			s.card = nil
		}
		s.dropContext()
		s.lost = nil
		return err
	}, nil)
	if err != nil {
		return fmt.Errorf("disconnect %s: %w", s.id, err)
	}
	return nil
}

// gone reports errors that only say the handle is already dead.
func gone(err error) bool {
	return contextLost(err) || errors.Is(err, scard.ErrRemovedCard) || errors.Is(err, scard.ErrNoSmartcard) ||
		errors.Is(err, scard.ErrResetCard) || errors.Is(err, scard.ErrUnknownReader) ||
		errors.Is(err, scard.ErrReaderUnavailable) || errors.Is(err, scard.ErrUnpoweredCard)
}

// Tx is a PC/SC transaction (SCardBeginTransaction) on a Slot: while it
// lasts no other program can send APDUs to the card. See reader.Tx for the
// contract: one logical card operation, never across PIN entry or network
// waits. The slot ends a Tx that lasts longer than Options.MaxTx; its
// Transmit then fails with reader.ErrTxEnded.
type Tx struct {
	s     *Slot
	timer *time.Timer
}

// Begin starts a transaction on the connected card, waiting (bounded by
// ctx and Options.Timeout) while another program holds one. pcsc-lite
// retries SCardBeginTransaction internally for as long as another program
// holds the lock; when ctx ends first Begin fails with reader.ErrTimeout,
// and a lock obtained later is released at once. Errors also wrap
// reader.ErrCardReset (the card was reset since the last command: the
// handle is re-armed, re-select and call Begin again), ErrTxActive,
// ErrNotConnected and the errors of Transmit.
func (s *Slot) Begin(ctx context.Context) (reader.Tx, error) {
	var tx *Tx
	err := s.do(ctx, func() error {
		if s.tx != nil {
			return ErrTxActive
		}
		card, err := s.handle()
		if err != nil {
			return err
		}
		if err := card.BeginTransaction(); err != nil {
			return s.failed("SCardBeginTransaction", err)
		}
		tx = &Tx{s: s}
		tx.timer = time.AfterFunc(s.opts.MaxTx, tx.expire)
		s.tx = tx
		return nil
	}, func() {
		if tx != nil && s.tx == tx {
			_ = s.endTx()
		}
	})
	if err != nil {
		return nil, fmt.Errorf("begin transaction on %s: %w", s.id, err)
	}
	return tx, nil
}

// endTx ends the slot's transaction; the caller holds the slot.
func (s *Slot) endTx() error {
	if s.tx == nil {
		return nil
	}
	s.forgetTx()
	if s.card == nil {
		return nil
	}
	if err := s.card.EndTransaction(scard.LeaveCard); err != nil && !gone(err) {
		return s.failed("SCardEndTransaction", err)
	}
	return nil
}

// Transmit sends one command APDU inside the transaction; errors as for
// Slot.Transmit, plus reader.ErrTxEnded after End or expiry.
func (t *Tx) Transmit(ctx context.Context, cmd []byte) ([]byte, error) {
	resp, err := t.s.transmit(ctx, cmd, t)
	if err != nil {
		return nil, fmt.Errorf("transmit %s: %w", t.s.id, err)
	}
	return resp, nil
}

// End ends the transaction (SCardEndTransaction, leaving the card as it
// is). It is idempotent; ending a transaction whose card has gone returns
// nil.
func (t *Tx) End() error {
	err := t.s.do(context.Background(), func() error {
		if t.s.tx != t {
			return nil
		}
		return t.s.endTx()
	}, nil)
	if err != nil {
		return fmt.Errorf("end transaction on %s: %w", t.s.id, err)
	}
	return nil
}

// expire ends a transaction that outlived Options.MaxTx.
func (t *Tx) expire() {
	err := t.s.do(context.Background(), func() error {
		if t.s.tx != t {
			return nil
		}
		t.s.opts.Logger.Warn("PC/SC transaction held too long; ending it", "slot", t.s.id, "max", t.s.opts.MaxTx)
		return t.s.endTx()
	}, nil)
	if err != nil {
		t.s.opts.Logger.Warn("end expired PC/SC transaction", "slot", t.s.id, "err", err)
	}
}

var (
	_ reader.Slot       = (*Slot)(nil)
	_ reader.Transactor = (*Slot)(nil)
	_ reader.Tx         = (*Tx)(nil)
)
