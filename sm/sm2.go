package sm

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"

	"github.com/emmansun/gmsm/sm2"
	"github.com/emmansun/gmsm/smx509"
	"golang.org/x/crypto/cryptobyte"
	"golang.org/x/crypto/cryptobyte/asn1"
)

// DefaultUID is the SM2 user ID used when none is given (GB/T 35276).
// OpenSSL defaults to the empty ID instead: pass
// -pkeyopt distid:1234567812345678 to it.
const DefaultUID = "1234567812345678"

// PEM block types written and read.
const (
	pemPrivate   = "PRIVATE KEY" // PKCS#8
	pemPrivateEC = "EC PRIVATE KEY"
	pemPublic    = "PUBLIC KEY" // SubjectPublicKeyInfo
)

// curveN is the order n of the SM2 curve.
var curveN = sm2.P256().Params().N

// PrivateKey is an SM2 private key. It implements crypto.Signer (see
// [PrivateKey.Sign]) and prints redacted.
type PrivateKey struct {
	k   *sm2.PrivateKey
	pub *PublicKey
}

// PublicKey is an SM2 public key.
type PublicKey struct {
	k *ecdsa.PublicKey
	b []byte // 04 ‖ X ‖ Y
}

func wrapPrivate(k *sm2.PrivateKey) (*PrivateKey, error) {
	pub, err := wrapPublic(&k.PublicKey)
	if err != nil {
		return nil, err
	}
	return &PrivateKey{k: k, pub: pub}, nil
}

// wrapPublic checks that k is an SM2 point and records its encoding.
func wrapPublic(k *ecdsa.PublicKey) (*PublicKey, error) {
	if !sm2.IsSM2PublicKey(k) {
		return nil, ErrPublicKey
	}
	e, err := sm2.PublicKeyToECDH(k)
	if err != nil {
		return nil, ErrPublicKey
	}
	return &PublicKey{k: k, b: e.Bytes()}, nil
}

// SignerOpts may be passed to [PrivateKey.Sign] to choose the user ID.
type SignerOpts struct {
	// UID is the signer's user ID; empty means DefaultUID.
	UID []byte
}

// HashFunc returns 0: SM2 signs the message itself (with the Z value).
func (*SignerOpts) HashFunc() crypto.Hash { return 0 }

// GenerateKey makes a new SM2 key pair from rand (crypto/rand.Reader when
// nil).
func GenerateKey(rand io.Reader) (*PrivateKey, error) {
	if rand == nil {
		rand = randReader
	}
	k, err := sm2.GenerateKey(rand)
	if err != nil {
		return nil, fmt.Errorf("generate SM2 key: %w", err)
	}
	p, err := wrapPrivate(k)
	if err != nil {
		return nil, fmt.Errorf("generate SM2 key: %w", err)
	}
	return p, nil
}

var randReader io.Reader = rand.Reader

// NewPrivateKey returns the key with the 32-byte big-endian scalar d, which
// must be in [1, n-2]. Errors: ErrPrivateKey.
func NewPrivateKey(d []byte) (*PrivateKey, error) {
	k, err := sm2.NewPrivateKey(d)
	if err != nil {
		return nil, fmt.Errorf("load SM2 private key: %w", ErrPrivateKey)
	}
	p, err := wrapPrivate(k)
	if err != nil {
		return nil, fmt.Errorf("load SM2 private key: %w", ErrPrivateKey)
	}
	return p, nil
}

// scalar returns the 32-byte private scalar. Never print it.
func (k *PrivateKey) scalar() []byte {
	return k.k.D.FillBytes(make([]byte, 32))
}

// PublicKey returns the key's public half.
func (k *PrivateKey) PublicKey() *PublicKey { return k.pub }

// Public implements crypto.Signer; it returns a *PublicKey.
func (k *PrivateKey) Public() crypto.PublicKey { return k.PublicKey() }

// Sign implements crypto.Signer. Unlike most signers it signs the MESSAGE
// msg (SM2 hashes it together with the Z value), with the user ID from
// opts when opts is a *SignerOpts and DefaultUID otherwise. It returns a
// DER signature.
func (k *PrivateKey) Sign(rand io.Reader, msg []byte, opts crypto.SignerOpts) ([]byte, error) {
	var uid []byte
	if o, ok := opts.(*SignerOpts); ok && o != nil {
		uid = o.UID
	}
	return sign(rand, k, msg, uid)
}

// Equal reports whether x is the same private key.
func (k *PrivateKey) Equal(x crypto.PrivateKey) bool {
	o, ok := x.(*PrivateKey)
	return ok && o != nil && k.k.Equal(o.k)
}

