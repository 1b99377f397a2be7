package simcard

import (
	"bytes"
	"testing"

	"github.com/onecard-hub/onecard/hub/proof"
	"github.com/onecard-hub/onecard/sm"
)

// vectorCard is a second-generation card whose DPK and DLK are the key of
// the published PBOC worked examples (ssc-card-facts §6) and whose
// pseudo-random number is always 11223344.
func vectorCard(t *testing.T) *SSC {
	t.Helper()
	spec := gen2Spec()
	spec.KeyVersion = 2
	spec.Purse = Purse{Balance: 0x10000}
	rnd := bytes.Repeat(unhex(t, "11223344"), 64)
	card := newSSC(t, spec, Options{Rand: bytes.NewReader(rnd)})
	k := unhex(t, "11223344556677888877665544332211")
	card.keys[sm.KeyDLK] = k
	card.keys[sm.KeyDPK] = k
	card.SetProtocol(T1)
	card.PowerOn()
	mustOK(t, card, selSSSE)
	mustOK(t, card, verifyOK)
	return card
}

// TestPBOCLoadVector: INITIALIZE FOR LOAD answers the published balance,
// counter, key version, algorithm, random and MAC1; CREDIT FOR LOAD
// accepts the published MAC2.
func TestPBOCLoadVector(t *testing.T) {
	card := vectorCard(t)
	got := mustOK(t, card, "805000010B010000100000112233445510")
	if want := "00000000" + "0000" + "02" + "00" + "11223344" + "2988AE5A"; hexUp(got) != want {
		t.Fatalf("INITIALIZE FOR LOAD = %s, want %s", hexUp(got), want)
	}
	tac := mustOK(t, card, "805200000B201112212148223A845BF004")
	if card.ED().Balance != 0x1000 || card.ED().OnlineSeq != 1 {
		t.Fatalf("ED after load: %+v", card.ED())
	}
	// The TAC is made with the card's own (diversified) DTK.
	v := proof.Verifier{Keys: keySet(t), Suite: sm.Suite3DES}
	rec := proof.Load{CardID: card.CardID(), NewBalance: 0x1000, OnlineSeq: 0, Amount: 0x1000, Type: 0x01,
		Terminal: [6]byte{0x00, 0x11, 0x22, 0x33, 0x44, 0x55}, Date: [4]byte{0x20, 0x11, 0x12, 0x21}, Time: [3]byte{0x21, 0x48, 0x22}}
	if err := v.VerifyLoadTAC(rec, tac); err != nil {
		t.Fatal(err)
	}
}

// TestPBOCPurchaseVector: DEBIT FOR PURCHASE accepts the published MAC1
// (session key 003238ABC57659DD) and answers MAC2 = MAC(session key,
// amount).
func TestPBOCPurchaseVector(t *testing.T) {
	for _, tc := range []struct {
		mac1 string
		sw   uint16
	}{
		{"F15CAB75", 0x9000},
		{"F15CAB74", 0x9302},
	} {
		card := vectorCard(t)
		init := mustOK(t, card, "805001020B01000010000011223344550F")
		if want := "00010000" + "0000" + "000000" + "02" + "00" + "11223344"; hexUp(init) != want {
			t.Fatalf("INITIALIZE FOR PURCHASE = %s, want %s", hexUp(init), want)
		}
		out, sw := run(t, card, "805401000F"+"00000001"+"20120229"+"135100"+tc.mac1+"08")
		if sw != tc.sw {
			t.Fatalf("MAC1 %s: SW %04X, want %04X", tc.mac1, sw, tc.sw)
		}
		if sw != 0x9000 {
			if card.EP().Balance != 0x10000 || card.EP().OfflineSeq != 0 {
				t.Fatalf("purse changed after bad MAC1: %+v", card.EP())
			}
			continue
		}
		mac2, err := sm.Suite3DES.MAC(unhex(t, "003238ABC57659DD"), nil, unhex(t, "00001000"))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out[4:8], mac2) {
			t.Fatalf("MAC2 % X, want % X", out[4:8], mac2)
		}
		if card.EP().Balance != 0x10000-0x1000 || card.EP().OfflineSeq != 1 {
			t.Fatalf("EP after purchase: %+v", card.EP())
		}
	}
}
