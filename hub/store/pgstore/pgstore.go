// Package pgstore is the hub store on PostgreSQL (pgx/v5, pgxpool), for
// one or several hub processes sharing a database. The schema is created
// and upgraded by [Migrate] (embedded, versioned SQL files under
// migrations/), which [Open] runs.
//
// # Exactly once, with several hubs
//
// Uniqueness is the database's: UNIQUE (terminal_no, terminal_seq) and
// UNIQUE (ref) on postings, PRIMARY KEY (card_id, counter_type, value) on
// card_counters, CHECK (allow_negative OR balance >= 0) on accounts. Each
// Post batch is one READ COMMITTED transaction that
//
//  1. takes, in ascending order, a transaction-scoped advisory lock
//     (pg_advisory_xact_lock(bigint)) per posting key and per card counter
//     value of the batch (the first 8 bytes of a SHA-256), so no two hubs
//     work on the same key or counter at once;
//  2. locks, in ascending name order, every account the batch touches
//     (INSERT ... ON CONFLICT DO UPDATE, which creates or row-locks it) and
//     reads its balance;
//  3. reads the postings and counter values that already exist for the
//     batch's keys and counters, decides each posting in order in Go
//     (duplicate, conflict, counter reuse, insufficient funds, or posted),
//     then writes the accepted ones and the balance changes, and commits.
//
// Every transaction takes its locks in one global order (key and counter
// locks by number, then account rows by name), so hubs cannot deadlock
// each other; should PostgreSQL still report a serialization failure, a
// deadlock or a unique violation, the whole batch is retried (bounded,
// with backoff), and the retry sees the committed state. The accepted
// postings, their entries and counter values are written with three bulk
// INSERTs (unnest of column arrays) under IDs drawn from the sequence
// beforehand: a batch costs five round trips whatever its size.
//
// A broken connection (PostgreSQL restarted, the network dropped) is
// retried once on a fresh connection, by every method: reads always;
// Post always, since it is idempotent by key (a batch whose first commit
// went through reports Duplicate); PutTotals and SetLost likewise;
// other writes only when the failure came before the commit was sent.
// A second failure is returned to the caller: the batch either committed
// or not, and posting it again is always safe (Duplicate).
package pgstore

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/onecard-hub/onecard/hub/store"
	"github.com/onecard-hub/onecard/terminal/record"
)

// Options configure Open. Zero values are safe defaults.
type Options struct {
	// DSN is a pgx connection string (used when Pool is nil).
	DSN string
	// Pool is an existing pool to use instead of DSN; Close leaves it open.
	// After a broken connection the store drops the pool's idle
	// connections (Pool.Reset) before its one retry.
	Pool *pgxpool.Pool
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Retries bounds the retries of a batch after a serialization failure
	// or deadlock (default 10).
	Retries int
	// NoMigrate skips Migrate in Open (the schema must be current).
	NoMigrate bool
}

// Store is a store.Store on PostgreSQL.
type Store struct {
	pool    *pgxpool.Pool
	ownPool bool
	now     func() time.Time
	retries int
}

var _ store.Store = (*Store)(nil)

// Open connects, migrates the schema and returns the store. Errors: the
// connection's, Migrate's.
func Open(ctx context.Context, opts Options) (*Store, error) {
	s := &Store{pool: opts.Pool, now: opts.Now, retries: opts.Retries}
	if s.now == nil {
		s.now = time.Now
	}
	if s.retries <= 0 {
		s.retries = 10
	}
	if s.pool == nil {
		if opts.DSN == "" {
			return nil, fmt.Errorf("open postgres store: %w: no DSN", store.ErrInvalid)
		}
		pool, err := pgxpool.New(ctx, opts.DSN)
		if err != nil {
			return nil, fmt.Errorf("open postgres store: %w", err)
		}
		s.pool, s.ownPool = pool, true
	}
	if !opts.NoMigrate {
		if err := Migrate(ctx, s.pool); err != nil {
			s.Close()
			return nil, fmt.Errorf("open postgres store: %w", err)
		}
	}
	return s, nil
}

