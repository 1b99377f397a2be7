package sync

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/onecard-hub/onecard/sm"
)

// Magic prefixes of the signed byte strings. Records start with "OCTR",
// envelopes with "OCTE": no signature over one can pass for another.
const (
	HelloMagic  = "OCSH"
	EnrollMagic = "OCSE"
)

// HelloBytes returns the canonical bytes a terminal signs to answer a
// challenge:
//
//	"OCSH" ‖ Version (1 byte) ‖ len(hubID) (1 byte) ‖ hubID ‖
//	terminalID (12 ASCII digits) ‖ nonce (NonceLen bytes)
//
// Errors wrap ErrMalformed (bad hub ID, terminal number or nonce).
func HelloBytes(hubID, terminalID string, nonce []byte) ([]byte, error) {
	if err := CheckHubID(hubID); err != nil {
		return nil, fmt.Errorf("hello bytes: %w", err)
	}
	if err := checkTerminal("terminal_id", terminalID); err != nil {
		return nil, fmt.Errorf("hello bytes: %w", err)
	}
	if err := checkLen("nonce", nonce, NonceLen); err != nil {
		return nil, fmt.Errorf("hello bytes: %w", err)
	}
	b := make([]byte, 0, 4+2+len(hubID)+12+NonceLen)
	b = append(b, HelloMagic...)
	b = append(b, Version, byte(len(hubID)))
	b = append(b, hubID...)
	b = append(b, terminalID...)
	return append(b, nonce...), nil
}

// EnrollBytes returns the canonical bytes a new terminal key signs (proof
// of possession) when it enrols:
//
//	"OCSE" ‖ Version (1 byte) ‖ len(hubID) (1 byte) ‖ hubID ‖
//	terminalID (12 ASCII digits) ‖ nonce (NonceLen) ‖ public key point
//	(PublicKeyLen) ‖ SHA-256(token) (32)
//
// Errors wrap ErrMalformed.
func EnrollBytes(hubID, terminalID string, nonce, publicKey []byte, token string) ([]byte, error) {
	if err := CheckHubID(hubID); err != nil {
		return nil, fmt.Errorf("enroll bytes: %w", err)
	}
	if err := checkTerminal("terminal_id", terminalID); err != nil {
		return nil, fmt.Errorf("enroll bytes: %w", err)
	}
	if err := checkLen("nonce", nonce, NonceLen); err != nil {
		return nil, fmt.Errorf("enroll bytes: %w", err)
	}
	if err := checkLen("public_key", publicKey, PublicKeyLen); err != nil {
		return nil, fmt.Errorf("enroll bytes: %w", err)
	}
	th := sha256.Sum256([]byte(token))
	b := make([]byte, 0, 4+2+len(hubID)+12+NonceLen+PublicKeyLen+32)
	b = append(b, EnrollMagic...)
	b = append(b, Version, byte(len(hubID)))
	b = append(b, hubID...)
	b = append(b, terminalID...)
	b = append(b, nonce...)
	b = append(b, publicKey...)
	return append(b, th[:]...), nil
}

// SignHello signs HelloBytes with the terminal key (user ID = terminal
// number) and returns the raw r‖s signature.
func SignHello(priv *sm.PrivateKey, hubID, terminalID string, nonce []byte) ([]byte, error) {
	msg, err := HelloBytes(hubID, terminalID, nonce)
	if err != nil {
		return nil, err
	}
	return signRaw(priv, msg, terminalID)
}

// VerifyHello reports whether sig is the terminal's signature over
// HelloBytes.
func VerifyHello(pub *sm.PublicKey, hubID, terminalID string, nonce, sig []byte) bool {
	msg, err := HelloBytes(hubID, terminalID, nonce)
	if err != nil {
		return false
	}
	return verifyRaw(pub, msg, sig, terminalID)
}

// SignEnroll signs EnrollBytes with the new key.
func SignEnroll(priv *sm.PrivateKey, hubID, terminalID string, nonce []byte, token string) ([]byte, error) {
	msg, err := EnrollBytes(hubID, terminalID, nonce, priv.PublicKey().Point(), token)
	if err != nil {
		return nil, err
	}
	return signRaw(priv, msg, terminalID)
}

// VerifyEnroll reports whether m's signature is valid for its own public
// key over EnrollBytes. It returns the parsed key when it is.
func VerifyEnroll(hubID string, m *Enroll) (*sm.PublicKey, bool) {
	pub, err := sm.PublicKeyFromPoint(m.PublicKey)
	if err != nil {
		return nil, false
	}
	msg, err := EnrollBytes(hubID, m.TerminalID, m.Nonce, m.PublicKey, m.Token)
	if err != nil {
		return nil, false
	}
	if !verifyRaw(pub, msg, m.Signature, m.TerminalID) {
		return nil, false
	}
	return pub, true
}

func signRaw(priv *sm.PrivateKey, msg []byte, uid string) ([]byte, error) {
	der, err := sm.Sign(priv, msg, []byte(uid))
	if err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	raw, err := sm.DERToRaw(der)
	if err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	return raw, nil
}

func verifyRaw(pub *sm.PublicKey, msg, sig []byte, uid string) bool {
	der, err := sm.RawToDER(sig)
	if err != nil {
		return false
	}
	return sm.Verify(pub, msg, der, []byte(uid))
}

// SPKIPin returns the pin of a certificate: the SHA-256 of its
// SubjectPublicKeyInfo, as "sha256/" + standard base64 (the HPKP form).
func SPKIPin(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return "sha256/" + base64.StdEncoding.EncodeToString(sum[:])
}

// ParsePin parses a pin in the SPKIPin form or as 64 hex digits and
// returns the 32-byte digest. Errors wrap ErrMalformed.
func ParsePin(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if rest, ok := strings.CutPrefix(s, "sha256/"); ok {
		b, err := base64.StdEncoding.DecodeString(rest)
		if err != nil || len(b) != sha256.Size {
			return nil, fmt.Errorf("parse pin: %w: want sha256/ and 44 base64 characters", ErrMalformed)
		}
		return b, nil
	}
	b, err := hex.DecodeString(strings.ReplaceAll(s, ":", ""))
	if err != nil || len(b) != sha256.Size {
		return nil, fmt.Errorf("parse pin: %w: want sha256/BASE64 or 64 hex digits", ErrMalformed)
	}
	return b, nil
}
