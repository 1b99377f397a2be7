package proof

import (
	"bytes"
	"crypto/cipher"
	"crypto/des"
	"errors"
	"testing"

	"github.com/emmansun/gmsm/sm4"

	"github.com/onecard-hub/onecard/sm"
)

// Independent re-implementations of the written rules with the standard
// block ciphers, to check Verifier against something other than package
// sm's own helpers.

func not(b []byte) []byte {
	out := make([]byte, len(b))
	for i, x := range b {
		out[i] = ^x
	}
	return out
}

func ecb(b cipher.Block, data []byte) []byte {
	out := make([]byte, len(data))
	for i := 0; i < len(data); i += b.BlockSize() {
		b.Encrypt(out[i:], data[i:i+b.BlockSize()])
	}
	return out
}

func tdes(t *testing.T, key16 []byte) cipher.Block {
	b, err := des.NewTripleDESCipher(append(append([]byte(nil), key16...), key16[:8]...))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func pad(data []byte, bs int) []byte {
	p := append(append([]byte(nil), data...), 0x80)
	for len(p)%bs != 0 {
		p = append(p, 0)
	}
	return p
}

func cbcMAC(b cipher.Block, data []byte) []byte {
	bs := b.BlockSize()
	p := pad(data, bs)
	x := make([]byte, bs)
	for i := 0; i < len(p); i += bs {
		for j := range bs {
			x[j] ^= p[i+j]
		}
		b.Encrypt(x, x)
	}
	return x[:4]
}

func refTAC3DES(t *testing.T, master, factor, data []byte) []byte {
	m := tdes(t, master)
	dtk := append(ecb(m, factor), ecb(m, not(factor))...)
	k := make([]byte, 8)
	for i := range k {
		k[i] = dtk[i] ^ dtk[8+i]
	}
	b, err := des.NewCipher(k)
	if err != nil {
		t.Fatal(err)
	}
	return cbcMAC(b, data)
}

func refTACSM4(t *testing.T, master, factor, data []byte) []byte {
	m, err := sm4.NewCipher(master)
	if err != nil {
		t.Fatal(err)
	}
	dtk := ecb(m, append(append([]byte(nil), factor...), not(factor)...))
	b, err := sm4.NewCipher(dtk)
	if err != nil {
		t.Fatal(err)
	}
	return cbcMAC(b, data)
}

func testKeys(t *testing.T) *sm.KeySet {
	ks, err := sm.TestKeySet("proof-tests")
	if err != nil {
		t.Fatal(err)
	}
	return ks
}

var cardID = []byte{0x33, 0x01, 0x00, 0xD1, 0x56, 0x00, 0x00, 0x05, 0x93, 0xE4, 0xB7, 0x02, 0x6C, 0x1A, 0xF5, 0xD8}

func samplePurchase() Purchase {
	return Purchase{CardID: cardID, Amount: 1234, Type: 0x06,
		Terminal: [6]byte{0x33, 0x01, 0x00, 0x00, 0x00, 0x01}, TermSeq: 0x00010203,
		Date: [4]byte{0x20, 0x24, 0x02, 0x29}, Time: [3]byte{0x13, 0x51, 0x00}}
}

func TestPurchaseTACIndependent(t *testing.T) {
	ks := testKeys(t)
	p := samplePurchase()
	data := []byte{0x00, 0x00, 0x04, 0xD2, 0x06, 0x33, 0x01, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01, 0x02, 0x03,
		0x20, 0x24, 0x02, 0x29, 0x13, 0x51, 0x00}
	for _, tc := range []struct {
		suite sm.Suite
		ref   func(*testing.T, []byte, []byte, []byte) []byte
	}{{sm.Suite3DES, refTAC3DES}, {sm.SuiteSM4, refTACSM4}} {
		master, err := ks.Master(tc.suite.Alg, sm.KeyDTK)
		if err != nil {
			t.Fatal(err)
		}
		want := tc.ref(t, master, cardID[8:], data)
		v := Verifier{Keys: ks, Suite: tc.suite}
		got, err := v.PurchaseTAC(p)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%s: TAC % X (%v), reference % X", tc.suite.Name(), got, err, want)
		}
		if err := v.VerifyPurchaseTAC(p, want); err != nil {
			t.Fatalf("%s: %v", tc.suite.Name(), err)
		}
		bad := append([]byte(nil), want...)
		bad[3] ^= 1
		if err := v.VerifyPurchaseTAC(p, bad); !errors.Is(err, ErrTACMismatch) {
			t.Fatalf("%s: altered TAC: %v", tc.suite.Name(), err)
		}
	}
}

