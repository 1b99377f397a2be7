package sm_test

import (
	"bytes"
	"crypto"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/onecard-hub/onecard/sm"
)

func TestSignVerify(t *testing.T) {
	k, err := sm.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	pub := k.PublicKey()
	msg := []byte("terminal record 000000000001/42")
	for _, tt := range []struct {
		name      string
		signUID   []byte
		verifyUID []byte
		msg       []byte
		tamper    func([]byte) []byte
		want      bool
	}{
		{name: "default uid", msg: msg, want: true},
		{name: "explicit default uid", signUID: []byte(sm.DefaultUID), msg: msg, want: true},
		{name: "nil verifies explicit default", verifyUID: []byte(sm.DefaultUID), msg: msg, want: true},
		{name: "custom uid", signUID: []byte("terminal-42"), verifyUID: []byte("terminal-42"), msg: msg, want: true},
		{name: "uid mismatch", signUID: []byte("terminal-42"), msg: msg, want: false},
		{name: "empty message", msg: []byte{}, want: true},
		{name: "trailing byte", msg: msg, tamper: func(s []byte) []byte { return append(s, 0) }, want: false},
		{name: "flipped bit", msg: msg, tamper: func(s []byte) []byte { s[len(s)-1] ^= 1; return s }, want: false},
		{name: "truncated", msg: msg, tamper: func(s []byte) []byte { return s[:len(s)-1] }, want: false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			sig, err := sm.Sign(k, tt.msg, tt.signUID)
			if err != nil {
				t.Fatal(err)
			}
			if tt.tamper != nil {
				sig = tt.tamper(sig)
			}
			if got := sm.Verify(pub, tt.msg, sig, tt.verifyUID); got != tt.want {
				t.Errorf("Verify = %v, want %v", got, tt.want)
			}
		})
	}
	sig, _ := sm.Sign(k, msg, nil)
	if sm.Verify(pub, append(bytes.Clone(msg), '!'), sig, nil) {
		t.Error("Verify accepted another message")
	}
	other, _ := sm.GenerateKey(nil)
	if sm.Verify(other.PublicKey(), msg, sig, nil) {
		t.Error("Verify accepted another key")
	}
	if sm.Verify(nil, msg, sig, nil) {
		t.Error("Verify accepted a nil key")
	}
}