// String returns a redacted description naming the public key only.
func (k *PrivateKey) String() string {
	if k == nil || k.k == nil {
		return "sm.PrivateKey(nil)"
	}
	return "sm.PrivateKey(SM2, public " + k.PublicKey().String() + ", private REDACTED)"
}

// GoString is String, so %#v redacts too.
func (k *PrivateKey) GoString() string { return k.String() }

// Format prints String for every verb.
func (k *PrivateKey) Format(f fmt.State, _ rune) { io.WriteString(f, k.String()) }

// LogValue makes slog print the redacted form.
func (k *PrivateKey) LogValue() slog.Value { return slog.StringValue(k.String()) }

// Bytes returns the uncompressed point 04 ‖ X ‖ Y (65 bytes).
func (p *PublicKey) Bytes() []byte { return bytes.Clone(p.b) }

// Point returns X ‖ Y (64 bytes), the form cards store.
func (p *PublicKey) Point() []byte { return p.Bytes()[1:] }

// String returns the uncompressed point in hex.
func (p *PublicKey) String() string {
	if p == nil || p.k == nil {
		return "<nil>"
	}
	return hex.EncodeToString(p.Bytes())
}

// Equal reports whether x is the same public key.
func (p *PublicKey) Equal(x crypto.PublicKey) bool {
	o, ok := x.(*PublicKey)
	return ok && o != nil && p != nil && bytes.Equal(p.b, o.b)
}

// PublicKeyFromPoint parses a public key from the 64-byte X ‖ Y form or the
// 65-byte uncompressed 04 ‖ X ‖ Y form; the point must be on the curve.
// Errors: ErrPublicKey.
func PublicKeyFromPoint(b []byte) (*PublicKey, error) {
	switch len(b) {
	case 64:
		b = append([]byte{4}, b...)
	case 65:
	default:
		return nil, fmt.Errorf("parse SM2 public key: %w: point is %d bytes, want 64 or 65", ErrPublicKey, len(b))
	}
	k, err := sm2.NewPublicKey(b)
	if err == nil {
		var p *PublicKey
		if p, err = wrapPublic(k); err == nil {
			return p, nil
		}
	}
	return nil, fmt.Errorf("parse SM2 public key: %w: not an uncompressed curve point", ErrPublicKey)
}

// ParsePublicKeyDER parses a DER SubjectPublicKeyInfo holding an SM2 key.
// Errors: ErrPublicKey.
func ParsePublicKeyDER(der []byte) (*PublicKey, error) {
	k, err := smx509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, fmt.Errorf("parse SM2 public key: %w: %v", ErrPublicKey, err)
	}
	ek, ok := k.(*ecdsa.PublicKey)
	if !ok || !sm2.IsSM2PublicKey(ek) {
		return nil, fmt.Errorf("parse SM2 public key: %w: not an SM2 key (%T)", ErrPublicKey, k)
	}
	p, err := wrapPublic(ek) // checks the point is on the curve
	if err != nil {
		return nil, fmt.Errorf("parse SM2 public key: %w: not a valid curve point", ErrPublicKey)
	}
	// Re-parse the encoding: the same checks as for a raw point.
	return PublicKeyFromPoint(p.b)
}

// MarshalDER returns the key as DER SubjectPublicKeyInfo (the SM2 curve
// OID under id-ecPublicKey, as OpenSSL writes it).
func (p *PublicKey) MarshalDER() ([]byte, error) {
	der, err := smx509.MarshalPKIXPublicKey(p.k)
	if err != nil {
		return nil, fmt.Errorf("marshal SM2 public key: %w", err)
	}
	return der, nil
}

// ParsePublicKeyPEM parses the first "PUBLIC KEY" PEM block in data.
// Errors: ErrPEM, ErrPublicKey.
func ParsePublicKeyPEM(data []byte) (*PublicKey, error) {
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return nil, fmt.Errorf("parse SM2 public key: %w: want %q", ErrPEM, pemPublic)
		}
		if b.Type == pemPublic {
			return ParsePublicKeyDER(b.Bytes)
		}
	}
}

// MarshalPEM returns the key as a "PUBLIC KEY" (SPKI) PEM block.
func (p *PublicKey) MarshalPEM() ([]byte, error) {
	der, err := p.MarshalDER()
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemPublic, Bytes: der}), nil
}

// ParsePrivateKeyDER parses an unencrypted PKCS#8 or SEC 1 DER SM2 private
// key. Errors: ErrPrivateKey (the message never includes key bytes).
func ParsePrivateKeyDER(der []byte) (*PrivateKey, error) {
	var d []byte
	if k, err := smx509.ParsePKCS8PrivateKey(der); err == nil {
		sk, ok := k.(*sm2.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("parse SM2 private key: %w: not an SM2 key", ErrPrivateKey)
		}
		d = sk.D.FillBytes(make([]byte, 32))
	} else if k, err := smx509.ParseSM2PrivateKey(der); err == nil {
		d = k.D.FillBytes(make([]byte, 32))
	} else {
		return nil, fmt.Errorf("parse SM2 private key: %w: not PKCS#8 or SEC 1 SM2", ErrPrivateKey)
	}
	// Rebuild from the scalar: range check and a public key computed here,
	// never the one stored in the file.
	return NewPrivateKey(d)
}

