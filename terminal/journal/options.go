package journal

import (
	"fmt"
	"log/slog"
	"time"
)

// Defaults of Options.
const (
	DefaultLockTimeout   = 2 * time.Second
	DefaultMaxSize       = 256 << 20 // bytes
	DefaultMaxRecords    = 1_000_000
	DefaultUncertainHold = 24 * time.Hour
)

// PersonalKeySize is the length of Options.PersonalKey (an SM4 key).
const PersonalKeySize = 16

// Options configures Open. A nil *Options or zero fields mean the defaults.
// There is deliberately no option to turn off fsync: every state change is
// one bbolt transaction synced to disk before the call returns.
type Options struct {
	// LockTimeout bounds the wait for the file lock another process holds
	// (then ErrLocked). Zero or negative: DefaultLockTimeout. Open never
	// waits forever.
	LockTimeout time.Duration

	// ReadOnly opens an existing journal for reading (a shared lock; still
	// ErrLocked while a writer holds it). Writes return ErrReadOnly.
	ReadOnly bool

	// MaxSize bounds the data in the file, in bytes (default DefaultMaxSize).
	// Prepare returns ErrFull once the data passes MaxSize minus a reserve
	// of MaxSize/8, which is kept so records already journaled can always
	// advance (refusing to record a TAC after the card debited would be
	// worse than exceeding the bound).
	MaxSize int64

	// MaxRecords bounds the records kept (all states, until pruned);
	// Prepare returns ErrFull at the bound. Default DefaultMaxRecords.
	MaxRecords int

	// UncertainHold is how long an uncertain record waits for its card (to
	// settle it with GET TRANSACTION PROOF) before it is offered to the hub
	// for reconciliation by NextToSend. Default DefaultUncertainHold;
	// negative means immediately.
	UncertainHold time.Duration

	// PersonalKey, when set (PersonalKeySize bytes, see LoadOrCreateKey),
	// seals the personal fields of new records (card number, person ID,
	// holder name) with SM4-GCM at rest. A journal opened without it can
	// still list and advance sealed records, but returns them without
	// personal fields (Entry.Sealed) and refuses NextToSend for them
	// (ErrKeyRequired). The key is checked at Open (ErrWrongKey).
	PersonalKey []byte

	// Now is the clock (default time.Now). Tests inject one.
	Now func() time.Time

	// Logger receives warnings (restores, recoveries). Default: discard.
	Logger *slog.Logger

	// Failpoint, when set, is called at the named points listed in the
	// package doc (e.g. "before-prepare-commit"). A non-nil error from a
	// before-* point aborts the transaction; from an after-* point it is
	// returned after the commit. Tests use it to crash or block a process
	// at a precise point.
	Failpoint func(name string) error

	// noSync skips fsync; only export_test.go sets it, for benchmarks.
	noSync bool
}

func (o *Options) withDefaults() (Options, error) {
	var c Options
	if o != nil {
		c = *o
	}
	if c.LockTimeout <= 0 {
		c.LockTimeout = DefaultLockTimeout
	}
	if c.MaxSize == 0 {
		c.MaxSize = DefaultMaxSize
	}
	if c.MaxRecords == 0 {
		c.MaxRecords = DefaultMaxRecords
	}
	if c.UncertainHold == 0 {
		c.UncertainHold = DefaultUncertainHold
	}
	if c.UncertainHold < 0 {
		c.UncertainHold = 0
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	switch {
	case c.MaxSize < 64<<10:
		return c, fmt.Errorf("open journal: %w: MaxSize %d below 64 KiB", ErrInvalidArgument, c.MaxSize)
	case c.MaxRecords < 0:
		return c, fmt.Errorf("open journal: %w: negative MaxRecords", ErrInvalidArgument)
	case c.PersonalKey != nil && len(c.PersonalKey) != PersonalKeySize:
		return c, fmt.Errorf("open journal: %w: personal key is %d bytes, want %d", ErrInvalidArgument, len(c.PersonalKey), PersonalKeySize)
	}
	return c, nil
}

// SeqEpoch is the epoch of SeedSequence.
var SeqEpoch = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// SeqShift is how many low bits of a seeded sequence count records: a
// journal seeded at second s starts at s<<SeqShift.
const SeqShift = 20

// SeedSequence returns the first terminal sequence of a fresh journal
// created at now: whole seconds since SeqEpoch (at least 1), shifted left
// by SeqShift. A terminal reinstalled with an empty journal at least one
// second later therefore starts above everything the previous installation
// issued, provided that installation issued fewer than 2^20 (about one
// million) records per second of its life and the clock did not go
// backwards across the reinstall; ObserveHubAck catches the rest once the
// hub is reached.
func SeedSequence(now time.Time) uint64 {
	s := now.Sub(SeqEpoch) / time.Second
	if s < 1 {
		s = 1
	}
	return uint64(s) << SeqShift
}