// TestSignIsOverMessage guards trap 2 of gm-crypto.md: Sign must sign
// SM3(Z ‖ msg), never treat msg as a digest.
func TestSignIsOverMessage(t *testing.T) {
	k, _ := sm.GenerateKey(nil)
	msg := bytes.Repeat([]byte{0x5a}, 32) // digest-sized on purpose
	sig, err := sm.Sign(k, msg, nil)
	if err != nil {
		t.Fatal(err)
	}
	e, err := sm.Digest(k.PublicKey(), msg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !sm.VerifyDigest(k.PublicKey(), e, sig) {
		t.Error("signature does not verify over e = SM3(Z ‖ msg)")
	}
	if sm.VerifyDigest(k.PublicKey(), msg, sig) {
		t.Error("signature verifies with msg as the digest: the message was signed as a digest")
	}
	// crypto.Signer path: same semantics.
	var signer crypto.Signer = k
	sig2, err := signer.Sign(nil, msg, &sm.SignerOpts{UID: []byte("abc")})
	if err != nil {
		t.Fatal(err)
	}
	if !sm.Verify(signer.Public().(*sm.PublicKey), msg, sig2, []byte("abc")) {
		t.Error("crypto.Signer signature with uid abc does not verify")
	}
	sig3, err := signer.Sign(nil, msg, crypto.Hash(0))
	if err != nil || !sm.Verify(k.PublicKey(), msg, sig3, nil) {
		t.Errorf("crypto.Signer with foreign opts: %v", err)
	}
}

func TestSignDigest(t *testing.T) {
	k, _ := sm.GenerateKey(nil)
	e := sm.SM3([]byte("x"))
	sig, err := sm.SignDigest(k, e[:])
	if err != nil || !sm.VerifyDigest(k.PublicKey(), e[:], sig) {
		t.Fatalf("SignDigest/VerifyDigest: %v", err)
	}
	if _, err := sm.SignDigest(k, e[:31]); !errors.Is(err, sm.ErrDataLength) {
		t.Errorf("31-byte digest: %v", err)
	}
	if sm.VerifyDigest(k.PublicKey(), e[:31], sig) {
		t.Error("VerifyDigest accepted a 31-byte digest")
	}
	if _, err := sm.Sign(nil, nil, nil); !errors.Is(err, sm.ErrPrivateKey) {
		t.Errorf("Sign(nil key): %v", err)
	}
}

func TestRawDER(t *testing.T) {
	k, _ := sm.GenerateKey(nil)
	for range 20 {
		sig, err := sm.Sign(k, []byte("m"), nil)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := sm.DERToRaw(sig)
		if err != nil || len(raw) != 64 {
			t.Fatalf("DERToRaw = %x, %v", raw, err)
		}
		der, err := sm.RawToDER(raw)
		if err != nil || !bytes.Equal(der, sig) {
			t.Fatalf("RawToDER(DERToRaw(sig)) = %x, %v; want %x", der, err, sig)
		}
	}
	n := "FFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123"
	one := strings.Repeat("00", 31) + "01"
	for _, tt := range []struct {
		name string
		raw  string
		der  string // expected DER, "" for an error
	}{
		{"small values", one + one, "3006020101020101"},
		{"high bit gets 00", "80" + strings.Repeat("00", 31) + one, "3026022100" + "80" + strings.Repeat("00", 31) + "020101"},
		{"r zero", strings.Repeat("00", 32) + one, ""},
		{"s = n", one + n, ""},
		{"short", one, ""},
	} {
		got, err := sm.RawToDER(unhex(t, tt.raw))
		if tt.der == "" {
			if !errors.Is(err, sm.ErrSignatureFormat) {
				t.Errorf("%s: RawToDER = %x, %v; want ErrSignatureFormat", tt.name, got, err)
			}
			continue
		}
		if err != nil || !bytes.Equal(got, unhex(t, tt.der)) {
			t.Errorf("%s: RawToDER = %x, %v; want %s", tt.name, got, err, tt.der)
		}
		back, err := sm.DERToRaw(got)
		if err != nil || !bytes.Equal(back, unhex(t, tt.raw)) {
			t.Errorf("%s: DERToRaw = %x, %v", tt.name, back, err)
		}
	}
	for _, bad := range []string{
		"",
		"3006020101020101" + "00",   // trailing byte
		"3007020101020101",          // wrong length
		"300702020001020101",        // non-minimal INTEGER
		"3006020181020101",          // negative r
		"30060201010201" + "00",     // s = 0
		"3080020101020101" + "0000", // BER indefinite length
		"310602010102010" + "1",     // SET instead of SEQUENCE
	} {
		if _, err := sm.DERToRaw(unhex(t, bad)); !errors.Is(err, sm.ErrSignatureFormat) {
			t.Errorf("DERToRaw(%s) = %v, want ErrSignatureFormat", bad, err)
		}
	}
}

func TestPublicKeyForms(t *testing.T) {
	k, _ := sm.GenerateKey(nil)
	pub := k.PublicKey()
	b65 := pub.Bytes()
	if len(b65) != 65 || b65[0] != 4 || !bytes.Equal(pub.Point(), b65[1:]) {
		t.Fatalf("Bytes/Point = %x / %x", b65, pub.Point())
	}
	for _, in := range [][]byte{b65, b65[1:]} {
		p, err := sm.PublicKeyFromPoint(in)
		if err != nil || !p.Equal(pub) {
			t.Errorf("PublicKeyFromPoint(%d bytes) = %v, %v", len(in), p, err)
		}
	}
	offCurve := bytes.Clone(b65)
	offCurve[64] ^= 1
	compressed := append([]byte{2 + b65[64]&1}, b65[1:33]...)
	for name, in := range map[string][]byte{
		"off curve": offCurve, "compressed": compressed, "63 bytes": b65[2:],
		"infinity": make([]byte, 64), "bad prefix 05": append([]byte{5}, b65[1:]...),
	} {
		if _, err := sm.PublicKeyFromPoint(in); !errors.Is(err, sm.ErrPublicKey) {
			t.Errorf("%s: %v, want ErrPublicKey", name, err)
		}
	}
}

func TestPEM(t *testing.T) {
	k, _ := sm.GenerateKey(nil)
	privPEM, err := k.MarshalPEM()
	if err != nil || !bytes.HasPrefix(privPEM, []byte("-----BEGIN PRIVATE KEY-----")) {
		t.Fatalf("private PEM: %s %v", privPEM, err)
	}
	k2, err := sm.ParsePrivateKeyPEM(privPEM)
	if err != nil || !k2.Equal(k) {
		t.Fatalf("ParsePrivateKeyPEM: %v", err)
	}
	pubPEM, err := k.PublicKey().MarshalPEM()
	if err != nil || !bytes.HasPrefix(pubPEM, []byte("-----BEGIN PUBLIC KEY-----")) {
		t.Fatalf("public PEM: %s %v", pubPEM, err)
	}
	p2, err := sm.ParsePublicKeyPEM(append([]byte("comment\n"), pubPEM...))
	if err != nil || !p2.Equal(k.PublicKey()) {
		t.Fatalf("ParsePublicKeyPEM: %v", err)
	}
	// A PEM bundle: the parsers pick the block of their type.
	both := append(bytes.Clone(pubPEM), privPEM...)
	if k3, err := sm.ParsePrivateKeyPEM(both); err != nil || !k3.Equal(k) {
		t.Errorf("private key from bundle: %v", err)
	}
	if _, err := sm.ParsePublicKeyPEM(privPEM); !errors.Is(err, sm.ErrPEM) {
		t.Errorf("public from private PEM: %v, want ErrPEM", err)
	}
	if _, err := sm.ParsePrivateKeyPEM(pubPEM); !errors.Is(err, sm.ErrPEM) {
		t.Errorf("private from public PEM: %v, want ErrPEM", err)
	}
	// The #560 key is an SPKI with id-ecPublicKey + the SM2 curve OID.
	der := unhex(t, sm.Issue560PublicKey)
	p, err := sm.ParsePublicKeyDER(der)
	if err != nil {
		t.Fatal(err)
	}
	if again, err := p.MarshalDER(); err != nil || !bytes.Equal(again, der) {
		t.Errorf("MarshalDER = %x, %v; want %x", again, err, der)
	}

	dir := t.TempDir()
	privPath, pubPath := filepath.Join(dir, "k.pem"), filepath.Join(dir, "k.pub")
	if err := sm.SavePrivateKeyPEM(privPath, k); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(privPath); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("private key file mode: %v %v", fi.Mode(), err)
	}
	if k4, err := sm.LoadPrivateKeyPEM(privPath); err != nil || !k4.Equal(k) {
		t.Errorf("LoadPrivateKeyPEM: %v", err)
	}
	if err := sm.SavePublicKeyPEM(pubPath, k.PublicKey()); err != nil {
		t.Fatal(err)
	}
	if p5, err := sm.LoadPublicKeyPEM(pubPath); err != nil || !p5.Equal(k.PublicKey()) {
		t.Errorf("LoadPublicKeyPEM: %v", err)
	}
	if err := os.Chmod(privPath, 0o640); err != nil {
		t.Fatal(err)
	}
	if _, err := sm.LoadPrivateKeyPEM(privPath); !errors.Is(err, sm.ErrInsecurePermissions) {
		t.Errorf("LoadPrivateKeyPEM of a 0640 file: %v, want ErrInsecurePermissions", err)
	}
	if err := sm.SavePrivateKeyPEM(privPath, k); !errors.Is(err, sm.ErrInsecurePermissions) {
		t.Errorf("SavePrivateKeyPEM over a 0640 file: %v, want ErrInsecurePermissions", err)
	}
}

// TestPrivateKeyRedaction: no fmt verb, slog or PEM error shows the scalar.
func TestPrivateKeyRedaction(t *testing.T) {
	k, err := sm.NewPrivateKey(unhex(t, "3945208F7B2144B13F36E38AC6D39F95889393692860B51A42FB81EF4DF7C5B8"))
	if err != nil {
		t.Fatal(err)
	}
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("key", "k", k)
	slog.New(slog.NewTextHandler(&logged, nil)).Info("key", "k", k)
	outputs := []string{
		fmt.Sprint(k), fmt.Sprintf("%v %+v %#v %s %x %X %q %d", k, k, k, k, k, k, k, k),
		k.String(), k.GoString(), logged.String(),
	}
	for _, out := range outputs {
		low := strings.ToLower(out)
		if strings.Contains(low, "3945208f7b2144b13f36") {
			t.Errorf("private key material in %q", out)
		}
		if !strings.Contains(out, "REDACTED") {
			t.Errorf("output %q is not marked redacted", out)
		}
	}
}