// MarshalDER returns the key as unencrypted PKCS#8 DER. The result is
// secret.
func (k *PrivateKey) MarshalDER() ([]byte, error) {
	der, err := smx509.MarshalPKCS8PrivateKey(k.k)
	if err != nil {
		return nil, fmt.Errorf("marshal SM2 private key: %w", ErrPrivateKey)
	}
	return der, nil
}

// ParsePrivateKeyPEM parses the first "PRIVATE KEY" (PKCS#8) or "EC PRIVATE
// KEY" (SEC 1) PEM block in data. Errors: ErrPEM, ErrPrivateKey.
func ParsePrivateKeyPEM(data []byte) (*PrivateKey, error) {
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return nil, fmt.Errorf("parse SM2 private key: %w: want %q", ErrPEM, pemPrivate)
		}
		if b.Type == pemPrivate || b.Type == pemPrivateEC {
			if len(b.Headers) != 0 {
				return nil, fmt.Errorf("parse SM2 private key: %w: encrypted PEM is not supported", ErrPrivateKey)
			}
			return ParsePrivateKeyDER(b.Bytes)
		}
	}
}

// MarshalPEM returns the key as a "PRIVATE KEY" (PKCS#8) PEM block. The
// result is secret.
func (k *PrivateKey) MarshalPEM() ([]byte, error) {
	der, err := k.MarshalDER()
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemPrivate, Bytes: der}), nil
}

// LoadPrivateKeyPEM reads a PEM private key file. On Unix it refuses a
// file readable or writable by group or others (ErrInsecurePermissions).
// Errors: also ErrPEM, ErrPrivateKey and file errors.
func LoadPrivateKeyPEM(path string) (*PrivateKey, error) {
	data, err := readSecretFile(path)
	if err != nil {
		return nil, fmt.Errorf("load SM2 private key: %w", err)
	}
	return ParsePrivateKeyPEM(data)
}

// SavePrivateKeyPEM writes k as PKCS#8 PEM to path with mode 0600, through
// a temporary file and a rename. It refuses to replace an existing file
// readable by group or others (ErrInsecurePermissions).
func SavePrivateKeyPEM(path string, k *PrivateKey) error {
	data, err := k.MarshalPEM()
	if err != nil {
		return err
	}
	if err := writeSecretFile(path, data); err != nil {
		return fmt.Errorf("save SM2 private key: %w", err)
	}
	return nil
}

// LoadPublicKeyPEM reads a "PUBLIC KEY" PEM file.
func LoadPublicKeyPEM(path string) (*PublicKey, error) {
	data, err := readLimited(path)
	if err != nil {
		return nil, fmt.Errorf("load SM2 public key: %w", err)
	}
	return ParsePublicKeyPEM(data)
}

// SavePublicKeyPEM writes p as SPKI PEM to path (mode 0644, through a
// temporary file and a rename).
func SavePublicKeyPEM(path string, p *PublicKey) error {
	data, err := p.MarshalPEM()
	if err != nil {
		return err
	}
	if err := writeFileAtomic(path, data, 0o644); err != nil {
		return fmt.Errorf("save SM2 public key: %w", err)
	}
	return nil
}

// Sign signs msg with priv and the user ID uid (nil or empty: DefaultUID)
// per GB/T 32918.2 (e = SM3(Z ‖ msg)) and returns the DER signature.
func Sign(priv *PrivateKey, msg, uid []byte) ([]byte, error) {
	return sign(randReader, priv, msg, uid)
}

func sign(rand io.Reader, priv *PrivateKey, msg, uid []byte) ([]byte, error) {
	if priv == nil || priv.k == nil {
		return nil, fmt.Errorf("sign SM2: %w: nil key", ErrPrivateKey)
	}
	if rand == nil {
		rand = randReader
	}
	if len(uid) == 0 {
		uid = []byte(DefaultUID)
	}
	// Trap 2 of gm-crypto.md: without forceGMSign the library would sign
	// msg as a digest. NewSM2SignerOption(true, uid) hashes Z ‖ msg.
	sig, err := sm2.SignASN1(rand, priv.k, msg, sm2.NewSM2SignerOption(true, uid))
	if err != nil {
		return nil, fmt.Errorf("sign SM2: %w", err)
	}
	return sig, nil
}

