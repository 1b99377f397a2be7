// Package boltstore is the embedded hub store: a single bbolt file, for a
// hub that runs as one process (bbolt locks the file; a second process
// waits Options.Timeout, then fails).
//
// Every Post batch is one bbolt read-write transaction (one fsync). bbolt
// has no savepoints, so each posting is checked completely (key, counter,
// balances) before any of its writes: a rejected posting leaves nothing
// behind, and later postings of the batch see the earlier ones. Writers
// are serialised by bbolt, which gives exactly-once without further
// locking.
//
// Layout (bucket: key → value; integers big-endian):
//
//	meta:       "lostversion" → u64
//	postings:   id u64 → posting (codec.go)
//	keys:       'T' terminal(12) seq u64 | 'R' ref → id u64
//	byday:      day(8) id u64 → ""
//	accounts:   name → balance i64
//	counters:   card(16) type(1) value u16 → id u64
//	programmes: id → programme
//	terminals:  number → terminal
//	lost:       card(16) → lost(1) version u64
//	lostver:    version u64 → card(16)
//	dead:       id u64 → dead letter;  deadkey: key ‖ SHA-256(content) → id u64
//	totals:     day(8) terminal(12) → totals
//	nonces:     nonce → expiry u64 (Unix ns); nonceexp: expiry u64 ‖ nonce → ""
//
// Values that do not decode are reported as store.ErrCorrupt.
package boltstore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/onecard-hub/onecard/hub/store"
	"github.com/onecard-hub/onecard/terminal/record"
)

var (
	bMeta       = []byte("meta")
	bPostings   = []byte("postings")
	bKeys       = []byte("keys")
	bByDay      = []byte("byday")
	bAccounts   = []byte("accounts")
	bCounters   = []byte("counters")
	bProgrammes = []byte("programmes")
	bTerminals  = []byte("terminals")
	bLost       = []byte("lost")
	bLostVer    = []byte("lostver")
	bDead       = []byte("dead")
	bDeadKey    = []byte("deadkey")
	bTotals     = []byte("totals")
	bNonces     = []byte("nonces")
	bNonceExp   = []byte("nonceexp")

	allBuckets = [][]byte{bMeta, bPostings, bKeys, bByDay, bAccounts, bCounters, bProgrammes, bTerminals,
		bLost, bLostVer, bDead, bDeadKey, bTotals, bNonces, bNonceExp}

	kLostVersion = []byte("lostversion")
)

// Options configure Open. The zero value of every field but Path is a safe
// default.
type Options struct {
	// Path of the database file (created 0600 if missing).
	Path string
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Timeout bounds the wait for the file lock (default 5 s).
	Timeout time.Duration
	// NoSync skips fsync on commit: for tests and benchmarks only (a crash
	// may lose or corrupt the ledger).
	NoSync bool
}

// Store is a store.Store on a bbolt file.
type Store struct {
	db  *bolt.DB
	now func() time.Time
}

var _ store.Store = (*Store)(nil)

// Open opens (creating if needed) the database at opts.Path. Errors: the
// file's, or ErrCorrupt-wrapping errors from bbolt.
func Open(opts Options) (*Store, error) {
	if opts.Path == "" {
		return nil, fmt.Errorf("open bolt store: %w: no path", store.ErrInvalid)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 5 * time.Second
	}
	if err := os.MkdirAll(filepath.Dir(opts.Path), 0o700); err != nil {
		return nil, fmt.Errorf("open bolt store: %w", err)
	}
	db, err := bolt.Open(opts.Path, 0o600, &bolt.Options{Timeout: opts.Timeout, NoSync: opts.NoSync})
	if err != nil {
		return nil, fmt.Errorf("open bolt store: %w", err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open bolt store: %w", err)
	}
	return &Store{db: db, now: opts.Now}, nil
}

// Close closes the file.
func (s *Store) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close bolt store: %w", err)
	}
	return nil
}

func u64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

func getU64(b []byte, what string) (uint64, error) {
	if len(b) != 8 {
		return 0, fmt.Errorf("decode %s: %w: %d bytes", what, store.ErrCorrupt, len(b))
	}
	return binary.BigEndian.Uint64(b), nil
}

