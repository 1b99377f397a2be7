package boltstore

import (
	"encoding/binary"
	"fmt"
	"math"
	"time"

	"github.com/onecard-hub/onecard/hub/store"
	"github.com/onecard-hub/onecard/terminal/record"
)

// Stored values are a version byte followed by fields: unsigned varints,
// zig-zag varints for signed values, length-prefixed (uvarint) byte
// strings, times as Unix nanoseconds (zig-zag). Decoders are strict: a
// value must be consumed exactly, every length is bounded before it is
// read, and the decoded value must pass the same validation as the value
// written. Any failure is store.ErrCorrupt.

// codecVersion is the value format version.
const codecVersion = 1

type enc struct{ b []byte }

func newEnc() *enc            { return &enc{b: []byte{codecVersion}} }
func (e *enc) u64(v uint64)   { e.b = binary.AppendUvarint(e.b, v) }
func (e *enc) i64(v int64)    { e.b = binary.AppendVarint(e.b, v) }
func (e *enc) bytes(v []byte) { e.u64(uint64(len(v))); e.b = append(e.b, v...) }
func (e *enc) str(v string)   { e.u64(uint64(len(v))); e.b = append(e.b, v...) }
func (e *enc) time(t time.Time) {
	if t.IsZero() {
		e.i64(0)
	} else {
		e.i64(t.UnixNano())
	}
}
func (e *enc) fixed(v []byte) { e.b = append(e.b, v...) }
func (e *enc) boolean(v bool) {
	if v {
		e.u64(1)
	} else {
		e.u64(0)
	}
}
func (e *enc) key(k store.Key)      { e.str(k.TerminalNo); e.u64(k.TerminalSeq); e.str(k.Ref) }
func (e *enc) card(c record.CardID) { e.fixed(c[:]) }

type dec struct {
	b    []byte
	err  error
	what string
}

func newDec(what string, b []byte) *dec {
	d := &dec{b: b, what: what}
	if len(b) == 0 || b[0] != codecVersion {
		d.fail("unknown value version")
		return d
	}
	d.b = b[1:]
	return d
}

func (d *dec) fail(why string) {
	if d.err == nil {
		d.err = fmt.Errorf("decode %s: %w: %s", d.what, store.ErrCorrupt, why)
	}
	d.b = nil
}

func (d *dec) u64() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("bad unsigned varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *dec) i64() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail("bad signed varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *dec) bounded(max int) int64 {
	v := d.u64()
	if v > uint64(max) || v > uint64(len(d.b)) {
		d.fail("length out of range")
		return 0
	}
	return int64(v)
}

func (d *dec) bytes(max int) []byte {
	n := d.bounded(max)
	if d.err != nil {
		return nil
	}
	if n == 0 {
		return nil
	}
	v := append([]byte(nil), d.b[:n]...)
	d.b = d.b[n:]
	return v
}

func (d *dec) str(max int) string {
	n := d.bounded(max)
	if d.err != nil {
		return ""
	}
	v := string(d.b[:n])
	d.b = d.b[n:]
	return v
}

func (d *dec) fixed(v []byte) {
	if d.err != nil {
		return
	}
	if len(d.b) < len(v) {
		d.fail("truncated")
		return
	}
	copy(v, d.b)
	d.b = d.b[len(v):]
}

func (d *dec) time() time.Time {
	v := d.i64()
	if v == 0 {
		return time.Time{}
	}
	return time.Unix(0, v).UTC()
}

func (d *dec) boolean() bool {
	switch d.u64() {
	case 0:
		return false
	case 1:
		return true
	}
	d.fail("bad boolean")
	return false
}

func (d *dec) small(max uint64) uint64 {
	v := d.u64()
	if v > max {
		d.fail("value out of range")
		return 0
	}
	return v
}

func (d *dec) key() store.Key {
	return store.Key{TerminalNo: d.str(12), TerminalSeq: d.u64(), Ref: d.str(store.MaxRef)}
}

func (d *dec) card() record.CardID {
	var c record.CardID
	d.fixed(c[:])
	return c
}

// done fails unless every byte was consumed and then validates.
func (d *dec) done(validate func() error) error {
	if d.err == nil && len(d.b) != 0 {
		d.fail("trailing bytes")
	}
	if d.err != nil {
		return d.err
	}
	if err := validate(); err != nil {
		return fmt.Errorf("decode %s: %w: %v", d.what, store.ErrCorrupt, err)
	}
	return nil
}

// normTime is the precision every store keeps: UTC microseconds (as
// PostgreSQL's timestamptz).
func normTime(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC().Truncate(time.Microsecond)
}

