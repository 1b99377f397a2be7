package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/onecard-hub/onecard/hub/store"
	"github.com/onecard-hub/onecard/terminal/record"
)

// RaceOptions size Race. Zero fields take the defaults.
type RaceOptions struct {
	Workers int // goroutines per store (default 4)
	Cards   int // cards (default 8)
	PerCard int // pay records per card (default 12)
	Batch   int // largest batch (default 10)
	Seed    uint64
}

func (o *RaceOptions) defaults() {
	if o.Workers <= 0 {
		o.Workers = 4
	}
	if o.Cards <= 0 {
		o.Cards = 8
	}
	if o.PerCard <= 0 {
		o.PerCard = 12
	}
	if o.Batch <= 0 {
		o.Batch = 10
	}
}

// RaceSet is the postings Race uses: Base are the genuine records, Variants
// repeat some of their keys with other content (same money), Openings fund
// the cards.
type RaceSet struct {
	Openings []*store.Posting
	Base     []*store.Posting
	Variants []*store.Posting
}

// NewRaceSet builds the postings for o.
func NewRaceSet(o RaceOptions) RaceSet {
	o.defaults()
	var set RaceSet
	for i := 0; i < o.Cards; i++ {
		c := Card(1000 + i)
		set.Openings = append(set.Openings, Opening(fmt.Sprintf("race-open-%d", i), c, int64(o.PerCard)*100))
		for j := 1; j <= o.PerCard; j++ {
			term := TermA
			if (i+j)%2 == 1 {
				term = TermB
			}
			p := Pay(term, uint64(i*1000+j), c, uint16(j), int64(1+(i*7+j)%50), fmt.Sprintf("H%d", i%3))
			set.Base = append(set.Base, p)
			if j%4 == 0 {
				v := *p
				v.Content = append(bytes.Clone(p.Content), "|variant"...)
				set.Variants = append(set.Variants, &v)
			}
		}
	}
	return set
}

// Expected returns the balances the set must end with.
func (set RaceSet) Expected() map[string]int64 {
	want := map[string]int64{}
	for _, p := range append(append([]*store.Posting(nil), set.Openings...), set.Base...) {
		for _, e := range p.Entries {
			want[e.Account] += e.Amount
		}
	}
	return want
}

type attempt struct {
	p   *store.Posting
	res store.Result
}

// Race posts the set of NewRaceSet(o) concurrently through a and b (the
// same store, or two stores over the same data: two hubs): every worker
// posts every record and every conflicting variant, in its own random
// order and batches. It then checks that each key was posted exactly once,
// that every duplicate repeated and every conflict contradicted the stored
// content, that no other error occurred, that the balances are exact and
// that Check passes. A deadlock shows up as the test's deadline.
func Race(t *testing.T, a, b store.Store, o RaceOptions) {
	o.defaults()
	set := NewRaceSet(o)
	ctx := Ctx(t)
	for _, r := range MustPost(t, a, set.Openings...) {
		wantOutcome(t, r, store.Posted)
	}
	all := append(append([]*store.Posting(nil), set.Base...), set.Variants...)
	var (
		mu       sync.Mutex
		attempts []attempt
		wg       sync.WaitGroup
		errs     = make(chan error, 2*o.Workers)
	)
	for w := 0; w < 2*o.Workers; w++ {
		s := a
		if w%2 == 1 {
			s = b
		}
		wg.Add(1)
		go func(w int, s store.Store) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(o.Seed, uint64(w)))
			order := append([]*store.Posting(nil), all...)
			rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
			var mine []attempt
			for len(order) > 0 {
				n := min(1+rng.IntN(o.Batch), len(order))
				batch := order[:n]
				order = order[n:]
				res, err := s.Post(ctx, batch)
				if err != nil {
					errs <- fmt.Errorf("worker %d: %w", w, err)
					return
				}
				for i := range batch {
					mine = append(mine, attempt{batch[i], res[i]})
				}
			}
			mu.Lock()
			attempts = append(attempts, mine...)
			mu.Unlock()
		}(w, s)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	posted := map[store.Key]int{}
	for _, at := range attempts {
		if at.res.Outcome == store.Posted {
			posted[at.p.Key]++
		}
	}
	stored := map[store.Key]*store.Posting{}
	for _, p := range set.Base {
		if n := posted[p.Key]; n != 1 {
			t.Fatalf("key %s posted %d times", p.Key, n)
		}
		got, err := a.Posting(ctx, p.Key)
		if err != nil {
			t.Fatalf("get %s: %v", p.Key, err)
		}
		stored[p.Key] = got
	}
	for _, at := range attempts {
		st := stored[at.p.Key]
		same := bytes.Equal(st.Content, at.p.Content)
		switch {
		case at.res.Err != nil && errors.Is(at.res.Err, store.ErrConflict):
			if same {
				t.Fatalf("%s: conflict reported for the stored content", at.p.Key)
			}
		case at.res.Err != nil:
			t.Fatalf("%s: unexpected rejection: %v", at.p.Key, at.res.Err)
		case !same:
			t.Fatalf("%s: %s for content that differs from the stored one", at.p.Key, at.res.Outcome)
		case at.res.ID != st.ID:
			t.Fatalf("%s: %s reports ID %d, stored %d", at.p.Key, at.res.Outcome, at.res.ID, st.ID)
		}
	}
	for acc, want := range set.Expected() {
		WantBalance(t, a, acc, want)
		WantBalance(t, b, acc, want)
	}
	n := countPostings(t, a)
	if want := len(set.Openings) + len(set.Base); n != want {
		t.Fatalf("%d postings stored, want %d", n, want)
	}
	MustCheck(t, a)
}