func TestLoadIndependent(t *testing.T) {
	ks := testKeys(t)
	v := Verifier{Keys: ks, Suite: sm.Suite3DES}
	a := LoadAuth{CardID: cardID, Balance: 0, OnlineSeq: 7, Random: [4]byte{1, 2, 3, 4}, Amount: 0x1000, Type: 0x02,
		Terminal: [6]byte{0, 0x11, 0x22, 0x33, 0x44, 0x55}, Date: [4]byte{0x20, 0x11, 0x12, 0x21}, Time: [3]byte{0x21, 0x48, 0x22}}
	master, _ := ks.Master(sm.Alg3DES, sm.KeyDLK)
	m := tdes(t, master)
	dlk := append(ecb(m, cardID[8:]), ecb(m, not(cardID[8:]))...)
	ses := ecb(tdes(t, dlk), []byte{1, 2, 3, 4, 0x00, 0x07, 0x80, 0x00})
	sb, _ := des.NewCipher(ses)
	mac1 := cbcMAC(sb, []byte{0, 0, 0, 0, 0, 0, 0x10, 0, 0x02, 0, 0x11, 0x22, 0x33, 0x44, 0x55})
	if err := v.VerifyLoadMAC1(a, mac1); err != nil {
		t.Fatalf("MAC1: %v", err)
	}
	mac1[0] ^= 1
	if err := v.VerifyLoadMAC1(a, mac1); !errors.Is(err, ErrMACMismatch) {
		t.Fatalf("altered MAC1: %v", err)
	}
	want := cbcMAC(sb, []byte{0, 0, 0x10, 0, 0x02, 0, 0x11, 0x22, 0x33, 0x44, 0x55, 0x20, 0x11, 0x12, 0x21, 0x21, 0x48, 0x22})
	if got, err := v.LoadMAC2(a); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("MAC2 % X (%v), reference % X", got, err, want)
	}
	l := Load{CardID: cardID, NewBalance: 0x1000, OnlineSeq: 7, Amount: 0x1000, Type: 0x02, Terminal: a.Terminal, Date: a.Date, Time: a.Time}
	dtkMaster, _ := ks.Master(sm.Alg3DES, sm.KeyDTK)
	tac := refTAC3DES(t, dtkMaster, cardID[8:], []byte{0, 0, 0x10, 0, 0, 7, 0, 0, 0x10, 0, 0x02, 0, 0x11, 0x22, 0x33, 0x44, 0x55,
		0x20, 0x11, 0x12, 0x21, 0x21, 0x48, 0x22})
	if err := v.VerifyLoadTAC(l, tac); err != nil {
		t.Fatal(err)
	}
	l.NewBalance++
	if err := v.VerifyLoadTAC(l, tac); !errors.Is(err, ErrTACMismatch) {
		t.Fatalf("altered balance: %v", err)
	}
}

func TestBadInput(t *testing.T) {
	ks := testKeys(t)
	v := Verifier{Keys: ks, Suite: sm.SuiteSM4}
	p := samplePurchase()
	tac, err := v.PurchaseTAC(p)
	if err != nil {
		t.Fatal(err)
	}
	short := p
	short.CardID = cardID[:15]
	for name, err := range map[string]error{
		"short card ID": v.VerifyPurchaseTAC(short, tac),
		"short TAC":     v.VerifyPurchaseTAC(p, tac[:3]),
		"no keys":       Verifier{Suite: sm.SuiteSM4}.VerifyPurchaseTAC(p, tac),
		"load card ID":  v.VerifyLoadTAC(Load{CardID: nil}, tac),
		"mac1 card ID":  v.VerifyLoadMAC1(LoadAuth{}, tac),
		"signature len": v.VerifyCardSignature(cardID, []byte("x"), make([]byte, 63)),
		"pubkey ID":     func() error { _, err := v.CardPublicKey(cardID[:4]); return err }(),
	} {
		if !errors.Is(err, ErrBadRecord) {
			t.Errorf("%s: %v, want ErrBadRecord", name, err)
		}
	}
	if _, err := v.LoadMAC2(LoadAuth{CardID: cardID[:3]}); !errors.Is(err, ErrBadRecord) {
		t.Errorf("LoadMAC2 short card ID: %v", err)
	}
	if err := v.VerifyCardSignature(cardID, []byte("x"), make([]byte, 64)); !errors.Is(err, ErrBadSignature) {
		t.Errorf("zero signature: %v", err)
	}
	if f, err := CardFactor(cardID); err != nil || !bytes.Equal(f, cardID[8:]) {
		t.Errorf("factor % X %v", f, err)
	}
}

func TestCardSignatureRoundTrip(t *testing.T) {
	// The hub derives the public key; an SM2 signature made with the
	// matching private key (derived the same way) verifies.
	ks := testKeys(t)
	v := Verifier{Keys: ks, Suite: sm.SuiteSM4}
	pub, err := v.CardPublicKey(cardID)
	if err != nil {
		t.Fatal(err)
	}
	other, err := v.CardPublicKey(append(append([]byte(nil), cardID[:15]...), 0))
	if err != nil || pub.Equal(other) {
		t.Fatalf("two cards share a key (%v)", err)
	}
	if len(pub.Bytes()) != 65 {
		t.Fatalf("point %d bytes", len(pub.Bytes()))
	}
}
