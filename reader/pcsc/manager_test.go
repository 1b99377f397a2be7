package pcsc_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/onecard-hub/onecard/reader"
	"github.com/onecard-hub/onecard/reader/pcsc"
)

// fastOpts makes the monitor react quickly in tests.
var fastOpts = pcsc.Options{PollInterval: 200 * time.Millisecond, RetryMin: 20 * time.Millisecond, RetryMax: 200 * time.Millisecond}

// startManager runs a Manager over a PC/SC backend until the test ends.
func startManager(t *testing.T, opts reader.ManagerOptions) (*reader.Manager, *reader.Subscription) {
	t.Helper()
	if opts.Backends == nil {
		opts.Backends = []reader.Backend{pcsc.NewBackend(fastOpts)}
	}
	m := reader.NewManager(opts)
	sub := m.Subscribe()
	done := make(chan error, 1)
	go func() { done <- m.Run(context.Background()) }()
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return m, sub
}

// expect reads events until one matches, failing after a bounded wait.
// Events before it are returned for inspection.
func expect(t *testing.T, sub *reader.Subscription, what string, match func(reader.Event) bool) (reader.Event, []reader.Event) {
	t.Helper()
	var skipped []reader.Event
	timeout := time.After(15 * time.Second)
	for {
		select {
		case ev, ok := <-sub.Events():
			if !ok {
				t.Fatalf("%s: subscription closed; events before: %v", what, skipped)
			}
			if match(ev) {
				return ev, skipped
			}
			skipped = append(skipped, ev)
		case <-timeout:
			t.Fatalf("%s: no such event; got %v", what, skipped)
		}
	}
}

func kindIs(k reader.EventKind, id string) func(reader.Event) bool {
	return func(ev reader.Event) bool {
		return ev.Kind == k && (ev.ReaderID == id || ev.SlotID == id)
	}
}

func TestManagerPCSC(t *testing.T) {
	b := startPCSC(t, 1)
	ssc, psam := loadCard(t, "ssc-gen2.yaml"), loadCard(t, "psam.yaml")
	sscATR, psamATR := ssc.PowerOn(), psam.PowerOn()
	ssc.PowerOff()
	psam.PowerOff()
	b.insert(t, 0, ssc)

	var traceMu sync.Mutex
	var traces []reader.TraceEvent
	m, sub := startManager(t, reader.ManagerOptions{Trace: func(ev reader.TraceEvent) {
		traceMu.Lock()
		defer traceMu.Unlock()
		traces = append(traces, ev)
	}})
	const rid, user, sam = "pcsc:Virtual PCD 00", "pcsc:Virtual PCD 00 00", "pcsc:Virtual PCD 00 01"

	ev, _ := expect(t, sub, "reader added", kindIs(reader.ReaderAdded, rid))
	r := ev.Reader
	if r.Backend != "pcsc" || ev.Backend != "pcsc" || r.Name != "Virtual PCD 00" || len(r.Slots) != 2 {
		t.Fatalf("reader %+v", r)
	}
	if s := r.Slots[0]; s.ID != user || s.Name != b.name(0) || !s.Present || !bytes.Equal(s.ATR, sscATR) {
		t.Fatalf("user slot %+v", s)
	}
	if s := r.Slots[1]; s.ID != sam || s.Present || s.ATR != nil {
		t.Fatalf("PSAM slot %+v", s)
	}

	t.Run("card events", func(t *testing.T) {
		b.bridges[1].Insert(psam)
		ev, _ := expect(t, sub, "PSAM inserted", kindIs(reader.CardInserted, sam))
		if !bytes.Equal(ev.ATR, psamATR) || ev.ReaderID != rid {
			t.Fatalf("CardInserted %v", ev)
		}
		b.bridges[0].Remove()
		expect(t, sub, "user card removed", kindIs(reader.CardRemoved, user))
		snap := m.Readers()
		if len(snap) != 1 || snap[0].Slots[0].Present || !snap[0].Slots[1].Present || !bytes.Equal(snap[0].Slots[1].ATR, psamATR) {
			t.Fatalf("snapshot %+v", snap)
		}
		b.bridges[0].Insert(ssc)
		ev, _ = expect(t, sub, "user card inserted", kindIs(reader.CardInserted, user))
		if !bytes.Equal(ev.ATR, sscATR) {
			t.Fatalf("CardInserted %v", ev)
		}
		// A late subscriber starts with the current state.
		late := m.Subscribe()
		defer late.Close()
		ev, _ = expect(t, late, "snapshot", kindIs(reader.ReaderAdded, rid))
		if !ev.Reader.Slots[0].Present || !ev.Reader.Slots[1].Present {
			t.Fatalf("late subscriber's reader %+v", ev.Reader)
		}
	})

	t.Run("one-shot listing and slot lookup", func(t *testing.T) {
		be := pcsc.NewBackend(pcsc.Options{})
		infos, err := be.Readers(tctx(t))
		if err != nil {
			t.Fatal(err)
		}
		if len(infos) != 1 || infos[0].ID != rid || len(infos[0].Slots) != 2 || infos[0].Slots[1].ID != sam {
			t.Fatalf("Readers: %+v", infos)
		}
		for _, id := range []string{"pcsc:No Such Reader 00 00", "virtual:user"} {
			if _, err := be.Slot(id); !errors.Is(err, reader.ErrUnknownSlot) {
				t.Errorf("Slot(%q): %v, want ErrUnknownSlot", id, err)
			}
		}
		if _, err := m.Slot("pcsc:No Such Reader 00 00"); !errors.Is(err, reader.ErrUnknownSlot) {
			t.Errorf("Manager.Slot of an unknown ID: %v", err)
		}
	})

	s, err := m.Slot(sam)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Disconnect()
	ctx := tctx(t)
	if _, err := s.Connect(ctx); err != nil {
		t.Fatal(err)
	}

	t.Run("trace redacts PINs", func(t *testing.T) {
		tx, err := reader.Begin(ctx, s)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Transmit(ctx, selectSSSE); err != nil {
			t.Fatal(err)
		}
		pin := mustHex("0020000003123456")
		if _, err := tx.Transmit(ctx, pin); err != nil {
			t.Fatal(err)
		}
		if err := tx.End(); err != nil {
			t.Fatal(err)
		}
		traceMu.Lock()
		defer traceMu.Unlock()
		var ops []string
		var verify *reader.TraceEvent
		for i, ev := range traces {
			ops = append(ops, ev.Op)
			if ev.Slot != sam {
				t.Errorf("trace slot %q", ev.Slot)
			}
			if ev.Op == "transmit" && len(ev.Command) > 1 && ev.Command[1] == 0x20 {
				verify = &traces[i]
			}
		}
		if got := strings.Join(ops, " "); got != "connect begin transmit transmit end" {
			t.Fatalf("traced ops %q", got)
		}
		if verify == nil || !verify.CommandRedacted || bytes.Contains(verify.Command, mustHex("123456")) ||
			strings.Contains(verify.String(), "12 34 56") {
			t.Fatalf("VERIFY trace not redacted: %v", verify)
		}
	})

	t.Run("pcscd restart", func(t *testing.T) {
		b.env.Stop(t)
		ev, _ := expect(t, sub, "service down", func(ev reader.Event) bool { return ev.Kind == reader.ReaderError })
		if !errors.Is(ev.Err, reader.ErrServiceDown) || ev.ReaderID != "" {
			t.Fatalf("ReaderError %v, want ErrServiceDown", ev)
		}
		expect(t, sub, "reader removed", kindIs(reader.ReaderRemoved, rid))
		if snap := m.Readers(); len(snap) != 0 {
			t.Fatalf("snapshot with pcscd down: %+v", snap)
		}
		_, err := s.Transmit(ctx, selectSSSE)
		checkErr(t, "Transmit with pcscd down", err, reader.ErrServiceDown)
		_, err = pcsc.NewBackend(pcsc.Options{}).Readers(ctx)
		checkErr(t, "Readers with pcscd down", err, reader.ErrServiceDown)

		b.env.Restart(t)
		expect(t, sub, "reader back", kindIs(reader.ReaderAdded, rid))
		// The bridges redial the new pcscd; the cards come back.
		b.wait(t, 1, true)
		if _, err := s.Connect(ctx); err != nil {
			t.Fatalf("Connect after the restart: %v", err)
		}
		if r, err := s.Transmit(ctx, selectSSSE); err != nil || r[0] != 0x61 {
			t.Fatalf("Transmit after the restart: % X %v", r, err)
		}
	})

	if got := sub.Dropped(); got != 0 {
		t.Errorf("%d events dropped", got)
	}
}

