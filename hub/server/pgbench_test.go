package server_test

import (
	"context"
	"testing"
	"time"

	"github.com/onecard-hub/onecard/hub/server"
	"github.com/onecard-hub/onecard/hub/server/servertest"
	"github.com/onecard-hub/onecard/hub/store/pgstore"
	"github.com/onecard-hub/onecard/internal/pgtest"
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
	benchPost(b, h, st)
}
