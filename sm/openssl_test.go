package sm_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/onecard-hub/onecard/sm"
)

// openssl runs the openssl command line and returns its stdout. A missing
// openssl fails the test: interop is part of the contract (make deps
// installs it).
func openssl(t *testing.T, args ...string) ([]byte, error) {
	t.Helper()
	bin, err := exec.LookPath("openssl")
	if err != nil {
		t.Fatalf("openssl not found (%v): run 'make deps' (installs the openssl package) to run the interop tests", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, &opensslError{args: args, err: err, stderr: stderr.String()}
	}
	return out, nil
}

type opensslError struct {
	args   []string
	err    error
	stderr string
}

func (e *opensslError) Error() string {
	return "openssl " + strings.Join(e.args, " ") + ": " + e.err.Error() + ": " + e.stderr
}

func mustOpenSSL(t *testing.T, args ...string) []byte {
	t.Helper()
	out, err := openssl(t, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func writeFile(t *testing.T, path string, data []byte) string {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

const distid = "distid:" + sm.DefaultUID

// TestOpenSSLSM2SignedBySM: signatures from sm verify in OpenSSL (which
// needs the distid option: its default ID is empty), and OpenSSL rejects a
// changed message, so the check is real.
func TestOpenSSLSM2SignedBySM(t *testing.T) {
	dir := t.TempDir()
	k, err := sm.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	pubPEM, _ := k.PublicKey().MarshalPEM()
	pub := writeFile(t, filepath.Join(dir, "pub.pem"), pubPEM)
	for i, msg := range [][]byte{[]byte("abc"), bytes.Repeat([]byte{0xA5}, 1000), randBytes(t, 77)} {
		sig, err := sm.Sign(k, msg, nil)
		if err != nil {
			t.Fatal(err)
		}
		m := writeFile(t, filepath.Join(dir, "msg"), msg)
		s := writeFile(t, filepath.Join(dir, "sig.der"), sig)
		out, err := openssl(t, "pkeyutl", "-verify", "-pubin", "-inkey", pub, "-in", m, "-sigfile", s,
			"-rawin", "-digest", "sm3", "-pkeyopt", distid)
		if err != nil || !bytes.Contains(out, []byte("Signature Verified Successfully")) {
			t.Errorf("message %d: OpenSSL rejected an sm signature: %s %v", i, out, err)
		}
		writeFile(t, m, append(msg, 'x'))
		if out, err := openssl(t, "pkeyutl", "-verify", "-pubin", "-inkey", pub, "-in", m, "-sigfile", s,
			"-rawin", "-digest", "sm3", "-pkeyopt", distid); err == nil {
			t.Errorf("message %d: OpenSSL accepted the signature for a changed message: %s", i, out)
		}
	}
	// The PKCS#8 private key sm writes is readable by OpenSSL and yields
	// the same public key.
	privPEM, _ := k.MarshalPEM()
	priv := writeFile(t, filepath.Join(dir, "key.pem"), privPEM)
	out := mustOpenSSL(t, "pkey", "-in", priv, "-pubout")
	if !bytes.Equal(out, pubPEM) {
		t.Errorf("OpenSSL's public key from sm's private key:\n%s\nwant\n%s", out, pubPEM)
	}
}

// TestOpenSSLSM2SignedByOpenSSL: keys and signatures made by OpenSSL work
// in sm.
func TestOpenSSLSM2SignedByOpenSSL(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "key.pem")
	mustOpenSSL(t, "genpkey", "-algorithm", "SM2", "-out", key)
	pubOut := filepath.Join(dir, "pub.pem")
	mustOpenSSL(t, "pkey", "-in", key, "-pubout", "-out", pubOut)
	keyPEM, _ := os.ReadFile(key)
	pubPEM, _ := os.ReadFile(pubOut)
	priv, err := sm.ParsePrivateKeyPEM(keyPEM)
	if err != nil {
		t.Fatalf("OpenSSL private key: %v", err)
	}
	pub, err := sm.ParsePublicKeyPEM(pubPEM)
	if err != nil {
		t.Fatalf("OpenSSL public key: %v", err)
	}
	if !pub.Equal(priv.PublicKey()) {
		t.Fatal("OpenSSL's public key differs from the one sm derives from its private key")
	}
	for i, msg := range [][]byte{[]byte("message digest"), randBytes(t, 300)} {
		m := writeFile(t, filepath.Join(dir, "msg"), msg)
		sigPath := filepath.Join(dir, "sig.der")
		mustOpenSSL(t, "pkeyutl", "-sign", "-inkey", key, "-in", m, "-out", sigPath,
			"-rawin", "-digest", "sm3", "-pkeyopt", distid)
		sig, _ := os.ReadFile(sigPath)
		if !sm.Verify(pub, msg, sig, nil) {
			t.Errorf("message %d: sm rejected an OpenSSL signature %x", i, sig)
		}
		if sm.Verify(pub, msg, sig, []byte("another-id")) {
			t.Errorf("message %d: sm accepted the OpenSSL signature under another ID", i)
		}
		raw, err := sm.DERToRaw(sig)
		if err != nil {
			t.Fatal(err)
		}
		if back, _ := sm.RawToDER(raw); !bytes.Equal(back, sig) {
			t.Errorf("raw round trip changed OpenSSL's DER %x -> %x", sig, back)
		}
	}
}

// TestOpenSSLIssue560: OpenSSL also accepts the #560 vector (digest-level
// verification of e = 32 zero bytes), as gm-crypto.md says.
func TestOpenSSLIssue560(t *testing.T) {
	dir := t.TempDir()
	p, err := sm.ParsePublicKeyDER(unhex(t, sm.Issue560PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	pemBytes, _ := p.MarshalPEM()
	pub := writeFile(t, filepath.Join(dir, "pub.pem"), pemBytes)
	e := writeFile(t, filepath.Join(dir, "e32.bin"), make([]byte, 32))
	sig := writeFile(t, filepath.Join(dir, "sig.der"), unhex(t, sm.Issue560Signature))
	out, err := openssl(t, "pkeyutl", "-verify", "-pubin", "-inkey", pub, "-in", e, "-sigfile", sig)
	if err != nil || !bytes.Contains(out, []byte("Signature Verified Successfully")) {
		t.Errorf("OpenSSL: %s %v", out, err)
	}
	if !sm.VerifyDigest(p, make([]byte, 32), unhex(t, sm.Issue560Signature)) {
		t.Error("sm rejects the vector OpenSSL accepts")
	}
}

func TestOpenSSLSM3(t *testing.T) {
	dir := t.TempDir()
	for i, data := range [][]byte{{}, []byte("abc"), randBytes(t, 1000), randBytes(t, 64)} {
		f := writeFile(t, filepath.Join(dir, "data"), data)
		out := mustOpenSSL(t, "dgst", "-sm3", "-r", f)
		want, _, _ := strings.Cut(string(out), " ")
		got := sm.SM3(data)
		if hex.EncodeToString(got[:]) != want {
			t.Errorf("input %d: SM3 %x, OpenSSL %s", i, got, want)
		}
	}
}

func TestOpenSSLCBC(t *testing.T) {
	dir := t.TempDir()
	for _, tt := range []struct {
		cipher string
		alg    sm.Alg
		keyLen int
	}{
		{"sm4-cbc", sm.AlgSM4, 16},
		{"des-ede3-cbc", sm.Alg3DES, 24},
		{"des-ede-cbc", sm.Alg3DES, 16},
	} {
		for _, n := range []int{0, 16, 48, 100} {
			key, iv := randBytes(t, tt.keyLen), randBytes(t, tt.alg.BlockSize())
			data := randBytes(t, n)
			in := writeFile(t, filepath.Join(dir, "data"), data)
			for _, pad := range []sm.Padding{sm.NoPadding, sm.PKCS7Padding} {
				if pad == sm.NoPadding && n%tt.alg.BlockSize() != 0 {
					continue
				}
				base := []string{"enc", "-" + tt.cipher, "-K", hex.EncodeToString(key), "-iv", hex.EncodeToString(iv)}
				if pad == sm.NoPadding {
					base = append(base, "-nopad")
				}
				want := mustOpenSSL(t, append(base, "-in", in)...)
				got, err := sm.EncryptCBC(tt.alg, key, iv, data, pad)
				if err != nil || !bytes.Equal(got, want) {
					t.Errorf("%s %d bytes pad %d: sm %x, %v; OpenSSL %x", tt.cipher, n, pad, got, err, want)
				}
				ct := writeFile(t, filepath.Join(dir, "ct"), want)
				dec := mustOpenSSL(t, append(base, "-d", "-in", ct)...)
				plain, err := sm.DecryptCBC(tt.alg, key, iv, want, pad)
				if err != nil || !bytes.Equal(plain, dec) || !bytes.Equal(plain, data) {
					t.Errorf("%s %d bytes pad %d: decrypt sm %x, %v; OpenSSL %x", tt.cipher, n, pad, plain, err, dec)
				}
			}
		}
	}
}

// TestOpenSSLStoredVectors: a key pair and a signature over "message
// digest" made once by OpenSSL 3.0.19 (testdata/openssl-sm2-*), checked
// without running openssl.
func TestOpenSSLStoredVectors(t *testing.T) {
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	priv, err := sm.ParsePrivateKeyPEM(read("openssl-sm2-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pub, err := sm.ParsePublicKeyPEM(read("openssl-sm2-pub.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if !pub.Equal(priv.PublicKey()) {
		t.Fatal("stored OpenSSL public key does not match its private key")
	}
	sig := read("openssl-sm2-sig.der")
	if !sm.Verify(pub, []byte("message digest"), sig, nil) {
		t.Error("stored OpenSSL signature rejected")
	}
	if sm.Verify(pub, []byte("message digest!"), sig, nil) {
		t.Error("stored OpenSSL signature accepted for another message")
	}
}