// TestManagerPCSCTwoReaders uses two PC/SC readers at once: two vpcd
// readers ("Virtual PCD" and "Virtual PCD 2", each loading its own copy of
// the vpcd driver, see pcsctest), with a card in the first slot of each.
func TestManagerPCSCTwoReaders(t *testing.T) {
	b := startPCSC(t, 2)
	cards := []*testCard{newTestCard("3B021450"), newTestCard("3B021451")}
	_, sub := startManager(t, reader.ManagerOptions{})
	for _, id := range []string{"pcsc:Virtual PCD 00", "pcsc:Virtual PCD 2 00"} {
		ev, _ := expect(t, sub, "reader added "+id, kindIs(reader.ReaderAdded, id))
		if len(ev.Reader.Slots) != 2 {
			t.Fatalf("reader %+v", ev.Reader)
		}
	}
	slots := []int{0, 2}
	for i, slot := range slots {
		b.bridges[slot].Insert(cards[i])
		ev, _ := expect(t, sub, "inserted", kindIs(reader.CardInserted, "pcsc:"+b.name(slot)))
		if !bytes.Equal(ev.ATR, cards[i].atr) {
			t.Fatalf("ATR % X, want % X", ev.ATR, cards[i].atr)
		}
	}
	// Both readers at once.
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for i, slot := range slots {
		wg.Go(func() {
			s := pcsc.NewSlot(b.name(slot), pcsc.Options{})
			defer s.Disconnect()
			ctx := tctx(t)
			if _, err := s.Connect(ctx); err != nil {
				errs <- err
				return
			}
			for n := range 50 {
				cmd := []byte{0x80, 0xCA, 0, 0, 2, byte(i), byte(n)}
				resp, err := s.Transmit(ctx, cmd)
				if err != nil || !bytes.Equal(resp, []byte{byte(i), byte(n), 0x90, 0x00}) {
					errs <- fmt.Errorf("reader %d APDU %d: % X %v", i, n, resp, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for i := range cards {
		if n := cards[i].applied.Load(); n != 50 {
			t.Errorf("card %d applied %d APDUs, want 50", i, n)
		}
	}
}
