package simcard

import (
	"errors"
	"fmt"
	"testing"

	"github.com/onecard-hub/onecard/hub/proof"
	"github.com/onecard-hub/onecard/sm"
)

// flips returns one mutation per byte of every field the TAC covers.
func purchaseFlips() []struct {
	name string
	mut  func(*proof.Purchase)
} {
	var out []struct {
		name string
		mut  func(*proof.Purchase)
	}
	add := func(name string, mut func(*proof.Purchase)) {
		out = append(out, struct {
			name string
			mut  func(*proof.Purchase)
		}{name, mut})
	}
	for i := range 4 {
		add(fmt.Sprintf("amount[%d]", i), func(p *proof.Purchase) { p.Amount ^= 1 << (8 * i) })
		add(fmt.Sprintf("termseq[%d]", i), func(p *proof.Purchase) { p.TermSeq ^= 1 << (8 * i) })
		add(fmt.Sprintf("date[%d]", i), func(p *proof.Purchase) { p.Date[i] ^= 0x01 })
	}
	for i := range 6 {
		add(fmt.Sprintf("terminal[%d]", i), func(p *proof.Purchase) { p.Terminal[i] ^= 0x01 })
	}
	for i := range 3 {
		add(fmt.Sprintf("time[%d]", i), func(p *proof.Purchase) { p.Time[i] ^= 0x01 })
	}
	add("type", func(p *proof.Purchase) { p.Type = 0x05 })
	add("card", func(p *proof.Purchase) { p.CardID = append([]byte(nil), p.CardID...); p.CardID[15] ^= 1 })
	return out
}

func TestPurchaseTACProof(t *testing.T) {
	for _, spec := range []SSCSpec{gen2Spec(), gen3Spec()} {
		t.Run(fmt.Sprintf("gen%d", spec.Generation), func(t *testing.T) {
			card := newSSC(t, spec, Options{})
			psam := newPSAM(t, Options{})
			before := card.EP()
			seqBefore := psam.NextSeq()
			run := purchase(t, card, psam, 1234, "20240229", "135100")
			v := verifierFor(t, card)
			if err := v.VerifyPurchaseTAC(run.rec, run.tac); err != nil {
				t.Fatalf("genuine purchase rejected: %v", err)
			}
			after := card.EP()
			if after.Balance != before.Balance-1234 || after.OfflineSeq != before.OfflineSeq+1 {
				t.Fatalf("purse %+v -> %+v", before, after)
			}
			if run.rec.TermSeq != seqBefore || psam.NextSeq() != seqBefore+1 {
				t.Fatalf("terminal seq %d, PSAM next %d (was %d)", run.rec.TermSeq, psam.NextSeq(), seqBefore)
			}
			for _, f := range purchaseFlips() {
				rec := run.rec
				f.mut(&rec)
				if err := v.VerifyPurchaseTAC(rec, run.tac); !errors.Is(err, proof.ErrTACMismatch) {
					t.Errorf("%s flipped: err = %v, want ErrTACMismatch", f.name, err)
				}
			}
			for i := range 4 {
				tac := append([]byte(nil), run.tac...)
				tac[i] ^= 0x80
				if err := v.VerifyPurchaseTAC(run.rec, tac); !errors.Is(err, proof.ErrTACMismatch) {
					t.Errorf("tac[%d] flipped: err = %v", i, err)
				}
			}
			// A verifier with the other generation's suite must not accept it.
			other := v
			if spec.Generation == 2 {
				other.Suite = sm.SuiteSM4
			} else {
				other.Suite = sm.Suite3DES
			}
			if err := other.VerifyPurchaseTAC(run.rec, run.tac); err == nil {
				t.Error("TAC accepted under the wrong suite")
			}
		})
	}
}

func loadFlips() []struct {
	name string
	mut  func(*proof.Load)
} {
	var out []struct {
		name string
		mut  func(*proof.Load)
	}
	add := func(name string, mut func(*proof.Load)) {
		out = append(out, struct {
			name string
			mut  func(*proof.Load)
		}{name, mut})
	}
	for i := range 4 {
		add(fmt.Sprintf("amount[%d]", i), func(l *proof.Load) { l.Amount ^= 1 << (8 * i) })
		add(fmt.Sprintf("balance[%d]", i), func(l *proof.Load) { l.NewBalance ^= 1 << (8 * i) })
		add(fmt.Sprintf("date[%d]", i), func(l *proof.Load) { l.Date[i] ^= 0x01 })
	}
	for i := range 2 {
		add(fmt.Sprintf("onlineseq[%d]", i), func(l *proof.Load) { l.OnlineSeq ^= 1 << (8 * i) })
	}
	for i := range 6 {
		add(fmt.Sprintf("terminal[%d]", i), func(l *proof.Load) { l.Terminal[i] ^= 0x01 })
	}
	for i := range 3 {
		add(fmt.Sprintf("time[%d]", i), func(l *proof.Load) { l.Time[i] ^= 0x01 })
	}
	add("type", func(l *proof.Load) { l.Type = 0x01 })
	return out
}

