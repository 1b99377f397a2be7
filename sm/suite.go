package sm

import (
	"crypto/cipher"
	"crypto/subtle"
	"fmt"
	"strings"
)

// MACVariant selects how a [Suite] computes block MACs.
type MACVariant int

const (
	// MACCBC ("cbc") is the PBOC MAC: pad with 80 00…, CBC-encrypt from
	// the IV, keep the leftmost 4 bytes of the last block. With 3DES and a
	// 16-byte key it is the ANSI X9.19 retail MAC (single DES with K_L on
	// every block, then decrypt with K_R and encrypt with K_L on the last);
	// with a 24-byte key the last block gets decrypt K2, encrypt K3; an
	// 8-byte key gives single-DES CBC-MAC. With SM4 every block is SM4.
	MACCBC MACVariant = iota
	// MACXORFold ("xorfold", SM4 only) XORs the IV and all 80-padded
	// blocks together and encrypts the result once; leftmost 4 bytes. The
	// alternative SM4 variant some PBOC-SM sources describe.
	MACXORFold
)

// SessionKeyRule selects how a [Suite] derives purchase and load session
// keys from the 8-byte input D (purchase: rnd(4) ‖ offline seq(2) ‖ low 2
// bytes of the terminal sequence; load: rnd(4) ‖ online seq(2) ‖ 80 00).
type SessionKeyRule int

const (
	// SessionEncrypt ("enc", 3DES only): session key = 3DES(K, D), 8 bytes,
	// used as a single-DES key (PBOC 2.0, confirmed).
	SessionEncrypt SessionKeyRule = iota
	// SessionDNotD ("dnotd", SM4 only): session key = SM4(K, D ‖ ¬D), 16
	// bytes. Seen for SM4 purchase keys; unconfirmed for SSC cards and
	// assumed for load keys.
	SessionDNotD
)

// TACKeyRule selects the key a [Suite] makes the TAC with.
type TACKeyRule int

const (
	// TACXORHalves ("xor", 3DES only): single-DES MAC with the key
	// DTK[0:8] XOR DTK[8:16], IV zero (PBOC 2.0, confirmed).
	TACXORHalves TACKeyRule = iota
	// TACFullKey ("dtk"): the suite's MAC with DTK itself, IV zero. The
	// SM4 rule is unconfirmed; this is onecard's documented choice.
	TACFullKey
)

// Suite is a named crypto suite: the algorithm plus every rule on which
// regions' cards may differ. Use [SuiteSM4], [Suite3DES] or [ParseSuite];
// a Suite built by hand is checked by every method (ErrSuite).
//
// Names: "3des-pboc" (= [Suite3DES]: mac=cbc, session=enc, tac=xor) and
// "sm4-pboc" (= [SuiteSM4]: mac=cbc, session=dnotd, tac=dtk), optionally
// followed by ",key=value" overrides, e.g. "sm4-pboc,mac=xorfold".
type Suite struct {
	Alg         Alg
	MACVariant  MACVariant
	SessionKeys SessionKeyRule
	TACKey      TACKeyRule
}

var (
	// SuiteSM4 is the third-generation suite "sm4-pboc": SM4 CBC-MAC with
	// 16-byte blocks, session keys SM4(K, D‖¬D), TAC = SM4 MAC with DTK.
	// The MAC variant, session and TAC rules are unconfirmed for SSC
	// cards (ssc-card-facts §3.3 [U]); override them with ParseSuite.
	SuiteSM4 = Suite{Alg: AlgSM4, MACVariant: MACCBC, SessionKeys: SessionDNotD, TACKey: TACFullKey}
	// Suite3DES is the second-generation suite "3des-pboc" (PBOC 2.0):
	// X9.19/DES CBC-MAC, session keys 3DES(K, D), TAC = DES-MAC with
	// DTK_L XOR DTK_R.
	Suite3DES = Suite{Alg: Alg3DES, MACVariant: MACCBC, SessionKeys: SessionEncrypt, TACKey: TACXORHalves}
)

var (
	macNames     = map[MACVariant]string{MACCBC: "cbc", MACXORFold: "xorfold"}
	sessionNames = map[SessionKeyRule]string{SessionEncrypt: "enc", SessionDNotD: "dnotd"}
	tacNames     = map[TACKeyRule]string{TACXORHalves: "xor", TACFullKey: "dtk"}
)