func keyBytes(k store.Key) []byte {
	if k.Ref != "" {
		return append([]byte{'R'}, k.Ref...)
	}
	b := append([]byte{'T'}, k.TerminalNo...)
	return binary.BigEndian.AppendUint64(b, k.TerminalSeq)
}

func counterKey(card record.CardID, c store.Counter) []byte {
	b := append(append([]byte(nil), card[:]...), byte(c.Type))
	return binary.BigEndian.AppendUint16(b, c.Value)
}

func (s *Store) view(ctx context.Context, verb string, fn func(tx *bolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: %w", verb, err)
	}
	if err := s.db.View(fn); err != nil {
		return fmt.Errorf("%s: %w", verb, err)
	}
	return nil
}

func (s *Store) update(ctx context.Context, verb string, fn func(tx *bolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: %w", verb, err)
	}
	if err := s.db.Update(fn); err != nil {
		return fmt.Errorf("%s: %w", verb, err)
	}
	return nil
}

// ---- ledger ----

// Post implements store.Store.
func (s *Store) Post(ctx context.Context, ps []*store.Posting) ([]store.Result, error) {
	res := make([]store.Result, len(ps))
	valid := make([]bool, len(ps))
	for i, p := range ps {
		if err := p.Validate(); err != nil {
			res[i].Err = fmt.Errorf("post: %w", err)
		} else {
			valid[i] = true
		}
	}
	now := normTime(s.now())
	err := s.update(ctx, "post", func(tx *bolt.Tx) error {
		for i, p := range ps {
			if !valid[i] {
				continue
			}
			r, err := apply(tx, p, now)
			if err != nil {
				return err
			}
			res[i] = r
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

// apply checks p against the state in tx and, when it passes, writes it.
// Rejections come back in the Result; the error is for I/O or corruption
// (the transaction is then abandoned).
func apply(tx *bolt.Tx, p *store.Posting, now time.Time) (store.Result, error) {
	kb := keyBytes(p.Key)
	keys := tx.Bucket(bKeys)
	if v := keys.Get(kb); v != nil {
		id, err := getU64(v, "key index")
		if err != nil {
			return store.Result{}, err
		}
		old, err := getPosting(tx, id)
		if err != nil {
			return store.Result{}, err
		}
		if !bytes.Equal(old.Content, p.Content) {
			return store.Result{Err: fmt.Errorf("post: %w", &store.ConflictError{Key: p.Key, ExistingID: id})}, nil
		}
		return store.Result{Outcome: store.Duplicate, ID: id}, nil
	}
	counters := tx.Bucket(bCounters)
	var ck []byte
	if p.Counter != nil {
		ck = counterKey(p.CardID, *p.Counter)
		if v := counters.Get(ck); v != nil {
			id, err := getU64(v, "counter")
			if err != nil {
				return store.Result{}, err
			}
			other, err := getPosting(tx, id)
			if err != nil {
				return store.Result{}, err
			}
			return store.Result{Err: fmt.Errorf("post: %w", &store.CounterReuseError{
				CardID: p.CardID, Counter: *p.Counter, Key: p.Key, Other: other.Key})}, nil
		}
	}
	accounts := tx.Bucket(bAccounts)
	newBal := make([]int64, len(p.Entries))
	for i, e := range p.Entries {
		bal, err := balance(accounts, e.Account)
		if err != nil {
			return store.Result{}, err
		}
		nb := bal + e.Amount
		if (e.Amount > 0 && nb < bal) || (e.Amount < 0 && nb > bal) {
			return store.Result{Err: fmt.Errorf("post: %w: account %s balance overflow", store.ErrInvalid, e.Account)}, nil
		}
		if nb < 0 && !store.AllowsNegative(e.Account) {
			return store.Result{Err: fmt.Errorf("post: %w", &store.InsufficientFundsError{
				Key: p.Key, Account: e.Account, Balance: bal, Delta: e.Amount})}, nil
		}
		newBal[i] = nb
	}
	// Every check passed: write.
	pb := tx.Bucket(bPostings)
	id, err := pb.NextSequence()
	if err != nil {
		return store.Result{}, err
	}
	q := *p
	q.ID, q.PostedAt = id, now
	if err := pb.Put(u64(id), encodePosting(&q)); err != nil {
		return store.Result{}, err
	}
	if err := keys.Put(kb, u64(id)); err != nil {
		return store.Result{}, err
	}
	if err := tx.Bucket(bByDay).Put(append([]byte(p.Day), u64(id)...), nil); err != nil {
		return store.Result{}, err
	}
	if ck != nil {
		if err := counters.Put(ck, u64(id)); err != nil {
			return store.Result{}, err
		}
	}
	for i, e := range p.Entries {
		if err := accounts.Put([]byte(e.Account), u64(uint64(newBal[i]))); err != nil {
			return store.Result{}, err
		}
	}
	return store.Result{Outcome: store.Posted, ID: id}, nil
}

func balance(accounts *bolt.Bucket, name string) (int64, error) {
	v := accounts.Get([]byte(name))
	if v == nil {
		return 0, nil
	}
	b, err := getU64(v, "balance")
	return int64(b), err
}

func getPosting(tx *bolt.Tx, id uint64) (*store.Posting, error) {
	v := tx.Bucket(bPostings).Get(u64(id))
	if v == nil {
		return nil, fmt.Errorf("posting %d: %w: indexed but missing", id, store.ErrCorrupt)
	}
	p, err := decodePosting(v)
	if err != nil {
		return nil, err
	}
	if p.ID != id {
		return nil, fmt.Errorf("posting %d: %w: stored under another ID", id, store.ErrCorrupt)
	}
	return p, nil
}

// Posting implements store.Store.
func (s *Store) Posting(ctx context.Context, k store.Key) (*store.Posting, error) {
	var p *store.Posting
	err := s.view(ctx, "get posting", func(tx *bolt.Tx) error {
		v := tx.Bucket(bKeys).Get(keyBytes(k))
		if v == nil {
			return fmt.Errorf("%s: %w", k, store.ErrNotFound)
		}
		id, err := getU64(v, "key index")
		if err != nil {
			return err
		}
		p, err = getPosting(tx, id)
		return err
	})
	return p, err
}

func limit(n int) int {
	if n <= 0 {
		return 1000
	}
	return n
}

func matches(q store.Query, p *store.Posting) bool {
	return (q.Day == "" || p.Day == q.Day) && (q.TerminalNo == "" || p.Key.TerminalNo == q.TerminalNo) &&
		(q.CardID.IsZero() || p.CardID == q.CardID) && p.ID > q.AfterID
}

// Postings implements store.Store. With a Day it walks that day's index,
// otherwise every posting from AfterID on.
func (s *Store) Postings(ctx context.Context, q store.Query) ([]*store.Posting, error) {
	if q.Day != "" && !store.ValidDay(q.Day) {
		return nil, fmt.Errorf("list postings: %w: day", store.ErrInvalid)
	}
	var out []*store.Posting
	n := limit(q.Limit)
	err := s.view(ctx, "list postings", func(tx *bolt.Tx) error {
		take := func(id uint64) (bool, error) {
			p, err := getPosting(tx, id)
			if err != nil {
				return false, err
			}
			if matches(q, p) {
				out = append(out, p)
			}
			return len(out) < n, ctx.Err()
		}
		if q.Day != "" {
			c := tx.Bucket(bByDay).Cursor()
			prefix := []byte(q.Day)
			for k, _ := c.Seek(append(append([]byte(nil), prefix...), u64(q.AfterID+1)...)); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
				id, err := getU64(k[len(prefix):], "day index")
				if err != nil {
					return err
				}
				if more, err := take(id); err != nil || !more {
					return err
				}
			}
			return nil
		}
		c := tx.Bucket(bPostings).Cursor()
		for k, _ := c.Seek(u64(q.AfterID + 1)); k != nil; k, _ = c.Next() {
			id, err := getU64(k, "posting ID")
			if err != nil {
				return err
			}
			if more, err := take(id); err != nil || !more {
				return err
			}
		}
		return nil
	})
	return out, err
}

// dayPostings calls fn with every posting of day.
func dayPostings(tx *bolt.Tx, day string, fn func(p *store.Posting) error) error {
	c := tx.Bucket(bByDay).Cursor()
	prefix := []byte(day)
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		id, err := getU64(k[len(prefix):], "day index")
		if err != nil {
			return err
		}
		p, err := getPosting(tx, id)
		if err != nil {
			return err
		}
		if err := fn(p); err != nil {
			return err
		}
	}
	return nil
}

// Summary implements store.Store.
func (s *Store) Summary(ctx context.Context, day string) ([]store.SummaryLine, error) {
	if !store.ValidDay(day) {
		return nil, fmt.Errorf("summarise day: %w: day", store.ErrInvalid)
	}
	type group struct {
		kind                  store.Kind
		terminal, party, fund string
	}
	sums := map[group]*store.SummaryLine{}
	err := s.view(ctx, "summarise day", func(tx *bolt.Tx) error {
		return dayPostings(tx, day, func(p *store.Posting) error {
			g := group{p.Kind, p.Key.TerminalNo, p.Party, p.Fund}
			l := sums[g]
			if l == nil {
				l = &store.SummaryLine{Kind: p.Kind, TerminalNo: p.Key.TerminalNo, Party: p.Party, Fund: p.Fund}
				sums[g] = l
			}
			l.Count++
			l.Amount += p.Amount
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	out := make([]store.SummaryLine, 0, len(sums))
	for _, l := range sums {
		out = append(out, *l)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Kind != b.Kind {
			return a.Kind < b.Kind
		}
		if a.TerminalNo != b.TerminalNo {
			return a.TerminalNo < b.TerminalNo
		}
		if a.Party != b.Party {
			return a.Party < b.Party
		}
		return a.Fund < b.Fund
	})
	return out, nil
}

// Balance implements store.Store.
func (s *Store) Balance(ctx context.Context, account string) (int64, error) {
	var b int64
	err := s.view(ctx, "read balance", func(tx *bolt.Tx) error {
		var err error
		b, err = balance(tx.Bucket(bAccounts), account)
		return err
	})
	return b, err
}

// Gaps implements store.Store.
func (s *Store) Gaps(ctx context.Context, day string) ([]store.Gap, error) {
	if !store.ValidDay(day) {
		return nil, fmt.Errorf("list counter gaps: %w: day", store.ErrInvalid)
	}
	type series struct {
		card record.CardID
		typ  store.CounterType
	}
	var out []store.Gap
	err := s.view(ctx, "list counter gaps", func(tx *bolt.Tx) error {
		seen := map[series]bool{}
		var all []series
		err := dayPostings(tx, day, func(p *store.Posting) error {
			if p.Counter != nil {
				k := series{p.CardID, p.Counter.Type}
				if !seen[k] {
					seen[k] = true
					all = append(all, k)
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		sort.Slice(all, func(i, j int) bool {
			if c := bytes.Compare(all[i].card[:], all[j].card[:]); c != 0 {
				return c < 0
			}
			return all[i].typ < all[j].typ
		})
		c := tx.Bucket(bCounters).Cursor()
		for _, sr := range all {
			prefix := append(append([]byte(nil), sr.card[:]...), byte(sr.typ))
			var prevVal uint16
			var prevID uint64
			first := true
			for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
				if len(k) != len(prefix)+2 {
					return fmt.Errorf("decode counter key: %w", store.ErrCorrupt)
				}
				val := binary.BigEndian.Uint16(k[len(prefix):])
				id, err := getU64(v, "counter")
				if err != nil {
					return err
				}
				if !first && val > prevVal+1 {
					before, err := getPosting(tx, prevID)
					if err != nil {
						return err
					}
					after, err := getPosting(tx, id)
					if err != nil {
						return err
					}
					out = append(out, store.Gap{CardID: sr.card, Type: sr.typ, From: prevVal + 1, To: val - 1,
						Before: before.Key, After: after.Key})
				}
				first, prevVal, prevID = false, val, id
			}
		}
		return nil
	})
	return out, err
}

// hashKey is the dead-letter index key: posting key ‖ SHA-256(content).
func deadKey(k store.Key, content []byte) []byte {
	h := sha256.Sum256(content)
	kb := keyBytes(k)
	return append(binary.BigEndian.AppendUint16(nil, uint16(len(kb))), append(kb, h[:]...)...)
}
