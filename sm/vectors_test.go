package sm

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"math/big"
	"os"
	"testing"

	"github.com/emmansun/gmsm/sm2"
)

// hexBytes is a hex string in the vector file (spaces not allowed).
type hexBytes []byte

func (h *hexBytes) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := hex.DecodeString(s)
	*h = v
	return err
}

type vectorFile struct {
	Comment string `json:"_comment"`
	SM3     []struct {
		Name    string
		MsgText string   `json:"msg_text"`
		MsgHex  hexBytes `json:"msg_hex"`
		Digest  hexBytes
	}
	SM4 []struct {
		Name               string
		Key, Plain, Cipher hexBytes
		Iterations         int
	}
	SM2Sign []struct {
		Name                      string
		D, PX, PY, ZA, E, K, R, S hexBytes
		UIDText                   string `json:"uid_text"`
		MsgText                   string `json:"msg_text"`
	} `json:"sm2_sign"`
	SM2Digest []struct {
		Name         string
		SPKI, E, Sig hexBytes
	} `json:"sm2_digest"`
	DESMACCore []struct {
		Name           string
		Key, Data, MAC hexBytes
	} `json:"des_mac_core"`
	PBOC3DES struct {
		Key  hexBytes
		Load struct {
			Random     hexBytes
			OnlineSeq  hexBytes `json:"online_seq"`
			SessionKey hexBytes `json:"session_key"`
			MAC1Data   hexBytes `json:"mac1_data"`
			MAC1       hexBytes
			MAC2Data   hexBytes `json:"mac2_data"`
			MAC2       hexBytes
		}
		Purchase struct {
			Random     hexBytes
			OfflineSeq hexBytes `json:"offline_seq"`
			TermSeqLow hexBytes `json:"term_seq_low"`
			SessionKey hexBytes `json:"session_key"`
			MAC1Data   hexBytes `json:"mac1_data"`
			MAC1       hexBytes
		}
	} `json:"pboc_3des"`
}

func loadVectors(t testing.TB) *vectorFile {
	t.Helper()
	data, err := os.ReadFile("testdata/vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var v vectorFile
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("testdata/vectors.json: %v", err)
	}
	return &v
}

func TestSM3Vectors(t *testing.T) {
	v := loadVectors(t)
	if len(v.SM3) < 2 {
		t.Fatal("missing SM3 vectors")
	}
	for _, tt := range v.SM3 {
		t.Run(tt.Name, func(t *testing.T) {
			msg := []byte(tt.MsgText)
			if tt.MsgHex != nil {
				msg = tt.MsgHex
			}
			if got := SM3(msg); !bytes.Equal(got[:], tt.Digest) {
				t.Errorf("SM3 = %x, want %x", got, tt.Digest)
			}
			h := NewSM3()
			for i := range msg { // byte by byte: the streaming path
				h.Write(msg[i : i+1])
			}
			if got := h.Sum(nil); !bytes.Equal(got, tt.Digest) {
				t.Errorf("streaming SM3 = %x, want %x", got, tt.Digest)
			}
		})
	}
}

func TestSM4Vectors(t *testing.T) {
	v := loadVectors(t)
	if len(v.SM4) < 2 {
		t.Fatal("missing SM4 vectors")
	}
	for _, tt := range v.SM4 {
		t.Run(tt.Name, func(t *testing.T) {
			// The 1,000,000-iteration vector takes about 0.2 s (more under
			// -race) and stays in the normal run.
			b, err := AlgSM4.newBlock(tt.Key)
			if err != nil {
				t.Fatal(err)
			}
			buf := bytes.Clone(tt.Plain)
			for range tt.Iterations {
				b.Encrypt(buf, buf)
			}
			if !bytes.Equal(buf, tt.Cipher) {
				t.Fatalf("SM4^%d = %x, want %x", tt.Iterations, buf, tt.Cipher)
			}
			if tt.Iterations == 1 {
				got, err := SuiteSM4.Encrypt(tt.Key, tt.Plain)
				if err != nil || !bytes.Equal(got, tt.Cipher) {
					t.Errorf("Encrypt = %x, %v; want %x", got, err, tt.Cipher)
				}
				got, err = SuiteSM4.Decrypt(tt.Key, tt.Cipher)
				if err != nil || !bytes.Equal(got, tt.Plain) {
					t.Errorf("Decrypt = %x, %v; want %x", got, err, tt.Plain)
				}
			}
		})
	}
}

