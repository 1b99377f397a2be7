package journal

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/onecard-hub/onecard/terminal/record"
)

// Bucket and meta key names (the file format).
var (
	bucketMeta    = []byte("meta")
	bucketRecords = []byte("records") // seq → stored entry
	bucketOpen    = []byte("open")    // seq → openIndex, non-final records only
	bucketDead    = []byte("dead")    // seq → at(ms) ‖ reason
	bucketJumps   = []byte("jumps")   // seq → kind ‖ at(ms) ‖ previous high water
	bucketCardTx  = []byte("cardtx")  // card ID ‖ tx type ‖ card counter → seq, money records with a TAC
	bucketTotals  = []byte("totals")  // card date (YYYYMMDD) → the day's totals (totals.go)

	keyFormat   = []byte("format")
	keyNext     = []byte("next")     // next sequence to assign
	keyHigh     = []byte("high")     // highest sequence assigned, 0 = none
	keyLow      = []byte("low")      // sequences below were pruned
	keyHubAck   = []byte("hub_ack")  // highest sequence the hub acknowledged
	keyKeyCheck = []byte("keycheck") // SM4-GCM check value of the personal key
)

const fileFormat = 1

// Jump kinds (bucketJumps).
const (
	jumpSeed    = 1 // a fresh journal's first sequence (SeedSequence)
	jumpRestore = 2 // raised above a hub acknowledgement (ObserveHubAck)
)

func countKey(s State) []byte { return []byte("count:" + s.String()) }

// Journal is an open journal file. Its methods are safe for concurrent use;
// writes are serialised by bbolt.
type Journal struct {
	db     *bolt.DB
	opts   Options
	path   string
	seal   *sealer
	closed atomic.Bool
}

// Open opens or creates the journal at path (mode 0600). It waits at most
// Options.LockTimeout for another process's lock (ErrLocked). A new
// journal's first sequence is SeedSequence(Options.Now()). Errors:
// ErrLocked, ErrInvalidArgument, ErrCorrupt (not a journal of this format),
// ErrWrongKey, and file errors.
func Open(path string, opts *Options) (*Journal, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if o.ReadOnly {
		if _, err := os.Stat(path); err != nil {
			return nil, fmt.Errorf("open journal: %w", err)
		}
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout:      o.LockTimeout,
		ReadOnly:     o.ReadOnly,
		NoSync:       o.noSync,
		FreelistType: bolt.FreelistMapType,
	})
	switch {
	case errors.Is(err, berrors.ErrTimeout):
		return nil, fmt.Errorf("open journal %s: %w (waited %v)", path, ErrLocked, o.LockTimeout)
	case errors.Is(err, berrors.ErrInvalid), errors.Is(err, berrors.ErrChecksum), errors.Is(err, berrors.ErrVersionMismatch):
		return nil, fmt.Errorf("open journal %s: %w: %w", path, ErrCorrupt, err)
	case err != nil:
		return nil, fmt.Errorf("open journal %s: %w", path, err)
	}
	j := &Journal{db: db, opts: o, path: path}
	if o.PersonalKey != nil {
		if j.seal, err = newSealer(o.PersonalKey); err != nil {
			db.Close()
			return nil, err
		}
	}
	if err := j.init(); err != nil {
		db.Close()
		return nil, fmt.Errorf("open journal %s: %w", path, err)
	}
	return j, nil
}

// init creates the buckets and meta of a new journal, or checks an
// existing one's format and key.
func (j *Journal) init() error {
	check := func(tx *bolt.Tx) error {
		m := tx.Bucket(bucketMeta)
		if m == nil {
			return fmt.Errorf("%w: no meta bucket (not a journal)", ErrCorrupt)
		}
		if f := m.Get(keyFormat); len(f) != 1 || f[0] != fileFormat {
			return fmt.Errorf("%w: unknown file format", ErrCorrupt)
		}
		for _, b := range [][]byte{bucketRecords, bucketOpen, bucketDead, bucketJumps, bucketCardTx} {
			if tx.Bucket(b) == nil {
				return fmt.Errorf("%w: bucket %s missing", ErrCorrupt, b)
			}
		}
		if j.seal != nil {
			if kc := m.Get(keyKeyCheck); kc != nil && !j.seal.verifyKeyCheck(kc) {
				return ErrWrongKey
			}
		}
		return nil
	}
	if j.opts.ReadOnly {
		return j.db.View(check)
	}
	return j.db.Update(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketMeta) == nil {
			if err := j.create(tx); err != nil {
				return err
			}
		}
		if err := check(tx); err != nil {
			return err
		}
		// Journals made before the totals bucket existed get it now.
		if _, err := tx.CreateBucketIfNotExists(bucketTotals); err != nil {
			return err
		}
		m := tx.Bucket(bucketMeta)
		if j.seal != nil && m.Get(keyKeyCheck) == nil {
			kc, err := j.seal.keyCheck()
			if err != nil {
				return err
			}
			return m.Put(keyKeyCheck, kc)
		}
		return nil
	})
}