// Pool returns the connection pool.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Close closes the pool if Open created it.
func (s *Store) Close() error {
	if s.ownPool {
		s.pool.Close()
	}
	return nil
}

func (s *Store) clock() time.Time { return s.now().UTC().Truncate(time.Microsecond) }

// retryable: serialization failure, deadlock, unique violation (another
// hub won a race the locks should have prevented; the retry sees its row).
func retryable(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "40001", "40P01", "23505":
			return true
		}
	}
	return false
}

func lockID(tag byte, b []byte) int64 {
	h := sha256.New()
	h.Write([]byte{tag})
	h.Write(b)
	return int64(binary.BigEndian.Uint64(h.Sum(nil)))
}

func keyLock(k store.Key) int64 {
	if k.Ref != "" {
		return lockID('R', []byte(k.Ref))
	}
	return lockID('T', binary.BigEndian.AppendUint64([]byte(k.TerminalNo), k.TerminalSeq))
}

func counterLock(card record.CardID, c store.Counter) int64 {
	return lockID('C', binary.BigEndian.AppendUint16(append(card[:], byte(c.Type)), c.Value))
}

// nullable column helpers

func keyCols(k store.Key) (tn *string, seq *int64, ref *string) {
	if k.Ref != "" {
		r := k.Ref
		return nil, nil, &r
	}
	t, q := k.TerminalNo, int64(k.TerminalSeq)
	return &t, &q, nil
}

func colsKey(tn *string, seq *int64, ref *string) store.Key {
	if ref != nil {
		return store.RefKey(*ref)
	}
	var k store.Key
	if tn != nil {
		k.TerminalNo = *tn
	}
	if seq != nil {
		k.TerminalSeq = uint64(*seq)
	}
	return k
}

func cardCol(c record.CardID) []byte {
	if c.IsZero() {
		return nil
	}
	return append([]byte(nil), c[:]...)
}

func colCard(b []byte) (record.CardID, error) {
	var c record.CardID
	if b == nil {
		return c, nil
	}
	if len(b) != len(c) {
		return c, fmt.Errorf("card ID column: %w: %d bytes", store.ErrCorrupt, len(b))
	}
	copy(c[:], b)
	return c, nil
}

// ---- Post ----

type counterRef struct {
	card record.CardID
	c    store.Counter
}

// Post implements store.Store.
func (s *Store) Post(ctx context.Context, ps []*store.Posting) ([]store.Result, error) {
	res := make([]store.Result, len(ps))
	var todo []int
	for i, p := range ps {
		if err := p.Validate(); err != nil {
			res[i].Err = fmt.Errorf("post: %w", err)
		} else {
			todo = append(todo, i)
		}
	}
	if len(todo) == 0 {
		return res, nil
	}
	reconnected := false
	for attempt := 0; ; attempt++ {
		got, err := s.postOnce(ctx, ps, todo)
		if err == nil {
			for _, i := range todo {
				res[i] = got[i]
			}
			return res, nil
		}
		if brokenConn(err) && !reconnected && ctx.Err() == nil {
			// Post is idempotent by key: even when the commit's outcome
			// is unknown, the retry is safe (and reports Duplicate for
			// what the first attempt committed).
			reconnected = true
			s.pool.Reset()
			continue
		}
		if !retryable(err) || attempt >= s.retries || ctx.Err() != nil {
			return nil, fmt.Errorf("post: %w", err)
		}
		backoff := time.Duration(1+rand.IntN(1<<min(attempt, 6))) * time.Millisecond
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("post: %w", ctx.Err())
		case <-time.After(backoff):
		}
	}
}

