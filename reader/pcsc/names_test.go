package pcsc

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/ebfe/scard"

	"github.com/onecard-hub/onecard/reader"
)

func TestPCSCParseName(t *testing.T) {
	for _, tc := range []struct {
		name, friendly, group, slot string
		readerID, slotID            string // without a serial
	}{
		{"Virtual PCD 00 00", "Virtual PCD", "Virtual PCD 00", "00", "pcsc:Virtual PCD 00", "pcsc:Virtual PCD 00 00"},
		{"Virtual PCD 2 00 01", "Virtual PCD 2", "Virtual PCD 2 00", "01", "pcsc:Virtual PCD 2 00", "pcsc:Virtual PCD 2 00 01"},
		{"Gemalto PC Twin Reader (645D1234) 0A 1f", "Gemalto PC Twin Reader (645D1234)", "Gemalto PC Twin Reader (645D1234) 0A", "1f",
			"pcsc:Gemalto PC Twin Reader (645D1234) 0A", "pcsc:Gemalto PC Twin Reader (645D1234) 0A 1f"},
		// Names without the pcsc-lite suffix (Windows, macOS) stay whole.
		{"Gemalto USB Smart Card Reader 0", "Gemalto USB Smart Card Reader 0", "Gemalto USB Smart Card Reader 0", "",
			"pcsc:Gemalto USB Smart Card Reader 0", "pcsc:Gemalto USB Smart Card Reader 0"},
		{"Reader 0G 00", "Reader 0G 00", "Reader 0G 00", "", "pcsc:Reader 0G 00", "pcsc:Reader 0G 00"},
		{" 00 00", " 00 00", " 00 00", "", "pcsc: 00 00", "pcsc: 00 00"},
		{"", "", "", "", "pcsc:", "pcsc:"},
	} {
		n := parseName(tc.name)
		if n.full != tc.name || n.friendly != tc.friendly || n.group != tc.group || n.slot != tc.slot {
			t.Errorf("parseName(%q) = %+v", tc.name, n)
		}
		rid := readerID(n.group, "")
		if rid != tc.readerID || slotID(rid, n) != tc.slotID {
			t.Errorf("%q: IDs %q, %q; want %q, %q", tc.name, rid, slotID(rid, n), tc.readerID, tc.slotID)
		}
	}
	n := parseName("Creator CRT-603 (CZ1) 00 01")
	if rid := readerID(n.group, "SN123"); rid != "pcsc:sn:SN123" || slotID(rid, n) != "pcsc:sn:SN123 01" {
		t.Errorf("serial IDs %q, %q", rid, slotID(rid, n))
	}
}

func TestPCSCCleanSerial(t *testing.T) {
	for _, tc := range []struct {
		in   []byte
		want string
	}{
		{[]byte("12345678\x00"), "12345678"},
		{[]byte(" A1B2 \x00\x00"), "A1B2"},
		{[]byte("AB CD"), "4142204344"},
		{[]byte{0x01, 0x02}, "0102"},
		{[]byte("序列"), "e5ba8fe58897"},
		{[]byte{0, 0}, ""},
	} {
		if got := cleanSerial(tc.in); got != tc.want {
			t.Errorf("cleanSerial(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func FuzzPCSCName(f *testing.F) {
	for _, s := range []string{"Virtual PCD 00 00", "Virtual PCD 2 00 01", "Gemalto USB Smart Card Reader 0", " 00 00", "x 0g 00", ""} {
		f.Add(s, []byte("SN1\x00"))
	}
	f.Fuzz(func(t *testing.T, name string, serial []byte) {
		n := parseName(name)
		if n.full != name {
			t.Fatalf("full %q", n.full)
		}
		if n.slot == "" {
			if n.group != name || n.friendly != name {
				t.Fatalf("unparsed name split: %+v", n)
			}
		} else if n.group+" "+n.slot != name || !strings.HasPrefix(n.group, n.friendly+" ") || n.friendly == "" {
			t.Fatalf("parts do not rebuild the name: %+v", n)
		}
		s := cleanSerial(serial)
		if strings.ContainsAny(s, " \x00") || !utf8.ValidString(s) {
			t.Fatalf("serial %q", s)
		}
		rid := readerID(n.group, s)
		if !strings.HasPrefix(slotID(rid, n), rid) {
			t.Fatalf("slot ID %q outside reader %q", slotID(rid, n), rid)
		}
	})
}

// TestPCSCCardChange checks how the monitor turns successive reader states
// into card events, including a remove+insert seen only by the event
// counter in the upper 16 bits.
func TestPCSCCardChange(t *testing.T) {
	const (
		empty   = scard.StateChanged | scard.StateEmpty
		present = scard.StateChanged | scard.StatePresent
		mute    = present | scard.StateMute
	)
	at := func(n uint32, f scard.StateFlag) scard.StateFlag { return scard.StateFlag(n<<16) | f }
	atrA, atrB := []byte{0x3B, 0x02, 0x14, 0x50}, []byte{0x3B, 0x00}
	type ev struct {
		kind reader.EventKind
		atr  []byte
		mute bool
	}
	for _, tc := range []struct {
		name     string
		old      scard.StateFlag
		oldATR   []byte
		new      scard.StateFlag
		newATR   []byte
		want     []ev
		stateATR []byte
	}{
		{"inserted", at(0, empty), nil, at(1, present), atrA, []ev{{reader.CardInserted, atrA, false}}, atrA},
		{"removed", at(1, present), atrA, at(2, empty), atrA /* stale ATR ignored */, []ev{{kind: reader.CardRemoved}}, nil},
		{"in use only", at(1, present), atrA, at(1, present|scard.StateInuse), atrA, nil, atrA},
		{"removed and reinserted between calls", at(1, present), atrA, at(3, present), atrA,
			[]ev{{kind: reader.CardRemoved}, {reader.CardInserted, atrA, false}}, atrA},
		{"another card between calls, counter wraps", at(0xFFFF, present), atrA, at(1, present), atrB,
			[]ev{{kind: reader.CardRemoved}, {reader.CardInserted, atrB, false}}, atrB},
		{"ATR changed without counter", at(0, present), atrA, at(0, present), atrB,
			[]ev{{kind: reader.CardRemoved}, {reader.CardInserted, atrB, false}}, atrB},
		{"inserted, removed, inserted", at(4, empty), nil, at(7, present), atrB, []ev{{reader.CardInserted, atrB, false}}, atrB},
		{"inserted and removed between calls", at(4, empty), nil, at(6, empty), nil, nil, nil},
		{"mute card", at(0, empty), nil, at(1, mute), nil, []ev{{reader.CardInserted, nil, true}}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []reader.Event
			m := &monitor{b: NewBackend(Options{}), send: func(e reader.Event) { got = append(got, e) }}
			sl := &monSlot{id: "pcsc:R 00 00", reader: "pcsc:R 00", state: tc.old, atr: tc.oldATR}
			m.cardChange(sl, tc.new, tc.newATR)
			if len(got) != len(tc.want) {
				t.Fatalf("events %v, want %d", got, len(tc.want))
			}
			for i, w := range tc.want {
				g := got[i]
				if g.Kind != w.kind || string(g.ATR) != string(w.atr) || g.Mute != w.mute || g.SlotID != sl.id || g.ReaderID != sl.reader {
					t.Errorf("event %d: %+v, want %+v", i, g, w)
				}
			}
			if sl.state != tc.new || string(sl.atr) != string(tc.stateATR) {
				t.Errorf("slot state %#x ATR % X, want %#x % X", uint32(sl.state), sl.atr, uint32(tc.new), tc.stateATR)
			}
		})
	}
}
