package virtual

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/onecard-hub/onecard/reader"
)

// Errors of the in-process slot that are not reader sentinels.
var (
	// ErrNotConnected: Transmit or Reset was called on a slot that holds a
	// card but was never connected (or was disconnected). Call Connect.
	ErrNotConnected = errors.New("virtual slot not connected")
	// ErrShortCommand: a command APDU shorter than the 4-byte header. No
	// real reader can carry it (vpcd would even take a 1-byte message for
	// a control code), so the slot refuses it before the card sees it.
	ErrShortCommand = errors.New("command APDU shorter than 4 bytes")
)

// Tearable is implemented by simulated cards that can be told to be
// pulled out of the reader right after applying a command: while torn is
// on, Transmit applies the command and then returns ErrTorn instead of the
// response. Readers and tools find it by type assertion on a Card.
type Tearable interface {
	SetTorn(on bool)
}

// Slot is an in-process reader slot holding a simulated Card. It
// implements reader.Slot with the same error semantics as a PC/SC slot:
// Connect on an empty slot fails with reader.ErrNoCard, and a card pulled
// since Connect (by Remove, by PullDuring or by the card returning ErrTorn)
// makes Transmit fail with reader.ErrCardRemoved until the caller
// connects again.
//
// Slot is safe for concurrent use: tests may call Insert, Remove and
// PullDuring from another goroutine while a caller transmits.
type Slot struct {
	id string

	mu        sync.Mutex
	card      Card   // nil = empty
	gen       uint64 // incremented on every insert and removal
	powered   bool   // the card in the slot is powered
	connected bool   // a session is open ...
	connGen   uint64 // ... on the card of this generation
	pullIn    int    // >0: pull the card on the pullIn-th next Transmit
	atr       []byte // ATR of the card in the slot, once known
	// busy is non-nil while the card processes a command; it is closed
	// when the exchange is over (also one abandoned on ctx expiry).
	busy chan struct{}
}

// NewSlot returns a slot named id ("virtual:" is prefixed unless id
// already has it) holding card, or an empty slot when card is nil.
func NewSlot(id string, card Card) *Slot {
	if len(id) < 8 || id[:8] != "virtual:" {
		id = "virtual:" + id
	}
	s := &Slot{id: id}
	if card != nil {
		s.card = card
		s.gen = 1
	}
	return s
}

// ID returns the slot's stable name, e.g. "virtual:user".
func (s *Slot) ID() string { return s.id }

// ATR returns the ATR of the card in the slot, or nil when the slot is
// empty (reader.ATRReporter). A card nobody has connected to yet is
// powered up and down once to learn it, as a reader does on insertion;
// a card in use is never reset for it.
func (s *Slot) ATR() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.card == nil {
		return nil
	}
	if s.atr == nil && !s.powered && s.busy == nil {
		s.atr = clone(s.card.PowerOn())
		s.card.PowerOff()
	}
	return clone(s.atr)
}

// Insert puts card into the slot, first removing any card already there.
// Insert(nil) is the same as Remove.
func (s *Slot) Insert(card Card) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.removeLocked()
	if card != nil {
		s.card = card
		s.gen++
	}
}

// Remove takes the card out of the slot (powering it down). Removing from
// an empty slot does nothing.
func (s *Slot) Remove() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.removeLocked()
}

func (s *Slot) removeLocked() {
	s.atr = nil
	if s.card == nil {
		return
	}
	if s.powered {
		s.card.PowerOff()
	}
	s.card = nil
	s.powered = false
	s.pullIn = 0
	s.gen++
}

// Present reports whether a card is in the slot.
func (s *Slot) Present() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.card != nil
}

// Card returns the card in the slot, or nil when the slot is empty.
func (s *Slot) Card() Card {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.card
}

// PullDuring arranges for the card to be pulled out during the n-th next
// Transmit (n = 1: the next one): that command never reaches the card,
// the slot becomes empty and Transmit fails with reader.ErrCardRemoved.
// n <= 0 cancels a pending pull. To pull the card after it applied a
// command, use the card's own switch (see Tearable).
func (s *Slot) PullDuring(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pullIn = max(n, 0)
}

