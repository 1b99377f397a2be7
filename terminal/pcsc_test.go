package terminal_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/onecard-hub/onecard/apdu"
	"github.com/onecard-hub/onecard/internal/pcsctest"
	"github.com/onecard-hub/onecard/internal/simcard"
	"github.com/onecard-hub/onecard/reader"
	"github.com/onecard-hub/onecard/reader/pcsc"
	"github.com/onecard-hub/onecard/reader/virtual"
	"github.com/onecard-hub/onecard/terminal"
	"github.com/onecard-hub/onecard/terminal/journal"
	"github.com/onecard-hub/onecard/terminal/record"
)

// pcscEnv is a private pcscd with the user card and the PSAM behind vpcd,
// reached through reader/pcsc slots.
type pcscEnv struct {
	userName string
	user     *virtual.VPCD
	psam     *simcard.PSAM
	userSlot *pcsc.Slot
	psamSlot *pcsc.Slot
}

func startPCSC(t testing.TB, first virtual.Card) *pcscEnv {
	t.Helper()
	env := pcsctest.Start(t, pcsctest.Options{})
	e := &pcscEnv{userName: env.Slots[0].Name, psam: newPSAM(t)}
	e.user = virtual.NewVPCD(virtual.VPCDOptions{Addr: env.Slots[0].Addr, Card: first})
	pb := virtual.NewVPCD(virtual.VPCDOptions{Addr: env.Slots[1].Addr, Card: e.psam})
	for _, b := range []*virtual.VPCD{e.user, pb} {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- b.Run(ctx) }()
		t.Cleanup(func() {
			cancel()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Error("vpcd bridge did not stop")
			}
		})
	}
	waitPresent(t, env.Slots[0].Name, first != nil)
	waitPresent(t, env.Slots[1].Name, true)
	e.userSlot = pcsc.NewSlot(env.Slots[0].Name, pcsc.Options{})
	e.psamSlot = pcsc.NewSlot(env.Slots[1].Name, pcsc.Options{})
	t.Cleanup(func() { _ = e.userSlot.Disconnect(); _ = e.psamSlot.Disconnect() })
	return e
}

func waitPresent(t testing.TB, name string, present bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if _, err := pcsctest.WaitCard(ctx, name, present); err != nil {
		t.Fatal(err)
	}
}

// insert swaps the user card: out, seen out, in, seen in.
func (e *pcscEnv) insert(t testing.TB, c virtual.Card) {
	t.Helper()
	e.user.Remove()
	waitPresent(t, e.userName, false)
	e.user.Insert(c)
	waitPresent(t, e.userName, true)
}

func (e *pcscEnv) rig(t testing.TB, card *simcard.SSC, ro rigOpts) *rig {
	t.Helper()
	var ps reader.Slot = e.psamSlot
	if ro.noPSAM {
		ps = nil
	}
	r := newRigWith(t, card, e.userSlot, ps, ro)
	r.psam = e.psam
	return r
}

