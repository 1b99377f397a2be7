package virtual_test

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/ebfe/scard"

	"github.com/onecard-hub/onecard/internal/simcard"
	"github.com/onecard-hub/onecard/reader/virtual"
)

// The cards the PC/SC integration tests put behind pcscd: the project's
// simulated social-security card and PSAM (internal/simcard), loaded from
// copies of testdata/cards so their state files stay in a temp dir.

// loadCard copies testdata/cards/name into a temp dir and loads it.
func loadCard(t testing.TB, name string) virtual.Card {
	t.Helper()
	_, here, _, _ := runtime.Caller(0)
	src := filepath.Join(filepath.Dir(here), "..", "..", "testdata", "cards", name)
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(dst, data, 0o600); err != nil {
		t.Fatal(err)
	}
	card, err := simcard.LoadFile(dst)
	if err != nil {
		t.Fatalf("load %s: %v", name, err)
	}
	return card
}

// newUserCard returns a second-generation (T=0) social-security card.
func newUserCard(t testing.TB) virtual.Card { return loadCard(t, "ssc-gen2.yaml") }

// newPSAMCard returns the kiosk PSAM.
func newPSAMCard(t testing.TB) virtual.Card { return loadCard(t, "psam.yaml") }

// atrOf returns a card's ATR. Call it before the card is in a reader:
// powering resets the card's session state.
func atrOf(card virtual.Card) []byte {
	atr := card.PowerOn()
	card.PowerOff()
	return atr
}

// tearNext makes card apply its next command and then leave the reader.
func tearNext(t testing.TB, card virtual.Card) {
	t.Helper()
	tc, ok := card.(virtual.Tearable)
	if !ok {
		t.Fatalf("%T does not implement virtual.Tearable", card)
	}
	tc.SetTorn(true)
}

// getResponse sends GET RESPONSE for a 61xx answer and checks 9000.
func getResponse(t testing.TB, c *scard.Card, sw []byte) []byte {
	t.Helper()
	if len(sw) != 2 || sw[0] != 0x61 {
		t.Fatalf("want 61xx, got % X", sw)
	}
	resp := transmit(t, c, []byte{0x00, 0xC0, 0x00, 0x00, sw[1]})
	if len(resp) != int(sw[1])+2 || !bytes.HasSuffix(resp, []byte{0x90, 0x00}) {
		t.Fatalf("GET RESPONSE %02X: % X", sw[1], resp)
	}
	return resp[:len(resp)-2]
}

// resend answers 6Cxx by repeating cmd with Le = xx and checks 9000.
func resend(t testing.TB, c *scard.Card, cmd, sw []byte) []byte {
	t.Helper()
	if len(sw) != 2 || sw[0] != 0x6C {
		t.Fatalf("want 6Cxx, got % X", sw)
	}
	cmd = append(append([]byte(nil), cmd[:4]...), sw[1])
	resp := transmit(t, c, cmd)
	if len(resp) != int(sw[1])+2 || !bytes.HasSuffix(resp, []byte{0x90, 0x00}) {
		t.Fatalf("% X: % X", cmd, resp)
	}
	return resp[:len(resp)-2]
}

// ssseAID is the SSSE application name inside selectSSSE.
var ssseAID = selectSSSE[5:]

// userAPDUs checks the T=0 user card through scard: SELECT SSSE answered
// 61xx + GET RESPONSE, READ RECORD answered 6Cxx + resend — T=0 chaining
// is visible at the PC/SC level because vpcd passes APDUs through.
func userAPDUs(t testing.TB, c *scard.Card) {
	t.Helper()
	fci := getResponse(t, c, transmit(t, c, selectSSSE))
	if len(fci) < 2 || fci[0] != 0x6F || !bytes.Contains(fci, ssseAID) {
		t.Fatalf("SSSE FCI % X lacks template 6F with the SSSE name", fci)
	}
	if got := transmit(t, c, mustHex("00A4020002EF05")); !bytes.Equal(got, []byte{0x90, 0x00}) {
		t.Fatalf("SELECT EF05: % X", got)
	}
	readRecord := mustHex("00B2010400")
	rec := resend(t, c, readRecord, transmit(t, c, readRecord))
	if len(rec) < 2 || rec[0] != 0x01 || int(rec[1]) != len(rec)-2 {
		t.Fatalf("EF05 record 1 % X is not a tag-01 TLV", rec)
	}
}

// psamAPDUs checks the PSAM: SELECT SSSE (61xx chaining) and READ BINARY
// of the terminal number file (EF16 by SFI, 6Cxx then resend).
func psamAPDUs(t testing.TB, c *scard.Card) {
	t.Helper()
	fci := getResponse(t, c, transmit(t, c, selectSSSE))
	if !bytes.Contains(fci, ssseAID) {
		t.Fatalf("PSAM FCI % X lacks the SSSE name", fci)
	}
	readBinary := mustHex("00B0960000")
	term := resend(t, c, readBinary, transmit(t, c, readBinary))
	if !bytes.Equal(term, mustHex("330100000001")) { // terminal: in testdata/cards/psam.yaml
		t.Fatalf("PSAM terminal number % X", term)
	}
}