// base returns the predefined suite the name is built on.
func (s Suite) base() (string, Suite) {
	if s.Alg == Alg3DES {
		return "3des-pboc", Suite3DES
	}
	return "sm4-pboc", SuiteSM4
}

// Name returns the suite's canonical name: the base name plus the rules
// that differ from it. ParseSuite(s.Name()) returns s for every valid s.
func (s Suite) Name() string {
	if s.Alg != AlgSM4 && s.Alg != Alg3DES {
		return "invalid(" + s.Alg.String() + ")"
	}
	name, b := s.base()
	if s.MACVariant != b.MACVariant {
		name += ",mac=" + label(macNames, s.MACVariant)
	}
	if s.SessionKeys != b.SessionKeys {
		name += ",session=" + label(sessionNames, s.SessionKeys)
	}
	if s.TACKey != b.TACKey {
		name += ",tac=" + label(tacNames, s.TACKey)
	}
	return name
}

// String returns Name.
func (s Suite) String() string { return s.Name() }

func label[K comparable](m map[K]string, k K) string {
	if v, ok := m[k]; ok {
		return v
	}
	return fmt.Sprintf("%v?", k)
}

func lookup[K comparable](m map[K]string, v string) (K, bool) {
	for k, name := range m {
		if name == v {
			return k, true
		}
	}
	var zero K
	return zero, false
}

// ParseSuite parses a suite name: "sm4-pboc" or "3des-pboc" ("sm4" and
// "3des" are accepted aliases), optionally followed by comma-separated
// overrides mac=cbc|xorfold, session=enc|dnotd, tac=xor|dtk. Case and
// spaces are ignored. Errors: ErrSuite for an unknown name or option, or
// a combination the algorithm cannot do (xorfold and dnotd need SM4; enc
// and xor need 3DES).
func ParseSuite(name string) (Suite, error) {
	parts := strings.Split(strings.ToLower(strings.ReplaceAll(name, " ", "")), ",")
	var s Suite
	switch parts[0] {
	case "sm4-pboc", "sm4":
		s = SuiteSM4
	case "3des-pboc", "3des":
		s = Suite3DES
	default:
		return Suite{}, fmt.Errorf("parse suite %q: %w", name, ErrSuite)
	}
	seen := map[string]bool{}
	for _, opt := range parts[1:] {
		k, v, _ := strings.Cut(opt, "=")
		if seen[k] {
			return Suite{}, fmt.Errorf("parse suite %q: option %q repeated: %w", name, k, ErrSuite)
		}
		seen[k] = true
		ok := false
		switch k {
		case "mac":
			s.MACVariant, ok = lookup(macNames, v)
		case "session":
			s.SessionKeys, ok = lookup(sessionNames, v)
		case "tac":
			s.TACKey, ok = lookup(tacNames, v)
		}
		if !ok {
			return Suite{}, fmt.Errorf("parse suite %q: bad option %q: %w", name, opt, ErrSuite)
		}
	}
	if err := s.check(); err != nil {
		return Suite{}, fmt.Errorf("parse suite %q: %w", name, err)
	}
	return s, nil
}

// check reports whether the rules fit the algorithm.
func (s Suite) check() error {
	switch s.Alg {
	case AlgSM4:
		if s.SessionKeys != SessionDNotD || s.TACKey != TACFullKey ||
			(s.MACVariant != MACCBC && s.MACVariant != MACXORFold) {
			return fmt.Errorf("%w: %s", ErrSuite, s.Name())
		}
	case Alg3DES:
		if s.MACVariant != MACCBC || s.SessionKeys != SessionEncrypt ||
			(s.TACKey != TACXORHalves && s.TACKey != TACFullKey) {
			return fmt.Errorf("%w: %s", ErrSuite, s.Name())
		}
	default:
		return fmt.Errorf("%w: %v", ErrSuite, s.Alg)
	}
	return nil
}

