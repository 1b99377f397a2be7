package sync

import (
	"encoding/binary"
	"fmt"

	"github.com/onecard-hub/onecard/sm"
)

// TotalsMagic prefixes the signed bytes of a terminal's day totals.
const TotalsMagic = "OCST"

// MaxTotal bounds each count and amount of a Totals (2^53: what every JSON
// reader keeps exact).
const MaxTotal = 1 << 53

// Totals is a terminal's own end-of-day figures for one card-transaction
// day, from its journal (journal.DayTotals): what it did on cards. The hub
// stores them as evidence and compares them with what it posted for the
// terminal (the report's totals-mismatch). Rev orders submissions for the
// same day: the hub keeps the one with the highest Rev. Signature is the
// terminal's SM2 signature (raw r‖s, user ID = the session's terminal
// number) over TotalsBytes. The hub answers with a TotalsResult or an
// Error.
type Totals struct {
	Day          string `json:"day"` // YYYYMMDD
	Rev          uint64 `json:"rev"`
	PayCount     int64  `json:"pay_count"`
	PayAmount    int64  `json:"pay_amount"` // fen
	LoadCount    int64  `json:"load_count"`
	LoadAmount   int64  `json:"load_amount"` // fen
	CertifyCount int64  `json:"certify_count"`
	Signature    []byte `json:"signature"`
}

// Type implements Message.
func (*Totals) Type() Type { return TypeTotals }

// Validate implements Message.
func (m *Totals) Validate(Limits) error {
	if !digits(m.Day, 8) {
		return malformed("day", "want YYYYMMDD")
	}
	if m.Rev == 0 || m.Rev > MaxTotal {
		return malformed("rev", "out of range")
	}
	for _, f := range []struct {
		name string
		v    int64
	}{{"pay_count", m.PayCount}, {"pay_amount", m.PayAmount}, {"load_count", m.LoadCount},
		{"load_amount", m.LoadAmount}, {"certify_count", m.CertifyCount}} {
		if f.v < 0 || f.v > MaxTotal {
			return malformed(f.name, "out of range")
		}
	}
	return checkLen("signature", m.Signature, SignatureLen)
}

// TotalsBytes returns the canonical bytes a terminal signs for its day
// totals:
//
//	"OCST" ‖ Version (1 byte) ‖ terminalID (12 ASCII digits) ‖ day (8 ASCII
//	digits) ‖ Rev, PayCount, PayAmount, LoadCount, LoadAmount, CertifyCount
//	(8 bytes big-endian each)
//
// Errors wrap ErrMalformed.
func TotalsBytes(terminalID string, m *Totals) ([]byte, error) {
	if err := checkTerminal("terminal_id", terminalID); err != nil {
		return nil, fmt.Errorf("totals bytes: %w", err)
	}
	if m == nil || !digits(m.Day, 8) {
		return nil, fmt.Errorf("totals bytes: %w: day", ErrMalformed)
	}
	b := make([]byte, 0, 4+1+12+8+6*8)
	b = append(b, TotalsMagic...)
	b = append(b, Version)
	b = append(b, terminalID...)
	b = append(b, m.Day...)
	for _, v := range []uint64{m.Rev, uint64(m.PayCount), uint64(m.PayAmount), uint64(m.LoadCount),
		uint64(m.LoadAmount), uint64(m.CertifyCount)} {
		b = binary.BigEndian.AppendUint64(b, v)
	}
	return b, nil
}

// SignTotals sets m.Signature: the terminal's signature over TotalsBytes.
func SignTotals(priv *sm.PrivateKey, terminalID string, m *Totals) error {
	msg, err := TotalsBytes(terminalID, m)
	if err != nil {
		return err
	}
	sig, err := signRaw(priv, msg, terminalID)
	if err != nil {
		return fmt.Errorf("sign totals: %w", err)
	}
	m.Signature = sig
	return nil
}

// VerifyTotals reports whether m.Signature is the terminal's signature
// over TotalsBytes.
func VerifyTotals(pub *sm.PublicKey, terminalID string, m *Totals) bool {
	msg, err := TotalsBytes(terminalID, m)
	if err != nil {
		return false
	}
	return verifyRaw(pub, msg, m.Signature, terminalID)
}

// Totals statuses (TotalsResult.Status).
const (
	// TotalsStored: the hub stored the submission.
	TotalsStored = "stored"
	// TotalsStale: the hub holds a submission with a higher Rev for the
	// day and kept it.
	TotalsStale = "stale"
)

// TotalsResult answers Totals: Status is TotalsStored or TotalsStale;
// Match tells whether the hub's postings for the terminal and day equal
// the stored totals at this moment (records still in flight make it
// false until they are posted).
type TotalsResult struct {
	Day    string `json:"day"`
	Status string `json:"status"`
	Match  bool   `json:"match"`
}

// Type implements Message.
func (*TotalsResult) Type() Type { return TypeTotalsResult }

// Validate implements Message.
func (m *TotalsResult) Validate(Limits) error {
	if !digits(m.Day, 8) {
		return malformed("day", "want YYYYMMDD")
	}
	if m.Status != TotalsStored && m.Status != TotalsStale {
		return malformed("status", "want stored or stale")
	}
	return nil
}

// TotalsRev returns the Rev inside signed bytes made by TotalsBytes, and
// false when b is not such bytes.
func TotalsRev(b []byte) (uint64, bool) {
	const at = len(TotalsMagic) + 1 + 12 + 8
	if len(b) != at+6*8 || string(b[:len(TotalsMagic)]) != TotalsMagic {
		return 0, false
	}
	return binary.BigEndian.Uint64(b[at:]), true
}