// SignDigest signs a precomputed 32-byte digest e (see [Digest]) and
// returns the DER signature. Errors: ErrDataLength, ErrPrivateKey.
func SignDigest(priv *PrivateKey, e []byte) ([]byte, error) {
	if priv == nil || priv.k == nil {
		return nil, fmt.Errorf("sign SM2 digest: %w: nil key", ErrPrivateKey)
	}
	if len(e) != 32 {
		return nil, fmt.Errorf("sign SM2 digest: %w: digest is %d bytes, want 32", ErrDataLength, len(e))
	}
	sig, err := sm2.SignASN1(randReader, priv.k, e, nil)
	if err != nil {
		return nil, fmt.Errorf("sign SM2 digest: %w", err)
	}
	return sig, nil
}

// Verify reports whether sigDER is a valid SM2 signature of msg by pub with
// user ID uid (nil or empty: DefaultUID). Non-DER signatures and trailing
// bytes are rejected.
func Verify(pub *PublicKey, msg, sigDER, uid []byte) bool {
	if pub == nil || pub.k == nil {
		return false
	}
	if len(uid) == 0 {
		uid = []byte(DefaultUID)
	}
	return sm2.VerifyASN1WithSM2(pub.k, uid, msg, sigDER)
}

// VerifyDigest reports whether sigDER is a valid SM2 signature over the
// 32-byte digest e (no Z value is added).
func VerifyDigest(pub *PublicKey, e, sigDER []byte) bool {
	if pub == nil || pub.k == nil || len(e) != 32 {
		return false
	}
	return sm2.VerifyASN1(pub.k, e, sigDER)
}

// Z returns the SM2 Z value SM3(ENTL ‖ uid ‖ a ‖ b ‖ xG ‖ yG ‖ xA ‖ yA) for
// pub and uid (nil or empty: DefaultUID). Errors: ErrDataLength for a uid
// longer than 8191 bytes.
func Z(pub *PublicKey, uid []byte) ([]byte, error) {
	if len(uid) == 0 {
		uid = []byte(DefaultUID)
	}
	z, err := sm2.CalculateZA(pub.k, uid)
	if err != nil {
		return nil, fmt.Errorf("compute SM2 Z: %w: user ID too long", ErrDataLength)
	}
	return z, nil
}

// Digest returns e = SM3(Z ‖ msg), the value an SM2 signature of msg by pub
// with user ID uid actually signs.
func Digest(pub *PublicKey, msg, uid []byte) ([]byte, error) {
	z, err := Z(pub, uid)
	if err != nil {
		return nil, err
	}
	h := NewSM3()
	h.Write(z)
	h.Write(msg)
	return h.Sum(nil), nil
}

// DERToRaw converts a DER SM2 signature to the 64-byte r ‖ s form (each
// 32 bytes, big-endian, left-padded). Errors: ErrSignatureFormat (not
// strict DER, trailing bytes, or r or s outside [1, n-1]).
func DERToRaw(sigDER []byte) ([]byte, error) {
	var inner cryptobyte.String
	in := cryptobyte.String(sigDER)
	r, s := new(big.Int), new(big.Int)
	if !in.ReadASN1(&inner, asn1.SEQUENCE) || !in.Empty() ||
		!inner.ReadASN1Integer(r) || !inner.ReadASN1Integer(s) || !inner.Empty() {
		return nil, fmt.Errorf("convert SM2 signature: %w: not a DER SEQUENCE of two INTEGERs", ErrSignatureFormat)
	}
	if !inRange(r) || !inRange(s) {
		return nil, fmt.Errorf("convert SM2 signature: %w: r or s out of range", ErrSignatureFormat)
	}
	out := make([]byte, 64)
	r.FillBytes(out[:32])
	s.FillBytes(out[32:])
	return out, nil
}

// RawToDER converts a 64-byte r ‖ s SM2 signature to DER. Errors:
// ErrSignatureFormat (wrong length, or r or s outside [1, n-1]).
func RawToDER(raw []byte) ([]byte, error) {
	if len(raw) != 64 {
		return nil, fmt.Errorf("convert SM2 signature: %w: raw signature is %d bytes, want 64", ErrSignatureFormat, len(raw))
	}
	r := new(big.Int).SetBytes(raw[:32])
	s := new(big.Int).SetBytes(raw[32:])
	if !inRange(r) || !inRange(s) {
		return nil, fmt.Errorf("convert SM2 signature: %w: r or s out of range", ErrSignatureFormat)
	}
	var b cryptobyte.Builder
	b.AddASN1(asn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1BigInt(r)
		b.AddASN1BigInt(s)
	})
	return b.Bytes()
}

func inRange(v *big.Int) bool { return v.Sign() > 0 && v.Cmp(curveN) < 0 }