func TestLoadTACProof(t *testing.T) {
	for _, spec := range []SSCSpec{gen2Spec(), gen3Spec()} {
		t.Run(fmt.Sprintf("gen%d", spec.Generation), func(t *testing.T) {
			card := newSSC(t, spec, Options{})
			v := verifierFor(t, card)
			before := card.EP()
			run := load(t, card, v, 20000, "330100000001", "20240301", "083000")
			if err := v.VerifyLoadTAC(run.rec, run.tac); err != nil {
				t.Fatalf("genuine load rejected: %v", err)
			}
			after := card.EP()
			if after.Balance != before.Balance+20000 || after.OnlineSeq != before.OnlineSeq+1 || after.OfflineSeq != before.OfflineSeq {
				t.Fatalf("purse %+v -> %+v", before, after)
			}
			for _, f := range loadFlips() {
				rec := run.rec
				f.mut(&rec)
				if err := v.VerifyLoadTAC(rec, run.tac); !errors.Is(err, proof.ErrTACMismatch) {
					t.Errorf("%s flipped: err = %v, want ErrTACMismatch", f.name, err)
				}
			}
		})
	}
}

// TestLoadBadMAC2 checks that a MAC2 not made from the key set is refused
// with 9302 and changes nothing.
func TestLoadBadMAC2(t *testing.T) {
	for _, spec := range []SSCSpec{gen2Spec(), gen3Spec()} {
		card := newSSC(t, spec, Options{})
		v := verifierFor(t, card)
		credit, _ := startLoad(t, card, v, 0x02, 100, "330100000001", "20240301", "083000")
		before := card.EP()
		credit.Data[len(credit.Data)-1] ^= 1
		r, err := exchange(card, credit)
		if err != nil || r.SW != 0x9302 {
			t.Fatalf("gen%d: bad MAC2: %04X %v, want 9302", spec.Generation, r.SW, err)
		}
		if card.EP() != before {
			t.Fatalf("gen%d: purse changed on bad MAC2", spec.Generation)
		}
		// The session is gone: a retry with the right MAC2 is refused.
		credit.Data[len(credit.Data)-1] ^= 1
		if r, _ := exchange(card, credit); r.SW != 0x6901 {
			t.Fatalf("gen%d: credit without session: %04X, want 6901", spec.Generation, r.SW)
		}
	}
}

func TestCardSignature(t *testing.T) {
	card := newSSC(t, gen3Spec(), Options{})
	v := verifierFor(t, card)
	mustOK(t, card, selSSSE)
	msg := "0102030405060708090A0B0C0D0E0F10"
	if _, sw := run(t, card, "802A9E9A10"+msg+"40"); sw != 0x6982 {
		t.Fatalf("sign without PIN: %04X, want 6982", sw)
	}
	mustOK(t, card, verifyOK)
	sig := mustOK(t, card, "802A9E9A10"+msg+"40")
	if len(sig) != 64 {
		t.Fatalf("signature %d bytes", len(sig))
	}
	if err := v.VerifyCardSignature(card.CardID(), unhex(t, msg), sig); err != nil {
		t.Fatalf("genuine signature rejected: %v", err)
	}
	if err := v.VerifyCardSignature(card.CardID(), unhex(t, "00"+msg[2:]), sig); !errors.Is(err, proof.ErrBadSignature) {
		t.Fatalf("altered message: %v", err)
	}
	pub := mustOK(t, card, "00CA7F4900")
	want, err := v.CardPublicKey(card.CardID())
	if err != nil {
		t.Fatal(err)
	}
	if !equalHex(pub, hexUp(want.Bytes())) || !equalHex(card.SM2PublicKey(), hexUp(want.Bytes())) {
		t.Fatalf("GET DATA public key % X, hub derives % X", pub, want.Bytes())
	}
	// Second-generation cards have no SM2.
	g2 := newSSC(t, gen2Spec(), Options{})
	mustOK(t, g2, selSSSE)
	if _, sw := raw(t, g2, "00CA7F4941"); sw != 0x6D00 {
		t.Fatalf("gen2 GET DATA: %04X, want 6D00", sw)
	}
}