func (j *Journal) create(tx *bolt.Tx) error {
	for _, b := range [][]byte{bucketMeta, bucketRecords, bucketOpen, bucketDead, bucketJumps, bucketCardTx, bucketTotals} {
		if _, err := tx.CreateBucketIfNotExists(b); err != nil {
			return err
		}
	}
	m := tx.Bucket(bucketMeta)
	now := j.opts.Now()
	first := SeedSequence(now)
	for k, v := range map[string]uint64{string(keyNext): first, string(keyHigh): 0, string(keyLow): first, string(keyHubAck): 0} {
		if err := m.Put([]byte(k), u64key(v)); err != nil {
			return err
		}
	}
	if err := m.Put(keyFormat, []byte{fileFormat}); err != nil {
		return err
	}
	j.opts.Logger.Info("journal created", "path", j.path, "first_seq", first)
	return tx.Bucket(bucketJumps).Put(u64key(first), jumpValue(jumpSeed, now, 0))
}

func jumpValue(kind byte, at time.Time, prevHigh uint64) []byte {
	b := []byte{kind}
	b = binary.BigEndian.AppendUint64(b, uint64(at.UnixMilli()))
	return binary.BigEndian.AppendUint64(b, prevHigh)
}

// Close closes the file; later calls return ErrClosed (Close itself is
// idempotent and returns nil again).
func (j *Journal) Close() error {
	if j.closed.Swap(true) {
		return nil
	}
	return j.db.Close()
}

// Path returns the journal file's path.
func (j *Journal) Path() string { return j.path }

func (j *Journal) fail(name string) error {
	if j.opts.Failpoint == nil {
		return nil
	}
	if err := j.opts.Failpoint(name); err != nil {
		return fmt.Errorf("failpoint %s: %w", name, err)
	}
	return nil
}

