package record

import (
	"bytes"
	"errors"
	"testing"

	"github.com/onecard-hub/onecard/sm"
)

func testKey(t testing.TB, label string) *sm.PrivateKey {
	t.Helper()
	ks, err := sm.TestKeySet(label)
	if err != nil {
		t.Fatal(err)
	}
	return ks.TerminalKey()
}

func TestRecordSignVerify(t *testing.T) {
	priv := testKey(t, "record-sign")
	other := testKey(t, "record-other")
	for _, r := range samples(t) {
		t.Run(r.Kind.String(), func(t *testing.T) {
			sig, err := r.Sign(priv)
			if err != nil {
				t.Fatal(err)
			}
			if len(sig) != SignatureLen {
				t.Fatalf("signature %d bytes", len(sig))
			}
			if err := r.Verify(priv.PublicKey(), sig); err != nil {
				t.Fatalf("verify: %v", err)
			}
			// The user ID is the terminal number, not the default UID.
			msg, _ := r.MarshalBinary()
			der, _ := sm.RawToDER(sig)
			if !sm.Verify(priv.PublicKey(), msg, der, []byte(r.TerminalID)) {
				t.Error("signature does not verify with UID = terminal number")
			}
			if sm.Verify(priv.PublicKey(), msg, der, nil) {
				t.Error("signature verifies with the default UID")
			}
			if err := r.Verify(other.PublicKey(), sig); !errors.Is(err, ErrSignature) {
				t.Errorf("other key: err %v", err)
			}
			for name, edit := range map[string]func(*Record){
				"seq":      func(c *Record) { c.TerminalSeq++ },
				"terminal": func(c *Record) { c.TerminalID = "370100000002" },
				"counter":  func(c *Record) { c.CardCounter++ },
				"merchant": func(c *Record) { c.Merchant += "x" },
				"pin":      func(c *Record) { c.Attestation.PINVerified = !c.Attestation.PINVerified },
			} {
				c := r.Clone()
				edit(c)
				if err := c.Verify(priv.PublicKey(), sig); !errors.Is(err, ErrSignature) {
					t.Errorf("tampered %s: err %v", name, err)
				}
			}
			bad := bytes.Clone(sig)
			bad[10] ^= 1
			if err := r.Verify(priv.PublicKey(), bad); !errors.Is(err, ErrSignature) {
				t.Errorf("flipped bit: err %v", err)
			}
			if err := r.Verify(priv.PublicKey(), sig[:63]); !errors.Is(err, ErrSignature) {
				t.Errorf("short signature: err %v", err)
			}
		})
	}
	r := samplePay(t)
	r.TerminalSeq = 0
	if _, err := r.Sign(priv); !errors.Is(err, ErrInvalid) {
		t.Errorf("sign without a sequence: err %v", err)
	}
	r = samplePay(t)
	r.Amount = 0
	if _, err := r.Sign(priv); !errors.Is(err, ErrInvalid) {
		t.Errorf("sign invalid record: err %v", err)
	}
}

func TestRecordEnvelope(t *testing.T) {
	priv := testKey(t, "record-sign")
	env, err := Seal(samplePay(t), priv)
	if err != nil {
		t.Fatal(err)
	}
	b, err := env.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeEnvelope(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := got.Verify(priv.PublicKey()); err != nil {
		t.Fatalf("verify decoded envelope: %v", err)
	}
	b2, _ := got.MarshalBinary()
	if !bytes.Equal(b, b2) {
		t.Error("envelope re-encoding differs")
	}
	rec, _ := samplePay(t).MarshalBinary()
	if !bytes.Equal(b[6:6+len(rec)], rec) || b[6+len(rec)] != SigSM2 {
		t.Error("envelope does not embed the canonical record then the algorithm byte")
	}
	patch := func(i int, v byte) []byte { c := bytes.Clone(b); c[i] = v; return c }
	for _, tt := range []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, ErrTruncated},
		{"magic", patch(0, 'X'), ErrMagic},
		{"record length too big", patch(4, 0xFF), ErrTruncated},
		{"record length short", patch(5, b[5]-1), ErrTruncated},
		{"algorithm", patch(6+len(rec), 2), ErrInvalid},
		{"signature truncated", b[:len(b)-1], ErrTruncated},
		{"trailing", append(bytes.Clone(b), 0), ErrTrailingData},
		{"record bad", patch(6+4, 9), ErrVersion},
	} {
		if _, err := DecodeEnvelope(tt.in); !errors.Is(err, tt.want) {
			t.Errorf("%s: err %v, want %v", tt.name, err, tt.want)
		}
	}
	tampered := patch(6+len(rec)+5, b[6+len(rec)+5]^1)
	e, err := DecodeEnvelope(tampered)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Verify(priv.PublicKey()); !errors.Is(err, ErrSignature) {
		t.Errorf("tampered signature: err %v", err)
	}
	if _, err := (&Envelope{Record: samplePay(t), Signature: []byte{1}}).MarshalBinary(); !errors.Is(err, ErrSignature) {
		t.Errorf("short signature marshal: err %v", err)
	}
	if err := (&Envelope{}).Verify(priv.PublicKey()); !errors.Is(err, ErrSignature) {
		t.Errorf("empty envelope verify: err %v", err)
	}
}
