package store

import (
	"errors"
	"fmt"
	"strings"

	"github.com/onecard-hub/onecard/terminal/record"
)

// Sentinel errors, for errors.Is.
var (
	// ErrNotFound: no such posting, programme, terminal or dead letter.
	ErrNotFound = errors.New("not found")
	// ErrExists: a programme or terminal with that identifier exists.
	ErrExists = errors.New("already exists")
	// ErrInvalid: a malformed argument (see Posting.Validate).
	ErrInvalid = errors.New("invalid argument")
	// ErrConflict: the key was posted before with different content.
	ErrConflict = errors.New("key posted with different content")
	// ErrCounterReuse: another key already used this card counter value.
	ErrCounterReuse = errors.New("card counter value reused")
	// ErrInsufficientFunds: an account would go below zero.
	ErrInsufficientFunds = errors.New("insufficient funds")
	// ErrToken: a wrong, or already used, enrolment token.
	ErrToken = errors.New("enrolment token invalid")
	// ErrState: a terminal state change that is not allowed.
	ErrState = errors.New("terminal state change not allowed")
	// ErrReplay: a nonce that was used before (and has not expired).
	ErrReplay = errors.New("nonce replayed")
	// ErrInvariant: Check found a broken ledger invariant.
	ErrInvariant = errors.New("ledger invariant broken")
	// ErrCorrupt: stored data that does not decode.
	ErrCorrupt = errors.New("stored data corrupt")
	// ErrSchema: the database schema is newer than this program, or the
	// migration files are inconsistent.
	ErrSchema = errors.New("schema version mismatch")
)

// ConflictError: Key was posted before (posting ExistingID) with content
// that differs from the new one. The new posting is rejected.
type ConflictError struct {
	Key        Key
	ExistingID uint64
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("key %s: %v (posting %d)", e.Key, ErrConflict, e.ExistingID)
}

// Unwrap returns ErrConflict.
func (e *ConflictError) Unwrap() error { return ErrConflict }

// CounterReuseError: Key used the card counter value Counter that Other
// already used.
type CounterReuseError struct {
	CardID  record.CardID
	Counter Counter
	Key     Key
	Other   Key
}

func (e *CounterReuseError) Error() string {
	return fmt.Sprintf("key %s: %v: card %s counter %s %d already used by %s",
		e.Key, ErrCounterReuse, e.CardID, e.Counter.Type, e.Counter.Value, e.Other)
}

// Unwrap returns ErrCounterReuse.
func (e *CounterReuseError) Unwrap() error { return ErrCounterReuse }

// InsufficientFundsError: applying Delta to Account (balance Balance
// before this posting) would leave it below zero.
type InsufficientFundsError struct {
	Key     Key
	Account string
	Balance int64
	Delta   int64
}

func (e *InsufficientFundsError) Error() string {
	return fmt.Sprintf("key %s: %v: account %s balance %d, change %d", e.Key, ErrInsufficientFunds, e.Account, e.Balance, e.Delta)
}

// Unwrap returns ErrInsufficientFunds.
func (e *InsufficientFundsError) Unwrap() error { return ErrInsufficientFunds }

// InvariantError lists what Check found broken (at most a few dozen
// problems; Truncated tells there were more).
type InvariantError struct {
	Problems  []string
	Truncated bool
}

func (e *InvariantError) Error() string {
	s := fmt.Sprintf("%v: %s", ErrInvariant, strings.Join(e.Problems, "; "))
	if e.Truncated {
		s += "; ..."
	}
	return s
}

// Unwrap returns ErrInvariant.
func (e *InvariantError) Unwrap() error { return ErrInvariant }

// MaxProblems bounds InvariantError.Problems.
const MaxProblems = 50

// Problems collects invariant violations for Check implementations.
type Problems struct{ e InvariantError }

// Addf records one problem.
func (p *Problems) Addf(format string, a ...any) {
	if len(p.e.Problems) >= MaxProblems {
		p.e.Truncated = true
		return
	}
	p.e.Problems = append(p.e.Problems, fmt.Sprintf(format, a...))
}

// Err returns nil, or an *InvariantError with the problems.
func (p *Problems) Err() error {
	if len(p.e.Problems) == 0 {
		return nil
	}
	e := p.e
	return &e
}

// IsRejection reports whether err is a permanent rejection of a posting
// (conflict, counter reuse, insufficient funds, invalid): posting the same
// content again gives the same answer, so the record belongs in the dead
// letters. Any other error is transient (retry the posting).
func IsRejection(err error) bool {
	return errors.Is(err, ErrConflict) || errors.Is(err, ErrCounterReuse) ||
		errors.Is(err, ErrInsufficientFunds) || errors.Is(err, ErrInvalid)
}
