// Package migrate copies a hub store into another one, e.g. a bbolt file
// into PostgreSQL when a hub outgrows one process: postings (with their
// entries and card counter values, in the source's posting order, with
// their posting times), programmes, terminals (state, enrolment token
// hash, public key, acknowledged sequence), the lost-card list (each
// card's latest change and the list version), dead letters and terminal
// totals. Nonces are not copied: they expire within minutes.
//
// Copy is idempotent: every record is keyed (postings by their key, which
// Post answers with Duplicate; the others by their natural identity), so
// running it again after an interruption copies only what is missing and
// nothing twice. It refuses a target that holds data unless
// Options.Resume, and ends by verifying the target: ledger invariants
// (Check), each day's summary and each account's balance equal to the
// source's.
package migrate

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/onecard-hub/onecard/hub/store"
)

// Target is a store that can take records with their identities and
// times kept (pgstore.Store is one).
type Target interface {
	store.Store
	// Empty reports whether the store holds no data at all.
	Empty(ctx context.Context) (bool, error)
	// The Restore methods store a record as it is and report whether they
	// did (false: it was present already, left alone).
	RestoreProgramme(ctx context.Context, p store.Programme) (bool, error)
	RestoreTerminal(ctx context.Context, t store.Terminal) (bool, error)
	RestoreLostCards(ctx context.Context, l store.LostList) (int, error)
	RestoreDeadLetter(ctx context.Context, d store.DeadLetter) (bool, error)
	RestoreTotals(ctx context.Context, t store.Totals) (bool, error)
	RestorePostedAt(ctx context.Context, ids []uint64, at []time.Time) error
}

// Errors.
var (
	// ErrNotEmpty: the target holds data and Options.Resume is not set.
	ErrNotEmpty = errors.New("target store is not empty")
	// ErrMismatch: after copying, the target differs from the source.
	ErrMismatch = errors.New("target differs from source")
)

// Options configure Copy. The zero value is safe.
type Options struct {
	// Resume allows a non-empty target: an interrupted or repeated copy
	// into the same target (what is there already is kept).
	Resume bool
	// Batch is the number of postings read and posted at a time
	// (default 200).
	Batch int
	// Now is the clock bounding the days searched for totals (default
	// time.Now).
	Now func() time.Time
	// Progress, when set, is called after each batch of postings.
	Progress func(Stats)
}

// Count is how many records of one kind the source held and how many of
// them Copy wrote (the others were in the target already).
type Count struct {
	Source, Copied int
}

// Stats is what Copy did.
type Stats struct {
	Postings    Count
	Programmes  Count
	Terminals   Count
	LostCards   Count
	DeadLetters Count
	Totals      Count
	LostVersion uint64   // the lost-card list version copied
	Days        []string // the posting days verified
	Accounts    int      // the accounts whose balances were verified
}

// MismatchError lists the differences the verification found (at most
// a few dozen).
type MismatchError struct{ Problems []string }

func (e *MismatchError) Error() string {
	return fmt.Sprintf("%v: %v", ErrMismatch, e.Problems)
}

// Unwrap returns ErrMismatch.
func (e *MismatchError) Unwrap() error { return ErrMismatch }

// maxTotalsDays bounds the days searched for totals.
const maxTotalsDays = 20 * 366

