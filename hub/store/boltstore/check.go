package boltstore

import (
	"bytes"
	"context"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/onecard-hub/onecard/hub/store"
)

// Check implements store.Store: one read transaction walks every posting
// and index.
func (s *Store) Check(ctx context.Context) error {
	var probs store.Problems
	err := s.view(ctx, "check ledger", func(tx *bolt.Tx) error {
		sums := map[string]int64{}
		keys, counters, byDay := tx.Bucket(bKeys), tx.Bucket(bCounters), tx.Bucket(bByDay)
		nPostings, nCounters := 0, 0
		err := tx.Bucket(bPostings).ForEach(func(k, v []byte) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			nPostings++
			id, err := getU64(k, "posting ID")
			if err != nil {
				probs.Addf("posting key: %v", err)
				return nil
			}
			p, err := decodePosting(v)
			if err != nil {
				probs.Addf("posting %d: %v", id, err)
				return nil
			}
			if p.ID != id {
				probs.Addf("posting %d stored under ID %d", p.ID, id)
			}
			var sum int64
			for _, e := range p.Entries {
				sum += e.Amount
				sums[e.Account] += e.Amount
			}
			if sum != 0 {
				probs.Addf("posting %d (%s) entries sum to %d", id, p.Key, sum)
			}
			if p.Kind != store.KindCertify && len(p.Entries) == 0 {
				probs.Addf("posting %d (%s) moves no money", id, p.Key)
			}
			if v := keys.Get(keyBytes(p.Key)); !bytes.Equal(v, u64(id)) {
				probs.Addf("posting %d: key %s not indexed to it", id, p.Key)
			}
			if byDay.Get(append([]byte(p.Day), u64(id)...)) == nil {
				probs.Addf("posting %d: missing from the day index", id)
			}
			if p.Counter != nil {
				nCounters++
				if v := counters.Get(counterKey(p.CardID, *p.Counter)); !bytes.Equal(v, u64(id)) {
					probs.Addf("posting %d: card counter %s %d not recorded for it", id, p.Counter.Type, p.Counter.Value)
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		if n := keys.Stats().KeyN; n != nPostings {
			probs.Addf("%d keys indexed for %d postings", n, nPostings)
		}
		if n := byDay.Stats().KeyN; n != nPostings {
			probs.Addf("%d day index entries for %d postings", n, nPostings)
		}
		if n := counters.Stats().KeyN; n != nCounters {
			probs.Addf("%d counter values recorded for %d postings with a counter", n, nCounters)
		}
		seen := map[string]bool{}
		err = tx.Bucket(bAccounts).ForEach(func(k, v []byte) error {
			name := string(k)
			seen[name] = true
			b, err := getU64(v, "balance")
			if err != nil {
				probs.Addf("account %s: %v", name, err)
				return nil
			}
			bal := int64(b)
			if bal != sums[name] {
				probs.Addf("account %s balance %d, entries sum to %d", name, bal, sums[name])
			}
			if bal < 0 && !store.AllowsNegative(name) {
				probs.Addf("account %s negative (%d)", name, bal)
			}
			return nil
		})
		if err != nil {
			return err
		}
		for name, sum := range sums {
			if !seen[name] {
				probs.Addf("account %s has entries (sum %d) but no balance", name, sum)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := probs.Err(); err != nil {
		return fmt.Errorf("check ledger: %w", err)
	}
	return nil
}
