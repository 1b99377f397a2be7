package terminal

import (
	"bytes"
	"encoding/hex"
	"testing"
)

// ATRs as the simulated cards and real cards give them
// (ssc-card-facts §1.7): T=0 3B 6D 00 00 + 13 historical bytes; T=1 with
// TD1/TD2/TA3/TB3 and a TCK.
var atrVectors = []struct {
	atr, hist string
}{
	{"3B6D000000904A3001866033110000048A", "00904A3001866033110000048A"},
	{"3BED00008131FE45008C544CB386844116018593CA2E", "008C544CB386844116018593CA"},
	{"3B6D000000814E43238697159900BF7C7A", "00814E43238697159900BF7C7A"},
	{"3B00", ""},
}

func TestHistoricalBytes(t *testing.T) {
	for _, v := range atrVectors {
		atr, _ := hex.DecodeString(v.atr)
		got, err := HistoricalBytes(atr)
		if err != nil || hex.EncodeToString(got) != hex.EncodeToString(mustHex(v.hist)) {
			t.Errorf("HistoricalBytes(%s) = %X, %v; want %s", v.atr, got, err, v.hist)
		}
	}
	for _, bad := range []string{"", "3B", "3B6D0000", "3BED0000", "3BF0", "AA00"} {
		if _, err := HistoricalBytes(mustHex(bad)); err == nil {
			t.Errorf("HistoricalBytes(%s) accepted", bad)
		}
	}
}

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

func FuzzHistoricalBytes(f *testing.F) {
	for _, v := range atrVectors {
		f.Add(mustHex(v.atr))
	}
	f.Fuzz(func(t *testing.T, atr []byte) {
		h, err := HistoricalBytes(atr)
		if err != nil {
			return
		}
		if len(h) != int(atr[1]&0x0F) || !bytes.Contains(atr, h) {
			t.Fatalf("historical %X of ATR %X", h, atr)
		}
	})
}

// A transaction-log record as the simulated card writes it: seq 0001,
// overdraft 000000, amount 000004D2, type 06, terminal 330100000001,
// 2024-03-15 10:20:30.
const logVector = "0001000000000004D206330100000001202403151020" + "30"

func TestParseLogEntry(t *testing.T) {
	e, err := parseLogEntry(mustHex(logVector))
	if err != nil {
		t.Fatal(err)
	}
	if e.seq != 1 || e.amount != 1234 || e.txType != 6 || hex.EncodeToString(e.terminal) != "330100000001" ||
		hex.EncodeToString(e.date) != "20240315" || hex.EncodeToString(e.time) != "102030" {
		t.Errorf("parsed %+v", e)
	}
	if _, err := parseLogEntry(mustHex(logVector)[:22]); err == nil {
		t.Error("short record accepted")
	}
}

func FuzzParseLogEntry(f *testing.F) {
	f.Add(mustHex(logVector))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := parseLogEntry(b)
		if err != nil {
			return
		}
		re := append([]byte{byte(e.seq >> 8), byte(e.seq)}, b[2:5]...)
		re = append(re, byte(e.amount>>24), byte(e.amount>>16), byte(e.amount>>8), byte(e.amount), e.txType)
		re = append(append(append(re, e.terminal...), e.date...), e.time...)
		if !bytes.Equal(re, b) {
			t.Fatalf("round trip %X != %X", re, b)
		}
	})
}

// The SSSE FCI of the simulated cards: 6F { 84 name, A5 { 9F0C 03 { 86 01
// flag } } }.
func TestAlgFlagOf(t *testing.T) {
	fci := func(flag byte) []byte {
		prop := []byte{0x9F, 0x0C, 0x03, 0x86, 0x01, flag}
		a5 := append([]byte{0xA5, byte(len(prop))}, prop...)
		inner := append(append([]byte{0x84, byte(len(ssseName))}, ssseName...), a5...)
		return append([]byte{0x6F, byte(len(inner))}, inner...)
	}
	for _, tc := range []struct {
		fci  []byte
		want byte
	}{
		{fci(0x03), AlgFlagSM4}, {fci(0x01), AlgFlag3DES}, {nil, AlgFlag3DES},
		{[]byte{0x6F, 0x02, 0x84, 0x00}, AlgFlag3DES}, {[]byte{0x6F, 0x05}, AlgFlag3DES},
	} {
		if got := algFlagOf(tc.fci); got != tc.want {
			t.Errorf("algFlagOf(%X) = %02X, want %02X", tc.fci, got, tc.want)
		}
	}
}

func FuzzAlgFlagOf(f *testing.F) {
	f.Add(mustHex("6F1B840F7378312E73682EC9E7BBE1B1A3D5CFA5089F0C03860103"[:0] + "6F1A840F7378312E73682EC9E7BBE1B1A3D5CFA5069F0C03860103"))
	f.Add([]byte{0x6F, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		_ = algFlagOf(b) // never panics; any byte is a flag
	})
}
