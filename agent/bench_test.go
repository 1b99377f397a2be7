package agent_test

import (
	"context"
	"testing"
	"time"

	"github.com/onecard-hub/onecard/internal/simcard"
	"github.com/onecard-hub/onecard/reader/virtual"
	"github.com/onecard-hub/onecard/sm"
	"github.com/onecard-hub/onecard/terminal"
)

// BenchmarkReadIdentityAPIvsInProcess measures a PSAM-authenticated
// identity read through the kiosk API (JSON over a loopback WebSocket,
// lane pick, masking) against the same terminal.Session call made in
// process, on the same kind of simulated card and PSAM. It reports both
// times and their ratio (api/inproc).
func BenchmarkReadIdentityAPIvsInProcess(b *testing.B) {
	dir := b.TempDir()
	card, err := simcard.LoadFile(copyCard(b, dir, "ssc-gen3.yaml"))
	if err != nil {
		b.Fatal(err)
	}
	psam, err := simcard.LoadFile(copyCard(b, dir, "psam.yaml"))
	if err != nil {
		b.Fatal(err)
	}
	ks, err := sm.TestKeySet("demo")
	if err != nil {
		b.Fatal(err)
	}
	sess, err := terminal.New(terminal.Options{
		Card: virtual.NewSlot("bench:user", card), PSAM: virtual.NewSlot("bench:psam", psam),
		KeyService: &terminal.LocalKeyService{Keys: ks},
	})
	if err != nil {
		b.Fatal(err)
	}
	e := startAgent(b, "  rate: 100000\n  burst: 100000\n") // the default 10/s would throttle the loop
	c := e.dial(hisOrigin)
	defer c.close()
	ctx := context.Background()
	ro := terminal.ReadOptions{Mode: terminal.ModePSAM}
	// Warm both paths (PSAM connection, lane session).
	if _, err := sess.ReadIdentity(ctx, ro); err != nil {
		b.Fatal(err)
	}
	c.mustCall("readIdentity", map[string]any{"mode": "psam"})

	b.ResetTimer()
	start := time.Now()
	for range b.N {
		if _, err := sess.ReadIdentity(ctx, ro); err != nil {
			b.Fatal(err)
		}
	}
	inproc := time.Since(start)
	start = time.Now()
	for range b.N {
		c.mustCall("readIdentity", map[string]any{"mode": "psam"})
	}
	api := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(inproc.Nanoseconds())/float64(b.N), "inproc-ns/read")
	b.ReportMetric(float64(api.Nanoseconds())/float64(b.N), "api-ns/read")
	b.ReportMetric(float64(api)/float64(inproc), "api/inproc")
}
