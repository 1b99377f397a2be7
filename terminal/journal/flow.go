package journal

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	bolt "go.etcd.io/bbolt"

	"github.com/onecard-hub/onecard/terminal/record"
)

// RecoverReason is the reason Recover gives the records it marks uncertain.
const RecoverReason = "interrupted between prepare and the card's answer"

// Recover is the start-up step. Every Prepared record is left over from a
// crash between Prepare and the card's answer, so it becomes Uncertain (one
// transaction, failpoints before/after-recover-commit); then every
// non-final record (Uncertain, CardDone, Sent) is returned in sequence
// order, nothing dropped. Uncertain records wait for their card
// (PendingForCard); those prepared at least Options.UncertainHold before
// now are Overdue and offered to the hub by NextToSend. Call it once after
// Open, before the first Prepare of this process. Errors: ErrCorrupt,
// ErrClosed, ErrReadOnly, ctx and failpoint errors.
func (j *Journal) Recover(ctx context.Context, now time.Time) ([]Entry, error) {
	var moved int
	err := j.update(ctx, "recover", func(tx *bolt.Tx) error {
		moved = 0
		var prepared []uint64
		err := tx.Bucket(bucketOpen).ForEach(func(k, v []byte) error {
			o, ok := decodeOpen(v)
			if !ok || len(k) != 8 {
				return fmt.Errorf("%w: bad open index entry", ErrCorrupt)
			}
			if o.state == Prepared {
				prepared = append(prepared, binary.BigEndian.Uint64(k))
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, seq := range prepared {
			s, err := loadStored(tx, seq)
			if err != nil {
				return err
			}
			if err := j.move(tx, seq, s, Uncertain, RecoverReason, now); err != nil {
				return err
			}
			moved++
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("recover journal: %w", err)
	}
	if moved > 0 {
		j.opts.Logger.Warn("journal: interrupted records marked uncertain", "count", moved)
	}
	out, err := j.openEntries(now, func(openIndex) bool { return true }, 0)
	if err != nil {
		return nil, fmt.Errorf("recover journal: %w", err)
	}
	return out, nil
}

// openEntries returns the non-final entries whose index passes keep, in
// sequence order, at most limit (≤ 0: all).
func (j *Journal) openEntries(now time.Time, keep func(openIndex) bool, limit int) ([]Entry, error) {
	var out []Entry
	err := j.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketOpen).Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if limit > 0 && len(out) >= limit {
				return nil
			}
			o, ok := decodeOpen(v)
			if !ok || len(k) != 8 {
				return fmt.Errorf("%w: bad open index entry", ErrCorrupt)
			}
			if !keep(o) {
				continue
			}
			e, err := j.entry(tx, binary.BigEndian.Uint64(k), now)
			if err != nil {
				return err
			}
			out = append(out, e)
		}
		return nil
	})
	return out, err
}

// PendingForCard returns the Uncertain records of this card (overdue or
// not, not yet sent) in sequence order: when the card comes back, the
// terminal settles each with the card's counter or GET TRANSACTION PROOF
// (then CardDone or Fail). Errors: ErrCorrupt, ErrClosed.
func (j *Journal) PendingForCard(card record.CardID) ([]Entry, error) {
	return j.openEntries(j.opts.Now(), func(o openIndex) bool {
		return o.state == Uncertain && o.card == card
	}, 0)
}

// NextToSend returns up to limit records (≤ 0: all) for the hub, in
// sequence order: CardDone records and Overdue Uncertain ones, not yet
// sent. Uncertain records still within Options.UncertainHold are skipped
// (they wait for their card) without holding back later ones, so the hub
// sees sequences out of order. Errors: ErrKeyRequired (a sealed record and
// no key: the hub needs the signed personal fields), ErrCorrupt, ErrClosed.
func (j *Journal) NextToSend(limit int) ([]Entry, error) {
	now := j.opts.Now()
	hold := j.opts.UncertainHold
	out, err := j.openEntries(now, func(o openIndex) bool {
		return o.state == CardDone || o.state == Uncertain && !now.Before(o.prepared.Add(hold))
	}, limit)
	if err != nil {
		return nil, err
	}
	if err := j.needKey(out); err != nil {
		return nil, err
	}
	return out, nil
}

// needKey returns ErrKeyRequired if an entry lacks its sealed personal
// fields (the hub needs them: they are signed).
func (j *Journal) needKey(es []Entry) error {
	if j.seal != nil {
		return nil
	}
	for _, e := range es {
		if e.Sealed {
			return fmt.Errorf("records to send: record %d: %w", e.Seq, ErrKeyRequired)
		}
	}
	return nil
}

// Unacknowledged returns up to limit (≤ 0: all) Sent records the hub has
// neither cleared nor rejected, in sequence order: after a restart the hub
// client sends them again (the hub deduplicates by terminal number and
// sequence). Errors as NextToSend.
func (j *Journal) Unacknowledged(limit int) ([]Entry, error) {
	out, err := j.openEntries(j.opts.Now(), func(o openIndex) bool { return o.state == Sent }, limit)
	if err != nil {
		return nil, err
	}
	if err := j.needKey(out); err != nil {
		return nil, err
	}
	return out, nil
}

// MarkSent moves the records to Sent in one transaction: CardDone and
// Uncertain records move; Sent, Cleared and Dead ones (and pruned ones) are
// left as they are, so repeating a call is harmless. Errors (nothing is
// changed then): ErrNotFound, ErrTransition (a Prepared or Failed record),
// ErrClosed, ctx and failpoint errors.
func (j *Journal) MarkSent(ctx context.Context, seqs []uint64) error {
	return j.batch(ctx, "sent", seqs, Sent, "", Sent, Cleared, Dead)
}

// MarkCleared moves the records to Cleared in one transaction: the hub has
// posted them. Sent, CardDone and Uncertain records move; Cleared (and
// pruned) ones are left, so repeating a call is harmless. Errors as
// MarkSent (ErrTransition for Prepared, Failed or Dead records).
func (j *Journal) MarkCleared(ctx context.Context, seqs []uint64) error {
	return j.batch(ctx, "cleared", seqs, Cleared, "", Cleared)
}

// DeadLetter moves seq to Dead and files it in the dead-letter bucket with
// the hub's reason. A record already Dead keeps its first reason. Errors:
// ErrNotFound, ErrTransition (Prepared, Failed or Cleared), ErrClosed, ctx
// and failpoint errors.
func (j *Journal) DeadLetter(ctx context.Context, seq uint64, reason string) error {
	if reason == "" {
		reason = "rejected by the hub"
	}
	return j.batch(ctx, "dead", []uint64{seq}, Dead, reason, Dead)
}

// batch moves every seq to `to`, skipping those already in one of `done`
// or pruned.
func (j *Journal) batch(ctx context.Context, op string, seqs []uint64, to State, reason string, done ...State) error {
	if len(seqs) == 0 {
		return nil
	}
	now := j.opts.Now()
	err := j.update(ctx, op, func(tx *bolt.Tx) error {
		low := getU64(tx.Bucket(bucketMeta), keyLow)
		for _, seq := range seqs {
			s, err := loadStored(tx, seq)
			if errors.Is(err, ErrNotFound) && seq < low {
				continue // pruned: it reached a final state long ago
			}
			if err != nil {
				return err
			}
			if stateIn(s.state, done) {
				continue
			}
			if err := j.move(tx, seq, s, to, reason, now); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("mark records %s: %w", to, err)
	}
	return nil
}

func stateIn(s State, set []State) bool {
	for _, x := range set {
		if s == x {
			return true
		}
	}
	return false
}

// DeadLetter is a record the hub rejected.
type DeadLetter struct {
	Seq    uint64
	At     time.Time
	Reason string
	Entry  Entry
}

// DeadLetters lists the dead-letter bucket in sequence order. Errors:
// ErrCorrupt, ErrClosed.
func (j *Journal) DeadLetters() ([]DeadLetter, error) {
	var out []DeadLetter
	now := j.opts.Now()
	err := j.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketDead).ForEach(func(k, v []byte) error {
			if len(k) != 8 || len(v) < 8 || !utf8.Valid(v[8:]) {
				return fmt.Errorf("%w: bad dead-letter entry", ErrCorrupt)
			}
			seq := binary.BigEndian.Uint64(k)
			e, err := j.entry(tx, seq, now)
			if err != nil {
				return err
			}
			out = append(out, DeadLetter{Seq: seq, At: time.UnixMilli(int64(binary.BigEndian.Uint64(v))).UTC(),
				Reason: string(v[8:]), Entry: e})
			return nil
		})
	})
	return out, err
}

