package pcsc_test

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ebfe/scard"

	"github.com/onecard-hub/onecard/apdu"
	"github.com/onecard-hub/onecard/reader"
	"github.com/onecard-hub/onecard/reader/pcsc"
)

var selectSSSE = mustHex("00A404000F7378312E73682EC9E7BBE1B1A3D5CF")

// checkErr fails unless err wraps every one of want.
func checkErr(t *testing.T, what string, err error, want ...error) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: no error, want %v", what, want)
	}
	for _, w := range want {
		if !errors.Is(err, w) {
			t.Fatalf("%s: %v (scard code %#x), want it to wrap %v", what, err, uint32(scardCode(err)), w)
		}
	}
}

func TestPCSCSlot(t *testing.T) {
	b := startPCSC(t, 1)
	ssc := loadCard(t, "ssc-gen2.yaml")
	atr := ssc.PowerOn()
	ssc.PowerOff()

	t.Run("connect transmit reset disconnect", func(t *testing.T) {
		b.insert(t, 0, ssc)
		s := pcsc.NewSlot(b.name(0), pcsc.Options{})
		if s.ID() != "pcsc:"+b.name(0) {
			t.Errorf("ID %q", s.ID())
		}
		ctx := tctx(t)
		got, err := s.Connect(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, atr) {
			t.Fatalf("ATR % X, want % X", got, atr)
		}
		// T=0 chaining through apdu.Exchange (61xx + GET RESPONSE).
		resp, err := apdu.Exchange(ctx, s, apdu.Command{CLA: 0, INS: 0xA4, P1: 4, Data: selectSSSE[5:]})
		if err != nil || resp.SW != apdu.SWOK || len(resp.Data) == 0 || resp.Data[0] != 0x6F {
			t.Fatalf("SELECT SSSE: %X %04X %v", resp.Data, resp.SW, err)
		}
		if got, err = s.Reset(ctx); err != nil || !bytes.Equal(got, atr) {
			t.Fatalf("Reset: % X %v", got, err)
		}
		// The reset lost the selection; the card still answers.
		if r, err := s.Transmit(ctx, selectSSSE); err != nil || r[0] != 0x61 {
			t.Fatalf("SELECT after reset: % X %v", r, err)
		}
		if err := s.Disconnect(); err != nil {
			t.Fatal(err)
		}
		_, err = s.Transmit(ctx, selectSSSE)
		checkErr(t, "Transmit after Disconnect", err, pcsc.ErrNotConnected)
		// Connect again after Disconnect.
		if _, err := s.Connect(ctx); err != nil {
			t.Fatal(err)
		}
		if err := s.Disconnect(); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("no watchdog", func(t *testing.T) {
		b.insert(t, 0, ssc)
		s := pcsc.NewSlot(b.name(0), pcsc.Options{NoWatchdog: true})
		ctx := tctx(t)
		if _, err := s.Connect(ctx); err != nil {
			t.Fatal(err)
		}
		tx, err := s.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if r, err := tx.Transmit(ctx, selectSSSE); err != nil || r[0] != 0x61 {
			t.Fatalf("Transmit: % X %v", r, err)
		}
		if err := tx.End(); err != nil {
			t.Fatal(err)
		}
		cancelled, cancel := context.WithCancel(ctx)
		cancel()
		_, err = s.Transmit(cancelled, selectSSSE)
		checkErr(t, "Transmit with a cancelled context", err, context.Canceled)
		if err := s.Disconnect(); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("bad calls", func(t *testing.T) {
		s := pcsc.NewSlot(b.name(0), pcsc.Options{})
		ctx := tctx(t)
		_, err := s.Transmit(ctx, selectSSSE)
		checkErr(t, "Transmit before Connect", err, pcsc.ErrNotConnected)
		_, err = s.Reset(ctx)
		checkErr(t, "Reset before Connect", err, pcsc.ErrNotConnected)
		_, err = s.Begin(ctx)
		checkErr(t, "Begin before Connect", err, pcsc.ErrNotConnected)
		for _, cmd := range [][]byte{nil, {}, {0x00}, {0x00, 0xA4, 0x04}} {
			_, err = s.Transmit(ctx, cmd)
			checkErr(t, "Transmit short command", err, pcsc.ErrShortCommand)
		}
		cancelled, cancel := context.WithCancel(ctx)
		cancel()
		_, err = s.Connect(cancelled)
		checkErr(t, "Connect with a cancelled context", err, context.Canceled)
		if err := s.Disconnect(); err != nil {
			t.Fatalf("Disconnect of an unconnected slot: %v", err)
		}
		unknown := pcsc.NewSlot("No Such Reader 00 00", pcsc.Options{})
		_, err = unknown.Connect(ctx)
		checkErr(t, "Connect to an unknown reader", err, reader.ErrReaderGone, scard.ErrUnknownReader)
	})

	t.Run("empty slot and removal while idle", func(t *testing.T) {
		b.remove(t, 0)
		s := pcsc.NewSlot(b.name(0), pcsc.Options{})
		ctx := tctx(t)
		_, err := s.Connect(ctx)
		checkErr(t, "Connect to an empty slot", err, reader.ErrNoCard, scard.ErrNoSmartcard)
		var pe *pcsc.Error
		if !errors.As(err, &pe) || pe.Code != scard.ErrNoSmartcard || pe.Op != "SCardConnect" {
			t.Fatalf("errors.As *pcsc.Error: %#v", pe)
		}
		b.insert(t, 0, ssc)
		if _, err := s.Connect(ctx); err != nil {
			t.Fatal(err)
		}
		b.remove(t, 0)
		for range 2 { // stays removed until Connect
			_, err = s.Transmit(ctx, selectSSSE)
			checkErr(t, "Transmit after removal", err, reader.ErrCardRemoved)
		}
		b.insert(t, 0, ssc)
		if _, err := s.Connect(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Transmit(ctx, selectSSSE); err != nil {
			t.Fatal(err)
		}
		_ = s.Disconnect()
	})

	t.Run("removal during an APDU", func(t *testing.T) {
		card := newTestCard("3B021450")
		for _, tc := range []struct {
			name string
			pull func()
		}{
			// The card side is gone before the APDU reaches it.
			{"pulled before answering", func() { b.bridges[0].PullDuring(1) }},
			// The card is taken out while it works on the APDU.
			{"removed while working", func() {
				card.delay.Store(int64(300 * time.Millisecond))
				go func() {
					time.Sleep(100 * time.Millisecond)
					b.bridges[0].Remove()
				}()
			}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				card.delay.Store(0)
				b.insert(t, 0, card)
				s := pcsc.NewSlot(b.name(0), pcsc.Options{})
				defer s.Disconnect()
				ctx := tctx(t)
				if _, err := s.Connect(ctx); err != nil {
					t.Fatal(err)
				}
				tc.pull()
				_, err := s.Transmit(ctx, mustHex("80CA000000"))
				checkErr(t, "Transmit with the card pulled", err, reader.ErrCardRemoved)
				_, err = s.Transmit(ctx, mustHex("80CA000000"))
				checkErr(t, "next Transmit", err, reader.ErrCardRemoved)
				b.wait(t, 0, false)
			})
		}
		card.delay.Store(0)
	})

	t.Run("timeout abandons the call", func(t *testing.T) {
		card := newTestCard("3B021450")
		b.insert(t, 0, card)
		s := pcsc.NewSlot(b.name(0), pcsc.Options{})
		defer s.Disconnect()
		ctx := tctx(t)
		if _, err := s.Connect(ctx); err != nil {
			t.Fatal(err)
		}
		card.delay.Store(int64(time.Second))
		short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		_, err := s.Transmit(short, mustHex("80CA000000"))
		cancel()
		checkErr(t, "Transmit past its deadline", err, reader.ErrTimeout, context.DeadlineExceeded)
		// The next call waits for the abandoned one (bounded by its own
		// context) and then works.
		card.delay.Store(0)
		resp, err := s.Transmit(ctx, mustHex("80CA0000020102"))
		if err != nil || !bytes.Equal(resp, mustHex("01029000")) {
			t.Fatalf("Transmit after the abandoned one: % X %v", resp, err)
		}
		if n := card.applied.Load(); n != 2 {
			t.Fatalf("card applied %d commands, want 2 (the abandoned one finished)", n)
		}
		// Cancellation (not a deadline) is not a timeout.
		card.delay.Store(int64(500 * time.Millisecond))
		cctx, ccancel := context.WithCancel(ctx)
		time.AfterFunc(50*time.Millisecond, ccancel)
		_, err = s.Transmit(cctx, mustHex("80CA000000"))
		checkErr(t, "cancelled Transmit", err, context.Canceled)
		if errors.Is(err, reader.ErrTimeout) {
			t.Fatalf("cancelled Transmit reports a timeout: %v", err)
		}
		card.delay.Store(0)
	})

	t.Run("card reset by another program", func(t *testing.T) {
		b.insert(t, 0, ssc)
		a := pcsc.NewSlot(b.name(0), pcsc.Options{})
		o := pcsc.NewSlot(b.name(0), pcsc.Options{})
		defer a.Disconnect()
		defer o.Disconnect()
		ctx := tctx(t)
		for _, s := range []*pcsc.Slot{a, o} {
			if _, err := s.Connect(ctx); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := o.Reset(ctx); err != nil {
			t.Fatal(err)
		}
		_, err := a.Transmit(ctx, selectSSSE)
		checkErr(t, "Transmit after another handle's reset", err, reader.ErrCardReset, scard.ErrResetCard)
		// The handle was re-armed: the next command goes through.
		if r, err := a.Transmit(ctx, selectSSSE); err != nil || r[0] != 0x61 {
			t.Fatalf("Transmit after re-arming: % X %v", r, err)
		}
	})

	t.Run("transactions", func(t *testing.T) {
		b.insert(t, 0, ssc)
		a := pcsc.NewSlot(b.name(0), pcsc.Options{MaxTx: 300 * time.Millisecond})
		o := pcsc.NewSlot(b.name(0), pcsc.Options{})
		defer a.Disconnect()
		defer o.Disconnect()
		ctx := tctx(t)
		for _, s := range []*pcsc.Slot{a, o} {
			if _, err := s.Connect(ctx); err != nil {
				t.Fatal(err)
			}
		}
		tx, err := reader.Begin(ctx, o)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := o.Begin(ctx); !errors.Is(err, pcsc.ErrTxActive) {
			t.Fatalf("nested Begin: %v, want ErrTxActive", err)
		}
		if r, err := tx.Transmit(ctx, selectSSSE); err != nil || r[0] != 0x61 {
			t.Fatalf("Tx.Transmit: % X %v", r, err)
		}
		// a waits for o's transaction and gives up at its deadline.
		short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		_, err = a.Begin(short)
		cancel()
		checkErr(t, "Begin while another handle holds a transaction", err, reader.ErrTimeout)
		if err := tx.End(); err != nil {
			t.Fatal(err)
		}
		if err := tx.End(); err != nil {
			t.Fatalf("second End: %v", err)
		}
		_, err = tx.Transmit(ctx, selectSSSE)
		checkErr(t, "Tx.Transmit after End", err, reader.ErrTxEnded)
		// a's abandoned Begin got the lock once o let go and released it
		// at once: o can take it again.
		tx, err = o.Begin(ctx)
		if err != nil {
			t.Fatalf("Begin after the abandoned one: %v", err)
		}
		_ = tx.End()
		// a transaction outliving MaxTx is ended by the slot.
		atx, err := a.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			_, err = atx.Transmit(ctx, selectSSSE)
			if err != nil || time.Now().After(deadline) {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		checkErr(t, "Tx.Transmit after MaxTx", err, reader.ErrTxEnded)
		if err := atx.End(); err != nil {
			t.Fatalf("End of an expired Tx: %v", err)
		}
		otx, err := o.Begin(ctx)
		if err != nil {
			t.Fatalf("Begin after the expired Tx: %v", err)
		}
		_ = otx.End()
	})

	t.Run("another process", func(t *testing.T) {
		b.insert(t, 0, ssc)
		ctx := tctx(t)
		t.Run("holds the card exclusively", func(t *testing.T) {
			h := startHolder(t, "exclusive", b.name(0))
			s := pcsc.NewSlot(b.name(0), pcsc.Options{})
			defer s.Disconnect()
			_, err := s.Connect(ctx)
			checkErr(t, "Connect while another process holds the card", err, reader.ErrReaderBusy, scard.ErrSharingViolation)
			infos, err := pcsc.NewBackend(pcsc.Options{}).Readers(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if si := infos[0].Slots[0]; !si.Exclusive || !si.Present {
				t.Fatalf("slot info while held: %+v, want Exclusive and Present", si)
			}
			h.release()
			if _, err := s.Connect(ctx); err != nil {
				t.Fatalf("Connect after the other process let go: %v", err)
			}
		})
		t.Run("holds a transaction", func(t *testing.T) {
			s := pcsc.NewSlot(b.name(0), pcsc.Options{})
			defer s.Disconnect()
			if _, err := s.Connect(ctx); err != nil {
				t.Fatal(err)
			}
			h := startHolder(t, "tx", b.name(0))
			short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
			_, err := s.Begin(short)
			cancel()
			checkErr(t, "Begin while another process holds a transaction", err, reader.ErrTimeout)
			h.release()
			tx, err := s.Begin(ctx)
			if err != nil {
				t.Fatalf("Begin after the other process let go: %v", err)
			}
			if err := tx.End(); err != nil {
				t.Fatal(err)
			}
		})
	})
}
