package sm_test

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"testing"

	"github.com/onecard-hub/onecard/sm"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("bad hex %q: %v", s, err)
	}
	return b
}

func randBytes(t testing.TB, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func not(b []byte) []byte {
	out := make([]byte, len(b))
	for i := range b {
		out[i] = ^b[i]
	}
	return out
}

func TestParseSuite(t *testing.T) {
	tests := []struct {
		in      string
		want    sm.Suite
		name    string
		wantErr bool
	}{
		{in: "sm4-pboc", want: sm.SuiteSM4, name: "sm4-pboc"},
		{in: "SM4", want: sm.SuiteSM4, name: "sm4-pboc"},
		{in: "3des-pboc", want: sm.Suite3DES, name: "3des-pboc"},
		{in: " 3DES ", want: sm.Suite3DES, name: "3des-pboc"},
		{in: "sm4-pboc,mac=xorfold", name: "sm4-pboc,mac=xorfold",
			want: sm.Suite{Alg: sm.AlgSM4, MACVariant: sm.MACXORFold, SessionKeys: sm.SessionDNotD, TACKey: sm.TACFullKey}},
		{in: "sm4-pboc, mac=cbc, session=dnotd, tac=dtk", want: sm.SuiteSM4, name: "sm4-pboc"},
		{in: "3des-pboc,tac=dtk", name: "3des-pboc,tac=dtk",
			want: sm.Suite{Alg: sm.Alg3DES, MACVariant: sm.MACCBC, SessionKeys: sm.SessionEncrypt, TACKey: sm.TACFullKey}},
		{in: "", wantErr: true},
		{in: "aes-pboc", wantErr: true},
		{in: "sm4-pboc,mac=cmac", wantErr: true},
		{in: "sm4-pboc,foo=bar", wantErr: true},
		{in: "sm4-pboc,mac", wantErr: true},
		{in: "sm4-pboc,mac=cbc,mac=xorfold", wantErr: true},
		{in: "3des-pboc,mac=xorfold", wantErr: true},
		{in: "3des-pboc,session=dnotd", wantErr: true},
		{in: "sm4-pboc,session=enc", wantErr: true},
		{in: "sm4-pboc,tac=xor", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := sm.ParseSuite(tt.in)
			if tt.wantErr {
				if !errors.Is(err, sm.ErrSuite) {
					t.Fatalf("ParseSuite(%q) = %v, %v; want ErrSuite", tt.in, got, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseSuite(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
			}
			if got.Name() != tt.name {
				t.Errorf("Name() = %q, want %q", got.Name(), tt.name)
			}
			again, err := sm.ParseSuite(got.Name())
			if err != nil || again != got {
				t.Errorf("ParseSuite(Name()) = %+v, %v; want %+v", again, err, got)
			}
		})
	}
}

func TestSuiteInvalid(t *testing.T) {
	k := make([]byte, 16)
	f := make([]byte, 8)
	for _, s := range []sm.Suite{{}, {Alg: 7}, {Alg: sm.Alg3DES, MACVariant: sm.MACXORFold}} {
		if _, err := s.MAC(k, nil, f); !errors.Is(err, sm.ErrSuite) {
			t.Errorf("%v.MAC: %v, want ErrSuite", s, err)
		}
		if _, err := s.Diversify(k, f); !errors.Is(err, sm.ErrSuite) {
			t.Errorf("%v.Diversify: %v, want ErrSuite", s, err)
		}
		if _, err := s.Encrypt(k, k); !errors.Is(err, sm.ErrSuite) {
			t.Errorf("%v.Encrypt: %v, want ErrSuite", s, err)
		}
		if _, err := s.TAC(k, f); !errors.Is(err, sm.ErrSuite) {
			t.Errorf("%v.TAC: %v, want ErrSuite", s, err)
		}
		if _, err := s.PurchaseSessionKey(k, f[:4], f[:2], f[:2]); !errors.Is(err, sm.ErrSuite) {
			t.Errorf("%v.PurchaseSessionKey: %v, want ErrSuite", s, err)
		}
	}
}

func TestAlg(t *testing.T) {
	for _, tt := range []struct {
		a    sm.Alg
		bs   int
		name string
	}{{sm.AlgSM4, 16, "sm4"}, {sm.Alg3DES, 8, "3des"}, {0, 0, "Alg(0)"}} {
		if tt.a.BlockSize() != tt.bs || tt.a.String() != tt.name {
			t.Errorf("%d: BlockSize %d String %q, want %d %q", int(tt.a), tt.a.BlockSize(), tt.a.String(), tt.bs, tt.name)
		}
	}
}

// TestDiversify checks the rules against compositions of the plain ECB
// primitives, level by level.
func TestDiversify(t *testing.T) {
	master := randBytes(t, 16)
	f1, f2 := randBytes(t, 8), randBytes(t, 8)

	des1 := func(k, f []byte) []byte {
		l, err := sm.EncryptECB(sm.Alg3DES, k, f, sm.NoPadding)
		if err != nil {
			t.Fatal(err)
		}
		r, err := sm.EncryptECB(sm.Alg3DES, k, not(f), sm.NoPadding)
		if err != nil {
			t.Fatal(err)
		}
		return append(l, r...)
	}
	sm41 := func(k, f []byte) []byte {
		out, err := sm.EncryptECB(sm.AlgSM4, k, append(bytes.Clone(f), not(f)...), sm.NoPadding)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	for _, tt := range []struct {
		s   sm.Suite
		one func(k, f []byte) []byte
	}{{sm.Suite3DES, des1}, {sm.SuiteSM4, sm41}} {
		t.Run(tt.s.Name(), func(t *testing.T) {
			got1, err := tt.s.Diversify(master, f1)
			if err != nil || !bytes.Equal(got1, tt.one(master, f1)) {
				t.Fatalf("one level = %x, %v", got1, err)
			}
			got2, err := tt.s.Diversify(master, f1, f2)
			if err != nil || !bytes.Equal(got2, tt.one(tt.one(master, f1), f2)) {
				t.Fatalf("two levels = %x, %v", got2, err)
			}
			if len(got1) != 16 || bytes.Equal(got1, got2) {
				t.Fatalf("bad derived keys %x %x", got1, got2)
			}
			if _, err := tt.s.Diversify(master); !errors.Is(err, sm.ErrFactor) {
				t.Errorf("no factor: %v, want ErrFactor", err)
			}
			if _, err := tt.s.Diversify(master, f1, f1[:7]); !errors.Is(err, sm.ErrFactor) {
				t.Errorf("7-byte factor: %v, want ErrFactor", err)
			}
			for _, n := range []int{8, 15} {
				if _, err := tt.s.Diversify(master[:n], f1); !errors.Is(err, sm.ErrKeySize) {
					t.Errorf("%d-byte master: %v, want ErrKeySize", n, err)
				}
			}
		})
	}
}

// refMAC computes the PBOC MAC through the public CBC/ECB functions, an
// independent path: CBC-encrypt the 80-padded data (single DES with K_L
// for a two-key 3DES key) and finish the last block with D_KR, E_KL.
func refMAC(t *testing.T, alg sm.Alg, key, iv, data []byte) []byte {
	t.Helper()
	bs := alg.BlockSize()
	p := append(bytes.Clone(data), 0x80)
	for len(p)%bs != 0 {
		p = append(p, 0)
	}
	cbcKey := key
	if alg == sm.Alg3DES && len(key) == 16 {
		cbcKey = key[:8]
	}
	ct, err := sm.EncryptCBC(alg, cbcKey, iv, p, sm.NoPadding)
	if err != nil {
		t.Fatal(err)
	}
	last := ct[len(ct)-bs:]
	if alg == sm.Alg3DES && len(key) == 16 {
		if last, err = sm.DecryptECB(alg, key[8:], last, sm.NoPadding); err != nil {
			t.Fatal(err)
		}
		if last, err = sm.EncryptECB(alg, key[:8], last, sm.NoPadding); err != nil {
			t.Fatal(err)
		}
	}
	return last[:4]
}

func TestMAC(t *testing.T) {
	xorfold, err := sm.ParseSuite("sm4-pboc,mac=xorfold")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{0, 1, 7, 8, 15, 16, 17, 32, 100} {
		data := randBytes(t, n)
		for _, tt := range []struct {
			name   string
			s      sm.Suite
			keyLen int
			ivLen  int
		}{
			{"3des 16-byte key (X9.19)", sm.Suite3DES, 16, 8},
			{"des 8-byte key", sm.Suite3DES, 8, 8},
			{"sm4 16-byte iv", sm.SuiteSM4, 16, 16},
		} {
			key, iv := randBytes(t, tt.keyLen), randBytes(t, tt.ivLen)
			got, err := tt.s.MAC(key, iv, data)
			if err != nil {
				t.Fatal(err)
			}
			if want := refMAC(t, tt.s.Alg, key, iv, data); !bytes.Equal(got, want) {
				t.Errorf("%s, %d bytes: MAC = %x, want %x", tt.name, n, got, want)
			}
			zero, err := tt.s.MAC(key, nil, data)
			if err != nil {
				t.Fatal(err)
			}
			if want := refMAC(t, tt.s.Alg, key, nil, data); !bytes.Equal(zero, want) {
				t.Errorf("%s, %d bytes, nil iv: MAC = %x, want %x", tt.name, n, zero, want)
			}
		}
		// SM4 with an 8-byte IV: left-aligned in 16 zero bytes.
		key, iv8 := randBytes(t, 16), randBytes(t, 8)
		got, err := sm.SuiteSM4.MAC(key, iv8, data)
		if err != nil {
			t.Fatal(err)
		}
		if want := refMAC(t, sm.AlgSM4, key, append(bytes.Clone(iv8), make([]byte, 8)...), data); !bytes.Equal(got, want) {
			t.Errorf("sm4 8-byte iv, %d bytes: %x, want %x", n, got, want)
		}
		// XOR-fold: IV XOR all padded blocks, one encryption.
		p := append(bytes.Clone(data), 0x80)
		for len(p)%16 != 0 {
			p = append(p, 0)
		}
		acc := make([]byte, 16)
		copy(acc, iv8)
		for i := 0; i < len(p); i += 16 {
			for j := range 16 {
				acc[j] ^= p[i+j]
			}
		}
		enc, err := sm.EncryptECB(sm.AlgSM4, key, acc, sm.NoPadding)
		if err != nil {
			t.Fatal(err)
		}
		got, err = xorfold.MAC(key, iv8, data)
		if err != nil || !bytes.Equal(got, enc[:4]) {
			t.Errorf("xorfold, %d bytes: %x, %v; want %x", n, got, err, enc[:4])
		}
	}
}

func TestMACErrors(t *testing.T) {
	for _, tt := range []struct {
		name    string
		s       sm.Suite
		key, iv []byte
		want    error
	}{
		{"3des 15-byte key", sm.Suite3DES, make([]byte, 15), nil, sm.ErrKeySize},
		{"sm4 8-byte key", sm.SuiteSM4, make([]byte, 8), nil, sm.ErrKeySize},
		{"3des 16-byte iv", sm.Suite3DES, make([]byte, 16), make([]byte, 16), sm.ErrIVSize},
		{"des 4-byte iv", sm.Suite3DES, make([]byte, 8), make([]byte, 4), sm.ErrIVSize},
		{"sm4 12-byte iv", sm.SuiteSM4, make([]byte, 16), make([]byte, 12), sm.ErrIVSize},
	} {
		if _, err := tt.s.MAC(tt.key, tt.iv, []byte("x")); !errors.Is(err, tt.want) {
			t.Errorf("%s: %v, want %v", tt.name, err, tt.want)
		}
	}
}

func TestSessionKeys(t *testing.T) {
	k := randBytes(t, 16)
	rnd, seq, tseq := randBytes(t, 4), randBytes(t, 2), randBytes(t, 2)
	d := append(append(bytes.Clone(rnd), seq...), tseq...)
	dl := append(append(bytes.Clone(rnd), seq...), 0x80, 0x00)

	want3, _ := sm.EncryptECB(sm.Alg3DES, k, d, sm.NoPadding)
	got, err := sm.Suite3DES.PurchaseSessionKey(k, rnd, seq, tseq)
	if err != nil || !bytes.Equal(got, want3) || len(got) != 8 {
		t.Errorf("3DES purchase = %x, %v; want %x", got, err, want3)
	}
	want3, _ = sm.EncryptECB(sm.Alg3DES, k, dl, sm.NoPadding)
	got, err = sm.Suite3DES.LoadSessionKey(k, rnd, seq)
	if err != nil || !bytes.Equal(got, want3) {
		t.Errorf("3DES load = %x, %v; want %x", got, err, want3)
	}
	want4, _ := sm.EncryptECB(sm.AlgSM4, k, append(bytes.Clone(d), not(d)...), sm.NoPadding)
	got, err = sm.SuiteSM4.PurchaseSessionKey(k, rnd, seq, tseq)
	if err != nil || !bytes.Equal(got, want4) || len(got) != 16 {
		t.Errorf("SM4 purchase = %x, %v; want %x", got, err, want4)
	}
	want4, _ = sm.EncryptECB(sm.AlgSM4, k, append(bytes.Clone(dl), not(dl)...), sm.NoPadding)
	got, err = sm.SuiteSM4.LoadSessionKey(k, rnd, seq)
	if err != nil || !bytes.Equal(got, want4) {
		t.Errorf("SM4 load = %x, %v; want %x", got, err, want4)
	}
	for _, s := range []sm.Suite{sm.Suite3DES, sm.SuiteSM4} {
		if _, err := s.PurchaseSessionKey(k, rnd[:3], seq, tseq); !errors.Is(err, sm.ErrDataLength) {
			t.Errorf("%v: 3-byte random: %v", s, err)
		}
		if _, err := s.LoadSessionKey(k, rnd, seq[:1]); !errors.Is(err, sm.ErrDataLength) {
			t.Errorf("%v: 1-byte seq: %v", s, err)
		}
		if _, err := s.LoadSessionKey(k[:10], rnd, seq); !errors.Is(err, sm.ErrKeySize) {
			t.Errorf("%v: 10-byte key: %v", s, err)
		}
	}
}

func TestTAC(t *testing.T) {
	dtk := randBytes(t, 16)
	data := randBytes(t, 4+1+6+4+4+3)
	x := make([]byte, 8)
	for i := range x {
		x[i] = dtk[i] ^ dtk[8+i]
	}
	want, err := sm.Suite3DES.MAC(x, nil, data)
	if err != nil {
		t.Fatal(err)
	}
	got, err := sm.Suite3DES.TAC(dtk, data)
	if err != nil || !bytes.Equal(got, want) {
		t.Errorf("3DES TAC = %x, %v; want %x", got, err, want)
	}
	if _, err := sm.Suite3DES.TAC(dtk[:8], data); !errors.Is(err, sm.ErrKeySize) {
		t.Errorf("3DES TAC with 8-byte DTK: %v, want ErrKeySize", err)
	}
	full, _ := sm.ParseSuite("3des-pboc,tac=dtk")
	want, _ = sm.Suite3DES.MAC(dtk, nil, data)
	if got, err := full.TAC(dtk, data); err != nil || !bytes.Equal(got, want) {
		t.Errorf("3DES tac=dtk = %x, %v; want %x", got, err, want)
	}
	want, _ = sm.SuiteSM4.MAC(dtk, nil, data)
	if got, err := sm.SuiteSM4.TAC(dtk, data); err != nil || !bytes.Equal(got, want) {
		t.Errorf("SM4 TAC = %x, %v; want %x", got, err, want)
	}
}

func TestVerifyMAC(t *testing.T) {
	for _, tt := range []struct {
		got, want []byte
		ok        bool
	}{
		{[]byte{1, 2, 3, 4}, []byte{1, 2, 3, 4}, true},
		{[]byte{1, 2, 3, 5}, []byte{1, 2, 3, 4}, false},
		{[]byte{1, 2, 3}, []byte{1, 2, 3, 4}, false},
		{nil, nil, false},
		{[]byte{}, []byte{}, false},
	} {
		if sm.VerifyMAC(tt.got, tt.want) != tt.ok {
			t.Errorf("VerifyMAC(%x, %x) != %v", tt.got, tt.want, tt.ok)
		}
	}
}
