package benchreport_test

import (
	"crypto/rand"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/onecard-hub/onecard/hub/server"
	"github.com/onecard-hub/onecard/hub/server/servertest"
	"github.com/onecard-hub/onecard/sm"
	"github.com/onecard-hub/onecard/terminal/record"
)

// BenchmarkScaling: hub ingest (records verified and posted per second,
// bbolt with fsync) and the p99 latency of one 4-record batch as
// simulated agents grow: each agent an in-process connection with its own
// terminal key. Baseline: raw SM2 verification of the same envelopes.
func BenchmarkScaling(b *testing.B) {
	for _, n := range []int{1, 10, 100, 1000} {
		b.Run(fmt.Sprintf("agents=%d", n), func(b *testing.B) { benchScaling(b, n) })
	}
}

func benchScaling(b *testing.B, agents int) {
	keys := servertest.Keys(b)
	st := servertest.OpenStore(b, "", true)
	_, led := servertest.Books(b, st, servertest.Cards(1, 64)...)
	h := servertest.Start(b, server.Options{Store: st, Ledger: led, Rate: 1e9, Burst: 1 << 30}, false)
	const perBatch = 4
	batches := max(1, 200/agents)
	type agent struct {
		no  string
		key *sm.PrivateKey
		raw *servertest.Raw
	}
	as := make([]*agent, agents)
	for i := range as {
		k, err := sm.GenerateKey(rand.Reader)
		if err != nil {
			b.Fatal(err)
		}
		a := &agent{no: fmt.Sprintf("4401%08d", i+1), key: k}
		servertest.Register(b, st, a.no, k.PublicKey())
		if a.raw, err = servertest.DialRaw(h.URL); err != nil {
			b.Fatal(err)
		}
		defer a.raw.Close()
		if _, err := a.raw.Hello(a.no, k); err != nil {
			b.Fatal(err)
		}
		as[i] = a
	}
	next := 0
	seq := uint64(0)
	var total, lats []time.Duration
	records := 0
	var rawVerify float64
	for b.Loop() {
		b.StopTimer()
		envs := make([][][]byte, agents)
		var sample []*record.Envelope
		for i, a := range as {
			for k := 0; k < batches*perBatch; k++ {
				r := servertest.Record(record.KindPay, a.no, servertest.Card(next%64+1), uint16(next/64+1), 1)
				next++
				seq++
				r.TerminalSeq = seq
				res := servertest.Result(b, keys, r)
				r.TAC, r.MAC2, r.BalanceAfter = res.TAC, res.MAC2, res.BalanceAfter
				env, err := record.Seal(r, a.key)
				if err != nil {
					b.Fatal(err)
				}
				out, err := env.MarshalBinary()
				if err != nil {
					b.Fatal(err)
				}
				envs[i] = append(envs[i], out)
				if len(sample) < 200 {
					sample = append(sample, env)
				}
			}
		}
		vs := time.Now()
		for i, e := range sample {
			if err := e.Verify(as[i%agents].key.PublicKey()); err != nil && agents == 1 {
				b.Fatal(err)
			}
		}
		rawVerify = float64(len(sample)) / time.Since(vs).Seconds()
		b.StartTimer()
		start := time.Now()
		var mu sync.Mutex
		var wg sync.WaitGroup
		for i, a := range as {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for k := 0; k < batches; k++ {
					t0 := time.Now()
					acks, err := a.raw.Batch(uint64(k+1), envs[i][k*perBatch:(k+1)*perBatch]...)
					d := time.Since(t0)
					if err != nil || acks == nil {
						b.Error(err)
						return
					}
					mu.Lock()
					lats = append(lats, d)
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		total = append(total, time.Since(start))
		records += agents * batches * perBatch
	}
	var sum time.Duration
	for _, d := range total {
		sum += d
	}
	sort.Slice(lats, func(i, j int) bool { return lats[i] < lats[j] })
	if len(lats) > 0 && sum > 0 {
		b.ReportMetric(float64(records)/sum.Seconds(), "records/s")
		b.ReportMetric(float64(lats[(len(lats)*99)/100].Microseconds())/1000, "p99-ms")
		b.ReportMetric(rawVerify, "sm2verify/s")
	}
}
