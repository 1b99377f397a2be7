package journal

import (
	"encoding/binary"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/onecard-hub/onecard/terminal/record"
)

// Check verifies the journal's invariants and returns nil or an error
// wrapping ErrCorrupt that lists every problem found:
//
//   - bbolt's own page consistency check passes;
//   - every entry decodes, its record is valid and carries its key as
//     sequence;
//   - sequences are unique (one key each) and contiguous from the low-water
//     mark, except at a logged jump (a fresh journal's seed or a raise by
//     ObserveHubAck); all are below the next sequence and the high-water
//     mark is the highest issued;
//   - every history starts Prepared, moves only along the transition table
//     and ends in the current state;
//   - every money record that reached CardDone has a TAC; failed records
//     have none; no two records complete the same card transaction (card
//     ID, tx type, card counter) and the index of those matches;
//   - the open index lists exactly the non-final records, with their state
//     and card; the dead-letter bucket exactly the Dead ones; the per-state
//     counters match;
//   - sealed personal fields authenticate (when the journal has the key).
func (j *Journal) Check() error {
	var problems []error
	add := func(format string, a ...any) {
		if len(problems) < 50 {
			problems = append(problems, fmt.Errorf(format, a...))
		}
	}
	err := j.view(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			add("bbolt: %v", err)
		}
		m := tx.Bucket(bucketMeta)
		next, high, low := getU64(m, keyNext), getU64(m, keyHigh), getU64(m, keyLow)
		jumps := map[uint64]uint64{} // new seq → previous high water
		if err := tx.Bucket(bucketJumps).ForEach(func(k, v []byte) error {
			if len(k) != 8 || len(v) != 17 || (v[0] != jumpSeed && v[0] != jumpRestore) {
				add("bad jump entry %x", k)
				return nil
			}
			jumps[binary.BigEndian.Uint64(k)] = binary.BigEndian.Uint64(v[9:])
			return nil
		}); err != nil {
			return err
		}
		counts := map[State]uint64{}
		cardTx := map[string]uint64{} // cardTxKey → seq, from the records
		open := tx.Bucket(bucketOpen)
		dead := tx.Bucket(bucketDead)
		var prev uint64
		first := true
		c := tx.Bucket(bucketRecords).Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if len(k) != 8 {
				add("record key %x is not 8 bytes", k)
				continue
			}
			seq := binary.BigEndian.Uint64(k)
			switch {
			case seq < low:
				add("record %d below the low-water mark %d", seq, low)
			case seq >= next:
				add("record %d at or above the next sequence %d", seq, next)
			case first && seq != low:
				if pj, ok := jumps[seq]; !ok || pj >= seq {
					add("gap before the first record %d (low-water mark %d)", seq, low)
				}
			case !first && seq != prev+1:
				if pj, ok := jumps[seq]; !ok || pj != prev {
					add("gap between records %d and %d without a logged jump", prev, seq)
				}
			}
			prev, first = seq, false
			s, err := decodeStored(v)
			if err != nil {
				add("record %d: %v", seq, err)
				continue
			}
			counts[s.state]++
			j.checkEntry(seq, s, add)
			if r, err := record.Decode(s.rec); err == nil && r.Kind.Money() && len(r.TAC) != 0 {
				ck := string(cardTxKey(r))
				if other, dup := cardTx[ck]; dup {
					add("records %d and %d complete the same card transaction", other, seq)
				}
				cardTx[ck] = seq
				if v := tx.Bucket(bucketCardTx).Get([]byte(ck)); len(v) != 8 || binary.BigEndian.Uint64(v) != seq {
					add("record %d missing from the card-transaction index", seq)
				}
			}
			ov := open.Get(k)
			if s.state.Final() {
				if ov != nil {
					add("record %d is %s but in the open index", seq, s.state)
				}
			} else if o, ok := decodeOpen(ov); !ok {
				add("record %d is %s but missing from the open index", seq, s.state)
			} else if o.state != s.state {
				add("record %d is %s but the open index says %s", seq, s.state, o.state)
			} else if r, err := record.Decode(s.rec); err == nil && o.card != r.CardID {
				add("record %d: open index card differs", seq)
			}
			if (s.state == Dead) != (dead.Get(k) != nil) {
				add("record %d is %s; dead-letter bucket disagrees", seq, s.state)
			}
		}
		if !first && prev != high {
			add("high-water mark %d, highest record %d", high, prev)
		}
		if high >= next {
			add("high-water mark %d not below the next sequence %d", high, next)
		}
		for _, b := range []*bolt.Bucket{open, dead} {
			if err := b.ForEach(func(k, _ []byte) error {
				if tx.Bucket(bucketRecords).Get(k) == nil {
					add("index entry %x without a record", k)
				}
				return nil
			}); err != nil {
				return err
			}
		}
		if n := tx.Bucket(bucketCardTx).Stats().KeyN; n != len(cardTx) {
			add("card-transaction index has %d entries, records %d", n, len(cardTx))
		}
		for _, s := range States {
			if got := getU64(m, countKey(s)); got != counts[s] {
				add("%s counter %d, records %d", s, got, counts[s])
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("check journal: %w", err)
	}
	if len(problems) > 0 {
		return fmt.Errorf("check journal: %w: %w", ErrCorrupt, errors.Join(problems...))
	}
	return nil
}

func (j *Journal) checkEntry(seq uint64, s *stored, add func(string, ...any)) {
	r, err := record.Decode(s.rec)
	if err != nil {
		add("record %d: %v", seq, err)
		return
	}
	if r.TerminalSeq != seq {
		add("record %d carries sequence %d", seq, r.TerminalSeq)
	}
	h := s.history
	if len(h) == 0 || h[0].To != Prepared {
		add("record %d: history does not start prepared", seq)
		return
	}
	for i := 1; i < len(h); i++ {
		if !CanMove(h[i-1].To, h[i].To) {
			add("record %d: history moves %s → %s", seq, h[i-1].To, h[i].To)
		}
	}
	if h[len(h)-1].To != s.state {
		add("record %d: state %s but history ends %s", seq, s.state, h[len(h)-1].To)
	}
	if r.Kind.Money() && containsState(h, CardDone) && len(r.TAC) == 0 {
		add("record %d: %s reached card-done without a TAC", seq, r.Kind)
	}
	if s.state == Failed && len(r.TAC) != 0 {
		add("record %d: failed but has a TAC", seq)
	}
	if s.sealed != nil {
		if hasPersonal(r) {
			add("record %d: sealed but personal fields stored in clear", seq)
		}
		if j.seal != nil {
			if err := j.seal.open(seq, r, s.sealed); err != nil {
				add("record %d: %v", seq, err)
			}
		}
	}
}
