package sm_test

import (
	"testing"

	"github.com/onecard-hub/onecard/sm"
)

// Run with: go test -run '^$' -bench . -benchmem ./sm
// (TestMain re-executes with GODEBUG=cpu.adx=off FORCE_SM4BLOCK_AESNI=1,
// so the figures are those of the shipped configuration.)

func BenchmarkSM2Sign(b *testing.B) {
	k, err := sm.GenerateKey(nil)
	if err != nil {
		b.Fatal(err)
	}
	msg := make([]byte, 128)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := sm.Sign(k, msg, nil); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSM2Verify(b *testing.B) {
	k, err := sm.GenerateKey(nil)
	if err != nil {
		b.Fatal(err)
	}
	msg := make([]byte, 128)
	sig, err := sm.Sign(k, msg, nil)
	if err != nil {
		b.Fatal(err)
	}
	pub := k.PublicKey()
	b.ReportAllocs()
	for b.Loop() {
		if !sm.Verify(pub, msg, sig, nil) {
			b.Fatal("rejected")
		}
	}
}

func BenchmarkSM3(b *testing.B) {
	data := make([]byte, 64)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		sm.SM3(data)
	}
}

func BenchmarkSM4(b *testing.B) {
	key := make([]byte, 16)
	iv := make([]byte, 16)
	for _, bc := range []struct {
		name string
		n    int
		fn   func(data []byte) ([]byte, error)
	}{
		{"ECB-16B", 16, func(d []byte) ([]byte, error) { return sm.SuiteSM4.Encrypt(key, d) }},
		{"CBC-encrypt-4KiB", 4096, func(d []byte) ([]byte, error) { return sm.EncryptCBC(sm.AlgSM4, key, iv, d, sm.NoPadding) }},
		{"CBC-decrypt-4KiB", 4096, func(d []byte) ([]byte, error) { return sm.DecryptCBC(sm.AlgSM4, key, iv, d, sm.NoPadding) }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			data := make([]byte, bc.n)
			b.SetBytes(int64(bc.n))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := bc.fn(data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkMAC: the PBOC MAC over a 32-byte APDU body.
func BenchmarkMAC(b *testing.B) {
	apdu := make([]byte, 32)
	for _, bc := range []struct {
		name string
		s    sm.Suite
		key  []byte
	}{
		{"SM4", sm.SuiteSM4, make([]byte, 16)},
		{"3DES-X9.19", sm.Suite3DES, make([]byte, 16)},
		{"DES-session", sm.Suite3DES, make([]byte, 8)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := bc.s.MAC(bc.key, nil, apdu); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
