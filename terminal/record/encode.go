package record

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// Magic starts every canonical record encoding.
const Magic = "OCTR"

// Attestation flag bits (the flags byte); other bits must be zero.
const (
	flagInternalAuthOK = 0x01
	flagPINVerified    = 0x02
	flagsKnown         = flagInternalAuthOK | flagPINVerified
)

// span names one encoded field, for the annotated example in the docs.
type span struct {
	name     string
	off, len int
}

// encoder appends fields and optionally records where each one went.
type encoder struct {
	b     []byte
	spans *[]span
}

func (e *encoder) put(name string, v []byte) {
	if e.spans != nil {
		*e.spans = append(*e.spans, span{name, len(e.b), len(v)})
	}
	e.b = append(e.b, v...)
}

func (e *encoder) u8(name string, v uint8) { e.put(name, []byte{v}) }
func (e *encoder) u16(name string, v uint16) {
	e.put(name, binary.BigEndian.AppendUint16(nil, v))
}
func (e *encoder) u32(name string, v uint32) {
	e.put(name, binary.BigEndian.AppendUint32(nil, v))
}
func (e *encoder) u64(name string, v uint64) {
	e.put(name, binary.BigEndian.AppendUint64(nil, v))
}

// lp writes a one-byte length then the value (as one span).
func (e *encoder) lp(name string, v []byte) {
	e.put(name, append([]byte{byte(len(v))}, v...))
}

// MarshalBinary returns the canonical encoding (version [Version], see
// docs/record-encoding.md). It validates first: errors are those of
// [Record.Validate].
func (r *Record) MarshalBinary() ([]byte, error) {
	return r.encode(nil)
}

func (r *Record) encode(spans *[]span) ([]byte, error) {
	if err := r.Validate(); err != nil {
		return nil, fmt.Errorf("encode record: %w", err)
	}
	e := encoder{b: make([]byte, 0, 160), spans: spans}
	e.put("magic", []byte(Magic))
	e.u8("version", Version)
	e.u8("kind", uint8(r.Kind))
	e.put("terminal_id", bcd(r.TerminalID))
	e.u64("terminal_seq", r.TerminalSeq)
	e.put("card_id", r.CardID[:])
	e.u16("card_counter", r.CardCounter)
	e.u8("tx_type", uint8(r.TxType))
	e.u32("amount", r.Amount)
	e.u32("balance_before", r.BalanceBefore)
	e.u32("balance_after", r.BalanceAfter)
	e.put("card_date", bcd(r.CardDate))
	e.put("card_time", bcd(r.CardTime))
	e.u64("at", uint64(r.At.UnixMilli()))
	e.put("card_random", r.CardRandom[:])
	e.u32("psam_seq", r.PSAMSeq)
	var flags uint8
	if r.Attestation.InternalAuthOK {
		flags |= flagInternalAuthOK
	}
	if r.Attestation.PINVerified {
		flags |= flagPINVerified
	}
	e.u8("flags", flags)
	e.lp("suite", []byte(r.Suite))
	e.lp("fund", []byte(r.Fund))
	e.lp("merchant", []byte(r.Merchant))
	e.lp("card_number", []byte(r.CardNumber))
	e.lp("person_id", []byte(r.PersonID))
	e.lp("holder_name", []byte(r.HolderName))
	e.lp("tac", r.TAC)
	e.lp("mac2", r.MAC2)
	e.lp("challenge", r.Attestation.Challenge)
	e.lp("card_signature", r.Attestation.CardSignature)
	return e.b, nil
}

// bcd packs an even-length digit string (already validated) two digits a
// byte.
func bcd(digits string) []byte {
	out := make([]byte, len(digits)/2)
	for i := range out {
		out[i] = (digits[2*i]-'0')<<4 | (digits[2*i+1] - '0')
	}
	return out
}

// unbcd unpacks BCD; ok is false for a nibble above 9.
func unbcd(b []byte) (string, bool) {
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		hi, lo := c>>4, c&0x0F
		if hi > 9 || lo > 9 {
			return "", false
		}
		out = append(out, '0'+hi, '0'+lo)
	}
	return string(out), true
}

// decoder reads fields and remembers where each started.
type decoder struct {
	b    []byte
	off  int
	offs map[string]int
	err  error
}

func (d *decoder) take(name string, n int) []byte {
	if d.err != nil {
		return nil
	}
	d.offs[name] = d.off
	if len(d.b)-d.off < n {
		d.err = &FieldError{Field: name, Offset: d.off, Err: ErrTruncated,
			Detail: fmt.Sprintf("need %d bytes, %d left", n, len(d.b)-d.off)}
		return nil
	}
	v := d.b[d.off : d.off+n]
	d.off += n
	return v
}

func (d *decoder) u8(name string) uint8 {
	if v := d.take(name, 1); v != nil {
		return v[0]
	}
	return 0
}

func (d *decoder) u16(name string) uint16 {
	if v := d.take(name, 2); v != nil {
		return binary.BigEndian.Uint16(v)
	}
	return 0
}