// ObserveHubAck records the highest sequence the hub has acknowledged for
// this terminal. If it is above anything this journal issued, the file was
// restored from a backup (or the journal replaced): the next sequence is
// raised to max(ack+1, SeedSequence(now)) — a logged jump that Check
// accepts — and a *RestoreError (ErrRestoredFromBackup) is returned after
// the change is committed, for the caller to raise an alarm: records issued
// after the backup was taken are not in this file. Errors otherwise:
// ErrClosed, ErrReadOnly, ctx and failpoint errors (op "hubjump" when the
// sequence is raised, "huback" otherwise).
func (j *Journal) ObserveHubAck(ctx context.Context, ack uint64) error {
	now := j.opts.Now()
	// The op name only labels the failpoints; the transaction decides.
	op := "huback"
	if err := j.view(func(tx *bolt.Tx) error {
		if ack >= getU64(tx.Bucket(bucketMeta), keyNext) {
			op = "hubjump"
		}
		return nil
	}); err != nil {
		return err
	}
	var rerr *RestoreError
	err := j.update(ctx, op, func(tx *bolt.Tx) error {
		rerr = nil
		m := tx.Bucket(bucketMeta)
		if ack > getU64(m, keyHubAck) {
			if err := m.Put(keyHubAck, u64key(ack)); err != nil {
				return err
			}
		}
		high, next := getU64(m, keyHigh), getU64(m, keyNext)
		if ack < next {
			return nil
		}
		raised := max(ack+1, SeedSequence(now))
		rerr = &RestoreError{HubAck: ack, HighWater: high, Next: raised}
		if err := m.Put(keyNext, u64key(raised)); err != nil {
			return err
		}
		return tx.Bucket(bucketJumps).Put(u64key(raised), jumpValue(jumpRestore, now, high))
	})
	if err != nil {
		return fmt.Errorf("observe hub acknowledgement: %w", err)
	}
	if rerr != nil {
		j.opts.Logger.Error("journal restored from backup: the hub acknowledged a sequence this journal never issued",
			"hub_ack", rerr.HubAck, "high_water", rerr.HighWater, "next", rerr.Next, "path", j.path)
		return rerr
	}
	return nil
}

