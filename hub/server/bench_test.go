package server_test

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/onecard-hub/onecard/hub/client"
	"github.com/onecard-hub/onecard/hub/server"
	"github.com/onecard-hub/onecard/hub/server/servertest"
	"github.com/onecard-hub/onecard/hub/store"
	hubsync "github.com/onecard-hub/onecard/hub/sync"
	"github.com/onecard-hub/onecard/sm"
	"github.com/onecard-hub/onecard/terminal/journal"
	"github.com/onecard-hub/onecard/terminal/record"
)

// benchHub is a hub on a bbolt store with fsync (the production setting).
func benchHub(b *testing.B) (*servertest.Hub, *server.Options) {
	b.Helper()
	st := servertest.OpenStore(b, "", true)
	_, led := servertest.Books(b, st, servertest.Cards(1, 64)...)
	opts := server.Options{Store: st, Ledger: led, Rate: 1e9, Burst: 1 << 30}
	return servertest.Start(b, opts, false), &opts
}

// rawVerifyRate measures SM2 verifications per second of record
// envelopes on every core (the baseline of the posting rate).
func rawVerifyRate(b *testing.B, key *sm.PrivateKey, envs [][]byte) float64 {
	b.Helper()
	decoded := make([]*record.Envelope, len(envs))
	for i, e := range envs {
		env, err := record.DecodeEnvelope(e)
		if err != nil {
			b.Fatal(err)
		}
		decoded[i] = env
	}
	workers := runtime.GOMAXPROCS(0)
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < len(decoded); i += workers {
				if err := decoded[i].Verify(key.PublicKey()); err != nil {
					b.Error(err)
				}
			}
		}(w)
	}
	wg.Wait()
	return float64(len(decoded)) / time.Since(start).Seconds()
}

// BenchmarkSyncPost: records verified (terminal SM2 signature and card
// TAC) and posted (bbolt, fsync per batch) per second, against the raw
// SM2 verification rate of the same records on the same cores
// (post/verify ratio).
func BenchmarkSyncPost(b *testing.B) {
	h, opts := benchHub(b)
	benchPost(b, h, opts.Store)
}

// benchPost sends b.N genuine purchase records of one terminal to hub h
// (whose store is st) in batches of hubsync.DefaultMaxBatch and reports
// posted/s, the raw SM2 verification rate of the same records on the
// same cores (sm2verify/s) and their ratio (post/verify).
func benchPost(b *testing.B, h *servertest.Hub, st store.Store) {
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

func sealedB(b *testing.B, keys *sm.KeySet, key *sm.PrivateKey, r *record.Record, seq uint64) []byte {
	b.Helper()
	r.TerminalSeq = seq
	res := servertest.Result(b, keys, r)
	r.TAC, r.MAC2, r.BalanceAfter = res.TAC, res.MAC2, res.BalanceAfter
	env, err := record.Seal(r, key)
	if err != nil {
		b.Fatal(err)
	}
	out, err := env.MarshalBinary()
	if err != nil {
		b.Fatal(err)
	}
	return out
}

// BenchmarkSyncCatchUp: time for one agent to upload N queued records
// (ONECARD_BENCH_RECORDS, default 10,000; 100,000 for the long run) with
// the real client and journal (fsync on both sides). Run with
// -benchtime=1x.
func BenchmarkSyncCatchUp(b *testing.B) {
	n := envInt("ONECARD_BENCH_RECORDS", 10_000)
	keys := servertest.Keys(b)
	var total time.Duration
	for it := 0; it < b.N; it++ {
		b.StopTimer()
		h, opts := benchHub(b)
		key := servertest.TerminalKey(b)
		servertest.Register(b, opts.Store, term1, key.PublicKey())
		j, err := journal.Open(filepath.Join(b.TempDir(), "journal.db"), nil)
		if err != nil {
			b.Fatal(err)
		}
		servertest.Fill(b, j, keys, term1, 1, 64, n, 1)
		c, err := client.New(client.Options{URL: h.URL, TerminalID: term1, Key: key, Journal: j, BatchSize: 256})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		start := time.Now()
		if err := c.Sync(context.Background()); err != nil {
			b.Fatal(err)
		}
		total += time.Since(start)
		b.StopTimer()
		if st, _ := j.Stats(); st.Counts[journal.Cleared] != n {
			b.Fatalf("cleared %d of %d", st.Counts[journal.Cleared], n)
		}
		c.Close()
		j.Close()
		h.Stop()
	}
	per := total / time.Duration(b.N)
	b.ReportMetric(per.Seconds(), "s/catch-up")
	b.ReportMetric(float64(n)/per.Seconds(), "records/s")
}

// BenchmarkSyncIdleAgents: hub goroutines and heap per idle connected
// agent (ONECARD_BENCH_AGENTS, default 200; 2,000 for the long run). The
// agents are bare connections in the same process: the heap figure
// includes their side (gorilla buffers).
func BenchmarkSyncIdleAgents(b *testing.B) {
	n := envInt("ONECARD_BENCH_AGENTS", 200)
	for it := 0; it < b.N; it++ {
		h, opts := benchHub(b)
		keys := make([]*sm.PrivateKey, n)
		for i := range keys {
			keys[i] = servertest.TerminalKey(b)
			servertest.Register(b, opts.Store, fmt.Sprintf("3703%08d", i), keys[i].PublicKey())
		}
		runtime.GC()
		g0 := runtime.NumGoroutine()
		var m0, m1 runtime.MemStats
		runtime.ReadMemStats(&m0)
		conns := make([]*servertest.Raw, n)
		for i := range conns {
			r, err := servertest.DialRaw(h.URL)
			if err != nil {
				b.Fatal(err)
			}
			conns[i] = r
			if _, err := r.Hello(fmt.Sprintf("3703%08d", i), keys[i]); err != nil {
				b.Fatal(err)
			}
		}
		for h.Server.Stats().Sessions != n {
			time.Sleep(10 * time.Millisecond)
		}
		runtime.GC()
		runtime.ReadMemStats(&m1)
		b.ReportMetric(float64(runtime.NumGoroutine()-g0)/float64(n), "goroutines/agent")
		b.ReportMetric(float64(int64(m1.HeapInuse)-int64(m0.HeapInuse))/float64(n), "heap-B/agent")
		for _, r := range conns {
			r.Close()
		}
		h.Stop()
	}
}