// Copy copies src into dst and verifies the result. Errors: ErrNotEmpty,
// *MismatchError (ErrMismatch), a posting the target rejects (it holds a
// different posting under the same key: store.ErrConflict, ...), and the
// stores'.
func Copy(ctx context.Context, src store.Store, dst Target, opts Options) (Stats, error) {
	if opts.Batch <= 0 {
		opts.Batch = 200
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	var st Stats
	if !opts.Resume {
		empty, err := dst.Empty(ctx)
		if err != nil {
			return st, fmt.Errorf("migrate store: %w", err)
		}
		if !empty {
			return st, fmt.Errorf("migrate store: %w (resume an interrupted copy explicitly)", ErrNotEmpty)
		}
	}
	c := copier{src: src, dst: dst, opts: opts, st: &st, days: map[string]bool{}, accounts: map[string]bool{}}
	for _, step := range []func(context.Context) error{c.programmes, c.terminals, c.postings, c.lost, c.deadLetters, c.totals, c.verify} {
		if err := step(ctx); err != nil {
			return st, fmt.Errorf("migrate store: %w", err)
		}
	}
	return st, nil
}

type copier struct {
	src      store.Store
	dst      Target
	opts     Options
	st       *Stats
	days     map[string]bool // posting days
	accounts map[string]bool
	earliest time.Time // of the source's records, for the totals search
}

func (c *copier) seen(t time.Time) {
	if !t.IsZero() && (c.earliest.IsZero() || t.Before(c.earliest)) {
		c.earliest = t
	}
}

func (c *copier) programmes(ctx context.Context) error {
	ps, err := c.src.Programmes(ctx)
	if err != nil {
		return err
	}
	for _, p := range ps {
		c.seen(p.CreatedAt)
		ok, err := c.dst.RestoreProgramme(ctx, p)
		if err != nil {
			return err
		}
		c.st.Programmes.Source++
		if ok {
			c.st.Programmes.Copied++
		}
	}
	return nil
}

func (c *copier) terminals(ctx context.Context) error {
	ts, err := c.src.Terminals(ctx)
	if err != nil {
		return err
	}
	for _, t := range ts {
		c.seen(t.CreatedAt)
		ok, err := c.dst.RestoreTerminal(ctx, t)
		if err != nil {
			return err
		}
		c.st.Terminals.Source++
		if ok {
			c.st.Terminals.Copied++
		}
	}
	return nil
}

// postings posts the source's postings in ID order, batch by batch: the
// order the source applied them, so every balance check passes as it did.
func (c *copier) postings(ctx context.Context) error {
	var after uint64
	for {
		ps, err := c.src.Postings(ctx, store.Query{AfterID: after, Limit: c.opts.Batch})
		if err != nil {
			return err
		}
		if len(ps) == 0 {
			return nil
		}
		res, err := c.dst.Post(ctx, ps)
		if err != nil {
			return err
		}
		ids := make([]uint64, len(ps))
		at := make([]time.Time, len(ps))
		for i, r := range res {
			if r.Err != nil {
				return fmt.Errorf("copy posting %s: %w", ps[i].Key, r.Err)
			}
			if r.Outcome == store.Posted {
				c.st.Postings.Copied++
			}
			ids[i], at[i] = r.ID, ps[i].PostedAt
		}
		if err := c.dst.RestorePostedAt(ctx, ids, at); err != nil {
			return err
		}
		for _, p := range ps {
			c.seen(p.PostedAt)
			c.days[p.Day] = true
			for _, e := range p.Entries {
				c.accounts[e.Account] = true
			}
		}
		c.st.Postings.Source += len(ps)
		after = ps[len(ps)-1].ID
		if c.opts.Progress != nil {
			c.opts.Progress(*c.st)
		}
	}
}

func (c *copier) lost(ctx context.Context) error {
	l, err := c.src.LostCards(ctx, 0)
	if err != nil {
		return err
	}
	n, err := c.dst.RestoreLostCards(ctx, l)
	if err != nil {
		return err
	}
	c.st.LostCards = Count{Source: len(l.Changes), Copied: n}
	c.st.LostVersion = l.Version
	return nil
}

func (c *copier) deadLetters(ctx context.Context) error {
	var after uint64
	for {
		ds, err := c.src.DeadLetters(ctx, after, c.opts.Batch)
		if err != nil {
			return err
		}
		if len(ds) == 0 {
			return nil
		}
		for _, d := range ds {
			c.seen(d.First)
			ok, err := c.dst.RestoreDeadLetter(ctx, d)
			if err != nil {
				return err
			}
			c.st.DeadLetters.Source++
			if ok {
				c.st.DeadLetters.Copied++
			}
		}
		after = ds[len(ds)-1].ID
	}
}

// totals copies the totals of every day from the day before the source's
// earliest record (programme, terminal, posting, dead letter) to a week
// after today, and of every posting day: the store lists totals by day
// only.
func (c *copier) totals(ctx context.Context) error {
	days := map[string]bool{}
	for d := range c.days {
		days[d] = true
	}
	if !c.earliest.IsZero() {
		end := c.opts.Now().AddDate(0, 0, 7)
		d := c.earliest.AddDate(0, 0, -1)
		for n := 0; !d.After(end) && n < maxTotalsDays; n++ {
			days[d.Format("20060102")] = true
			d = d.AddDate(0, 0, 1)
		}
	}
	for _, day := range slices.Sorted(maps.Keys(days)) {
		ts, err := c.src.Totals(ctx, day)
		if err != nil {
			return err
		}
		for _, t := range ts {
			ok, err := c.dst.RestoreTotals(ctx, t)
			if err != nil {
				return err
			}
			c.st.Totals.Source++
			if ok {
				c.st.Totals.Copied++
			}
		}
	}
	return nil
}

// verify: the target's invariants hold, and its summary of every posting
// day, every account's balance and the lost-card list version equal the
// source's.
func (c *copier) verify(ctx context.Context) error {
	if err := c.dst.Check(ctx); err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	var probs []string
	add := func(format string, a ...any) {
		if len(probs) < store.MaxProblems {
			probs = append(probs, fmt.Sprintf(format, a...))
		}
	}
	c.st.Days = slices.Sorted(maps.Keys(c.days))
	for _, day := range c.st.Days {
		a, err := c.src.Summary(ctx, day)
		if err != nil {
			return fmt.Errorf("verify: %w", err)
		}
		b, err := c.dst.Summary(ctx, day)
		if err != nil {
			return fmt.Errorf("verify: %w", err)
		}
		if !slices.Equal(a, b) {
			add("day %s: summary %v, source %v", day, b, a)
		}
	}
	for _, acc := range slices.Sorted(maps.Keys(c.accounts)) {
		a, err := c.src.Balance(ctx, acc)
		if err != nil {
			return fmt.Errorf("verify: %w", err)
		}
		b, err := c.dst.Balance(ctx, acc)
		if err != nil {
			return fmt.Errorf("verify: %w", err)
		}
		if a != b {
			add("account %s: balance %d, source %d", acc, b, a)
		}
	}
	c.st.Accounts = len(c.accounts)
	l, err := c.dst.LostCards(ctx, 0)
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	if l.Version < c.st.LostVersion {
		add("lost-card list version %d, source %d", l.Version, c.st.LostVersion)
	}
	if len(probs) > 0 {
		return fmt.Errorf("verify: %w", &MismatchError{Problems: probs})
	}
	return nil
}