// Diversify derives a card (or lower-level) key from master with one
// 8-byte factor per level and returns a new 16-byte key. 3DES: K_L =
// 3DES(K, F), K_R = 3DES(K, ¬F) (master 16 or 24 bytes); SM4: K' = SM4(K,
// F ‖ ¬F). Errors: ErrSuite, ErrKeySize, ErrFactor (no factor, or one not
// 8 bytes).
func (s Suite) Diversify(master []byte, factors ...[]byte) ([]byte, error) {
	if err := s.check(); err != nil {
		return nil, fmt.Errorf("diversify key: %w", err)
	}
	if len(factors) == 0 {
		return nil, fmt.Errorf("diversify key: %w: none given", ErrFactor)
	}
	if s.Alg == Alg3DES && len(master) == 8 {
		return nil, fmt.Errorf("diversify key: %w: 3DES master is 8 bytes, want 16 or 24", ErrKeySize)
	}
	key := master
	for i, f := range factors {
		if len(f) != 8 {
			return nil, fmt.Errorf("diversify key: %w: factor %d is %d bytes, want 8", ErrFactor, i+1, len(f))
		}
		b, err := s.Alg.newBlock(key)
		if err != nil {
			return nil, fmt.Errorf("diversify key: %w", err)
		}
		key = encryptDNotD(b, f)
	}
	return key, nil
}

// encryptDNotD returns E(D) ‖ E(¬D) for an 8-byte block cipher and
// E(D ‖ ¬D) for a 16-byte one: 16 bytes either way.
func encryptDNotD(b cipher.Block, d []byte) []byte {
	out := make([]byte, 16)
	copy(out, d)
	for i := range 8 {
		out[8+i] = ^d[i]
	}
	ecb(b, out, true)
	return out
}

// Encrypt encrypts data in ECB mode without padding. Errors: ErrSuite,
// ErrKeySize, ErrDataLength (not a multiple of the block size).
func (s Suite) Encrypt(key, data []byte) ([]byte, error) {
	if err := s.check(); err != nil {
		return nil, fmt.Errorf("encrypt ECB: %w", err)
	}
	return EncryptECB(s.Alg, key, data, NoPadding)
}

// Decrypt decrypts ECB-mode data without padding. Errors: ErrSuite,
// ErrKeySize, ErrDataLength.
func (s Suite) Decrypt(key, data []byte) ([]byte, error) {
	if err := s.check(); err != nil {
		return nil, fmt.Errorf("decrypt ECB: %w", err)
	}
	return DecryptECB(s.Alg, key, data, NoPadding)
}

// MAC computes the suite's 4-byte block MAC of data (see [MACVariant]):
// always 80 00… padded, starting from iv. iv nil means zeros; 3DES takes an
// 8-byte iv; SM4 takes 16 bytes, or 8 bytes placed left-aligned into 16
// zero bytes. Key: 3DES 8, 16 or 24 bytes; SM4 16. Errors: ErrSuite,
// ErrKeySize, ErrIVSize.
func (s Suite) MAC(key, iv, data []byte) ([]byte, error) {
	if err := s.check(); err != nil {
		return nil, fmt.Errorf("compute MAC: %w", err)
	}
	mac, err := blockMAC(s.Alg, s.MACVariant, key, iv, data)
	if err != nil {
		return nil, fmt.Errorf("compute MAC: %w", err)
	}
	return mac, nil
}

func blockMAC(alg Alg, v MACVariant, key, iv, data []byte) ([]byte, error) {
	var full cipher.Block
	var err error
	bs := alg.BlockSize()
	switch {
	case alg == Alg3DES && (len(key) == 16 || len(key) == 24):
		// Retail MAC: single DES with K1 on every block, the full
		// 3DES on the last.
		full, err = alg.newBlock(key)
		if err != nil {
			return nil, err
		}
		k1, err := alg.newBlock(key[:8])
		if err != nil {
			return nil, err
		}
		iv, err := fullIV(iv, bs, false)
		if err != nil {
			return nil, err
		}
		h := cbcMAC(k1, full, iv, pad80(data, bs))
		return h[:4], nil
	default:
		full, err = alg.newBlock(key)
		if err != nil {
			return nil, err
		}
	}
	iv, err = fullIV(iv, bs, alg == AlgSM4)
	if err != nil {
		return nil, err
	}
	padded := pad80(data, bs)
	if v == MACXORFold {
		for i := 0; i < len(padded); i += bs {
			subtle.XORBytes(iv, iv, padded[i:i+bs])
		}
		full.Encrypt(iv, iv)
		return iv[:4], nil
	}
	h := cbcMAC(full, full, iv, padded)
	return h[:4], nil
}