func (s *Store) postOnce(ctx context.Context, ps []*store.Posting, todo []int) (res []store.Result, err error) {
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.ReadCommitted})
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback(context.WithoutCancel(ctx))
		}
	}()

	// 1 + 2: advisory locks, then account rows, in one ordered pipeline.
	lockSet := map[int64]bool{}
	accSet := map[string]bool{}
	for _, i := range todo {
		p := ps[i]
		lockSet[keyLock(p.Key)] = true
		if p.Counter != nil {
			lockSet[counterLock(p.CardID, *p.Counter)] = true
		}
		for _, e := range p.Entries {
			accSet[e.Account] = true
		}
	}
	locks := make([]int64, 0, len(lockSet))
	for l := range lockSet {
		locks = append(locks, l)
	}
	sort.Slice(locks, func(i, j int) bool { return locks[i] < locks[j] })
	accs := make([]string, 0, len(accSet))
	for a := range accSet {
		accs = append(accs, a)
	}
	sort.Strings(accs)
	b := &pgx.Batch{}
	for _, l := range locks {
		b.Queue("SELECT pg_advisory_xact_lock($1)", l)
	}
	for _, a := range accs {
		b.Queue(`INSERT INTO accounts (id, allow_negative) VALUES ($1, $2)
			ON CONFLICT (id) DO UPDATE SET balance = accounts.balance RETURNING balance`, a, store.AllowsNegative(a))
	}
	balances := make(map[string]int64, len(accs))
	br := tx.SendBatch(ctx, b)
	for range locks {
		if _, err := br.Exec(); err != nil {
			br.Close()
			return nil, err
		}
	}
	for _, a := range accs {
		var bal int64
		if err := br.QueryRow().Scan(&bal); err != nil {
			br.Close()
			return nil, err
		}
		balances[a] = bal
	}
	if err := br.Close(); err != nil {
		return nil, err
	}

	// 3: what exists already.
	existing, usedBy, ids, err := s.lookup(ctx, tx, ps, todo)
	if err != nil {
		return nil, err
	}

	// Decide in order.
	res = make([]store.Result, len(ps))
	now := s.clock()
	var accepted []int
	var w writes
	delta := map[string]int64{}
	inBatch := map[store.Key]int{} // key → index of the accepted posting
	for _, i := range todo {
		p := ps[i]
		if old, ok := existing[p.Key]; ok {
			if string(old.content) != string(p.Content) {
				res[i].Err = fmt.Errorf("post: %w", &store.ConflictError{Key: p.Key, ExistingID: old.id})
			} else {
				res[i] = store.Result{Outcome: store.Duplicate, ID: old.id}
			}
			continue
		}
		if j, ok := inBatch[p.Key]; ok {
			if string(ps[j].Content) != string(p.Content) {
				res[i].Err = fmt.Errorf("post: %w", &store.ConflictError{Key: p.Key, ExistingID: res[j].ID})
			} else {
				res[i] = store.Result{Outcome: store.Duplicate, ID: res[j].ID}
			}
			continue
		}
		if p.Counter != nil {
			if other, ok := usedBy[counterRef{p.CardID, *p.Counter}]; ok {
				res[i].Err = fmt.Errorf("post: %w", &store.CounterReuseError{CardID: p.CardID, Counter: *p.Counter, Key: p.Key, Other: other})
				continue
			}
		}
		var reject error
		for _, e := range p.Entries {
			bal := balances[e.Account] + delta[e.Account]
			nb := bal + e.Amount
			if (e.Amount > 0 && nb < bal) || (e.Amount < 0 && nb > bal) {
				reject = fmt.Errorf("post: %w: account %s balance overflow", store.ErrInvalid, e.Account)
				break
			}
			if nb < 0 && !store.AllowsNegative(e.Account) {
				reject = fmt.Errorf("post: %w", &store.InsufficientFundsError{Key: p.Key, Account: e.Account, Balance: bal, Delta: e.Amount})
				break
			}
		}
		if reject != nil {
			res[i].Err = reject
			continue
		}
		for _, e := range p.Entries {
			delta[e.Account] += e.Amount
		}
		inBatch[p.Key] = i
		if p.Counter != nil {
			usedBy[counterRef{p.CardID, *p.Counter}] = p.Key
		}
		res[i] = store.Result{Outcome: store.Posted, ID: ids[len(accepted)]}
		accepted = append(accepted, i)
		w.add(p, res[i].ID)
	}
	if len(accepted) > 0 {
		names := make([]string, 0, len(delta))
		for a := range delta {
			names = append(names, a)
		}
		sort.Strings(names)
		amts := make([]int64, len(names))
		for k, a := range names {
			amts[k] = delta[a]
		}
		wb := w.batch(now)
		wb.Queue(`UPDATE accounts a SET balance = a.balance + u.d
			FROM unnest($1::text[], $2::bigint[]) AS u(id, d) WHERE a.id = u.id`, names, amts)
		if err := tx.SendBatch(ctx, wb).Close(); err != nil {
			return nil, err
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, err
	}
	return res, nil
}

