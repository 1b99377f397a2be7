package ledger_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/onecard-hub/onecard/hub/ledger"
	"github.com/onecard-hub/onecard/hub/store"
	"github.com/onecard-hub/onecard/hub/store/boltstore"
	"github.com/onecard-hub/onecard/hub/store/pgstore"
	"github.com/onecard-hub/onecard/internal/pgtest"
	"github.com/onecard-hub/onecard/sm"
	"github.com/onecard-hub/onecard/terminal/record"
)

// benchStores are durable: bbolt fsyncs every commit, PostgreSQL runs
// with fsync on (its own private server).
var benchStores = []opener{
	{"bolt", func(t testing.TB) store.Store {
		s, err := boltstore.Open(boltstore.Options{Path: filepath.Join(t.TempDir(), "hub.db")})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}},
	{"postgres", func(t testing.TB) store.Store {
		srv := pgtest.StartWith(t, pgtest.Options{Durable: true})
		s, err := pgstore.Open(context.Background(), pgstore.Options{DSN: srv.CreateDB(t)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}},
}

var (
	verifyOnce sync.Once
	verifyNs   float64
)

// signedRecord returns a record, its terminal key and signature.
func signedRecord(b *testing.B) (*record.Record, *sm.PrivateKey, []byte) {
	priv, err := sm.GenerateKey(rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	r := payRecord(termA, 1, card(1), 1, 100, "H1", "310")
	sig, err := r.Sign(priv)
	if err != nil {
		b.Fatal(err)
	}
	return r, priv, sig
}

// sm2VerifyNs times the baseline: one SM2 verification of a record's
// terminal signature (what the hub does per record before posting it).
func sm2VerifyNs(b *testing.B) float64 {
	verifyOnce.Do(func() {
		r, priv, sig := signedRecord(b)
		const n = 300
		start := time.Now()
		for i := 0; i < n; i++ {
			if err := r.Verify(priv.PublicKey(), sig); err != nil {
				b.Fatal(err)
			}
		}
		verifyNs = float64(time.Since(start).Nanoseconds()) / n
	})
	return verifyNs
}

// BenchmarkVerifyRecord is the baseline: SM2 verification of one record.
func BenchmarkVerifyRecord(b *testing.B) {
	r, priv, sig := signedRecord(b)
	b.ReportAllocs()
	for b.Loop() {
		if err := r.Verify(priv.PublicKey(), sig); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPost posts batches of pay records through the ledger on each
// store and reports ns/record and the ratio to one SM2 verification
// (post/verify < 1: posting is cheaper than verifying).
func BenchmarkPost(b *testing.B) {
	verify := sm2VerifyNs(b)
	const cards = 512
	for _, o := range benchStores {
		for _, batch := range []int{1, 100} {
			b.Run(fmt.Sprintf("%s/batch=%d", o.name, batch), func(b *testing.B) {
				s := o.open(b)
				l, err := ledger.New(ledger.Options{Store: s})
				if err != nil {
					b.Fatal(err)
				}
				ctx := context.Background()
				for i := 0; i < cards; i++ {
					if _, err := l.OpeningBalance(ctx, ledger.Request{Ref: fmt.Sprintf("open-%d", i), Card: card(i), Fund: "310", Amount: 1 << 40, Day: day}); err != nil {
						b.Fatal(err)
					}
				}
				counters := make([]uint16, cards)
				var seq uint64
				recs := make([]*record.Record, batch)
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					b.StopTimer()
					for j := range recs {
						seq++
						c := int(seq % cards)
						counters[c]++
						recs[j] = payRecord(termA, seq, card(c), counters[c], uint32(1+seq%500), fmt.Sprintf("H%d", seq%7), "310")
					}
					b.StartTimer()
					res, err := l.Post(ctx, recs...)
					if err != nil {
						b.Fatal(err)
					}
					for _, r := range res {
						if r.Err != nil || r.Outcome != store.Posted {
							b.Fatalf("%+v", r)
						}
					}
				}
				b.StopTimer()
				per := float64(b.Elapsed().Nanoseconds()) / float64(b.N*batch)
				b.ReportMetric(per, "ns/record")
				b.ReportMetric(1e9/per, "records/s")
				b.ReportMetric(per/verify, "post/verify")
				if err := s.Check(ctx); err != nil {
					b.Fatal(err)
				}
			})
		}
	}
}
