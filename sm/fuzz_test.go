package sm

import (
	"bytes"
	"errors"
	"os"
	"testing"
)

// Fuzz targets for every decoder: none may panic, and whatever decodes must
// re-encode to something that decodes to the same value.

func seedFile(f *testing.F, path string) []byte {
	f.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		f.Fatal(err)
	}
	return b
}

func testKey(f *testing.F) *PrivateKey {
	f.Helper()
	k, err := NewPrivateKey(mustHex(gbtD))
	if err != nil {
		f.Fatal(err)
	}
	return k
}

func FuzzParsePublicKeyPEM(f *testing.F) {
	pemBytes, _ := testKey(f).PublicKey().MarshalPEM()
	f.Add(pemBytes)
	f.Add(seedFile(f, "testdata/openssl-sm2-pub.pem"))
	f.Add([]byte("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := ParsePublicKeyPEM(data)
		if err != nil {
			return
		}
		again, err := p.MarshalPEM()
		if err != nil {
			t.Fatal(err)
		}
		q, err := ParsePublicKeyPEM(again)
		if err != nil || !q.Equal(p) {
			t.Fatalf("re-parse: %v", err)
		}
	})
}

func FuzzParsePublicKeyDER(f *testing.F) {
	f.Add(mustHex(Issue560PublicKey))
	der, _ := testKey(f).PublicKey().MarshalDER()
	f.Add(der)
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := ParsePublicKeyDER(data)
		if err != nil {
			if !errors.Is(err, ErrPublicKey) {
				t.Fatalf("error %v does not wrap ErrPublicKey", err)
			}
			return
		}
		again, err := p.MarshalDER()
		if err != nil {
			t.Fatal(err)
		}
		if q, err := ParsePublicKeyDER(again); err != nil || !q.Equal(p) {
			t.Fatalf("re-parse: %v", err)
		}
	})
}

func FuzzPublicKeyFromPoint(f *testing.F) {
	p := testKey(f).PublicKey()
	f.Add(p.Bytes())
	f.Add(p.Point())
	f.Add(make([]byte, 64))
	f.Fuzz(func(t *testing.T, data []byte) {
		k, err := PublicKeyFromPoint(data)
		if err != nil {
			return
		}
		want := data
		if len(data) == 64 {
			want = append([]byte{4}, data...)
		}
		if !bytes.Equal(k.Bytes(), want) {
			t.Fatalf("Bytes() = %x, want %x", k.Bytes(), want)
		}
	})
}

func FuzzParsePrivateKeyPEM(f *testing.F) {
	pemBytes, _ := testKey(f).MarshalPEM()
	f.Add(pemBytes)
	f.Add(seedFile(f, "testdata/openssl-sm2-key.pem"))
	f.Add([]byte("-----BEGIN EC PRIVATE KEY-----\nMAA=\n-----END EC PRIVATE KEY-----\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		k, err := ParsePrivateKeyPEM(data)
		if err != nil {
			return
		}
		again, err := k.MarshalPEM()
		if err != nil {
			t.Fatal(err)
		}
		if k2, err := ParsePrivateKeyPEM(again); err != nil || !k2.Equal(k) {
			t.Fatalf("re-parse: %v", err)
		}
	})
}

func FuzzParsePrivateKeyDER(f *testing.F) {
	der, _ := testKey(f).MarshalDER()
	f.Add(der)
	f.Add([]byte{0x30, 0x00})
	f.Fuzz(func(t *testing.T, data []byte) {
		k, err := ParsePrivateKeyDER(data)
		if err != nil {
			if !errors.Is(err, ErrPrivateKey) {
				t.Fatalf("error %v does not wrap ErrPrivateKey", err)
			}
			return
		}
		again, err := k.MarshalDER()
		if err != nil {
			t.Fatal(err)
		}
		if k2, err := ParsePrivateKeyDER(again); err != nil || !k2.Equal(k) {
			t.Fatalf("re-parse: %v", err)
		}
	})
}

func FuzzDERToRaw(f *testing.F) {
	f.Add(mustHex(Issue560Signature))
	f.Add(seedFile(f, "testdata/openssl-sm2-sig.der"))
	f.Add(mustHex("3006020101020101"))
	f.Fuzz(func(t *testing.T, data []byte) {
		raw, err := DERToRaw(data)
		if err != nil {
			if !errors.Is(err, ErrSignatureFormat) {
				t.Fatalf("error %v does not wrap ErrSignatureFormat", err)
			}
			return
		}
		der, err := RawToDER(raw)
		if err != nil || !bytes.Equal(der, data) {
			t.Fatalf("RawToDER(DERToRaw(%x)) = %x, %v", data, der, err)
		}
	})
}

func FuzzRawToDER(f *testing.F) {
	f.Add(mustHex(gbtR + gbtS))
	f.Add(make([]byte, 64))
	f.Add(bytes.Repeat([]byte{0xff}, 64))
	f.Fuzz(func(t *testing.T, data []byte) {
		der, err := RawToDER(data)
		if err != nil {
			return
		}
		raw, err := DERToRaw(der)
		if err != nil || !bytes.Equal(raw, data) {
			t.Fatalf("DERToRaw(RawToDER(%x)) = %x, %v", data, raw, err)
		}
	})
}

func FuzzParseKeySet(f *testing.F) {
	k, err := TestKeySet("fuzz")
	if err != nil {
		f.Fatal(err)
	}
	good, err := k.marshal()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte(`{"format":"onecard-keyset","version":1}`))
	f.Add([]byte(`{"sm4":{"DPK":12}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		ks, err := parseKeySet(data)
		if err != nil {
			if !errors.Is(err, ErrKeySetFormat) {
				t.Fatalf("error %v does not wrap ErrKeySetFormat", err)
			}
			return
		}
		again, err := ks.marshal()
		if err != nil {
			t.Fatal(err)
		}
		ks2, err := parseKeySet(again)
		if err != nil {
			t.Fatalf("re-parse: %v", err)
		}
		if a, _ := ks2.marshal(); !bytes.Equal(a, again) {
			t.Fatal("marshal is not stable")
		}
	})
}

func FuzzParseSuite(f *testing.F) {
	for _, s := range []string{"sm4-pboc", "3des-pboc", "sm4-pboc,mac=xorfold", "3des,tac=dtk", "x,,=="} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		s, err := ParseSuite(name)
		if err != nil {
			return
		}
		if again, err := ParseSuite(s.Name()); err != nil || again != s {
			t.Fatalf("ParseSuite(%q).Name() = %q does not round-trip: %v", name, s.Name(), err)
		}
	})
}

// FuzzUnpad decrypts arbitrary ciphertext with each padding: errors only.
func FuzzUnpad(f *testing.F) {
	key := mustHex("0123456789abcdeffedcba9876543210")
	ct, _ := EncryptCBC(AlgSM4, key, nil, []byte("seed"), PKCS7Padding)
	f.Add(ct, uint8(1))
	ct, _ = EncryptECB(Alg3DES, key, []byte("seed"), ISO9797M2Padding)
	f.Add(ct, uint8(2))
	f.Fuzz(func(t *testing.T, data []byte, mode uint8) {
		p := Padding(mode % 3)
		for _, alg := range []Alg{AlgSM4, Alg3DES} {
			plain, err := DecryptCBC(alg, key, nil, data, p)
			if err != nil {
				continue
			}
			ct, err := EncryptCBC(alg, key, nil, plain, p)
			if err != nil || !bytes.Equal(ct, data) {
				t.Fatalf("%v padding %d: re-encryption differs", alg, p)
			}
		}
	})
}
