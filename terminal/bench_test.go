package terminal_test

import (
	"context"
	"testing"
	"time"

	"github.com/onecard-hub/onecard/internal/simcard"
	"github.com/onecard-hub/onecard/terminal"
)

// richCard is a card that can pay one fen many thousand times.
func richCard(t testing.TB, file string) *simcard.SSC {
	return newCard(t, file, func(s *simcard.SSCSpec) { s.Purse.Balance = 2_000_000_000 })
}

// payLoop runs n one-fen payments (the PIN pad answers every time) and
// returns the time per payment.
func payLoop(tb testing.TB, r *rig, n int) time.Duration {
	pins := make([]string, n)
	for i := range pins {
		pins[i] = "123456"
	}
	r.pins(pins...)
	ctx := context.Background()
	start := time.Now()
	for i := 0; i < n; i++ {
		if _, err := r.sess.Pay(ctx, terminal.PayRequest{Amount: 1, Merchant: "BENCH"}); err != nil {
			tb.Fatalf("pay %d: %v", i, err)
		}
	}
	return time.Since(start) / time.Duration(n)
}

// BenchmarkPay measures a full payment (select, card ID, settle check,
// VERIFY, INITIALIZE, PSAM MAC1, journal Prepare with fsync, DEBIT,
// journal CardDone with fsync, PSAM MAC2 check, record signature) in
// process and through pcscd + vpcd. It reports card and PSAM APDUs per
// payment, and for PC/SC the time relative to an in-process baseline
// measured in the same run.
func BenchmarkPay(b *testing.B) {
	for _, file := range cardFiles {
		b.Run(file+"/inprocess", func(b *testing.B) {
			r := newRig(b, richCard(b, file), rigOpts{})
			benchPay(b, r)
		})
	}
	b.Run("pcsc", func(b *testing.B) {
		var e *pcscEnv
		for _, file := range cardFiles {
			card := richCard(b, file)
			if e == nil {
				e = startPCSC(b, card)
			} else {
				e.insert(b, card)
			}
			b.Run(file, func(b *testing.B) {
				base := newRig(b, richCard(b, file), rigOpts{})
				baseline := payLoop(b, base, 20)
				r := e.rig(b, card, rigOpts{})
				per := benchPay(b, r)
				b.ReportMetric(float64(per)/float64(baseline), "x-inprocess")
			})
		}
	})
}

func benchPay(b *testing.B, r *rig) time.Duration {
	pins := make([]string, b.N)
	for i := range pins {
		pins[i] = "123456"
	}
	r.pins(pins...)
	ctx := context.Background()
	before := r.sess.Stats()
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		if _, err := r.sess.Pay(ctx, terminal.PayRequest{Amount: 1, Merchant: "BENCH"}); err != nil {
			b.Fatalf("pay %d: %v", i, err)
		}
	}
	elapsed := time.Since(start)
	b.StopTimer()
	st := r.sess.Stats()
	b.ReportMetric(float64(st.CardAPDUs-before.CardAPDUs)/float64(b.N), "card-apdus/op")
	b.ReportMetric(float64(st.PSAMAPDUs-before.PSAMAPDUs)/float64(b.N), "psam-apdus/op")
	return elapsed / time.Duration(b.N)
}
