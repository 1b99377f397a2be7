package virtual_test

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ebfe/scard"

	"github.com/onecard-hub/onecard/internal/pcsctest"
	"github.com/onecard-hub/onecard/reader/virtual"
)

// Integration tests: simulated cards behind the real pcscd through vpcd,
// driven with github.com/ebfe/scard like any PC/SC application would.

// waitCard waits (bounded) for the card state of a PC/SC reader.
func waitCard(t testing.TB, name string, present bool) scard.StateFlag {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ev, err := pcsctest.WaitCard(ctx, name, present)
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

// scardConnect connects to a reader shared, any protocol.
func scardConnect(t testing.TB, name string) (*scard.Context, *scard.Card) {
	t.Helper()
	sc, err := scard.EstablishContext()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sc.Release() })
	card, err := sc.Connect(name, scard.ShareShared, scard.ProtocolAny)
	if err != nil {
		t.Fatalf("connect %q: %v", name, err)
	}
	t.Cleanup(func() { _ = card.Disconnect(scard.LeaveCard) })
	return sc, card
}

func transmit(t testing.TB, card *scard.Card, cmd []byte) []byte {
	t.Helper()
	resp, err := card.Transmit(cmd)
	if err != nil {
		t.Fatalf("transmit % X: %v", cmd, err)
	}
	return resp
}

func TestPCSCVirtualCards(t *testing.T) {
	env := pcsctest.Start(t, pcsctest.Options{})
	user, psam := env.Slots[0], env.Slots[1]
	if user.Name != "Virtual PCD 00 00" || psam.Name != "Virtual PCD 00 01" {
		t.Fatalf("slot names %q, %q", user.Name, psam.Name)
	}
	userCard, psamCard := newUserCard(t), newPSAMCard(t)
	userATR, psamATR := atrOf(userCard), atrOf(psamCard)
	ub := virtual.NewVPCD(virtual.VPCDOptions{Addr: user.Addr, Card: userCard})
	pb := virtual.NewVPCD(virtual.VPCDOptions{Addr: psam.Addr, Card: psamCard})
	runBridge(t, ub)
	runBridge(t, pb)
	waitCard(t, user.Name, true)
	waitCard(t, psam.Name, true)

	// Both slots at once, ATRs as the cards give them.
	_, uc := scardConnect(t, user.Name)
	_, pc := scardConnect(t, psam.Name)
	for _, tc := range []struct {
		name string
		card *scard.Card
		atr  []byte
	}{
		{"user", uc, userATR},
		{"psam", pc, psamATR},
	} {
		st, err := tc.card.Status()
		if err != nil {
			t.Fatalf("%s: Status: %v", tc.name, err)
		}
		if !bytes.Equal(st.Atr, tc.atr) {
			t.Errorf("%s: ATR % X, want % X", tc.name, st.Atr, tc.atr)
		}
		if st.State&0xFFFF&scard.Present == 0 {
			t.Errorf("%s: state %#x lacks Present", tc.name, st.State)
		}
		t.Logf("%s: state %#x protocol %v ATR % X", tc.name, st.State, st.ActiveProtocol, st.Atr)
	}
	userAPDUs(t, uc)
	psamAPDUs(t, pc)
}