// Stats is a summary for operators and the hub client.
type Stats struct {
	Counts    map[State]int // records per state (pruned ones not counted)
	Records   int           // records kept
	NextSeq   uint64        // the sequence the next Prepare gets
	HighWater uint64        // the highest sequence issued (0: none)
	HubAck    uint64        // the highest sequence the hub acknowledged
	// Unsent is the number of CardDone and Uncertain records; OldestUnsent
	// the prepare time of the oldest of them (zero if none) and
	// OldestUnsentAge its age at Options.Now.
	Unsent          int
	OldestUnsent    time.Time
	OldestUnsentAge time.Duration
	DeadLetters     int
	DataBytes       int64 // bytes of data in the file (what MaxSize bounds)
}

// Stats returns the counts and ages. Errors: ErrCorrupt, ErrClosed.
func (j *Journal) Stats() (Stats, error) {
	st := Stats{Counts: map[State]int{}}
	now := j.opts.Now()
	err := j.view(func(tx *bolt.Tx) error {
		m := tx.Bucket(bucketMeta)
		for _, s := range States {
			n := int(getU64(m, countKey(s)))
			st.Counts[s] = n
			st.Records += n
		}
		st.NextSeq, st.HighWater, st.HubAck = getU64(m, keyNext), getU64(m, keyHigh), getU64(m, keyHubAck)
		st.DeadLetters = tx.Bucket(bucketDead).Stats().KeyN
		st.DataBytes = tx.Size()
		return tx.Bucket(bucketOpen).ForEach(func(_, v []byte) error {
			o, ok := decodeOpen(v)
			if !ok {
				return fmt.Errorf("%w: bad open index entry", ErrCorrupt)
			}
			if o.state == CardDone || o.state == Uncertain {
				st.Unsent++
				if st.OldestUnsent.IsZero() || o.prepared.Before(st.OldestUnsent) {
					st.OldestUnsent = o.prepared
				}
			}
			return nil
		})
	})
	if err != nil {
		return Stats{}, err
	}
	if !st.OldestUnsent.IsZero() {
		st.OldestUnsentAge = now.Sub(st.OldestUnsent)
	}
	return st, nil
}

// PruneFinal deletes the oldest records while they are Cleared or Failed
// and reached that state before `before`, stopping at the first record that
// is not (so the kept sequences stay contiguous; Dead records stay until an
// operator deals with them). It returns how many it deleted. Errors:
// ErrClosed, ErrReadOnly, ctx and failpoint errors (op "prune").
func (j *Journal) PruneFinal(ctx context.Context, before time.Time) (int, error) {
	var n int
	err := j.update(ctx, "prune", func(tx *bolt.Tx) error {
		n = 0
		m := tx.Bucket(bucketMeta)
		recs := tx.Bucket(bucketRecords)
		c := recs.Cursor()
		var last uint64
		for k, v := c.First(); k != nil; k, v = c.First() {
			seq := binary.BigEndian.Uint64(k)
			s, err := decodeStored(v)
			if err != nil {
				return fmt.Errorf("record %d: %w", seq, err)
			}
			if (s.state != Cleared && s.state != Failed) || !s.history[len(s.history)-1].At.Before(before) {
				break
			}
			if r, err := record.Decode(s.rec); err == nil && r.Kind.Money() && len(r.TAC) != 0 {
				if err := tx.Bucket(bucketCardTx).Delete(cardTxKey(r)); err != nil {
					return err
				}
			}
			if err := recs.Delete(k); err != nil {
				return err
			}
			if err := addCount(m, s.state, -1); err != nil {
				return err
			}
			last = seq
			n++
		}
		if n == 0 {
			return nil
		}
		return m.Put(keyLow, u64key(last+1))
	})
	if err != nil {
		return 0, fmt.Errorf("prune journal: %w", err)
	}
	return n, nil
}