// cbcMAC runs CBC over whole blocks with inner on all but the last block
// and last on the last one, and returns the final chaining value. h is
// overwritten.
func cbcMAC(inner, last cipher.Block, h, data []byte) []byte {
	bs := len(h)
	for i := 0; i < len(data); i += bs {
		subtle.XORBytes(h, h, data[i:i+bs])
		if i+bs == len(data) {
			last.Encrypt(h, h)
		} else {
			inner.Encrypt(h, h)
		}
	}
	return h
}

// PurchaseSessionKey derives the purchase session key SESPK from the
// card's DPK (already diversified for the card), the card's 4-byte
// pseudo-random number, the 2-byte offline sequence number and the low 2
// bytes of the terminal transaction sequence. 3DES: 8 bytes; SM4: 16.
// Errors: ErrSuite, ErrKeySize, ErrDataLength.
func (s Suite) PurchaseSessionKey(dpk, rnd4, offlineSeq2, termSeqLow2 []byte) ([]byte, error) {
	k, err := s.sessionKey(dpk, rnd4, offlineSeq2, termSeqLow2)
	if err != nil {
		return nil, fmt.Errorf("derive purchase session key: %w", err)
	}
	return k, nil
}

// LoadSessionKey derives the load session key SESLK from the card's DLK,
// its 4-byte random and the 2-byte online sequence number (D = rnd ‖ seq ‖
// 80 00). 3DES: 8 bytes; SM4: 16. Errors: ErrSuite, ErrKeySize,
// ErrDataLength.
func (s Suite) LoadSessionKey(dlk, rnd4, onlineSeq2 []byte) ([]byte, error) {
	k, err := s.sessionKey(dlk, rnd4, onlineSeq2, []byte{0x80, 0x00})
	if err != nil {
		return nil, fmt.Errorf("derive load session key: %w", err)
	}
	return k, nil
}

func (s Suite) sessionKey(key, rnd4, seq2, tail2 []byte) ([]byte, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	if len(rnd4) != 4 || len(seq2) != 2 || len(tail2) != 2 {
		return nil, fmt.Errorf("%w: want random 4, sequence 2 and 2 bytes, got %d, %d, %d",
			ErrDataLength, len(rnd4), len(seq2), len(tail2))
	}
	b, err := s.Alg.newBlock(key)
	if err != nil {
		return nil, err
	}
	d := make([]byte, 0, 8)
	d = append(append(append(d, rnd4...), seq2...), tail2...)
	if s.SessionKeys == SessionDNotD {
		return encryptDNotD(b, d), nil
	}
	b.Encrypt(d, d)
	return d, nil
}

// TAC computes the 4-byte transaction authorisation code over data
// (amount ‖ type ‖ terminal ‖ terminal seq ‖ date ‖ time) with the card's
// DTK, IV zero, following the suite's [TACKeyRule]. Errors: ErrSuite,
// ErrKeySize.
func (s Suite) TAC(dtk, data []byte) ([]byte, error) {
	if err := s.check(); err != nil {
		return nil, fmt.Errorf("compute TAC: %w", err)
	}
	key := dtk
	if s.TACKey == TACXORHalves {
		if len(dtk) != 16 {
			return nil, fmt.Errorf("compute TAC: %w: DTK is %d bytes, want 16", ErrKeySize, len(dtk))
		}
		key = make([]byte, 8)
		subtle.XORBytes(key, dtk[:8], dtk[8:])
	}
	mac, err := blockMAC(s.Alg, s.MACVariant, key, nil, data)
	if err != nil {
		return nil, fmt.Errorf("compute TAC: %w", err)
	}
	return mac, nil
}

// VerifyMAC reports, in constant time, whether got equals want; empty
// values never match.
func VerifyMAC(got, want []byte) bool {
	return len(want) > 0 && subtle.ConstantTimeCompare(got, want) == 1
}
