package terminal_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/onecard-hub/onecard/apdu"
	"github.com/onecard-hub/onecard/internal/simcard"
	"github.com/onecard-hub/onecard/reader/serial"
	"github.com/onecard-hub/onecard/reader/serial/profile"
	"github.com/onecard-hub/onecard/reader/virtual"
	"github.com/onecard-hub/onecard/terminal"
)

// TestSerialFlows drives the terminal through a vendor serial reader: the
// firmware-profile emulator on a pty (reader/serial) holding the user card
// and the PSAM, and reader/serial's Reader opened on the pty's device.
func TestSerialFlows(t *testing.T) {
	for _, file := range cardFiles {
		t.Run(file, func(t *testing.T) {
			p, err := profile.LoadFile(filepath.Join("..", "firmware-profiles", "crt310.yaml"))
			if err != nil {
				t.Fatal(err)
			}
			card := newCard(t, file, nil)
			psam := newPSAM(t)
			emu, err := serial.NewEmulator(p, serial.EmulatorOptions{Cards: map[string]virtual.Card{"user": card, "psam1": psam}})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			pt, err := emu.ServePTY(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer pt.Close()
			rd, err := serial.Open(ctxT(t), serial.Options{Port: pt.Path, Profile: p})
			if err != nil {
				t.Fatal(err)
			}
			defer rd.Close()
			user, err := rd.Slot("user")
			if err != nil {
				t.Fatal(err)
			}
			ps, err := rd.Slot("psam1")
			if err != nil {
				t.Fatal(err)
			}
			r := newRigWith(t, card, user, ps, rigOpts{})
			r.psam = psam
			spec := readSpec(t, file).SSC

			id, err := r.sess.ReadIdentity(ctxT(t), terminal.ReadOptions{Mode: terminal.ModePSAM})
			if err != nil {
				t.Fatalf("identity: %v", err)
			}
			if id.Name != spec.Holder.Name || id.PersonID != spec.Holder.SSN || !id.Genuine {
				t.Errorf("identity %v", id)
			}
			b0 := card.Balance()
			rc, err := payOnce(t, r, 4321)
			if err != nil {
				t.Fatalf("pay: %v", err)
			}
			checkTAC(t, card, rc.Record())
			if _, err := payOnce(t, r, card.Balance()+1); !errors.Is(err, apdu.ErrInsufficientBalance) {
				t.Errorf("insufficient balance: %v", err)
			}
			lr, err := r.sess.Load(ctxT(t), terminal.LoadRequest{Amount: 100, Programme: "P"})
			if err != nil {
				t.Fatalf("load: %v", err)
			}
			checkTAC(t, card, lr.Record())
			if card.Balance() != b0-4321+100 {
				t.Errorf("balance %d", card.Balance())
			}
			r.pins("999999")
			var pe *terminal.PINError
			if err := r.sess.VerifyPIN(ctxT(t)); !errors.As(err, &pe) || pe.TriesLeft != 2 {
				t.Errorf("wrong PIN: %v", err)
			}
			// A debit torn on the card: the serial reader reports the card
			// gone; the next operation settles it.
			card.SetTorn(simcard.TornAfterDebit, 1)
			_, err = payOnce(t, r, 55)
			if !errors.Is(err, terminal.ErrOutcomeUnknown) {
				t.Fatalf("torn debit: %v", err)
			}
			if err := emu.Insert("user", card); err != nil {
				t.Fatal(err)
			}
			res, err := r.sess.Settle(ctxT(t))
			if err != nil || len(res) != 1 || res[0].Outcome != terminal.Happened {
				t.Fatalf("settle: %+v %v", res, err)
			}
			if card.Balance() != b0-4321+100-55 {
				t.Errorf("balance after the torn debit %d", card.Balance())
			}
		})
	}
}
