package sm_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/onecard-hub/onecard/sm"
)

func TestCipherRoundTrip(t *testing.T) {
	for _, alg := range []sm.Alg{sm.AlgSM4, sm.Alg3DES} {
		keyLens := map[sm.Alg][]int{sm.AlgSM4: {16}, sm.Alg3DES: {8, 16, 24}}[alg]
		for _, kl := range keyLens {
			key := randBytes(t, kl)
			iv := randBytes(t, alg.BlockSize())
			for _, p := range []sm.Padding{sm.NoPadding, sm.PKCS7Padding, sm.ISO9797M2Padding} {
				for _, n := range []int{0, 1, 8, 15, 16, 17, 33, 64} {
					if p == sm.NoPadding && n%alg.BlockSize() != 0 {
						continue
					}
					data := randBytes(t, n)
					ct, err := sm.EncryptECB(alg, key, data, p)
					if err != nil {
						t.Fatalf("%v/%d/%d/%d: EncryptECB: %v", alg, kl, p, n, err)
					}
					if len(ct)%alg.BlockSize() != 0 || (p != sm.NoPadding && len(ct) <= n) {
						t.Fatalf("%v/%d/%d/%d: ciphertext length %d", alg, kl, p, n, len(ct))
					}
					pt, err := sm.DecryptECB(alg, key, ct, p)
					if err != nil || !bytes.Equal(pt, data) {
						t.Errorf("%v/%d/%d/%d: ECB round trip = %x, %v", alg, kl, p, n, pt, err)
					}
					ct, err = sm.EncryptCBC(alg, key, iv, data, p)
					if err != nil {
						t.Fatal(err)
					}
					pt, err = sm.DecryptCBC(alg, key, iv, ct, p)
					if err != nil || !bytes.Equal(pt, data) {
						t.Errorf("%v/%d/%d/%d: CBC round trip = %x, %v", alg, kl, p, n, pt, err)
					}
				}
			}
		}
	}
}

// TestDESKeyLengths: an 8-byte key is single DES, equal to 3DES with
// K1 = K2 = K3; a 16-byte key is 3DES with K3 = K1.
func TestDESKeyLengths(t *testing.T) {
	k := randBytes(t, 16)
	data := randBytes(t, 32)
	single, err := sm.EncryptECB(sm.Alg3DES, k[:8], data, sm.NoPadding)
	if err != nil {
		t.Fatal(err)
	}
	triple, err := sm.EncryptECB(sm.Alg3DES, bytes.Repeat(k[:8], 3), data, sm.NoPadding)
	if err != nil || !bytes.Equal(single, triple) {
		t.Errorf("DES %x != 3DES(K,K,K) %x (%v)", single, triple, err)
	}
	two, err := sm.EncryptECB(sm.Alg3DES, k, data, sm.NoPadding)
	if err != nil {
		t.Fatal(err)
	}
	three, err := sm.EncryptECB(sm.Alg3DES, append(bytes.Clone(k), k[:8]...), data, sm.NoPadding)
	if err != nil || !bytes.Equal(two, three) {
		t.Errorf("2-key %x != 3-key K1K2K1 %x (%v)", two, three, err)
	}
	if bytes.Equal(single, two) {
		t.Error("2-key 3DES equals single DES")
	}
}

func TestCipherErrors(t *testing.T) {
	k16 := make([]byte, 16)
	for _, tt := range []struct {
		name string
		err  error
		want error
	}{
		{"bad alg", func() error { _, err := sm.EncryptECB(0, k16, k16, sm.NoPadding); return err }(), sm.ErrAlg},
		{"sm4 key 24", func() error { _, err := sm.EncryptECB(sm.AlgSM4, make([]byte, 24), k16, sm.NoPadding); return err }(), sm.ErrKeySize},
		{"des key 12", func() error {
			_, err := sm.EncryptCBC(sm.Alg3DES, make([]byte, 12), nil, k16, sm.NoPadding)
			return err
		}(), sm.ErrKeySize},
		{"partial block", func() error { _, err := sm.EncryptECB(sm.AlgSM4, k16, k16[:5], sm.NoPadding); return err }(), sm.ErrDataLength},
		{"decrypt partial", func() error { _, err := sm.DecryptCBC(sm.AlgSM4, k16, nil, k16[:5], sm.NoPadding); return err }(), sm.ErrDataLength},
		{"decrypt empty padded", func() error { _, err := sm.DecryptECB(sm.AlgSM4, k16, nil, sm.PKCS7Padding); return err }(), sm.ErrDataLength},
		{"cbc iv 8 for sm4", func() error { _, err := sm.EncryptCBC(sm.AlgSM4, k16, k16[:8], k16, sm.NoPadding); return err }(), sm.ErrIVSize},
		{"unknown padding", func() error { _, err := sm.EncryptECB(sm.AlgSM4, k16, k16, 9); return err }(), sm.ErrPadding},
		{"suite encrypt partial", func() error { _, err := sm.Suite3DES.Encrypt(k16, k16[:7]); return err }(), sm.ErrDataLength},
	} {
		if !errors.Is(tt.err, tt.want) {
			t.Errorf("%s: %v, want %v", tt.name, tt.err, tt.want)
		}
	}
}

// TestBadPadding: decryption of data whose last block does not hold valid
// padding fails with ErrPadding.
func TestBadPadding(t *testing.T) {
	key := randBytes(t, 16)
	for _, tt := range []struct {
		name  string
		p     sm.Padding
		plain []byte
	}{
		{"pkcs7 zero", sm.PKCS7Padding, append(make([]byte, 15), 0)},
		{"pkcs7 17", sm.PKCS7Padding, append(make([]byte, 15), 17)},
		{"pkcs7 inconsistent", sm.PKCS7Padding, append(make([]byte, 13), 1, 3, 3)},
		{"m2 no 80", sm.ISO9797M2Padding, make([]byte, 16)},
		{"m2 junk after 80", sm.ISO9797M2Padding, append(make([]byte, 14), 0x80, 0x01)},
	} {
		ct, err := sm.EncryptECB(sm.AlgSM4, key, tt.plain, sm.NoPadding)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := sm.DecryptECB(sm.AlgSM4, key, ct, tt.p); !errors.Is(err, sm.ErrPadding) {
			t.Errorf("%s: %v, want ErrPadding", tt.name, err)
		}
	}
}