// TestPCSCFlows runs the terminal's flows through the real PC/SC stack:
// pcscd, vpcd and reader/pcsc's Slot with its transactions.
func TestPCSCFlows(t *testing.T) {
	gen2 := newCard(t, "ssc-gen2.yaml", nil)
	gen3 := newCard(t, "ssc-gen3.yaml", nil)
	e := startPCSC(t, gen3)
	for _, c := range []struct {
		name string
		card *simcard.SSC
	}{{"gen3", gen3}, {"gen2", gen2}} {
		card := c.card
		spec := readSpec(t, map[string]string{"gen2": "ssc-gen2.yaml", "gen3": "ssc-gen3.yaml"}[c.name]).SSC
		if c.name == "gen2" {
			e.insert(t, card)
		}
		t.Run(c.name+"/identity", func(t *testing.T) {
			for _, m := range []struct {
				ro   rigOpts
				mode terminal.ReadMode
			}{
				{rigOpts{}, terminal.ModePSAM},
				{rigOpts{noPSAM: true, keyService: true}, terminal.ModeKeyService},
				{rigOpts{}, terminal.ModePublic},
			} {
				r := e.rig(t, card, m.ro)
				id, err := r.sess.ReadIdentity(ctxT(t), terminal.ReadOptions{Mode: m.mode})
				if err != nil {
					t.Fatalf("%v: %v", m.mode, err)
				}
				want := spec.Holder.Name
				if m.mode == terminal.ModePublic {
					want = ""
				}
				if id.Mode != m.mode || id.Name != want || id.CardID.String() != spec.CardID {
					t.Errorf("%v: %v", m.mode, id)
				}
			}
		})
		t.Run(c.name+"/pay-load-certify", func(t *testing.T) {
			r := e.rig(t, card, rigOpts{})
			b0 := card.Balance()
			rc, err := payOnce(t, r, 990)
			if err != nil {
				t.Fatalf("pay: %v", err)
			}
			checkTAC(t, card, rc.Record())
			if _, err := payOnce(t, r, card.Balance()+1); !errors.Is(err, apdu.ErrInsufficientBalance) {
				t.Errorf("pay above the balance: %v", err)
			}
			lr, err := r.sess.Load(ctxT(t), terminal.LoadRequest{Amount: 2000, Programme: "P"})
			if err != nil {
				t.Fatalf("load: %v", err)
			}
			checkTAC(t, card, lr.Record())
			if card.Balance() != b0-990+2000 {
				t.Errorf("balance %d", card.Balance())
			}
			r.pins("123456")
			cr, err := r.sess.Certify(ctxT(t), terminal.CertifyRequest{Programme: "PENSION"})
			if err != nil {
				t.Fatalf("certify: %v", err)
			}
			if (len(cr.Record().Attestation.CardSignature) == 64) != (card.Generation() == 3) {
				t.Errorf("attestation %+v", cr.Record().Attestation)
			}
			var id record.CardID
			copy(id[:], card.CardID())
			r.lost.Add(id)
			if _, err := payOnce(t, r, 1); !errors.Is(err, terminal.ErrLostCard) {
				t.Errorf("lost card: %v", err)
			}
		})
		t.Run(c.name+"/torn-debit", func(t *testing.T) {
			r := e.rig(t, card, rigOpts{})
			b0 := card.Balance()
			card.SetTorn(simcard.TornAfterDebit, 1)
			_, err := payOnce(t, r, 321)
			if !errors.Is(err, terminal.ErrOutcomeUnknown) || !errors.Is(err, reader.ErrCardRemoved) {
				t.Fatalf("torn debit: %v", err)
			}
			waitPresent(t, e.userName, false)
			e.user.Insert(nil)
			waitPresent(t, e.userName, true)
			res, err := r.sess.Settle(ctxT(t))
			if err != nil || len(res) != 1 || res[0].Outcome != terminal.Happened {
				t.Fatalf("settle: %+v %v", res, err)
			}
			if card.Balance() != b0-321 {
				t.Errorf("balance %d", card.Balance())
			}
			es := entries(t, r.j)
			if len(es) != 1 || es[0].State != journal.CardDone {
				t.Fatalf("journal %+v", es)
			}
			checkTAC(t, card, es[0].Record)
		})
		t.Run(c.name+"/pin-blocked", func(t *testing.T) {
			r := e.rig(t, card, rigOpts{})
			r.pins("000000", "000000", "000000", "123456")
			for want := 2; want >= 0; want-- {
				err := r.sess.VerifyPIN(ctxT(t))
				var pe *terminal.PINError
				if !errors.As(err, &pe) || pe.TriesLeft != want || pe.Blocked != (want == 0) {
					t.Fatalf("wrong PIN: %v, want %d left", err, want)
				}
			}
			var pe *terminal.PINError
			if err := r.sess.VerifyPIN(ctxT(t)); !errors.As(err, &pe) || !pe.Blocked {
				t.Errorf("blocked: %v", err)
			}
		})
	}
}
