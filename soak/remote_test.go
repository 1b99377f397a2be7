package soak_test

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	firmwareprofiles "github.com/onecard-hub/onecard/firmware-profiles"
	"github.com/onecard-hub/onecard/internal/pcsctest"
	"github.com/onecard-hub/onecard/internal/simcard"
	"github.com/onecard-hub/onecard/reader/serial"
	"github.com/onecard-hub/onecard/reader/virtual"
	"github.com/onecard-hub/onecard/soak"
)

// Reader kinds of a campaign's agents.
const (
	kindInProcess = "in-process"
	kindPCSC      = "pcscd/vpcd"
	kindSerial    = "serial crt591"
)

// remoteReader is the campaign's side of an agent whose cards sit behind
// pcscd (vpcd bridges) or a serial reader emulated on a pty: the campaign
// holds the cards (their state files stay beside the card files, so the
// reconciliation reads them) and presents, pulls and tears them.
type remoteReader struct {
	kind  string
	cards []*simcard.SSC
	// gate is held (read) while a card is presented, and (write) while the
	// reader service restarts; nil when nothing restarts.
	gate *sync.RWMutex
	// current is the card in the user slot, -1 when none (or after a pull
	// or a tear, when the slot has to be emptied and the card put back).
	current int
	swap    func(ctx context.Context, k int) error // present card k
	arm     func(n int)                            // pull during the n-th next APDU; 0 cancels
	stats   func() uint64                          // commands that reached the reader
	// inserted reports whether the user slot holds a card right now (a
	// torn card leaves it empty even while current says otherwise); nil
	// for readers that need not know.
	inserted func() bool
}

// prepare presents the command's card (marking c Fresh when it swapped
// it) and arms its fault.
func (r *remoteReader) prepare(ctx context.Context, c *soak.Command) error {
	if r.gate != nil {
		r.gate.RLock()
		defer r.gate.RUnlock()
	}
	if r.current != c.Card {
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := r.swap(sctx, c.Card)
		cancel()
		if err != nil {
			return fmt.Errorf("%s: present card %d: %w", r.kind, c.Card, err)
		}
		r.current, c.Fresh = c.Card, true
	}
	switch c.Fault {
	case soak.FaultTorn:
		if c.Op == soak.OpLoad {
			r.cards[c.Card].SetTorn(simcard.TornAfterLoad, 1)
		} else {
			r.cards[c.Card].SetTorn(simcard.TornAfterDebit, 1)
		}
	case soak.FaultPull:
		r.arm(max(c.PullAt, 1))
	}
	return nil
}

// finish disarms the command's fault; a card that was pulled or torn out
// is put back by the next prepare.
func (r *remoteReader) finish(c soak.Command) {
	if r.gate != nil {
		r.gate.RLock()
		defer r.gate.RUnlock()
	}
	if c.Fault == soak.FaultTorn || c.Fault == soak.FaultPull {
		r.cards[c.Card].SetTorn(simcard.TornNone, 0)
		r.arm(0)
		r.current = -1
	}
}

