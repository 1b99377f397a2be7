package record

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"github.com/onecard-hub/onecard/sm"
)

// Signature algorithm identifiers in an envelope.
const (
	// SigSM2 is SM2 with SM3 and the Z value, user ID = the 12 ASCII
	// digits of the terminal number, signature raw r‖s (64 bytes).
	SigSM2 = 0x01
)

// EnvelopeMagic starts every envelope encoding.
const EnvelopeMagic = "OCTE"

// UID returns the SM2 user ID records of this terminal are signed with:
// the 12 ASCII digits of the terminal number (not sm.DefaultUID), so a
// signature made for one terminal number cannot pass as another's.
func (r *Record) UID() []byte { return []byte(r.TerminalID) }

// Sign returns the terminal's SM2 signature over the canonical encoding, in
// the raw 64-byte r‖s form, with the user ID [Record.UID]. The record must
// be valid and have a terminal sequence (errors: those of Validate,
// ErrInvalid for TerminalSeq 0, and signing errors from package sm).
func (r *Record) Sign(priv *sm.PrivateKey) ([]byte, error) {
	if r.TerminalSeq == 0 {
		return nil, fmt.Errorf("sign record: %w", invalid("terminal_seq", "not assigned"))
	}
	msg, err := r.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("sign record: %w", err)
	}
	der, err := sm.Sign(priv, msg, r.UID())
	if err != nil {
		return nil, fmt.Errorf("sign record: %w", err)
	}
	raw, err := sm.DERToRaw(der)
	if err != nil {
		return nil, fmt.Errorf("sign record: %w", err)
	}
	return raw, nil
}

// Verify checks a raw r‖s signature made by [Record.Sign]. It returns nil
// or an error wrapping ErrSignature (also for a malformed signature or an
// invalid record).
func (r *Record) Verify(pub *sm.PublicKey, sig []byte) error {
	msg, err := r.MarshalBinary()
	if err != nil {
		return fmt.Errorf("verify record: %w: %w", ErrSignature, err)
	}
	der, err := sm.RawToDER(sig)
	if err != nil {
		return fmt.Errorf("verify record: %w: %w", ErrSignature, err)
	}
	if !sm.Verify(pub, msg, der, r.UID()) {
		return fmt.Errorf("verify record: %w", ErrSignature)
	}
	return nil
}

// Envelope is a record with the terminal's signature over its canonical
// bytes. Encoding (docs/record-encoding.md): "OCTE" ‖ record length (2
// bytes) ‖ record ‖ algorithm (1 byte, SigSM2) ‖ signature (64 bytes).
type Envelope struct {
	Record    *Record
	Signature []byte // raw r‖s, SignatureLen bytes
}

// Seal signs r with priv and returns the envelope. Errors: those of
// [Record.Sign].
func Seal(r *Record, priv *sm.PrivateKey) (*Envelope, error) {
	sig, err := r.Sign(priv)
	if err != nil {
		return nil, err
	}
	return &Envelope{Record: r.Clone(), Signature: sig}, nil
}

// Verify checks the signature with the terminal's public key (nil or an
// error wrapping ErrSignature).
func (e *Envelope) Verify(pub *sm.PublicKey) error {
	if e.Record == nil {
		return fmt.Errorf("verify record: %w: no record", ErrSignature)
	}
	return e.Record.Verify(pub, e.Signature)
}

// MarshalBinary returns the envelope encoding. Errors: those of
// Record.MarshalBinary, ErrSignature for a signature of the wrong length.
func (e *Envelope) MarshalBinary() ([]byte, error) {
	if e.Record == nil {
		return nil, fmt.Errorf("encode envelope: %w", invalid("record", "missing"))
	}
	if len(e.Signature) != SignatureLen {
		return nil, fmt.Errorf("encode envelope: %w: %d bytes, want %d", ErrSignature, len(e.Signature), SignatureLen)
	}
	rec, err := e.Record.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("encode envelope: %w", err)
	}
	out := make([]byte, 0, len(EnvelopeMagic)+2+len(rec)+1+SignatureLen)
	out = append(out, EnvelopeMagic...)
	out = binary.BigEndian.AppendUint16(out, uint16(len(rec)))
	out = append(out, rec...)
	out = append(out, SigSM2)
	return append(out, e.Signature...), nil
}

// DecodeEnvelope parses an envelope strictly: the record as [Decode] does,
// then exactly one SigSM2 signature of SignatureLen bytes. It does NOT
// verify the signature (call [Envelope.Verify] with the terminal's key).
// Errors: ErrMagic, ErrTruncated, ErrTrailingData, ErrInvalid (unknown
// algorithm) and the record's errors.
func DecodeEnvelope(b []byte) (*Envelope, error) {
	if len(b) < len(EnvelopeMagic)+2 {
		return nil, fmt.Errorf("decode envelope: %w", ErrTruncated)
	}
	if !bytes.Equal(b[:len(EnvelopeMagic)], []byte(EnvelopeMagic)) {
		return nil, fmt.Errorf("decode envelope: %w", ErrMagic)
	}
	b = b[len(EnvelopeMagic):]
	n := int(binary.BigEndian.Uint16(b))
	b = b[2:]
	if len(b) < n+1+SignatureLen {
		return nil, fmt.Errorf("decode envelope: %w", ErrTruncated)
	}
	rec, err := Decode(b[:n])
	if err != nil {
		return nil, fmt.Errorf("decode envelope: %w", err)
	}
	if b[n] != SigSM2 {
		return nil, fmt.Errorf("decode envelope: %w", &FieldError{Field: "sig_alg", Offset: len(EnvelopeMagic) + 2 + n,
			Err: ErrInvalid, Detail: fmt.Sprintf("algorithm %02X", b[n])})
	}
	if rest := len(b) - (n + 1 + SignatureLen); rest != 0 {
		return nil, fmt.Errorf("decode envelope: %w: %d bytes after the signature", ErrTrailingData, rest)
	}
	return &Envelope{Record: rec, Signature: bytes.Clone(b[n+1:])}, nil
}