// Connect powers the card if needed and returns its ATR. It fails with an
// error wrapping reader.ErrNoCard when the slot is empty, and with ctx's
// error when ctx is already done.
func (s *Slot) Connect(ctx context.Context) ([]byte, error) {
	if err := ctxErr(ctx); err != nil {
		return nil, fmt.Errorf("connect %s: %w", s.id, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.waitIdleLocked(ctx); err != nil {
		return nil, fmt.Errorf("connect %s: %w", s.id, err)
	}
	if s.card == nil {
		return nil, fmt.Errorf("connect %s: %w", s.id, reader.ErrNoCard)
	}
	atr := s.card.PowerOn()
	s.atr = clone(atr)
	s.powered = true
	s.connected = true
	s.connGen = s.gen
	return clone(atr), nil
}

// Reset cold-resets the card (power off, power on) and returns its ATR;
// the session continues on the reset card. It fails with reader.ErrNoCard
// when the slot is empty and ErrNotConnected without a prior Connect.
func (s *Slot) Reset(ctx context.Context) ([]byte, error) {
	if err := ctxErr(ctx); err != nil {
		return nil, fmt.Errorf("reset %s: %w", s.id, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.waitIdleLocked(ctx); err != nil {
		return nil, fmt.Errorf("reset %s: %w", s.id, err)
	}
	if s.card == nil {
		return nil, fmt.Errorf("reset %s: %w", s.id, reader.ErrNoCard)
	}
	if !s.connected {
		return nil, fmt.Errorf("reset %s: %w", s.id, ErrNotConnected)
	}
	if s.powered {
		s.card.PowerOff()
	}
	atr := s.card.PowerOn()
	s.powered = true
	s.connGen = s.gen
	return clone(atr), nil
}

// Transmit sends one command APDU to the card and returns its response.
// The slot's lock is not held while the card works, so Remove (or Insert)
// from another goroutine during a slow command pulls the card mid-APDU.
//
// Errors: reader.ErrCardRemoved when the card left the slot since Connect
// or during this command (Remove, PullDuring, or the card's ErrTorn — the
// slot is then empty); reader.ErrNoCard when the slot was empty and never
// connected; ErrNotConnected without Connect; ErrShortCommand for fewer
// than 4 bytes; ErrBadResponse for an answer without status word; ctx's
// error (with reader.ErrTimeout for an expired deadline) when ctx ends
// before the card answers — the command may still complete on the card,
// and the next operation waits for it.
func (s *Slot) Transmit(ctx context.Context, cmd []byte) ([]byte, error) {
	if err := ctxErr(ctx); err != nil {
		return nil, fmt.Errorf("transmit %s: %w", s.id, err)
	}
	if len(cmd) < 4 {
		return nil, fmt.Errorf("transmit %s: %w (%d bytes)", s.id, ErrShortCommand, len(cmd))
	}
	s.mu.Lock()
	if err := s.waitIdleLocked(ctx); err != nil {
		s.mu.Unlock()
		return nil, fmt.Errorf("transmit %s: %w", s.id, err)
	}
	var err error
	switch {
	case s.connected && s.connGen != s.gen:
		err = reader.ErrCardRemoved
	case s.card == nil:
		err = reader.ErrNoCard
	case !s.connected:
		err = ErrNotConnected
	case s.pullIn > 0:
		s.pullIn--
		if s.pullIn == 0 {
			s.removeLocked()
			err = fmt.Errorf("card pulled before answering: %w", reader.ErrCardRemoved)
		}
	}
	if err != nil {
		s.mu.Unlock()
		return nil, fmt.Errorf("transmit %s: %w", s.id, err)
	}
	card, gen := s.card, s.gen
	done := make(chan struct{})
	s.busy = done
	s.mu.Unlock()

	var (
		resp    []byte
		removed bool
	)
	exchange := func() {
		resp, err = card.Transmit(clone(cmd))
		removed = s.finish(done, gen, errors.Is(err, ErrTorn))
		close(done)
	}
	if ctx.Done() == nil {
		exchange()
	} else {
		go exchange()
		select {
		case <-done:
		case <-ctx.Done():
			return nil, fmt.Errorf("transmit %s: card did not answer: %w", s.id, ctxErr(ctx))
		}
	}
	switch {
	case removed:
		return nil, fmt.Errorf("transmit %s: card pulled mid-command: %w", s.id, reader.ErrCardRemoved)
	case err != nil:
		return nil, fmt.Errorf("transmit %s: %w", s.id, err)
	case len(resp) < 2:
		return nil, fmt.Errorf("transmit %s: card answered %d bytes, want at least SW1 SW2: %w", s.id, len(resp), ErrBadResponse)
	}
	return clone(resp), nil
}

// finish ends an exchange: it reports whether the card left the slot
// during it, removing a torn card that is still in the slot.
func (s *Slot) finish(done chan struct{}, gen uint64, torn bool) (removed bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.busy == done {
		s.busy = nil
	}
	if s.gen != gen {
		return true
	}
	if torn {
		s.removeLocked()
		return true
	}
	return false
}

// waitIdleLocked waits, with s.mu held on entry and exit, until no
// exchange is in progress. It returns ctx's error if ctx ends first.
func (s *Slot) waitIdleLocked(ctx context.Context) error {
	for s.busy != nil {
		b := s.busy
		s.mu.Unlock()
		select {
		case <-b:
		case <-ctx.Done():
			s.mu.Lock()
			return fmt.Errorf("card busy: %w", ctxErr(ctx))
		}
		s.mu.Lock()
	}
	return nil
}

// Disconnect ends the session and powers the card down. It never fails;
// disconnecting an empty or unconnected slot does nothing.
func (s *Slot) Disconnect() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.card != nil && s.powered {
		s.card.PowerOff()
	}
	s.powered = false
	s.connected = false
	return nil
}

// ErrBadResponse: the simulated card answered fewer than 2 bytes (no
// status word). It indicates a bug in the card simulator.
var ErrBadResponse = errors.New("virtual card response without status word")

// ctxErr returns ctx's error, adding reader.ErrTimeout to an expired
// deadline so callers can test either.
func ctxErr(ctx context.Context) error {
	err := ctx.Err()
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w: %w", reader.ErrTimeout, err)
	}
	return err
}

func clone(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append([]byte(nil), b...)
}

var _ reader.Slot = (*Slot)(nil)
