package simcard

import (
	"context"
	"fmt"
	"testing"

	"github.com/onecard-hub/onecard/apdu"
	"github.com/onecard-hub/onecard/hub/proof"
	"github.com/onecard-hub/onecard/reader/virtual"
)

// purchaseRun is what a terminal learns during one purchase.
type purchaseRun struct {
	rec        proof.Purchase
	offlineSeq uint16
	tac, mac2  []byte
}

func exchange(c virtual.Card, cmd apdu.Command) (apdu.Response, error) {
	return apdu.Exchange(context.Background(), ifd{c}, cmd)
}

func cmdHex(t testing.TB, format string, args ...any) apdu.Command {
	t.Helper()
	c, err := apdu.ParseCommand(unhex(t, fmt.Sprintf(format, args...)))
	if err != nil {
		t.Fatalf("parse command: %v", err)
	}
	return c
}

func okData(t testing.TB, c virtual.Card, cmd apdu.Command, what string) []byte {
	t.Helper()
	r, err := exchange(c, cmd)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if r.SW != apdu.SWOK {
		t.Fatalf("%s: SW %04X", what, r.SW)
	}
	return r.Data
}

// cardIDOf reads EF05 tag 01 through SFI 5.
func cardIDOf(t testing.TB, card virtual.Card) []byte {
	t.Helper()
	d := okData(t, card, cmdHex(t, "00B2012C12"), "read card ID")
	return d[2:]
}

// algFlagOf selects SSSE and returns the 9F0C algorithm flag.
func algFlagOf(t testing.TB, card virtual.Card) byte {
	t.Helper()
	fci := okData(t, card, cmdHex(t, selSSSE+"00"), "select SSSE")
	return fci[len(fci)-1]
}

// startPurchase does everything up to DEBIT FOR PURCHASE and returns the
// DEBIT command and the run so far.
func startPurchase(t testing.TB, card, psam virtual.Card, amount uint32, date, tm string) (apdu.Command, purchaseRun) {
	t.Helper()
	mustOK(t, card, selSSSE)
	mustOK(t, card, verifyOK)
	cardID := cardIDOf(t, card)
	mustOK(t, psam, selPSAM)
	term := okData(t, psam, cmdHex(t, "00B0960006"), "read terminal number")
	amt := apdu.EncodeAmount(amount)
	init := okData(t, card, cmdHex(t, "805001020B01%X%X0F", amt, term), "initialize for purchase")
	if len(init) != 15 {
		t.Fatalf("initialize for purchase: %d bytes", len(init))
	}
	seq, ver, alg, rnd := init[4:6], init[9], init[10], init[11:15]
	sam := okData(t, psam, cmdHex(t, "807000001C%X%X%X06%s%s%02X%02X%X08", rnd, seq, amt, date, tm, ver, alg, cardID[8:]),
		"init SAM for purchase")
	termSeq, mac1 := sam[0:4], sam[4:8]
	var run purchaseRun
	run.rec.CardID = cardID
	run.rec.Amount = amount
	run.rec.Type = 0x06
	copy(run.rec.Terminal[:], term)
	run.rec.TermSeq = uint32(termSeq[0])<<24 | uint32(termSeq[1])<<16 | uint32(termSeq[2])<<8 | uint32(termSeq[3])
	copy(run.rec.Date[:], unhex(t, date))
	copy(run.rec.Time[:], unhex(t, tm))
	run.offlineSeq = uint16(seq[0])<<8 | uint16(seq[1])
	return cmdHex(t, "805401000F%X%s%s%X08", termSeq, date, tm, mac1), run
}

// purchase runs a full purchase through card and PSAM.
func purchase(t testing.TB, card, psam virtual.Card, amount uint32, date, tm string) purchaseRun {
	t.Helper()
	debit, run := startPurchase(t, card, psam, amount, date, tm)
	out := okData(t, card, debit, "debit for purchase")
	run.tac, run.mac2 = out[0:4], out[4:8]
	okData(t, psam, cmdHex(t, "8072000004%X", run.mac2), "credit SAM for purchase")
	return run
}

// loadRun is what a terminal and the hub learn during one load.
type loadRun struct {
	auth proof.LoadAuth
	rec  proof.Load
	tac  []byte
}

// startLoad runs INITIALIZE FOR LOAD, checks MAC1 at the "hub" and returns
// the CREDIT FOR LOAD command carrying the hub's MAC2.
func startLoad(t testing.TB, card virtual.Card, v proof.Verifier, p2 byte, amount uint32, term, date, tm string) (apdu.Command, loadRun) {
	t.Helper()
	mustOK(t, card, selSSSE)
	cardID := cardIDOf(t, card)
	amt := apdu.EncodeAmount(amount)
	init := okData(t, card, cmdHex(t, "805000%02X0B01%X%s10", p2, amt, term), "initialize for load")
	if len(init) != 16 {
		t.Fatalf("initialize for load: %d bytes", len(init))
	}
	var run loadRun
	a := &run.auth
	a.CardID = cardID
	a.Balance = uint32(init[0])<<24 | uint32(init[1])<<16 | uint32(init[2])<<8 | uint32(init[3])
	a.OnlineSeq = uint16(init[4])<<8 | uint16(init[5])
	copy(a.Random[:], init[8:12])
	a.Amount = amount
	a.Type = p2 // 01 ED load, 02 EP load
	copy(a.Terminal[:], unhex(t, term))
	copy(a.Date[:], unhex(t, date))
	copy(a.Time[:], unhex(t, tm))
	if err := v.VerifyLoadMAC1(*a, init[12:16]); err != nil {
		t.Fatalf("hub: %v", err)
	}
	mac2, err := v.LoadMAC2(*a)
	if err != nil {
		t.Fatalf("hub: %v", err)
	}
	run.rec = proof.Load{CardID: cardID, NewBalance: a.Balance + amount, OnlineSeq: a.OnlineSeq,
		Amount: amount, Type: a.Type, Terminal: a.Terminal, Date: a.Date, Time: a.Time}
	return cmdHex(t, "805200000B%s%s%X04", date, tm, mac2), run
}

func load(t testing.TB, card virtual.Card, v proof.Verifier, amount uint32, term, date, tm string) loadRun {
	t.Helper()
	credit, run := startLoad(t, card, v, 0x02, amount, term, date, tm)
	run.tac = okData(t, card, credit, "credit for load")
	return run
}

func verifierFor(t testing.TB, c *SSC) proof.Verifier {
	return proof.Verifier{Keys: keySet(t), Suite: c.Suite()}
}
