package terminal

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
)

// PIN entry errors (national codes -31 .. -34).
var (
	// ErrPINCancelled: the holder cancelled PIN entry.
	ErrPINCancelled = errors.New("PIN entry cancelled")
	// ErrPINTimeout: nobody entered a PIN in time.
	ErrPINTimeout = errors.New("PIN entry timed out")
	// ErrPINFormat: the entered PIN is not 4 to 12 digits.
	ErrPINFormat = errors.New("PIN must be 4 to 12 digits")
	// ErrPINMismatch: the new PIN and its confirmation differ.
	ErrPINMismatch = errors.New("new PIN and confirmation differ")
	// ErrNoPINPad: the operation needs a PIN and the session has no PINPad.
	ErrNoPINPad = errors.New("no PIN pad")
)

// PIN lengths the card's BCD PIN block can carry (2..6 bytes).
const (
	MinPINLen = 4
	MaxPINLen = 12
)

// PIN holds a PIN's digits. It prints as "PIN(redacted)" in every format
// and log, never leaves the process except as the card's BCD PIN block,
// and Zero overwrites it; the terminal zeroes every PIN after use.
type PIN struct {
	mu     sync.Mutex
	digits []byte // ASCII '0'..'9'
}

// NewPIN copies digits (ASCII) into a PIN. The caller should zero its own
// copy. Errors: ErrPINFormat.
func NewPIN(digits []byte) (*PIN, error) {
	if len(digits) < MinPINLen || len(digits) > MaxPINLen {
		return nil, ErrPINFormat
	}
	for _, c := range digits {
		if c < '0' || c > '9' {
			return nil, ErrPINFormat
		}
	}
	return &PIN{digits: append([]byte(nil), digits...)}, nil
}

// Zero overwrites the digits; the PIN is unusable afterwards.
func (p *PIN) Zero() {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	clear(p.digits)
	p.digits = nil
}

// block returns the card's PIN block: BCD, F-padded to whole bytes. The
// caller zeroes it after use. Errors: ErrPINFormat for a zeroed PIN.
func (p *PIN) block() ([]byte, error) {
	if p == nil {
		return nil, ErrPINFormat
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.digits) < MinPINLen {
		return nil, ErrPINFormat
	}
	b := make([]byte, (len(p.digits)+1)/2)
	for i := range b {
		b[i] = 0xFF
	}
	for i, c := range p.digits {
		nib := c - '0'
		if i%2 == 0 {
			b[i/2] = nib<<4 | 0x0F
		} else {
			b[i/2] = b[i/2]&0xF0 | nib
		}
	}
	return b, nil
}

// String returns "PIN(redacted)".
func (p *PIN) String() string { return "PIN(redacted)" }

// GoString returns "PIN(redacted)".
func (p *PIN) GoString() string { return p.String() }

// Format prints "PIN(redacted)" for every verb.
func (p *PIN) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, p.String()) }

// LogValue keeps the digits out of slog output.
func (p *PIN) LogValue() slog.Value { return slog.StringValue(p.String()) }

// PINPurpose says which PIN a PINPad is asked for.
type PINPurpose int

const (
	// PINVerify: the holder's PIN, to verify it.
	PINVerify PINPurpose = iota
	// PINCurrent: the current PIN, to change it.
	PINCurrent
	// PINNew: the new PIN (the pad asks for confirmation itself and
	// returns ErrPINMismatch when the two entries differ).
	PINNew
)

// String names the purpose for prompts.
func (p PINPurpose) String() string {
	switch p {
	case PINVerify:
		return "PIN"
	case PINCurrent:
		return "current PIN"
	case PINNew:
		return "new PIN"
	}
	return fmt.Sprintf("PINPurpose(%d)", int(p))
}

// PINPad collects a PIN from the cardholder: a reader's keypad, a kiosk
// touch screen or a terminal prompt. The terminal asks before it starts
// the card transaction (a transaction is never held across PIN entry) and
// zeroes the PIN after use.
//
// ReadPIN returns ErrPINCancelled, ErrPINTimeout, ErrPINFormat,
// ErrPINMismatch or ctx's error when no PIN was entered.
type PINPad interface {
	ReadPIN(ctx context.Context, purpose PINPurpose) (*PIN, error)
}

// StaticPINPad is a PINPad for tests and demos: it answers from a list of
// PINs (digits), in order, and fails with ErrPINCancelled when the list is
// used up. It keeps the digits in memory; do not use it for real holders.
type StaticPINPad struct {
	mu   sync.Mutex
	pins []string
	asks []PINPurpose
}

// NewStaticPINPad returns a pad answering pins in order.
func NewStaticPINPad(pins ...string) *StaticPINPad {
	return &StaticPINPad{pins: append([]string(nil), pins...)}
}

// ReadPIN returns the next PIN of the list.
func (s *StaticPINPad) ReadPIN(ctx context.Context, purpose PINPurpose) (*PIN, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", purpose, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.asks = append(s.asks, purpose)
	if len(s.pins) == 0 {
		return nil, fmt.Errorf("read %s: %w", purpose, ErrPINCancelled)
	}
	p := s.pins[0]
	s.pins = s.pins[1:]
	pin, err := NewPIN([]byte(p))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", purpose, err)
	}
	return pin, nil
}

// Asked returns the purposes the pad was asked for, in order.
func (s *StaticPINPad) Asked() []PINPurpose {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]PINPurpose(nil), s.asks...)
}