func encodePosting(p *store.Posting) []byte {
	e := newEnc()
	e.key(p.Key)
	e.u64(uint64(p.Kind))
	e.str(p.Day)
	e.card(p.CardID)
	e.str(p.Party)
	e.str(p.Fund)
	e.i64(p.Amount)
	e.boolean(p.Counter != nil)
	if p.Counter != nil {
		e.u64(uint64(p.Counter.Type))
		e.u64(uint64(p.Counter.Value))
	}
	e.u64(uint64(len(p.Entries)))
	for _, en := range p.Entries {
		e.str(en.Account)
		e.i64(en.Amount)
	}
	e.bytes(p.Content)
	e.u64(p.ID)
	e.time(p.PostedAt)
	return e.b
}

func decodePosting(b []byte) (*store.Posting, error) {
	d := newDec("posting", b)
	p := &store.Posting{}
	p.Key = d.key()
	p.Kind = store.Kind(d.small(math.MaxUint8))
	p.Day = d.str(8)
	p.CardID = d.card()
	p.Party = d.str(store.MaxText)
	p.Fund = d.str(store.MaxText)
	p.Amount = d.i64()
	if d.boolean() {
		p.Counter = &store.Counter{Type: store.CounterType(d.small(math.MaxUint8)), Value: uint16(d.small(math.MaxUint16))}
	}
	n := d.small(store.MaxEntries)
	for i := uint64(0); i < n && d.err == nil; i++ {
		p.Entries = append(p.Entries, store.Entry{Account: d.str(store.MaxAccount), Amount: d.i64()})
	}
	p.Content = d.bytes(store.MaxContent)
	p.ID = d.u64()
	p.PostedAt = d.time()
	if err := d.done(p.Validate); err != nil {
		return nil, err
	}
	return p, nil
}

func encodeProgramme(p store.Programme) []byte {
	e := newEnc()
	e.str(p.ID)
	e.str(p.Name)
	e.str(p.Fund)
	e.time(p.CreatedAt)
	return e.b
}

func decodeProgramme(b []byte) (store.Programme, error) {
	d := newDec("programme", b)
	p := store.Programme{ID: d.str(store.MaxRef), Name: d.str(store.MaxText), Fund: d.str(store.MaxText), CreatedAt: d.time()}
	if err := d.done(p.Validate); err != nil {
		return store.Programme{}, err
	}
	return p, nil
}

func encodeTerminal(t store.Terminal) []byte {
	e := newEnc()
	e.str(t.No)
	e.str(t.Name)
	e.u64(uint64(t.State))
	e.bytes(t.TokenHash)
	e.bytes(t.PublicKey)
	e.u64(t.AckedSeq)
	e.time(t.CreatedAt)
	e.time(t.UpdatedAt)
	return e.b
}

func decodeTerminal(b []byte) (store.Terminal, error) {
	d := newDec("terminal", b)
	t := store.Terminal{No: d.str(12), Name: d.str(store.MaxText), State: store.TerminalState(d.small(math.MaxUint8)),
		TokenHash: d.bytes(64), PublicKey: d.bytes(store.MaxBlob), AckedSeq: d.u64(), CreatedAt: d.time(), UpdatedAt: d.time()}
	if err := d.done(t.Validate); err != nil {
		return store.Terminal{}, err
	}
	return t, nil
}

func encodeDeadLetter(l store.DeadLetter) []byte {
	e := newEnc()
	e.u64(l.ID)
	e.key(l.Key)
	e.bytes(l.Content)
	e.str(l.Reason)
	e.u64(uint64(l.Count))
	e.time(l.First)
	e.time(l.Last)
	return e.b
}

func decodeDeadLetter(b []byte) (store.DeadLetter, error) {
	d := newDec("dead letter", b)
	l := store.DeadLetter{ID: d.u64(), Key: d.key(), Content: d.bytes(store.MaxContent), Reason: d.str(store.MaxText),
		Count: int(d.small(math.MaxInt32)), First: d.time(), Last: d.time()}
	if err := d.done(l.Validate); err != nil {
		return store.DeadLetter{}, err
	}
	return l, nil
}

func encodeTotals(t store.Totals) []byte {
	e := newEnc()
	e.str(t.TerminalNo)
	e.str(t.Day)
	for _, v := range []int64{t.PayCount, t.PayAmount, t.LoadCount, t.LoadAmount, t.CertifyCount} {
		e.i64(v)
	}
	e.bytes(t.Signed)
	e.bytes(t.Signature)
	e.time(t.ReceivedAt)
	return e.b
}

func decodeTotals(b []byte) (store.Totals, error) {
	d := newDec("totals", b)
	t := store.Totals{TerminalNo: d.str(12), Day: d.str(8), PayCount: d.i64(), PayAmount: d.i64(), LoadCount: d.i64(),
		LoadAmount: d.i64(), CertifyCount: d.i64(), Signed: d.bytes(store.MaxBlob), Signature: d.bytes(store.MaxBlob), ReceivedAt: d.time()}
	if err := d.done(t.Validate); err != nil {
		return store.Totals{}, err
	}
	return t, nil
}