// writes gathers the accepted postings of a batch as column arrays, for
// three bulk INSERTs (postings, entries, card_counters) with IDs taken
// from the sequence beforehand.
type writes struct {
	ids                  []int64
	tns, refs            []*string
	seqs                 []*int64
	kinds                []int16
	days, parties, funds []string
	cards                [][]byte
	amounts              []int64
	ctypes               []*int16
	cvals                []*int32
	contents             [][]byte

	ePosting []int64
	eAccount []string
	eAmount  []int64
	eOrd     []int16

	cCard    [][]byte
	cType    []int16
	cValue   []int32
	cPosting []int64
}

func (w *writes) add(p *store.Posting, id uint64) {
	tn, seq, ref := keyCols(p.Key)
	var ctype *int16
	var cval *int32
	if p.Counter != nil {
		t, v := int16(p.Counter.Type), int32(p.Counter.Value)
		ctype, cval = &t, &v
		w.cCard = append(w.cCard, append([]byte(nil), p.CardID[:]...))
		w.cType, w.cValue, w.cPosting = append(w.cType, t), append(w.cValue, v), append(w.cPosting, int64(id))
	}
	w.ids = append(w.ids, int64(id))
	w.tns, w.seqs, w.refs = append(w.tns, tn), append(w.seqs, seq), append(w.refs, ref)
	w.kinds = append(w.kinds, int16(p.Kind))
	w.days, w.parties, w.funds = append(w.days, p.Day), append(w.parties, p.Party), append(w.funds, p.Fund)
	w.cards = append(w.cards, cardCol(p.CardID))
	w.amounts = append(w.amounts, p.Amount)
	w.ctypes, w.cvals = append(w.ctypes, ctype), append(w.cvals, cval)
	w.contents = append(w.contents, p.Content)
	for k, e := range p.Entries {
		w.ePosting = append(w.ePosting, int64(id))
		w.eAccount = append(w.eAccount, e.Account)
		w.eAmount = append(w.eAmount, e.Amount)
		w.eOrd = append(w.eOrd, int16(k+1))
	}
}

func (w *writes) batch(now time.Time) *pgx.Batch {
	b := &pgx.Batch{}
	b.Queue(`INSERT INTO postings (id, terminal_no, terminal_seq, ref, kind, day, card_id, party, fund, amount,
			counter_type, counter_value, content, posted_at)
		SELECT u.id, u.tn, u.seq, u.ref, u.kind, to_date(u.day, 'YYYYMMDD'), u.card, u.party, u.fund, u.amount,
			u.ctype, u.cval, u.content, $13
		FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::text[], $5::smallint[], $6::text[], $7::bytea[],
			$8::text[], $9::text[], $10::bigint[], $11::smallint[], $12::integer[], $14::bytea[])
			AS u(id, tn, seq, ref, kind, day, card, party, fund, amount, ctype, cval, content)`,
		w.ids, w.tns, w.seqs, w.refs, w.kinds, w.days, w.cards, w.parties, w.funds, w.amounts, w.ctypes, w.cvals, now, w.contents)
	if len(w.ePosting) > 0 {
		b.Queue(`INSERT INTO entries (posting_id, account_id, amount, ord)
			SELECT * FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::smallint[])`,
			w.ePosting, w.eAccount, w.eAmount, w.eOrd)
	}
	if len(w.cPosting) > 0 {
		b.Queue(`INSERT INTO card_counters (card_id, counter_type, value, posting_id)
			SELECT * FROM unnest($1::bytea[], $2::smallint[], $3::integer[], $4::bigint[])`,
			w.cCard, w.cType, w.cValue, w.cPosting)
	}
	return b
}

