package sm

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// SelfTestResult is the outcome of one known-answer test.
type SelfTestResult struct {
	Name string // what was checked, with its source
	Err  error  // nil when the answer matched; wraps ErrSelfTest otherwise
}

// selfTest is one known-answer test; run returns nil or a description.
type selfTest struct {
	name string
	run  func() error
}

// Issue560PublicKey and Issue560Signature are the published vector of
// gmsm issue #560: a valid signature over the digest e = 32 zero bytes
// (verify without Z) that gmsm v0.34.1 rejects on BMI2/ADX CPUs unless
// GODEBUG=cpu.adx=off was set at process start.
const (
	Issue560PublicKey = "3059301306072a8648ce3d020106082a811ccf5501822d03420004ef4de57af00ae424c00c4caadff7193f804a19dd73a7e2954db9d0d15ab4cbba67728c3f4572878b7a674735da9fde1682fe2d9e0799c4a5cde57e3d473039a2"
	Issue560Signature = "3046022100BE0EA64E1EC06F0D247093F3CCBBADCFB6260224272F86DDB78326E7CD6C7560022100E9F6AB2FCC48A2CEF94838E66B5C7E21FD8E4DE25990DD98CA5243F4966F2853"
)

// GM/T 0003.5-2012 A.2 (= GB/T 32918.2 example): signature with the
// recommended curve, ID "1234567812345678", message "message digest".
const (
	gbtD  = "3945208F7B2144B13F36E38AC6D39F95889393692860B51A42FB81EF4DF7C5B8"
	gbtPX = "09F9DF311E5421A150DD7D161E4BC5C672179FAD1833FC076BB08FF356F35020"
	gbtPY = "CCEA490CE26775A52DC6EA718CC1AA600AED05FBF35E084A6632F6072DA9AD13"
	gbtZA = "B2E14C5C79C6DF5B85F4FE7ED8DB7A262B9DA7E07CCB0EA9F4747B8CCDA8A4F3"
	gbtE  = "F0B43E94BA45ACCAACE692ED534382EB17E6AB5A19CE7B31F4486FDFC0D28640"
	gbtR  = "F5A03B0648D2C4630EEAC513E1BB81A15944DA3827D5B74143AC7EACEEE720B3"
	gbtS  = "B1B6AA29DF212FD8763182BC0D421CA1BB9038FD1F7F42D4840B69C485BBC1AA"
	gbtM  = "message digest"
)

// PBOC e-purse worked example (ssc-card-facts §6).
const (
	pbocKey = "11223344556677888877665544332211"
)