// update runs fn in one bbolt read-write transaction (fsync'd on commit)
// with the failpoints before-<op>-commit (inside, last) and
// after-<op>-commit (after the commit).
func (j *Journal) update(ctx context.Context, op string, fn func(tx *bolt.Tx) error) error {
	if j.closed.Load() {
		return ErrClosed
	}
	if j.opts.ReadOnly {
		return ErrReadOnly
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	err := j.db.Update(func(tx *bolt.Tx) error {
		if err := fn(tx); err != nil {
			return err
		}
		return j.fail("before-" + op + "-commit")
	})
	if errors.Is(err, berrors.ErrDatabaseNotOpen) {
		return ErrClosed
	}
	if err != nil {
		return err
	}
	if err := j.fail("after-" + op + "-commit"); err != nil {
		return afterCommitError{err}
	}
	return nil
}

// afterCommitError is a failpoint error returned after the change was
// committed.
type afterCommitError struct{ err error }

func (e afterCommitError) Error() string { return e.err.Error() }
func (e afterCommitError) Unwrap() error { return e.err }

func (j *Journal) view(fn func(tx *bolt.Tx) error) error {
	if j.closed.Load() {
		return ErrClosed
	}
	err := j.db.View(fn)
	if errors.Is(err, berrors.ErrDatabaseNotOpen) {
		return ErrClosed
	}
	return err
}

func getU64(b *bolt.Bucket, k []byte) uint64 {
	v := b.Get(k)
	if len(v) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}

func addCount(m *bolt.Bucket, s State, delta int64) error {
	n := int64(getU64(m, countKey(s))) + delta
	if n < 0 {
		return fmt.Errorf("%w: negative %s count", ErrCorrupt, s)
	}
	return m.Put(countKey(s), u64key(uint64(n)))
}

// Prepare journals rec in state Prepared and returns its terminal sequence
// (also stored into rec.TerminalSeq). Call it before the first APDU that
// can move money (DEBIT FOR PURCHASE, CREDIT FOR LOAD) and after
// INITIALIZE, so the record holds the card counter, card random and PSAM
// sequence that GET TRANSACTION PROOF and the TAC need. When Prepare
// returns an error the card must not be touched; the sequence is 0 and
// nothing was journaled, except after an error from the after-prepare-commit
// failpoint, when the record is journaled and its sequence returned.
//
// rec must be valid apart from its sequence and have no TAC yet (so a zero
// BalanceAfter). Errors: ErrFull, ErrInvalidRecord, ErrClosed,
// ErrReadOnly, ctx errors, failpoint errors, file errors.
func (j *Journal) Prepare(ctx context.Context, rec *record.Record) (uint64, error) {
	return j.insert(ctx, "prepare", rec, Prepared, "")
}

// Refused journals rec as a transaction the card refused before any
// command that moves money (INITIALIZE answered with a status word): the
// record enters Prepared and Failed, with reason, in one commit, so no
// crash can leave it Prepared for a settlement the card can never give
// (its counter did not move). Failpoint op "refused". Errors as Prepare.
func (j *Journal) Refused(ctx context.Context, rec *record.Record, reason string) (uint64, error) {
	if reason == "" {
		reason = "refused by the card"
	}
	return j.insert(ctx, "refused", rec, Failed, reason)
}

// insert journals a new record in state to (Prepared, or Failed through
// Prepared) under the next sequence.
func (j *Journal) insert(ctx context.Context, op string, rec *record.Record, to State, reason string) (uint64, error) {
	verb := map[State]string{Prepared: "prepare record", Failed: "journal refused record"}[to]
	if rec == nil {
		return 0, fmt.Errorf("%s: %w: nil record", verb, ErrInvalidRecord)
	}
	if len(rec.TAC) != 0 {
		return 0, fmt.Errorf("%s: %w: a prepared record has no TAC", verb, ErrInvalidRecord)
	}
	r := rec.Clone()
	now := j.opts.Now()
	var seq uint64
	err := j.update(ctx, op, func(tx *bolt.Tx) error {
		m := tx.Bucket(bucketMeta)
		if total := j.total(m); total >= j.opts.MaxRecords {
			return fmt.Errorf("%w: %d records (MaxRecords %d)", ErrFull, total, j.opts.MaxRecords)
		}
		if size, limit := tx.Size(), j.opts.MaxSize-j.opts.MaxSize/8; size > limit {
			return fmt.Errorf("%w: %d bytes of data (MaxSize %d less a reserve)", ErrFull, size, j.opts.MaxSize)
		}
		seq = getU64(m, keyNext)
		r.TerminalSeq = seq
		if err := r.Validate(); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalidRecord, err)
		}
		s := &stored{state: Prepared, history: []Transition{{Prepared, now}}}
		if to != Prepared {
			s.state, s.reason = to, clipReason(reason)
			s.history = append(s.history, Transition{to, now})
		}
		body := r
		if j.seal != nil && hasPersonal(r) {
			var err error
			if s.sealed, err = j.seal.seal(seq, r); err != nil {
				return err
			}
			body = personalBlank(r)
		}
		var err error
		if s.rec, err = body.MarshalBinary(); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalidRecord, err)
		}
		if err := tx.Bucket(bucketRecords).Put(u64key(seq), s.encode()); err != nil {
			return err
		}
		if !to.Final() {
			if err := tx.Bucket(bucketOpen).Put(u64key(seq), openIndex{to, r.CardID, now}.encode()); err != nil {
				return err
			}
		}
		if err := addCount(m, to, 1); err != nil {
			return err
		}
		if err := m.Put(keyNext, u64key(seq+1)); err != nil {
			return err
		}
		return m.Put(keyHigh, u64key(seq))
	})
	var ac afterCommitError
	if errors.As(err, &ac) {
		rec.TerminalSeq = seq // journaled; the failpoint fired after the commit
		return seq, fmt.Errorf("%s: %w", verb, err)
	}
	if err != nil {
		return 0, fmt.Errorf("%s: %w", verb, err)
	}
	rec.TerminalSeq = seq
	return seq, nil
}

func (j *Journal) total(m *bolt.Bucket) int {
	n := 0
	for _, s := range States {
		n += int(getU64(m, countKey(s)))
	}
	return n
}

// load reads and decodes the stored entry for seq (ErrNotFound).
func loadStored(tx *bolt.Tx, seq uint64) (*stored, error) {
	v := tx.Bucket(bucketRecords).Get(u64key(seq))
	if v == nil {
		return nil, fmt.Errorf("%w: %d", ErrNotFound, seq)
	}
	s, err := decodeStored(v)
	if err != nil {
		return nil, fmt.Errorf("record %d: %w", seq, err)
	}
	return s, nil
}