func TestSM2SignVectors(t *testing.T) {
	v := loadVectors(t)
	if len(v.SM2Sign) == 0 {
		t.Fatal("missing SM2 vectors")
	}
	for _, tt := range v.SM2Sign {
		t.Run(tt.Name, func(t *testing.T) {
			priv, err := NewPrivateKey(tt.D)
			if err != nil {
				t.Fatal(err)
			}
			pub := priv.PublicKey()
			if want := append(bytes.Clone(tt.PX), tt.PY...); !bytes.Equal(pub.Point(), want) {
				t.Fatalf("d·G = %x, want %x", pub.Point(), want)
			}
			z, err := Z(pub, []byte(tt.UIDText))
			if err != nil || !bytes.Equal(z, tt.ZA) {
				t.Fatalf("Z = %x, %v; want %x", z, err, tt.ZA)
			}
			e, err := Digest(pub, []byte(tt.MsgText), []byte(tt.UIDText))
			if err != nil || !bytes.Equal(e, tt.E) {
				t.Fatalf("e = %x, %v; want %x", e, err, tt.E)
			}
			// The published (r, s) follow from k: r = (e + x1) mod n with
			// (x1, y1) = [k]G, s = (1+d)^-1 (k - r·d) mod n.
			n := sm2.P256().Params().N
			kG, err := NewPrivateKey(tt.K) // [k]G is k's public key
			if err != nil {
				t.Fatal(err)
			}
			x1 := new(big.Int).SetBytes(kG.PublicKey().Point()[:32])
			r := new(big.Int).Add(new(big.Int).SetBytes(tt.E), x1)
			r.Mod(r, n)
			d := new(big.Int).SetBytes(tt.D)
			inv := new(big.Int).ModInverse(new(big.Int).Add(d, big.NewInt(1)), n)
			s := new(big.Int).Sub(new(big.Int).SetBytes(tt.K), new(big.Int).Mul(r, d))
			s.Mul(s, inv).Mod(s, n)
			if !bytes.Equal(r.FillBytes(make([]byte, 32)), tt.R) || !bytes.Equal(s.FillBytes(make([]byte, 32)), tt.S) {
				t.Fatalf("signature from k = (%x, %x), want (%x, %x)", r, s, tt.R, tt.S)
			}
			sig, err := RawToDER(append(bytes.Clone(tt.R), tt.S...))
			if err != nil {
				t.Fatal(err)
			}
			if !Verify(pub, []byte(tt.MsgText), sig, []byte(tt.UIDText)) {
				t.Error("Verify rejected the published signature")
			}
			if !Verify(pub, []byte(tt.MsgText), sig, nil) {
				t.Error("Verify with the default user ID rejected the published signature")
			}
			if !VerifyDigest(pub, tt.E, sig) {
				t.Error("VerifyDigest rejected the published signature")
			}
			if Verify(pub, []byte(tt.MsgText+"x"), sig, nil) {
				t.Error("Verify accepted a different message")
			}
			if Verify(pub, []byte(tt.MsgText), sig, []byte("8765432187654321")) {
				t.Error("Verify accepted another user ID")
			}
		})
	}
}

// TestIssue560Vector is the regression test of gm-crypto.md trap 1: the
// published valid signature must verify in the environment onecard runs
// with (TestMain guarantees it).
func TestIssue560Vector(t *testing.T) {
	v := loadVectors(t)
	if len(v.SM2Digest) == 0 {
		t.Fatal("missing #560 vector")
	}
	if !bytes.Equal(v.SM2Digest[0].SPKI, mustHex(Issue560PublicKey)) || !bytes.Equal(v.SM2Digest[0].Sig, mustHex(Issue560Signature)) {
		t.Fatal("testdata and the exported Issue560 constants differ")
	}
	for _, tt := range v.SM2Digest {
		t.Run(tt.Name, func(t *testing.T) {
			pub, err := ParsePublicKeyDER(tt.SPKI)
			if err != nil {
				t.Fatal(err)
			}
			if !VerifyDigest(pub, tt.E, tt.Sig) {
				t.Fatalf("valid signature rejected (GODEBUG=%q): gmsm issue #560", os.Getenv("GODEBUG"))
			}
			bad := bytes.Clone(tt.E)
			bad[31] ^= 1
			if VerifyDigest(pub, bad, tt.Sig) {
				t.Error("accepted for another digest")
			}
			if VerifyDigest(pub, tt.E, append(bytes.Clone(tt.Sig), 0)) {
				t.Error("accepted with a trailing byte")
			}
		})
	}
}