var selfTests = []selfTest{
	{"SM3 \"abc\" (GB/T 32905 A.1)", func() error {
		return wantHex("digest", sum(SM3([]byte("abc"))), "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0")
	}},
	{"SM3 \"abcd\"x16 (GB/T 32905 A.2)", func() error {
		return wantHex("digest", sum(SM3([]byte(strings.Repeat("abcd", 16)))), "debe9ff92275b8a138604889c18e5a4d6fdb70e5387e5765293dcba39c0c5732")
	}},
	{"SM4 single block (GB/T 32907 A.1)", func() error {
		k := mustHex("0123456789abcdeffedcba9876543210")
		ct, err := SuiteSM4.Encrypt(k, k)
		if err != nil {
			return err
		}
		if err := wantHex("ciphertext", ct, "681edf34d206965e86b3e94f536e4246"); err != nil {
			return err
		}
		pt, err := SuiteSM4.Decrypt(k, ct)
		if err != nil {
			return err
		}
		return wantHex("decryption", pt, "0123456789abcdeffedcba9876543210")
	}},
	{"SM2 verify (GM/T 0003.5 A.2)", func() error {
		priv, err := NewPrivateKey(mustHex(gbtD))
		if err != nil {
			return err
		}
		pub := priv.PublicKey()
		if err := wantHex("public key from d", pub.Point(), gbtPX+gbtPY); err != nil {
			return err
		}
		z, err := Z(pub, []byte(DefaultUID))
		if err != nil {
			return err
		}
		if err := wantHex("Z", z, gbtZA); err != nil {
			return err
		}
		e, err := Digest(pub, []byte(gbtM), nil)
		if err != nil {
			return err
		}
		if err := wantHex("e", e, gbtE); err != nil {
			return err
		}
		sig, err := RawToDER(mustHex(gbtR + gbtS))
		if err != nil {
			return err
		}
		if !Verify(pub, []byte(gbtM), sig, nil) {
			return errors.New("published signature rejected")
		}
		if Verify(pub, []byte(gbtM+"."), sig, nil) {
			return errors.New("signature accepted for a different message")
		}
		return nil
	}},
	{"SM2 issue #560 vector (GODEBUG=cpu.adx=off needed on ADX CPUs)", func() error {
		pub, err := ParsePublicKeyDER(mustHex(Issue560PublicKey))
		if err != nil {
			return err
		}
		if !VerifyDigest(pub, make([]byte, 32), mustHex(Issue560Signature)) {
			return errors.New("valid signature rejected: start the process with GODEBUG=cpu.adx=off (gmsm issue #560)")
		}
		return nil
	}},
	{"SM2 sign/verify pairwise consistency", func() error {
		k, err := GenerateKey(nil)
		if err != nil {
			return err
		}
		msg := []byte("onecard self-test")
		sig, err := Sign(k, msg, nil)
		if err != nil {
			return err
		}
		if !Verify(k.PublicKey(), msg, sig, nil) {
			return errors.New("own signature rejected")
		}
		if Verify(k.PublicKey(), msg, sig, []byte("another id")) {
			return errors.New("signature accepted under another user ID")
		}
		return nil
	}},
	{"DES CBC-MAC (FIPS 113) and 3DES retail MAC (ANSI X9.19) examples", func() error {
		k, err := Alg3DES.newBlock(mustHex("0123456789abcdef"))
		if err != nil {
			return err
		}
		data := append([]byte("7654321 Now is the time for "), 0, 0, 0, 0)
		if err := wantHex("DES MAC", cbcMAC(k, k, make([]byte, 8), data), "f1d30f6849312ca4"); err != nil {
			return err
		}
		full, err := Alg3DES.newBlock(mustHex("0123456789abcdeffedcba9876543210"))
		if err != nil {
			return err
		}
		return wantHex("X9.19 MAC", cbcMAC(k, full, make([]byte, 8), []byte("Now is the time for all ")), "a1c72e74ea3fa9b6")
	}},
	{"3DES PBOC load session key and MAC1/MAC2 (ssc-card-facts §6)", func() error {
		sk, err := Suite3DES.LoadSessionKey(mustHex(pbocKey), mustHex("11223344"), mustHex("0000"))
		if err != nil {
			return err
		}
		if err := wantHex("SESLK", sk, "9B1D924E05595603"); err != nil {
			return err
		}
		mac1, err := Suite3DES.MAC(sk, nil, mustHex("0000000000001000"+"01"+"001122334455"))
		if err != nil {
			return err
		}
		if err := wantHex("MAC1", mac1, "2988AE5A"); err != nil {
			return err
		}
		mac2, err := Suite3DES.MAC(sk, nil, mustHex("00001000"+"01"+"001122334455"+"20111221"+"214822"))
		if err != nil {
			return err
		}
		return wantHex("MAC2", mac2, "3A845BF0")
	}},
	{"3DES PBOC purchase session key and MAC1 (ssc-card-facts §6)", func() error {
		sk, err := Suite3DES.PurchaseSessionKey(mustHex(pbocKey), mustHex("11223344"), mustHex("0000"), mustHex("0001"))
		if err != nil {
			return err
		}
		if err := wantHex("SESPK", sk, "003238ABC57659DD"); err != nil {
			return err
		}
		mac1, err := Suite3DES.MAC(sk, nil, mustHex("00001000"+"06"+"001122334455"+"20120229135100"))
		if err != nil {
			return err
		}
		return wantHex("MAC1", mac1, "F15CAB75")
	}},
}

// SelfTests runs every known-answer test (SM3, SM4, SM2 including the
// issue #560 vector, the PBOC 3DES e-purse example) and returns one result
// per test, in order.
func SelfTests() []SelfTestResult {
	out := make([]SelfTestResult, 0, len(selfTests))
	for _, t := range selfTests {
		var err error
		if e := t.run(); e != nil {
			err = fmt.Errorf("%w: %s: %v", ErrSelfTest, t.name, e)
		}
		out = append(out, SelfTestResult{Name: t.name, Err: err})
	}
	return out
}

// SelfTest runs SelfTests and returns nil when all pass, else the joined
// failures (each wrapping ErrSelfTest).
func SelfTest() error {
	var errs []error
	for _, r := range SelfTests() {
		if r.Err != nil {
			errs = append(errs, r.Err)
		}
	}
	return errors.Join(errs...)
}

func sum(b [32]byte) []byte { return b[:] }

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic("sm: bad hex constant " + s)
	}
	return b
}

// wantHex compares got with the published hex value; these are public test
// values, so printing them is fine.
func wantHex(what string, got []byte, want string) error {
	if w := mustHex(want); !bytes.Equal(got, w) {
		return fmt.Errorf("%s = %X, want %X", what, got, w)
	}
	return nil
}
