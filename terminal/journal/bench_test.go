package journal_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/onecard-hub/onecard/terminal/journal"
	"github.com/onecard-hub/onecard/terminal/journal/journaltest"
	"github.com/onecard-hub/onecard/terminal/record"
)

// boltPutRate measures n raw bbolt transactions of one 300-byte Put each
// (fsync'd unless noSync), the floor any journal append pays, in
// transactions per second.
func boltPutRate(b *testing.B, n int, noSync bool) float64 {
	db, err := bolt.Open(filepath.Join(b.TempDir(), "raw.db"), 0o600, &bolt.Options{NoSync: noSync, FreelistType: bolt.FreelistMapType})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	val := make([]byte, 300)
	start := time.Now()
	for i := 0; i < n; i++ {
		err := db.Update(func(tx *bolt.Tx) error {
			bk, err := tx.CreateBucketIfNotExists([]byte("b"))
			if err != nil {
				return err
			}
			id, _ := bk.NextSequence()
			return bk.Put([]byte{byte(id >> 56), byte(id >> 48), byte(id >> 40), byte(id >> 32), byte(id >> 24), byte(id >> 16), byte(id >> 8), byte(id)}, val)
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	return float64(n) / time.Since(start).Seconds()
}

// benchAppend measures journal appends (Prepare + CardDone, two fsync'd
// transactions) and reports them against raw single-put bbolt transactions
// measured in the same run: appends/s, bolt-tx/s and
// append-cost-in-bolt-tx (how many raw transactions one append costs; 2 is
// the floor for two commits).
func benchAppend(b *testing.B, noSync bool) {
	opts := &journal.Options{MaxRecords: 1 << 30, MaxSize: 1 << 30}
	if noSync {
		journal.DisableSyncForBenchmark(opts)
	}
	j := journaltest.MustOpen(b, opts)
	r := journaltest.NewRecord(record.KindPay, journaltest.Card(1), 10)
	res := journaltest.DoneResult(r, 1)
	ctx := context.Background()
	b.ResetTimer()
	start := time.Now()
	n := 0
	for b.Loop() {
		// A distinct card transaction each time (see journal.ErrDuplicate).
		r.CardCounter = uint16(n)
		r.CardID[14] = byte(n >> 16)
		seq, err := j.Prepare(ctx, r)
		if err != nil {
			b.Fatal(err)
		}
		if err := j.CardDone(ctx, seq, res); err != nil {
			b.Fatal(err)
		}
		n++
	}
	appends := float64(n) / time.Since(start).Seconds()
	b.StopTimer()
	baseline := boltPutRate(b, 500, noSync)
	b.ReportMetric(appends, "appends/s")
	b.ReportMetric(baseline, "bolt-tx/s")
	b.ReportMetric(baseline/appends, "append-cost-in-bolt-tx")
}

func BenchmarkAppend(b *testing.B)       { benchAppend(b, false) }
func BenchmarkAppendNoSync(b *testing.B) { benchAppend(b, true) }
