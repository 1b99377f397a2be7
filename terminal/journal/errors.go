package journal

import (
	"errors"
	"fmt"
)

// Sentinel errors, for errors.Is.
var (
	// ErrLocked: another process holds the journal file (Open waited
	// Options.LockTimeout).
	ErrLocked = errors.New("journal: locked by another process")
	// ErrFull: Options.MaxRecords or Options.MaxSize reached. Prepare
	// returns it before anything is written: the caller must not touch the
	// card. Records already journaled can still advance.
	ErrFull = errors.New("journal: full")
	// ErrNotFound: no record with that sequence.
	ErrNotFound = errors.New("journal: no such record")
	// ErrTransition: the move is not in the transition table (see
	// *TransitionError).
	ErrTransition = errors.New("journal: state transition not allowed")
	// ErrRestoredFromBackup: the hub has acknowledged a sequence above
	// anything this journal issued, so the file was restored from a backup
	// (see *RestoreError).
	ErrRestoredFromBackup = errors.New("journal: restored from backup")
	// ErrInvalidRecord: the record or card result breaks the record rules
	// (wraps the record package's error) or the journal's (a money record
	// reaching card-done without a TAC, a prepared record with a TAC).
	ErrInvalidRecord = errors.New("journal: invalid record")
	// ErrDuplicate: CardDone for a card transaction (card ID, tx type, card
	// counter) another record already completed: posting both would count
	// the card's money twice.
	ErrDuplicate = errors.New("journal: card transaction already journaled")
	// ErrInvalidArgument: a bad option or argument.
	ErrInvalidArgument = errors.New("journal: invalid argument")
	// ErrCorrupt: the file is not a journal of this format, or Check found
	// a broken invariant.
	ErrCorrupt = errors.New("journal: corrupt")
	// ErrClosed: the journal was closed.
	ErrClosed = errors.New("journal: closed")
	// ErrReadOnly: a write on a journal opened with Options.ReadOnly.
	ErrReadOnly = errors.New("journal: opened read-only")
	// ErrWrongKey: Options.PersonalKey is not the key the journal's
	// personal fields were sealed with.
	ErrWrongKey = errors.New("journal: wrong personal-data key")
	// ErrKeyRequired: the operation needs the personal fields of a sealed
	// record but the journal was opened without Options.PersonalKey.
	ErrKeyRequired = errors.New("journal: personal-data key required")
	// ErrInsecureKeyFile: a key file readable or writable by group or
	// others (chmod 600 it).
	ErrInsecureKeyFile = errors.New("journal: key file permissions too open")
)

// TransitionError is a refused state move. It matches ErrTransition.
type TransitionError struct {
	Seq      uint64
	From, To State
}

func (e *TransitionError) Error() string {
	return fmt.Sprintf("journal: record %d: cannot move from %s to %s", e.Seq, e.From, e.To)
}

// Is makes errors.Is(err, ErrTransition) true.
func (e *TransitionError) Is(target error) bool { return target == ErrTransition }

// RestoreError reports a journal restored from a backup (or otherwise
// behind the hub). The sequence has already been raised to Next when it is
// returned. It matches ErrRestoredFromBackup.
type RestoreError struct {
	HubAck    uint64 // the hub's last acknowledged sequence
	HighWater uint64 // the highest sequence this journal had issued
	Next      uint64 // the sequence the next Prepare will get
}

func (e *RestoreError) Error() string {
	return fmt.Sprintf("journal: restored from backup: hub acknowledged %d, journal had issued up to %d; sequence raised to %d",
		e.HubAck, e.HighWater, e.Next)
}

// Is makes errors.Is(err, ErrRestoredFromBackup) true.
func (e *RestoreError) Is(target error) bool { return target == ErrRestoredFromBackup }
