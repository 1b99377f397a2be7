package journal

import (
	"bytes"
	"testing"
	"time"
)

// FuzzJournalEntry: the entry decoder never panics, and what it accepts
// re-encodes to the same bytes.
func FuzzJournalEntry(f *testing.F) {
	at := time.Date(2026, 3, 14, 9, 0, 0, 0, time.UTC)
	seeds := []*stored{
		{state: Prepared, history: []Transition{{Prepared, at}}, rec: []byte("OCTR\x01")},
		{state: Dead, reason: "hub: TAC 不符", sealed: bytes.Repeat([]byte{7}, 40),
			history: []Transition{{Prepared, at}, {CardDone, at.Add(time.Second)}, {Sent, at}, {Dead, at}}, rec: bytes.Repeat([]byte{1}, 144)},
	}
	for _, s := range seeds {
		f.Add(s.encode())
	}
	f.Add([]byte{entryFormat, 1, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := decodeStored(b)
		if err != nil {
			return
		}
		if out := s.encode(); !bytes.Equal(out, b) {
			t.Fatalf("re-encoding differs:\n in %X\nout %X", b, out)
		}
	})
}

// FuzzJournalOpenIndex: the open-index decoder never panics and round-trips.
func FuzzJournalOpenIndex(f *testing.F) {
	f.Add(openIndex{state: Uncertain, prepared: time.UnixMilli(1773478800000).UTC()}.encode())
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, b []byte) {
		o, ok := decodeOpen(b)
		if ok && !bytes.Equal(o.encode(), b) {
			t.Fatalf("re-encoding differs")
		}
	})
}

func TestJournalClipReason(t *testing.T) {
	long := string(bytes.Repeat([]byte("拒"), 300)) // 900 bytes
	for _, tt := range []struct{ in, want string }{
		{"ok", "ok"},
		{"bad \xff byte", "bad \uFFFD byte"},
		{long, long[:510]},
	} {
		if got := clipReason(tt.in); got != tt.want {
			t.Errorf("clipReason(%.20q) = %.20q (len %d), want len %d", tt.in, got, len(got), len(tt.want))
		}
	}
}

// FuzzJournalTotals: the day-totals decoder never panics and round-trips.
func FuzzJournalTotals(f *testing.F) {
	f.Add(DayTotals{Day: "20261130", PayCount: 3, PayAmount: 1600, LoadCount: 1, LoadAmount: 10000, CertifyCount: 1, Rev: 5}.encode())
	f.Add([]byte{0, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := decodeTotals("20261130", b)
		if err == nil && !bytes.Equal(d.encode(), b) {
			t.Fatalf("re-encoding differs")
		}
	})
}
