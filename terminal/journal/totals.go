package journal

import (
	"bytes"
	"encoding/binary"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/onecard-hub/onecard/terminal/record"
)

// DayTotals are the terminal's own figures for one card-transaction day
// (the records' CardDate): what it did on cards, for the end-of-day
// comparison with the hub's postings. A record counts once, when it first
// becomes CardDone (the card answered; money records with their TAC) or,
// failing that, Cleared (the hub posted it). Failed and still-uncertain
// records do not count; Dead ones do (the card moved the money even though
// the hub refused the record, and that is a discrepancy the report must
// show). Pruning does not change the totals.
type DayTotals struct {
	Day          string // YYYYMMDD
	PayCount     int64
	PayAmount    int64 // fen
	LoadCount    int64
	LoadAmount   int64 // fen
	CertifyCount int64
	// Rev counts the changes of the day's totals (1 after the first
	// record): a submission with a higher Rev supersedes one with a lower.
	Rev uint64
}

const totalsLen = 6 * 8

func (t DayTotals) encode() []byte {
	b := make([]byte, 0, totalsLen)
	for _, v := range []int64{t.PayCount, t.PayAmount, t.LoadCount, t.LoadAmount, t.CertifyCount} {
		b = binary.BigEndian.AppendUint64(b, uint64(v))
	}
	return binary.BigEndian.AppendUint64(b, t.Rev)
}

func decodeTotals(day string, b []byte) (DayTotals, error) {
	if len(b) != totalsLen {
		return DayTotals{}, fmt.Errorf("%w: totals of %s: %d bytes", ErrCorrupt, day, len(b))
	}
	v := func(i int) int64 { return int64(binary.BigEndian.Uint64(b[8*i:])) }
	return DayTotals{Day: day, PayCount: v(0), PayAmount: v(1), LoadCount: v(2), LoadAmount: v(3),
		CertifyCount: v(4), Rev: uint64(v(5))}, nil
}

// countTotals adds s's record to its day's totals when the move to `to`
// is the first into CardDone, or into Cleared without CardDone before.
func countTotals(tx *bolt.Tx, s *stored, to State) error {
	if to != CardDone && to != Cleared || containsState(s.history, CardDone) {
		return nil
	}
	b := tx.Bucket(bucketTotals)
	if b == nil {
		return fmt.Errorf("%w: bucket %s missing", ErrCorrupt, bucketTotals)
	}
	r, err := record.Decode(s.rec)
	if err != nil {
		return fmt.Errorf("%w: count totals: %w", ErrCorrupt, err)
	}
	t := DayTotals{Day: r.CardDate}
	if v := b.Get([]byte(r.CardDate)); v != nil {
		if t, err = decodeTotals(r.CardDate, v); err != nil {
			return err
		}
	}
	switch r.Kind {
	case record.KindPay:
		t.PayCount++
		t.PayAmount += int64(r.Amount)
	case record.KindLoad:
		t.LoadCount++
		t.LoadAmount += int64(r.Amount)
	case record.KindCertify:
		t.CertifyCount++
	default:
		return nil
	}
	t.Rev++
	return b.Put([]byte(r.CardDate), t.encode())
}

// Totals returns the totals of every day from `since` (YYYYMMDD, inclusive;
// "" for all) in day order. A journal made by a version without totals
// (opened read-only) has none. Errors: ErrInvalidArgument for a malformed
// since, ErrCorrupt, ErrClosed.
func (j *Journal) Totals(since string) ([]DayTotals, error) {
	if since != "" && !isDay(since) {
		return nil, fmt.Errorf("journal totals: %w: day %q", ErrInvalidArgument, since)
	}
	var out []DayTotals
	err := j.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketTotals)
		if b == nil {
			return nil
		}
		c := b.Cursor()
		for k, v := c.Seek([]byte(since)); k != nil; k, v = c.Next() {
			t, err := decodeTotals(string(k), v)
			if err != nil {
				return err
			}
			out = append(out, t)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("journal totals: %w", err)
	}
	return out, nil
}

func isDay(s string) bool {
	return len(s) == 8 && bytes.IndexFunc([]byte(s), func(r rune) bool { return r < '0' || r > '9' }) < 0
}
