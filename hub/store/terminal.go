package store

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"time"
)

// TerminalState is where a terminal is in its life.
type TerminalState uint8

// Terminal states. Invited → (Enrol) Enrolled → (Approve) Active ⇄
// (Suspend/Approve) Suspended; an Enrolled terminal may be suspended too.
const (
	StateInvited   TerminalState = 1 // registered with a one-time token, no key yet
	StateEnrolled  TerminalState = 2 // presented the token and its public key; awaits approval
	StateActive    TerminalState = 3 // may upload records
	StateSuspended TerminalState = 4 // refused until approved again
)

// String returns "invited", "enrolled", "active", "suspended" or
// "state(N)".
func (s TerminalState) String() string {
	switch s {
	case StateInvited:
		return "invited"
	case StateEnrolled:
		return "enrolled"
	case StateActive:
		return "active"
	case StateSuspended:
		return "suspended"
	}
	return "state(" + itoa(uint64(s)) + ")"
}

// Terminal is a registered terminal.
type Terminal struct {
	No    string // 12 digits
	Name  string // free text (site), at most MaxText bytes
	State TerminalState
	// TokenHash is the SHA-256 of the one-time enrolment token while the
	// terminal is Invited; empty once the token was used.
	TokenHash []byte
	// PublicKey is the terminal's SM2 public key as presented at enrolment
	// (the encoding is the sync layer's choice), at most MaxBlob bytes.
	PublicKey []byte
	// AckedSeq is the highest terminal sequence the hub acknowledged.
	AckedSeq  uint64
	CreatedAt time.Time // set by the store
	UpdatedAt time.Time // set by the store
}

// MinToken is the minimum enrolment token length (bytes).
const MinToken = 16

// NewTerminal returns an Invited terminal that may enrol once with token
// (at least MinToken bytes; only its hash is kept). Errors: ErrInvalid.
func NewTerminal(no, name string, token []byte) (Terminal, error) {
	if len(token) < MinToken {
		return Terminal{}, invalidf("enrolment token shorter than %d bytes", MinToken)
	}
	h := sha256.Sum256(token)
	t := Terminal{No: no, Name: name, State: StateInvited, TokenHash: h[:]}
	if err := t.Validate(); err != nil {
		return Terminal{}, err
	}
	return t, nil
}

// Validate checks a terminal's fields: 12-digit number, known state, a
// 32-byte token hash exactly while Invited, a public key once enrolled.
// Errors: ErrInvalid.
func (t *Terminal) Validate() error {
	switch {
	case !digits(t.No, 12):
		return invalidf("terminal number: want 12 digits")
	case t.State < StateInvited || t.State > StateSuspended:
		return invalidf("terminal state %d", uint8(t.State))
	case (t.State == StateInvited) != (len(t.TokenHash) == sha256.Size):
		return invalidf("token hash must be set exactly while invited")
	case len(t.TokenHash) != 0 && len(t.TokenHash) != sha256.Size:
		return invalidf("token hash length")
	case t.State != StateInvited && len(t.PublicKey) == 0:
		return invalidf("enrolled terminal without a public key")
	case len(t.PublicKey) > MaxBlob:
		return invalidf("public key too long")
	}
	return checkText("terminal name", t.Name, MaxText)
}

// Enrol registers the terminal's public key if token is the one it was
// invited with; the token cannot be used again. Errors: ErrToken (wrong or
// used token: also when the terminal is not Invited), ErrInvalid (empty or
// over-long key).
func (t *Terminal) Enrol(token, publicKey []byte) error {
	if t.State != StateInvited || len(t.TokenHash) != sha256.Size {
		return fmt.Errorf("enrol terminal %s: %w", t.No, ErrToken)
	}
	h := sha256.Sum256(token)
	if subtle.ConstantTimeCompare(h[:], t.TokenHash) != 1 {
		return fmt.Errorf("enrol terminal %s: %w", t.No, ErrToken)
	}
	if len(publicKey) == 0 || len(publicKey) > MaxBlob {
		return fmt.Errorf("enrol terminal %s: %w", t.No, invalidf("public key: %d bytes", len(publicKey)))
	}
	t.PublicKey = append([]byte(nil), publicKey...)
	t.TokenHash = nil
	t.State = StateEnrolled
	return nil
}

// Approve makes an Enrolled or Suspended terminal Active (no-op when it is
// Active). Errors: ErrState for an Invited terminal.
func (t *Terminal) Approve() error {
	switch t.State {
	case StateEnrolled, StateSuspended, StateActive:
		t.State = StateActive
		return nil
	}
	return fmt.Errorf("approve terminal %s (%s): %w", t.No, t.State, ErrState)
}

// Suspend makes an Enrolled or Active terminal Suspended (no-op when it is
// Suspended). Errors: ErrState for an Invited terminal.
func (t *Terminal) Suspend() error {
	switch t.State {
	case StateEnrolled, StateActive, StateSuspended:
		t.State = StateSuspended
		return nil
	}
	return fmt.Errorf("suspend terminal %s (%s): %w", t.No, t.State, ErrState)
}

// Acknowledge raises AckedSeq to seq (it never goes down). Errors:
// ErrState unless the terminal is Active.
func (t *Terminal) Acknowledge(seq uint64) error {
	if t.State != StateActive {
		return fmt.Errorf("acknowledge terminal %s (%s): %w", t.No, t.State, ErrState)
	}
	if seq > t.AckedSeq {
		t.AckedSeq = seq
	}
	return nil
}
