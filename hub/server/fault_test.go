package server_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/onecard-hub/onecard/hub/server/servertest"
	hubsync "github.com/onecard-hub/onecard/hub/sync"
	"github.com/onecard-hub/onecard/terminal/journal"
)

// TestSyncCutAtEveryFrame cuts the first connection after every number of
// WebSocket frames in each direction (at the frame boundary, and in the
// middle of the next frame), lets the agent reconnect, and checks every
// record ends posted exactly once.
func TestSyncCutAtEveryFrame(t *testing.T) {
	const n, amount, batch = 23, 100, 5
	keys := servertest.Keys(t)
	for _, dir := range []servertest.Direction{servertest.Up, servertest.Down} {
		for _, partial := range []int{0, 3} {
			for after := 1; ; after++ {
				name := fmt.Sprintf("dir%d/after%d/partial%d", dir, after, partial)
				cut := false
				t.Run(name, func(t *testing.T) {
					h, st, _ := startHub(t, false, nil)
					p := servertest.NewCutProxy(t, h.Addr(), dir, after, partial)
					a := newAgent(t, term1, h)
					a.opts.URL = "ws://" + p.Addr() + hubsync.Path
					a.opts.BatchSize, a.opts.Window = batch, 2
					servertest.Register(t, st, term1, a.key.PublicKey())
					servertest.Fill(t, a.j, keys, term1, 1, 3, n, amount)
					c := a.client(t)
					ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
					defer cancel()
					var err error
					for try := 0; try < 3; try++ {
						if err = c.Sync(ctx); err == nil {
							break
						}
					}
					if err != nil {
						t.Fatalf("sync after the cut: %v", err)
					}
					cut = p.Cut()
					// Acknowledgements cut after the hub committed (frames
					// 3.. after the challenge and the welcome; the
					// end-of-day totals' answer follows them): the records
					// come again and are recognised.
					acks := (n + batch - 1) / batch
					if cut && dir == servertest.Down && after >= 2 && after < 2+acks && h.Server.Stats().Duplicates == 0 {
						t.Fatal("no duplicate after cutting acknowledgements")
					}
					wantStates(t, a.j, journal.Cleared, n)
					wantBalance(t, st, servertest.MerchantAccount, n*amount)
					if err := st.Check(ctx); err != nil {
						t.Fatal(err)
					}
				})
				if !cut || t.Failed() {
					break // the whole exchange fitted in `after` frames
				}
			}
		}
	}
}
