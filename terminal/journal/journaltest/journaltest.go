// Package journaltest helps tests that use a journal: it opens one in a
// temporary directory and, when the test ends, closes it, reopens the file
// read-only and fails the test if journal.Check finds a broken invariant
// (gaps or duplicate sequences, a state that moved backwards, a money
// record done without a TAC, indexes or counters out of step), in the
// manner of bbolt's internal/btesting.
package journaltest

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/onecard-hub/onecard/terminal/journal"
	"github.com/onecard-hub/onecard/terminal/record"
)

// MustOpen opens a new journal file in t.TempDir() with opts (nil: the
// defaults) and registers the closing invariant check.
func MustOpen(t testing.TB, opts *journal.Options) *journal.Journal {
	t.Helper()
	return MustOpenPath(t, filepath.Join(t.TempDir(), "journal.db"), opts)
}

// MustOpenPath opens (or creates) the journal at path and registers a
// cleanup that closes it and checks the file. Close the journal yourself
// before opening the same path again.
func MustOpenPath(t testing.TB, path string, opts *journal.Options) *journal.Journal {
	t.Helper()
	j, err := journal.Open(path, opts)
	if err != nil {
		t.Fatalf("open journal: %v", err)
	}
	t.Cleanup(func() {
		if err := j.Close(); err != nil {
			t.Errorf("close journal: %v", err)
		}
		CheckFile(t, path, opts)
	})
	return j
}

// CheckFile opens the journal at path read-only (with opts' personal key,
// without its failpoint) and fails the test if Check reports a problem. A
// missing file passes (the test removed it).
func CheckFile(t testing.TB, path string, opts *journal.Options) {
	t.Helper()
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return
	}
	var o journal.Options
	if opts != nil {
		o = *opts
	}
	o.ReadOnly, o.Failpoint, o.LockTimeout = true, nil, 5*time.Second
	j, err := journal.Open(path, &o)
	if err != nil {
		t.Errorf("reopen journal for the invariant check: %v", err)
		return
	}
	defer j.Close()
	if err := j.Check(); err != nil {
		t.Errorf("journal invariants: %v", err)
	}
}

// At is the card time of records made by NewRecord.
var At = time.Date(2026, 3, 14, 9, 2, 3, 0, time.UTC)

// counter numbers the card transactions of NewRecord.
var counter atomic.Uint32

// NewRecord returns a valid record ready for Prepare: a purchase (ED
// purse) or load (EP purse) of amount fen from a 10000-fen balance, or a
// certification (amount ignored), on the given card and terminal
// 370100000001, with fictitious personal fields. Each call takes the next
// card counter (wrapping at 65536), so the records of a test are distinct
// card transactions.
func NewRecord(kind record.Kind, card record.CardID, amount uint32) *record.Record {
	r := &record.Record{
		CardCounter: uint16(counter.Add(1)),
		Kind:        kind,
		TerminalID:  "370100000001",
		CardID:      card,
		CardNumber:  "C00000001",
		PersonID:    "110000199001010000",
		HolderName:  "张三",
		Fund:        "310",
		Merchant:    "H37010000001",
		CardDate:    At.Format("20060102"),
		CardTime:    At.Format("150405"),
		At:          At,
		CardRandom:  [4]byte{1, 2, 3, 4},
		Suite:       "SM4",
		Attestation: record.Attestation{InternalAuthOK: true, PINVerified: true},
	}
	switch kind {
	case record.KindPay:
		r.TxType, r.Amount, r.BalanceBefore, r.PSAMSeq = record.TxPurchaseED, amount, 10000, 1
	case record.KindLoad:
		r.TxType, r.Amount, r.BalanceBefore = record.TxLoadEP, amount, 10000
	}
	return r
}

// DoneResult returns a card result that fits r: the balance after r's
// amount and a TAC and MAC2 derived from tag (money), or nothing (certify).
func DoneResult(r *record.Record, tag byte) journal.CardResult {
	switch r.Kind {
	case record.KindPay:
		return journal.CardResult{TAC: []byte{0x7A, 0xC0, 0, tag}, MAC2: []byte{0x3A, 0xC2, 0, tag}, BalanceAfter: r.BalanceBefore - r.Amount}
	case record.KindLoad:
		return journal.CardResult{TAC: []byte{0x7A, 0xC0, 1, tag}, MAC2: []byte{0x3A, 0xC2, 1, tag}, BalanceAfter: r.BalanceBefore + r.Amount}
	}
	return journal.CardResult{}
}

// Card returns a card ID whose last byte is n.
func Card(n byte) record.CardID {
	c, _ := record.ParseCardID("411600D156000005C38275EEFC9B9600")
	c[15] = n
	return c
}