// move changes seq's state within tx: history, open index, counters, the
// dead-letter bucket. edit, if non-nil, may change the stored entry first.
func (j *Journal) move(tx *bolt.Tx, seq uint64, s *stored, to State, reason string, now time.Time) error {
	from := s.state
	if !CanMove(from, to) {
		return &TransitionError{Seq: seq, From: from, To: to}
	}
	if len(s.history) >= maxHistory {
		return fmt.Errorf("%w: record %d: history full", ErrCorrupt, seq)
	}
	if err := countTotals(tx, s, to); err != nil {
		return err
	}
	s.state = to
	s.history = append(s.history, Transition{to, now})
	if reason != "" {
		s.reason = clipReason(reason)
	}
	k := u64key(seq)
	if err := tx.Bucket(bucketRecords).Put(k, s.encode()); err != nil {
		return err
	}
	open := tx.Bucket(bucketOpen)
	if to.Final() {
		if err := open.Delete(k); err != nil {
			return err
		}
	} else {
		o, ok := decodeOpen(open.Get(k))
		if !ok {
			return fmt.Errorf("%w: record %d: open index missing", ErrCorrupt, seq)
		}
		o.state = to
		if err := open.Put(k, o.encode()); err != nil {
			return err
		}
	}
	if to == Dead {
		v := binary.BigEndian.AppendUint64(nil, uint64(now.UnixMilli()))
		if err := tx.Bucket(bucketDead).Put(k, append(v, s.reason...)); err != nil {
			return err
		}
	}
	m := tx.Bucket(bucketMeta)
	if err := addCount(m, from, -1); err != nil {
		return err
	}
	return addCount(m, to, 1)
}

// CardResult is what the card answered to the money (or certification)
// command.
type CardResult struct {
	// TAC and MAC2 as the card returned them (record.CodeLen bytes). Pay
	// and load records need a TAC.
	TAC, MAC2 []byte
	// BalanceAfter is the card balance after the transaction (fen). It must
	// equal the balance before minus (pay) or plus (load) the amount.
	BalanceAfter uint32
	// CardSignature, if the card signed the record's challenge after
	// Prepare (certify), raw r‖s.
	CardSignature []byte
}

// CardDone moves seq from Prepared or Uncertain (a proof found later) to
// CardDone and stores the card's answer. Repeating it with the same result
// is a no-op; with a different one, or from another state, it fails.
// Errors: ErrNotFound, ErrTransition, ErrInvalidRecord (a money record
// without a TAC, balance arithmetic), ErrDuplicate (another record already
// completed the same card transaction: card ID, tx type and card counter),
// ErrClosed, ctx and failpoint errors.
func (j *Journal) CardDone(ctx context.Context, seq uint64, res CardResult) error {
	now := j.opts.Now()
	err := j.update(ctx, "carddone", func(tx *bolt.Tx) error {
		s, err := loadStored(tx, seq)
		if err != nil {
			return err
		}
		r, err := record.Decode(s.rec)
		if err != nil {
			return fmt.Errorf("%w: record %d: %w", ErrCorrupt, seq, err)
		}
		r.TAC, r.MAC2, r.BalanceAfter = res.TAC, res.MAC2, res.BalanceAfter
		if res.CardSignature != nil {
			r.Attestation.CardSignature = res.CardSignature
		}
		if r.Kind.Money() && len(r.TAC) == 0 {
			return fmt.Errorf("%w: a %s record needs the card's TAC", ErrInvalidRecord, r.Kind)
		}
		if err := r.Validate(); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalidRecord, err)
		}
		b, err := r.MarshalBinary()
		if err != nil {
			return fmt.Errorf("%w: %w", ErrInvalidRecord, err)
		}
		if containsState(s.history, CardDone) && string(b) == string(s.rec) {
			return errNoChange // a repeat of the answer already journaled
		}
		if r.Kind.Money() {
			ct := tx.Bucket(bucketCardTx)
			k := cardTxKey(r)
			if v := ct.Get(k); v != nil && string(v) != string(u64key(seq)) {
				return fmt.Errorf("%w: card %s transaction %02X/%d is already record %d",
					ErrDuplicate, r.CardID, uint8(r.TxType), r.CardCounter, binary.BigEndian.Uint64(v))
			}
			if err := ct.Put(k, u64key(seq)); err != nil {
				return err
			}
		}
		s.rec = b
		return j.move(tx, seq, s, CardDone, "", now)
	})
	if errors.Is(err, errNoChange) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("record card result: %w", err)
	}
	return nil
}