// startPCSC starts a private pcscd (pcsctest: machine-wide lock, cleanup
// by t) with one vpcd reader, the PSAM behind slot 1 and the user slot 0
// empty, both bridges redialling when pcscd restarts.
func startPCSC(t *testing.T, ctx context.Context, cfg *soak.AgentConfig, cards []*simcard.SSC, psam virtual.Card) (*remoteReader, *pcsctest.Env) {
	t.Helper()
	env := pcsctest.Start(t, pcsctest.Options{})
	opts := func(addr string, c virtual.Card) virtual.VPCDOptions {
		return virtual.VPCDOptions{Addr: addr, Card: c, RetryMin: 10 * time.Millisecond, RetryMax: 200 * time.Millisecond}
	}
	user := virtual.NewVPCD(opts(env.Slots[0].Addr, nil))
	pb := virtual.NewVPCD(opts(env.Slots[1].Addr, psam))
	for _, b := range []*virtual.VPCD{user, pb} {
		bctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- b.Run(bctx) }()
		t.Cleanup(func() {
			cancel()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Error("vpcd bridge did not stop")
			}
		})
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if _, err := pcsctest.WaitCard(wctx, env.Slots[1].Name, true); err != nil {
		t.Fatalf("PSAM behind vpcd: %v", err)
	}
	cfg.PCSCUser, cfg.PCSCPSAM = env.Slots[0].Name, env.Slots[1].Name
	name := env.Slots[0].Name
	return &remoteReader{
		kind: kindPCSC, cards: cards, current: -1,
		// A swap waits until pcscd has seen the old card go and the new
		// one arrive (its presence poll runs every 400 ms).
		swap: func(ctx context.Context, k int) error {
			user.Remove()
			if _, err := pcsctest.WaitCard(ctx, name, false); err != nil {
				return err
			}
			user.Insert(cards[k])
			_, err := pcsctest.WaitCard(ctx, name, true)
			return err
		},
		arm:      user.PullDuring,
		stats:    func() uint64 { return user.Status().APDUs + pb.Status().APDUs },
		inserted: func() bool { return user.Status().Inserted },
	}, env
}

// waitPCSCCards waits until pcscd lists the PSAM and, when its bridge
// holds one, the user card again (after a restart the bridges redial).
func waitPCSCCards(ctx context.Context, cfg soak.AgentConfig, user bool) error {
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if _, err := pcsctest.WaitCard(wctx, cfg.PCSCPSAM, true); err != nil {
		return err
	}
	if user {
		_, err := pcsctest.WaitCard(wctx, cfg.PCSCUser, true)
		return err
	}
	return nil
}

// pullCard is a card a serial reader can lose mid-APDU: the n-th next
// command never reaches the card (the emulator reports it removed).
type pullCard struct {
	*simcard.SSC
	n atomic.Int32
}

func (p *pullCard) Transmit(cmd []byte) ([]byte, error) {
	if p.n.Load() > 0 && p.n.Add(-1) == 0 {
		return nil, virtual.ErrTorn
	}
	return p.SSC.Transmit(cmd)
}

// startSerial runs the CRT-591 firmware-profile emulator on a pty with
// the PSAM in slot psam1; the agent opens the pty with the same profile.
func startSerial(t *testing.T, ctx context.Context, cfg *soak.AgentConfig, cards []*simcard.SSC, psam virtual.Card) *remoteReader {
	t.Helper()
	const profileName = "crt591.yaml"
	p, err := firmwareprofiles.Load(profileName)
	if err != nil {
		t.Fatal(err)
	}
	emu, err := serial.NewEmulator(p, serial.EmulatorOptions{Cards: map[string]virtual.Card{"psam1": psam}})
	if err != nil {
		t.Fatal(err)
	}
	pt, err := emu.ServePTY(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pt.Close() })
	cfg.SerialPort, cfg.SerialProfile = pt.Path, profileName
	wraps := make([]*pullCard, len(cards))
	for i, c := range cards {
		wraps[i] = &pullCard{SSC: c}
	}
	r := &remoteReader{kind: kindSerial, cards: cards, current: -1,
		stats: func() uint64 { return uint64(emu.Stats().Commands) }}
	r.swap = func(_ context.Context, k int) error {
		_ = emu.Remove("user") // an empty slot is fine
		return emu.Insert("user", wraps[k])
	}
	r.arm = func(n int) {
		for i, w := range wraps {
			if i == r.current && n > 0 {
				w.n.Store(int32(n))
			} else {
				w.n.Store(0)
			}
		}
	}
	return r
}

// goroutineTB lets a helper that reports with Fatalf run off the test's
// goroutine: the failure goes to errs and the goroutine exits.
type goroutineTB struct {
	testing.TB
	errs chan<- error
}

func (g goroutineTB) Fatalf(format string, args ...any) {
	g.errs <- fmt.Errorf(format, args...)
	runtime.Goexit()
}

func (g goroutineTB) Fatal(args ...any) {
	g.errs <- fmt.Errorf("%s", fmt.Sprint(args...))
	runtime.Goexit()
}
