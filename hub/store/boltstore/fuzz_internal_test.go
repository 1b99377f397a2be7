package boltstore

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/onecard-hub/onecard/hub/store"
	"github.com/onecard-hub/onecard/hub/store/storetest"
)

var seedTime = time.Date(2026, 3, 14, 9, 30, 0, 123456000, time.UTC)

func seedPostings() []*store.Posting {
	c := storetest.Card(1)
	ps := []*store.Posting{storetest.Opening("o", c, 100), storetest.Pay(storetest.TermA, 1<<40, c, 7, 1250, "医院"), storetest.Certify(storetest.TermB, 3, c)}
	for i, p := range ps {
		p.ID, p.PostedAt = uint64(i+1), seedTime
	}
	return ps
}

// fuzzDecoder checks that decode never panics, fails only with
// ErrCorrupt, and that whatever it accepts re-encodes to a value that
// decodes to the same thing.
func fuzzDecoder[T any](f *testing.F, seeds [][]byte, decode func([]byte) (T, error), encode func(T) []byte) {
	for _, s := range seeds {
		f.Add(s)
		if len(s) > 3 {
			f.Add(s[:len(s)/2])
			f.Add(append(append([]byte(nil), s...), 0))
		}
	}
	f.Add([]byte{})
	f.Add([]byte{2})
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := decode(b)
		if err != nil {
			if !errors.Is(err, store.ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		again, err := decode(encode(v))
		if err != nil {
			t.Fatalf("re-encoded value does not decode: %v", err)
		}
		if !reflect.DeepEqual(again, v) {
			t.Fatalf("round trip changed the value:\n%+v\n%+v", v, again)
		}
	})
}

func FuzzDecodePosting(f *testing.F) {
	var seeds [][]byte
	for _, p := range seedPostings() {
		seeds = append(seeds, encodePosting(p))
	}
	fuzzDecoder(f, seeds, decodePosting, encodePosting)
}

func FuzzDecodeTerminal(f *testing.F) {
	t, err := store.NewTerminal(storetest.TermA, "大厅", []byte("0123456789abcdef"))
	if err != nil {
		f.Fatal(err)
	}
	t.CreatedAt, t.UpdatedAt = seedTime, seedTime
	enrolled := t
	if err := enrolled.Enrol([]byte("0123456789abcdef"), []byte("public key")); err != nil {
		f.Fatal(err)
	}
	enrolled.AckedSeq = 1 << 63
	fuzzDecoder(f, [][]byte{encodeTerminal(t), encodeTerminal(enrolled)}, decodeTerminal, encodeTerminal)
}

func FuzzDecodeDeadLetter(f *testing.F) {
	seeds := [][]byte{
		encodeDeadLetter(store.DeadLetter{ID: 1, Key: store.RecordKey(storetest.TermA, 9), Content: []byte("OCTR..."), Reason: "conflict", Count: 2, First: seedTime, Last: seedTime}),
		encodeDeadLetter(store.DeadLetter{ID: 2, Key: store.RefKey("grant-1"), Reason: "no programme", Count: 1}),
	}
	fuzzDecoder(f, seeds, decodeDeadLetter, encodeDeadLetter)
}

func FuzzDecodeTotals(f *testing.F) {
	seeds := [][]byte{encodeTotals(store.Totals{TerminalNo: storetest.TermA, Day: storetest.Day, PayCount: 3, PayAmount: 150,
		LoadCount: 1, LoadAmount: 5000, CertifyCount: 2, Signed: []byte("signed"), Signature: make([]byte, 64), ReceivedAt: seedTime})}
	fuzzDecoder(f, seeds, decodeTotals, encodeTotals)
}

func FuzzDecodeProgramme(f *testing.F) {
	seeds := [][]byte{encodeProgramme(store.Programme{ID: "SUBSIDY-2026", Name: "惠民惠农补贴", Fund: "agri", CreatedAt: seedTime})}
	fuzzDecoder(f, seeds, decodeProgramme, encodeProgramme)
}

func TestCodecRoundTrip(t *testing.T) {
	for _, p := range seedPostings() {
		got, err := decodePosting(encodePosting(p))
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, p) {
			t.Fatalf("posting round trip:\n got %+v\nwant %+v", got, p)
		}
	}
	// Every truncation of a valid value is refused.
	b := encodePosting(seedPostings()[1])
	for n := 0; n < len(b); n++ {
		if _, err := decodePosting(b[:n]); !errors.Is(err, store.ErrCorrupt) {
			t.Fatalf("truncated to %d bytes: %v", n, err)
		}
	}
	// A value that decodes but breaks the posting rules is corrupt too.
	bad := seedPostings()[0]
	bad.Entries[0].Amount++
	if _, err := decodePosting(encodePosting(bad)); !errors.Is(err, store.ErrCorrupt) {
		t.Fatalf("unbalanced stored posting: %v", err)
	}
}