func TestPCSCInsertRemove(t *testing.T) {
	env := pcsctest.Start(t, pcsctest.Options{})
	slot := env.Slots[0]
	b := virtual.NewVPCD(virtual.VPCDOptions{Addr: slot.Addr, Card: newUserCard(t)})
	runBridge(t, b)
	ev0 := waitCard(t, slot.Name, true)
	events := func(ev scard.StateFlag) uint32 { return uint32(ev) >> 16 }

	b.Remove()
	ev1 := waitCard(t, slot.Name, false)
	if events(ev1) <= events(ev0) {
		t.Fatalf("remove: event counter %d -> %d, want increment (states %#x -> %#x)", events(ev0), events(ev1), uint32(ev0), uint32(ev1))
	}
	sc, err := scard.EstablishContext()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sc.Release() }()
	if _, err := sc.Connect(slot.Name, scard.ShareShared, scard.ProtocolAny); !errors.Is(err, scard.ErrNoSmartcard) {
		t.Fatalf("connect to empty slot: %v, want ErrNoSmartcard", err)
	}

	b.Insert(nil)
	ev2 := waitCard(t, slot.Name, true)
	if events(ev2) <= events(ev1) {
		t.Fatalf("insert: event counter %d -> %d, want increment", events(ev1), events(ev2))
	}
	t.Logf("event states: present %#x, removed %#x, re-inserted %#x", uint32(ev0), uint32(ev1), uint32(ev2))
	_, c := scardConnect(t, slot.Name)
	userAPDUs(t, c)
}

func TestPCSCPullMidAPDU(t *testing.T) {
	env := pcsctest.Start(t, pcsctest.Options{})
	slot := env.Slots[0]
	b := virtual.NewVPCD(virtual.VPCDOptions{Addr: slot.Addr})
	runBridge(t, b)
	for _, tc := range []struct {
		name string
		card virtual.Card
		arm  func(virtual.Card)
	}{
		// The bridge drops the APDU: the card never sees it.
		{"pull-next", newUserCard(t), func(virtual.Card) { b.PullDuring(1) }},
		// The card applies the APDU, then is pulled (virtual.ErrTorn).
		{"torn", newT0Card(), func(c virtual.Card) { tearNext(t, c) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b.Insert(tc.card)
			waitCard(t, slot.Name, true)
			_, c := scardConnect(t, slot.Name)
			transmit(t, c, selectSSSE)
			tc.arm(tc.card)
			resp, err := c.Transmit(selectSSSE)
			t.Logf("Transmit with the card pulled mid-APDU: resp % X, err %v (%#x)", resp, err, errCode(err))
			// Observed with pcscd 1.9.9 + vpcd 3.3: the card side closes
			// the connection while vpcd waits for the response, vpcd
			// reads a zero-length answer and SCardTransmit SUCCEEDS with
			// an EMPTY response (the pcscd log says "could not send apdu
			// or receive rapdu" only when vpcd's send fails, which gives
			// SCARD_E_NOT_TRANSACTED). The next Transmit, after pcscd's
			// presence poll, fails with SCARD_W_REMOVED_CARD. A PC/SC
			// slot must treat a response shorter than 2 bytes as "card
			// removed".
			if err != nil || len(resp) != 0 {
				t.Fatalf("Transmit = % X, %v; want the observed empty response without error", resp, err)
			}
			waitCard(t, slot.Name, false)
			if _, err := c.Transmit(selectSSSE); !errors.Is(err, scard.ErrRemovedCard) {
				t.Fatalf("Transmit after removal: %v, want ErrRemovedCard", err)
			}
		})
	}
}

func errCode(err error) uint32 {
	var e scard.Error
	if errors.As(err, &e) {
		return uint32(e)
	}
	return 0
}

func TestPCSCRestart(t *testing.T) {
	env := pcsctest.Start(t, pcsctest.Options{})
	slot := env.Slots[0]
	b := virtual.NewVPCD(virtual.VPCDOptions{Addr: slot.Addr, Card: newUserCard(t), RetryMax: 100 * time.Millisecond})
	runBridge(t, b)
	waitCard(t, slot.Name, true)
	pid := env.PID()
	env.Stop(t)
	if _, err := scard.EstablishContext(); !errors.Is(err, scard.ErrNoService) {
		t.Fatalf("EstablishContext with pcscd stopped: %v, want ErrNoService", err)
	}
	env.Restart(t)
	if env.PID() == pid || env.PID() == 0 {
		t.Fatalf("pcscd pid %d after restart (was %d)", env.PID(), pid)
	}
	// The bridge redials the new vpcd by itself.
	waitCard(t, slot.Name, true)
	_, c := scardConnect(t, slot.Name)
	userAPDUs(t, c)
}