func countPostings(t testing.TB, s store.Store) int {
	t.Helper()
	var n int
	var after uint64
	for {
		ps, err := s.Postings(Ctx(t), store.Query{AfterID: after, Limit: 500})
		if err != nil {
			t.Fatal(err)
		}
		if len(ps) == 0 {
			return n
		}
		n += len(ps)
		after = ps[len(ps)-1].ID
	}
}

// ---- property test ----

type counterRef struct {
	card record.CardID
	c    store.Counter
}

// model is the reference ledger the property test compares a store with.
type model struct {
	content  map[store.Key][]byte
	counters map[counterRef]bool
	bal      map[string]int64
}

// apply returns the expected outcome, or the sentinel error of the
// expected rejection.
func (m *model) apply(p *store.Posting) (store.Outcome, error) {
	if err := p.Validate(); err != nil {
		return 0, store.ErrInvalid
	}
	if c, ok := m.content[p.Key]; ok {
		if bytes.Equal(c, p.Content) {
			return store.Duplicate, nil
		}
		return 0, store.ErrConflict
	}
	if p.Counter != nil && m.counters[counterRef{p.CardID, *p.Counter}] {
		return 0, store.ErrCounterReuse
	}
	for _, e := range p.Entries {
		if m.bal[e.Account]+e.Amount < 0 && !store.AllowsNegative(e.Account) {
			return 0, store.ErrInsufficientFunds
		}
	}
	for _, e := range p.Entries {
		m.bal[e.Account] += e.Amount
	}
	m.content[p.Key] = bytes.Clone(p.Content)
	if p.Counter != nil {
		m.counters[counterRef{p.CardID, *p.Counter}] = true
	}
	return store.Posted, nil
}

// testProperty posts random batches of fresh postings, repeats,
// conflicting repeats, counter reuses, overdrafts and invalid postings,
// and compares every result and the final balances with the model.
func testProperty(t *testing.T, s store.Store) {
	m := &model{content: map[store.Key][]byte{}, counters: map[counterRef]bool{}, bal: map[string]int64{}}
	seen := map[string]int{}
	for seed := uint64(1); seed <= 2; seed++ {
		rng := rand.New(rand.NewPCG(seed, 42))
		var history []*store.Posting
		seq, ref := uint64(seed*100000), 0
		fresh := func() *store.Posting {
			c := Card(int(seed)*100 + rng.IntN(4))
			term := []string{TermA, TermB}[rng.IntN(2)]
			switch k := rng.IntN(10); {
			case k < 3:
				ref++
				return Opening(fmt.Sprintf("prop-%d-%d", seed, ref), c, int64(1+rng.IntN(500)))
			case k < 8:
				seq++
				return Pay(term, seq, c, uint16(1+rng.IntN(15)), int64(1+rng.IntN(300)), []string{"H1", "H2"}[rng.IntN(2)])
			case k < 9:
				ref++
				return Payout(fmt.Sprintf("prop-po-%d-%d", seed, ref), []string{"H1", "H2"}[rng.IntN(2)], int64(1+rng.IntN(600)))
			default:
				seq++
				return Certify(term, seq, c)
			}
		}
		for round := 0; round < 40; round++ {
			batch := make([]*store.Posting, 1+rng.IntN(6))
			for i := range batch {
				var p *store.Posting
				switch k := rng.IntN(20); {
				case k < 3 && len(history) > 0: // exact repeat
					q := *history[rng.IntN(len(history))]
					q.Content = bytes.Clone(q.Content)
					p = &q
				case k < 5 && len(history) > 0: // same key, other content
					q := *history[rng.IntN(len(history))]
					q.Content = append(bytes.Clone(q.Content), "|x"...)
					p = &q
				case k < 6: // invalid: unbalanced
					p = fresh()
					if len(p.Entries) > 0 {
						p.Entries = append([]store.Entry(nil), p.Entries...)
						p.Entries[0].Amount--
					} else {
						p.Day = "bad"
					}
				default:
					p = fresh()
				}
				batch[i] = p
				history = append(history, p)
			}
			res := MustPost(t, s, batch...)
			for i, p := range batch {
				wantOut, wantErr := m.apply(p)
				r := res[i]
				if wantErr != nil {
					seen[wantErr.Error()]++
				} else {
					seen[wantOut.String()]++
				}
				if wantErr != nil {
					if !errors.Is(r.Err, wantErr) || r.Outcome != 0 {
						t.Fatalf("seed %d round %d: %s: got %+v, want %v", seed, round, p.Key, r, wantErr)
					}
					continue
				}
				if r.Err != nil || r.Outcome != wantOut {
					t.Fatalf("seed %d round %d: %s: got %+v, want %s", seed, round, p.Key, r, wantOut)
				}
			}
		}
		for acc, want := range m.bal {
			WantBalance(t, s, acc, want)
		}
		MustCheck(t, s)
	}
	for _, class := range []string{"posted", "duplicate", store.ErrConflict.Error(), store.ErrCounterReuse.Error(),
		store.ErrInsufficientFunds.Error(), store.ErrInvalid.Error()} {
		if seen[class] == 0 {
			t.Fatalf("the random sequence never produced %q (seen %v)", class, seen)
		}
	}
	if n := countPostings(t, s); n != len(m.content) || n == 0 {
		t.Fatalf("%d postings stored, the model has %d", n, len(m.content))
	}
}