func (d *decoder) u32(name string) uint32 {
	if v := d.take(name, 4); v != nil {
		return binary.BigEndian.Uint32(v)
	}
	return 0
}

func (d *decoder) u64(name string) uint64 {
	if v := d.take(name, 8); v != nil {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}

// lp reads a one-byte length and the value, refusing lengths above max
// before reading them.
func (d *decoder) lp(name string, max int) []byte {
	start := d.off
	n := d.take(name, 1)
	if n == nil {
		return nil
	}
	if int(n[0]) > max {
		d.err = &FieldError{Field: name, Offset: start, Err: ErrFieldTooLong,
			Detail: fmt.Sprintf("%d bytes > %d", n[0], max)}
		return nil
	}
	v := d.take(name, int(n[0]))
	d.offs[name] = start
	if v == nil {
		return nil
	}
	return append([]byte(nil), v...)
}

func (d *decoder) digits(name string, n int) string {
	start := d.off
	v := d.take(name, n)
	if v == nil {
		return ""
	}
	s, ok := unbcd(v)
	if !ok && d.err == nil {
		d.err = &FieldError{Field: name, Offset: start, Err: ErrInvalid, Detail: "not BCD digits"}
	}
	return s
}

// Decode parses a canonical record encoding strictly (see the package doc
// for the errors: ErrMagic, ErrVersion, ErrTruncated, ErrTrailingData,
// ErrFieldTooLong, ErrInvalid, as *FieldError where a field is at fault).
// It never panics; the result satisfies Validate and re-encodes to b.
func Decode(b []byte) (*Record, error) {
	r := new(Record)
	if err := r.UnmarshalBinary(b); err != nil {
		return nil, err
	}
	return r, nil
}

// UnmarshalBinary is Decode into r. On error r is left unchanged.
func (r *Record) UnmarshalBinary(b []byte) error {
	var out Record
	d := decoder{b: b, offs: map[string]int{}}
	if m := d.take("magic", len(Magic)); d.err == nil && string(m) != Magic {
		return fmt.Errorf("decode record: %w", ErrMagic)
	}
	if v := d.u8("version"); d.err == nil && v != Version {
		return fmt.Errorf("decode record: %w: version %d, want %d", ErrVersion, v, Version)
	}
	out.Kind = Kind(d.u8("kind"))
	out.TerminalID = d.digits("terminal_id", 6)
	out.TerminalSeq = d.u64("terminal_seq")
	copy(out.CardID[:], d.take("card_id", 16))
	out.CardCounter = d.u16("card_counter")
	out.TxType = TxType(d.u8("tx_type"))
	out.Amount = d.u32("amount")
	out.BalanceBefore = d.u32("balance_before")
	out.BalanceAfter = d.u32("balance_after")
	out.CardDate = d.digits("card_date", 4)
	out.CardTime = d.digits("card_time", 3)
	out.At = time.UnixMilli(int64(d.u64("at"))).UTC()
	copy(out.CardRandom[:], d.take("card_random", 4))
	out.PSAMSeq = d.u32("psam_seq")
	flagsOff := d.off
	flags := d.u8("flags")
	if d.err == nil && flags&^flagsKnown != 0 {
		d.err = &FieldError{Field: "flags", Offset: flagsOff, Err: ErrInvalid, Detail: fmt.Sprintf("unknown bits %02X", flags&^flagsKnown)}
	}
	out.Attestation.InternalAuthOK = flags&flagInternalAuthOK != 0
	out.Attestation.PINVerified = flags&flagPINVerified != 0
	out.Suite = string(d.lp("suite", MaxSuite))
	out.Fund = string(d.lp("fund", MaxFund))
	out.Merchant = string(d.lp("merchant", MaxMerchant))
	out.CardNumber = string(d.lp("card_number", MaxCardNumber))
	out.PersonID = string(d.lp("person_id", MaxPersonID))
	out.HolderName = string(d.lp("holder_name", MaxHolderName))
	out.TAC = nilIfEmpty(d.lp("tac", CodeLen))
	out.MAC2 = nilIfEmpty(d.lp("mac2", CodeLen))
	out.Attestation.Challenge = nilIfEmpty(d.lp("challenge", MaxChallenge))
	out.Attestation.CardSignature = nilIfEmpty(d.lp("card_signature", SignatureLen))
	if d.err != nil {
		return fmt.Errorf("decode record: %w", d.err)
	}
	if d.off != len(b) {
		return fmt.Errorf("decode record: %w: %d bytes after the record", ErrTrailingData, len(b)-d.off)
	}
	if err := out.Validate(); err != nil {
		var fe *FieldError
		if errors.As(err, &fe) {
			if off, ok := d.offs[fe.Field]; ok {
				fe.Offset = off
			}
		}
		return fmt.Errorf("decode record: %w", err)
	}
	*r = out
	return nil
}

func nilIfEmpty(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}
