package pcsc_test

import (
	"context"
	"testing"
	"time"

	"github.com/ebfe/scard"

	"github.com/onecard-hub/onecard/reader/pcsc"
)

// BenchmarkPCSCTransmit measures Slot.Transmit — with its watchdog
// goroutine (the default) and with Options.NoWatchdog — against a raw
// scard.Card.Transmit on the same card behind pcscd + vpcd, taking turns
// in every iteration so all see the same conditions. It reports the mean
// of each and the ratios to raw (1.05 = 5 % overhead).
func BenchmarkPCSCTransmit(b *testing.B) {
	env := startPCSC(b, 1)
	env.insert(b, 0, newTestCard("3B021450"))
	sc, err := scard.EstablishContext()
	if err != nil {
		b.Fatal(err)
	}
	defer sc.Release()
	raw, err := sc.Connect(env.name(0), scard.ShareShared, scard.ProtocolAny)
	if err != nil {
		b.Fatal(err)
	}
	defer raw.Disconnect(scard.LeaveCard)
	slot := pcsc.NewSlot(env.name(0), pcsc.Options{})
	inline := pcsc.NewSlot(env.name(0), pcsc.Options{NoWatchdog: true})
	ctx := context.Background()
	for _, s := range []*pcsc.Slot{slot, inline} {
		if _, err := s.Connect(ctx); err != nil {
			b.Fatal(err)
		}
		defer s.Disconnect()
	}
	cmd := mustHex("80CA00000401020304")
	// Warm up both paths.
	for range 20 {
		if _, err := raw.Transmit(cmd); err != nil {
			b.Fatal(err)
		}
		if _, err := slot.Transmit(ctx, cmd); err != nil {
			b.Fatal(err)
		}
		if _, err := inline.Transmit(ctx, cmd); err != nil {
			b.Fatal(err)
		}
	}
	// Each iteration sends one APDU by each path; the order rotates so no
	// path always goes first.
	paths := []func() error{
		func() error { _, err := raw.Transmit(cmd); return err },
		func() error { _, err := slot.Transmit(ctx, cmd); return err },
		func() error { _, err := inline.Transmit(ctx, cmd); return err },
	}
	var spent [3]time.Duration
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		for k := range paths {
			p := (i + k) % len(paths)
			t0 := time.Now()
			if err := paths[p](); err != nil {
				b.Fatal(err)
			}
			spent[p] += time.Since(t0)
		}
	}
	rawTime, slotTime, inlineTime := spent[0], spent[1], spent[2]
	n := float64(b.N)
	b.ReportMetric(float64(rawTime.Nanoseconds())/n, "raw-ns/apdu")
	b.ReportMetric(float64(slotTime.Nanoseconds())/n, "slot-ns/apdu")
	b.ReportMetric(float64(inlineTime.Nanoseconds())/n, "nowatchdog-ns/apdu")
	b.ReportMetric(float64(slotTime)/float64(rawTime), "slot/raw")
	b.ReportMetric(float64(inlineTime)/float64(rawTime), "nowatchdog/raw")
}