// cardTxKey identifies one card transaction: card ID ‖ tx type ‖ card
// counter. The card's counter advances with every completed transaction,
// so two completed records with the same key would post it twice.
func cardTxKey(r *record.Record) []byte {
	k := append(r.CardID[:0:0], r.CardID[:]...)
	k = append(k, byte(r.TxType))
	return binary.BigEndian.AppendUint16(k, r.CardCounter)
}

// errNoChange aborts an idempotent repeat without writing.
var errNoChange = errors.New("no change")

func containsState(h []Transition, s State) bool {
	for _, t := range h {
		if t.To == s {
			return true
		}
	}
	return false
}

// Fail moves seq from Prepared or Uncertain to Failed: the card refused
// (or the card's proof shows the transaction did not happen), nothing
// moved. The reason is kept (no PINs or keys in it). Errors: ErrNotFound,
// ErrTransition, ErrClosed, ctx and failpoint errors.
func (j *Journal) Fail(ctx context.Context, seq uint64, reason string) error {
	return j.simpleMove(ctx, "failed", seq, Failed, reason)
}

// MarkUncertain moves seq from Prepared to Uncertain: the card went away
// (torn) before answering, so only its counter or GET TRANSACTION PROOF can
// tell. Errors as Fail.
func (j *Journal) MarkUncertain(ctx context.Context, seq uint64, reason string) error {
	return j.simpleMove(ctx, "uncertain", seq, Uncertain, reason)
}

func (j *Journal) simpleMove(ctx context.Context, op string, seq uint64, to State, reason string) error {
	now := j.opts.Now()
	err := j.update(ctx, op, func(tx *bolt.Tx) error {
		s, err := loadStored(tx, seq)
		if err != nil {
			return err
		}
		return j.move(tx, seq, s, to, reason, now)
	})
	if err != nil {
		return fmt.Errorf("mark record %s: %w", to, err)
	}
	return nil
}

// Get returns the entry of seq. Errors: ErrNotFound, ErrCorrupt, ErrClosed.
func (j *Journal) Get(seq uint64) (Entry, error) {
	var e Entry
	err := j.view(func(tx *bolt.Tx) error {
		var err error
		e, err = j.entry(tx, seq, j.opts.Now())
		return err
	})
	return e, err
}

// entry builds the Entry of seq.
func (j *Journal) entry(tx *bolt.Tx, seq uint64, now time.Time) (Entry, error) {
	s, err := loadStored(tx, seq)
	if err != nil {
		return Entry{}, err
	}
	return j.toEntry(seq, s, now)
}

func (j *Journal) toEntry(seq uint64, s *stored, now time.Time) (Entry, error) {
	r, err := record.Decode(s.rec)
	if err != nil {
		return Entry{}, fmt.Errorf("%w: record %d: %w", ErrCorrupt, seq, err)
	}
	if r.TerminalSeq != seq {
		return Entry{}, fmt.Errorf("%w: record %d carries sequence %d", ErrCorrupt, seq, r.TerminalSeq)
	}
	e := Entry{Seq: seq, State: s.state, Record: r, Sealed: s.sealed != nil, Reason: s.reason,
		History: append([]Transition(nil), s.history...)}
	if s.sealed != nil && j.seal != nil {
		if err := j.seal.open(seq, r, s.sealed); err != nil {
			return Entry{}, err
		}
	}
	e.Overdue = e.State == Uncertain && !now.Before(e.PreparedAt().Add(j.opts.UncertainHold))
	return e, nil
}

// List returns up to limit entries (limit ≤ 0: all) with sequence ≥ from,
// in sequence order, optionally only those in the given states. Errors:
// ErrCorrupt, ErrClosed.
func (j *Journal) List(from uint64, limit int, states ...State) ([]Entry, error) {
	want := map[State]bool{}
	for _, s := range states {
		want[s] = true
	}
	var out []Entry
	now := j.opts.Now()
	err := j.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketRecords).Cursor()
		for k, v := c.Seek(u64key(from)); k != nil; k, v = c.Next() {
			if limit > 0 && len(out) >= limit {
				break
			}
			if len(k) != 8 {
				return fmt.Errorf("%w: bad key", ErrCorrupt)
			}
			seq := binary.BigEndian.Uint64(k)
			s, err := decodeStored(v)
			if err != nil {
				return fmt.Errorf("record %d: %w", seq, err)
			}
			if len(want) > 0 && !want[s.state] {
				continue
			}
			e, err := j.toEntry(seq, s, now)
			if err != nil {
				return err
			}
			out = append(out, e)
		}
		return nil
	})
	return out, err
}