func TestDESMACCoreVectors(t *testing.T) {
	v := loadVectors(t)
	if len(v.DESMACCore) < 2 {
		t.Fatal("missing DES MAC vectors")
	}
	for _, tt := range v.DESMACCore {
		t.Run(tt.Name, func(t *testing.T) {
			full, err := Alg3DES.newBlock(tt.Key)
			if err != nil {
				t.Fatal(err)
			}
			k1, err := Alg3DES.newBlock(tt.Key[:8])
			if err != nil {
				t.Fatal(err)
			}
			if got := cbcMAC(k1, full, make([]byte, 8), tt.Data); !bytes.Equal(got, tt.MAC) {
				t.Errorf("CBC-MAC = %x, want %x", got, tt.MAC)
			}
		})
	}
}

func TestPBOC3DESVectors(t *testing.T) {
	p := loadVectors(t).PBOC3DES
	if len(p.Key) != 16 {
		t.Fatal("missing PBOC vectors")
	}
	l := p.Load
	sk, err := Suite3DES.LoadSessionKey(p.Key, l.Random, l.OnlineSeq)
	if err != nil || !bytes.Equal(sk, l.SessionKey) {
		t.Fatalf("load session key = %X, %v; want %X", sk, err, l.SessionKey)
	}
	for _, c := range []struct {
		name      string
		key, data []byte
		want      []byte
	}{
		{"load MAC1", sk, l.MAC1Data, l.MAC1},
		{"load MAC2", sk, l.MAC2Data, l.MAC2},
	} {
		got, err := Suite3DES.MAC(c.key, nil, c.data)
		if err != nil || !bytes.Equal(got, c.want) {
			t.Errorf("%s = %X, %v; want %X", c.name, got, err, c.want)
		}
		if !VerifyMAC(got, c.want) {
			t.Errorf("%s: VerifyMAC rejected the expected value", c.name)
		}
	}
	pu := p.Purchase
	sk, err = Suite3DES.PurchaseSessionKey(p.Key, pu.Random, pu.OfflineSeq, pu.TermSeqLow)
	if err != nil || !bytes.Equal(sk, pu.SessionKey) {
		t.Fatalf("purchase session key = %X, %v; want %X", sk, err, pu.SessionKey)
	}
	got, err := Suite3DES.MAC(sk, nil, pu.MAC1Data)
	if err != nil || !bytes.Equal(got, pu.MAC1) {
		t.Errorf("purchase MAC1 = %X, %v; want %X", got, err, pu.MAC1)
	}
}

// TestSelfTest: every known-answer test of the shipped binary passes in
// the safe environment, and a broken vector is reported, not ignored.
func TestSelfTest(t *testing.T) {
	res := SelfTests()
	if len(res) != len(selfTests) || len(res) < 9 {
		t.Fatalf("got %d results for %d tests", len(res), len(selfTests))
	}
	for _, r := range res {
		if r.Err != nil {
			t.Errorf("%s: %v", r.Name, r.Err)
		}
	}
	if err := SelfTest(); err != nil {
		t.Errorf("SelfTest() = %v", err)
	}

	saved := selfTests
	t.Cleanup(func() { selfTests = saved })
	selfTests = append(append([]selfTest(nil), saved...), selfTest{"deliberately wrong", func() error {
		return wantHex("digest", sum(SM3([]byte("abc"))), "00")
	}})
	err := SelfTest()
	if err == nil || !errors.Is(err, ErrSelfTest) || !bytes.Contains([]byte(err.Error()), []byte("deliberately wrong")) {
		t.Errorf("SelfTest with a wrong vector = %v, want an ErrSelfTest naming it", err)
	}
}
