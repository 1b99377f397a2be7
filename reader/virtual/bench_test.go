package virtual_test

import (
	"context"
	"testing"

	"github.com/ebfe/scard"

	"github.com/onecard-hub/onecard/internal/pcsctest"
	"github.com/onecard-hub/onecard/reader/virtual"
)

// BenchmarkAPDURoundTrip measures one APDU (SELECT SSSE) to a simulated
// card and back: in process (virtual.Slot), through pcscd + vpcd with the
// bridge's TCP_QUICKACK (pcsc), and without it (pcsc-noquickack, showing
// the ~40 ms delayed-ACK stall). The pcsc runs report their cost as a
// multiple of the in-process round trip measured in the same run
// (x-inprocess).
//
//	go test -run '^$' -bench APDURoundTrip ./reader/virtual/
func BenchmarkAPDURoundTrip(b *testing.B) {
	ctx := context.Background()
	var inproc float64 // ns/op of the in-process baseline
	inProcess := func(b *testing.B) {
		s := virtual.NewSlot("bench", newUserCard(b))
		if _, err := s.Connect(ctx); err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			if _, err := s.Transmit(ctx, selectSSSE); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("inprocess", func(b *testing.B) {
		inProcess(b)
		inproc = float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	})

	env := pcsctest.Start(b, pcsctest.Options{})
	for i, quick := range []bool{true, false} {
		bridge := virtual.NewVPCD(virtual.VPCDOptions{Addr: env.Slots[i].Addr, Card: newUserCard(b), DisableQuickAck: !quick})
		runBridge(b, bridge)
		waitCard(b, env.Slots[i].Name, true)
	}
	pcsc := func(slot int) func(b *testing.B) {
		return func(b *testing.B) {
			_, c := scardConnect(b, env.Slots[slot].Name)
			for b.Loop() {
				if _, err := c.Transmit(selectSSSE); err != nil {
					b.Fatal(err)
				}
			}
			if inproc == 0 { // the baseline was filtered out with -bench
				r := testing.Benchmark(inProcess)
				inproc = float64(r.T.Nanoseconds()) / float64(r.N)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/inproc, "x-inprocess")
			_ = c.Disconnect(scard.LeaveCard)
		}
	}
	b.Run("pcsc", pcsc(0))
	b.Run("pcsc-noquickack", pcsc(1))
}
