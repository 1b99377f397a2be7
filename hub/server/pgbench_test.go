package server_test

import (
	"context"
	"testing"
	"time"

	"github.com/onecard-hub/onecard/hub/server"
	"github.com/onecard-hub/onecard/hub/server/servertest"
	"github.com/onecard-hub/onecard/hub/store/pgstore"
	hubsync "github.com/onecard-hub/onecard/hub/sync"
	"github.com/onecard-hub/onecard/internal/pgtest"
	"github.com/onecard-hub/onecard/terminal/record"
)

// BenchmarkSyncPostPG is BenchmarkSyncPost on PostgreSQL (internal/pgtest,
// fsync on): records verified (terminal SM2 signature and card TAC) and
// posted per second, one agent sending batches of 256, against the raw
// SM2 verification rate of the same records on the same cores in the same
// run (post/verify).
func BenchmarkSyncPostPG(b *testing.B) {
	pg := pgtest.NewWith(b, pgtest.Options{Durable: true})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	st, err := pgstore.Open(ctx, pgstore.Options{DSN: pg.CreateDB(b)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	_, led := servertest.Books(b, st, servertest.Cards(1, 64)...)
	h := servertest.Start(b, server.Options{Store: st, Ledger: led, Rate: 1e9, Burst: 1 << 30}, false)
	keys := servertest.Keys(b)
	key := servertest.TerminalKey(b)
	servertest.Register(b, st, term1, key.PublicKey())
	envs := make([][]byte, b.N)
	for i := range envs {
		r := servertest.Record(record.KindPay, term1, servertest.Card(i%64+1), uint16(i/64+1), 1)
		envs[i] = sealedB(b, keys, key, r, uint64(i+1))
	}
	raw := rawVerifyRate(b, key, envs[:min(len(envs), 5000)])
	r, err := servertest.DialRaw(h.URL)
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	if _, err := r.Hello(term1, key); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	start := time.Now()
	for i, id := 0, uint64(1); i < len(envs); i, id = i+hubsync.DefaultMaxBatch, id+1 {
		a, err := r.Batch(id, envs[i:min(i+hubsync.DefaultMaxBatch, len(envs))]...)
		if err != nil {
			b.Fatal(err)
		}
		for _, res := range a.Results {
			if res.Status != hubsync.AckAccepted {
				b.Fatalf("%+v", res)
			}
		}
	}
	rate := float64(len(envs)) / time.Since(start).Seconds()
	b.StopTimer()
	b.ReportMetric(rate, "posted/s")
	b.ReportMetric(raw, "sm2verify/s")
	b.ReportMetric(rate/raw, "post/verify")
}