type existingPosting struct {
	id      uint64
	content []byte
}

// lookup returns the stored postings among the batch's keys and the keys
// that used the batch's counter values.
//
// It also draws len(todo) IDs from the postings sequence, in ascending
// order, for the postings that will be accepted (unused ones are skipped).
func (s *Store) lookup(ctx context.Context, tx pgx.Tx, ps []*store.Posting, todo []int) (map[store.Key]existingPosting, map[counterRef]store.Key, []uint64, error) {
	var tns, refs []string
	var seqs []int64
	var cards [][]byte
	var ctypes []int16
	var cvals []int32
	for _, i := range todo {
		p := ps[i]
		if p.Key.Ref != "" {
			refs = append(refs, p.Key.Ref)
		} else {
			tns = append(tns, p.Key.TerminalNo)
			seqs = append(seqs, int64(p.Key.TerminalSeq))
		}
		if p.Counter != nil {
			cards = append(cards, p.CardID[:])
			ctypes = append(ctypes, int16(p.Counter.Type))
			cvals = append(cvals, int32(p.Counter.Value))
		}
	}
	b := &pgx.Batch{}
	b.Queue(`SELECT id, terminal_no, terminal_seq, ref, content FROM postings
		WHERE (terminal_no, terminal_seq) IN (SELECT * FROM unnest($1::text[], $2::bigint[]))
		   OR ref = ANY($3::text[])`, tns, seqs, refs)
	b.Queue(`SELECT c.card_id, c.counter_type, c.value, p.terminal_no, p.terminal_seq, p.ref
		FROM card_counters c JOIN postings p ON p.id = c.posting_id
		WHERE (c.card_id, c.counter_type, c.value) IN (SELECT * FROM unnest($1::bytea[], $2::smallint[], $3::integer[]))`,
		cards, ctypes, cvals)
	b.Queue("SELECT nextval('postings_id_seq') FROM generate_series(1, $1::integer)", len(todo))
	br := tx.SendBatch(ctx, b)
	defer br.Close()
	existing := map[store.Key]existingPosting{}
	rows, err := br.Query()
	if err != nil {
		return nil, nil, nil, err
	}
	for rows.Next() {
		var id int64
		var tn, ref *string
		var seq *int64
		var content []byte
		if err := rows.Scan(&id, &tn, &seq, &ref, &content); err != nil {
			rows.Close()
			return nil, nil, nil, err
		}
		existing[colsKey(tn, seq, ref)] = existingPosting{id: uint64(id), content: content}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, nil, nil, err
	}
	usedBy := map[counterRef]store.Key{}
	rows, err = br.Query()
	if err != nil {
		return nil, nil, nil, err
	}
	for rows.Next() {
		var cardB []byte
		var ct int16
		var cv int32
		var tn, ref *string
		var seq *int64
		if err := rows.Scan(&cardB, &ct, &cv, &tn, &seq, &ref); err != nil {
			rows.Close()
			return nil, nil, nil, err
		}
		card, err := colCard(cardB)
		if err != nil {
			rows.Close()
			return nil, nil, nil, err
		}
		usedBy[counterRef{card, store.Counter{Type: store.CounterType(ct), Value: uint16(cv)}}] = colsKey(tn, seq, ref)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, nil, nil, err
	}
	rows, err = br.Query()
	if err != nil {
		return nil, nil, nil, err
	}
	raw, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, nil, nil, err
	}
	ids := make([]uint64, len(raw))
	for k, id := range raw {
		ids[k] = uint64(id)
	}
	sort.Slice(ids, func(a, b int) bool { return ids[a] < ids[b] })
	if len(ids) != len(todo) {
		return nil, nil, nil, fmt.Errorf("allocate posting IDs: got %d, want %d", len(ids), len(todo))
	}
	return existing, usedBy, ids, br.Close()
}
