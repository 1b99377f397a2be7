package serial

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/onecard-hub/onecard/reader"
	"github.com/onecard-hub/onecard/reader/serial/profile"
	"github.com/onecard-hub/onecard/reader/virtual"
)

// countingCard counts power-ons, to prove that polling leaves connected
// cards alone.
type countingCard struct {
	virtual.Card
	mu       sync.Mutex
	powerOns int
}

func (c *countingCard) PowerOn() []byte {
	c.mu.Lock()
	c.powerOns++
	c.mu.Unlock()
	return c.Card.PowerOn()
}

func (c *countingCard) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.powerOns
}

// serveEmu runs an emulator with cards on a new pty.
func serveEmu(t *testing.T, p *profile.Profile, cards map[string]virtual.Card) (*Emulator, *PTY) {
	t.Helper()
	emu, err := NewEmulator(p, EmulatorOptions{Cards: cards})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	pt, err := emu.ServePTY(ctx)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		_ = pt.Close()
	})
	return emu, pt
}

// repoint makes link point at target, atomically (a re-plugged device
// keeping its /dev/serial/by-id name).
func repoint(t *testing.T, link, target string) {
	t.Helper()
	tmp := link + ".new"
	_ = os.Remove(tmp)
	if err := os.Symlink(target, tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, link); err != nil {
		t.Fatal(err)
	}
}

func atrOf(c virtual.Card) []byte {
	atr := c.PowerOn()
	c.PowerOff()
	return atr
}

func fastOptions(cfg ...Config) BackendOptions {
	return BackendOptions{Readers: cfg, PollInterval: 20 * time.Millisecond, SAMPollInterval: 50 * time.Millisecond,
		ReopenMin: 20 * time.Millisecond, ReopenMax: 200 * time.Millisecond}
}

// expect returns the next event that is not a ReaderError and checks its
// kind and slot ("" for reader events).
func expect(t *testing.T, ch <-chan reader.Event, kind reader.EventKind, slotID string) reader.Event {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				t.Fatalf("events closed while waiting for %s", kind)
			}
			if ev.Kind == reader.ReaderError {
				continue
			}
			if ev.Kind != kind || ev.SlotID != slotID {
				t.Fatalf("event %s, want %s %s", ev, kind, slotID)
			}
			return ev
		case <-deadline:
			t.Fatalf("no %s %s within 10 s", kind, slotID)
		}
	}
}

// The Manager sees a serial reader appear with its slots, cards come and
// go in the user and PSAM slots, the port vanish (ReaderRemoved) and the
// reader come back on a new pty behind the same path (ReaderAdded, same
// ID); a slot handed out before keeps working after a new Connect.
func TestBackendHotplug(t *testing.T) {
	forEachProfile(t, func(t *testing.T, name string) {
		p := loadProfile(t, name)
		ssc, psam1, psam2 := copyCard(t, "ssc-gen3.yaml"), copyCard(t, "psam.yaml"), copyCard(t, "psam.yaml")
		sscATR, psamATR := atrOf(ssc), atrOf(psam1)
		link := filepath.Join(t.TempDir(), "ttyREADER")
		emu1, pt1 := serveEmu(t, p, map[string]virtual.Card{"user": ssc, "psam1": psam1})
		repoint(t, link, pt1.Path)

		b, err := NewBackend(fastOptions(Config{Port: link, Profile: p}))
		if err != nil {
			t.Fatal(err)
		}
		m := reader.NewManager(reader.ManagerOptions{Backends: []reader.Backend{b}})
		sub := m.Subscribe()
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); _ = m.Run(ctx) }()
		t.Cleanup(func() {
			cancel()
			<-done
			_ = m.Close()
			_ = b.Close()
		})
		ch := sub.Events()
		rid := "serial:" + p.ID + "@" + link

		ev := expect(t, ch, reader.ReaderAdded, "")
		if ev.ReaderID != rid || ev.Backend != BackendName || len(ev.Reader.Slots) != len(p.Slots) {
			t.Fatalf("ReaderAdded %s with %d slots, want %s with %d", ev.ReaderID, len(ev.Reader.Slots), rid, len(p.Slots))
		}
		user, s1, s2 := ev.Reader.Slots[0], ev.Reader.Slots[1], ev.Reader.Slots[2]
		if user.ID != rid+":user" || !user.Present || !bytes.Equal(user.ATR, sscATR) {
			t.Errorf("user slot %+v, want present with ATR % X", user, sscATR)
		}
		if s1.ID != rid+":psam1" || !s1.Present || !bytes.Equal(s1.ATR, psamATR) {
			t.Errorf("psam1 slot %+v, want present with ATR % X", s1, psamATR)
		}
		if s2.ID != rid+":psam2" || s2.Present {
			t.Errorf("psam2 slot %+v, want empty", s2)
		}

		// Cards at run time.
		if err := emu1.Remove("user"); err != nil {
			t.Fatal(err)
		}
		expect(t, ch, reader.CardRemoved, rid+":user")
		if err := emu1.Insert("user", ssc); err != nil {
			t.Fatal(err)
		}
		if ev := expect(t, ch, reader.CardInserted, rid+":user"); !bytes.Equal(ev.ATR, sscATR) {
			t.Errorf("CardInserted ATR % X, want % X", ev.ATR, sscATR)
		}
		if err := emu1.Insert("psam2", psam2); err != nil {
			t.Fatal(err)
		}
		if ev := expect(t, ch, reader.CardInserted, rid+":psam2"); !bytes.Equal(ev.ATR, psamATR) {
			t.Errorf("psam2 CardInserted ATR % X, want % X", ev.ATR, psamATR)
		}
		rs := m.Readers()
		if len(rs) != 1 || !rs[0].Slots[2].Present {
			t.Errorf("Manager snapshot %+v lacks the PSAM inserted in psam2", rs)
		}

		// The slot through the Manager.
		slot, err := m.Slot(rid + ":user")
		if err != nil {
			t.Fatal(err)
		}
		cctx := ctxT(t)
		if atr, err := slot.Connect(cctx); err != nil || !bytes.Equal(atr, sscATR) {
			t.Fatalf("Connect → % X, %v", atr, err)
		}
		if resp, err := slot.Transmit(cctx, selectSSSE); err != nil || resp[len(resp)-2] != 0x61 && resp[len(resp)-2] != 0x90 {
			t.Fatalf("SELECT → % X, %v", resp, err)
		}

		// Unplug.
		if err := pt1.CloseMaster(); err != nil {
			t.Fatal(err)
		}
		if ev := expect(t, ch, reader.ReaderRemoved, ""); ev.ReaderID != rid {
			t.Errorf("ReaderRemoved %s, want %s", ev.ReaderID, rid)
		}
		if _, err := slot.Transmit(cctx, selectSSSE); !errors.Is(err, reader.ErrReaderGone) {
			t.Errorf("Transmit while unplugged: %v, want ErrReaderGone", err)
		}
		if len(m.Readers()) != 0 {
			t.Errorf("snapshot still lists %+v", m.Readers())
		}

		// Re-plug: a new device behind the same path.
		_, pt2 := serveEmu(t, p, map[string]virtual.Card{"user": ssc})
		repoint(t, link, pt2.Path)
		ev = expect(t, ch, reader.ReaderAdded, "")
		if ev.ReaderID != rid || !ev.Reader.Slots[0].Present || ev.Reader.Slots[1].Present {
			t.Fatalf("ReaderAdded after re-plug: %s %+v", ev.ReaderID, ev.Reader.Slots)
		}
		if _, err := slot.Transmit(cctx, selectSSSE); !errors.Is(err, reader.ErrReaderGone) {
			t.Errorf("Transmit on a connection from before the re-plug: %v, want ErrReaderGone", err)
		}
		if _, err := slot.Connect(cctx); err != nil {
			t.Fatalf("Connect after re-plug: %v", err)
		}
		if resp, err := slot.Transmit(cctx, selectSSSE); err != nil || len(resp) < 2 {
			t.Fatalf("SELECT after re-plug → % X, %v", resp, err)
		}
	})
}

// Polling never powers (resets) a card somebody has connected, neither the
// user card nor a PSAM, and reports both in use.
func TestBackendPollKeepsConnectedCards(t *testing.T) {
	forEachProfile(t, func(t *testing.T, name string) {
		p := loadProfile(t, name)
		user, sam := &countingCard{Card: newTestCard(atrT0)}, &countingCard{Card: newTestCard(atrT1)}
		emu, pt := serveEmu(t, p, map[string]virtual.Card{"user": user, "psam1": sam})
		o := fastOptions(Config{Port: pt.Path, Profile: p})
		o.SAMPollInterval = 10 * time.Millisecond
		o.PollInterval = 10 * time.Millisecond
		b, err := NewBackend(o)
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		ctx := ctxT(t)
		rs, err := b.Readers(ctx)
		if err != nil || len(rs) != 1 {
			t.Fatalf("Readers → %+v, %v", rs, err)
		}
		rid := rs[0].ID
		us, err := b.Slot(rid + ":user")
		if err != nil {
			t.Fatal(err)
		}
		ps, err := b.Slot(rid + ":psam1")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := us.Connect(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := ps.Connect(ctx); err != nil {
			t.Fatal(err)
		}
		userOns, samOns := user.count(), sam.count()

		wctx, stop := context.WithCancel(ctx)
		var wg sync.WaitGroup
		wg.Go(func() { _ = b.Watch(wctx, func(reader.Event) {}) })
		before := emu.Stats().Commands
		for emu.Stats().Commands < before+40 {
			if ctx.Err() != nil {
				t.Fatal("the backend does not poll")
			}
			time.Sleep(5 * time.Millisecond)
		}
		for i := 0; i < 3; i++ {
			if resp, err := us.Transmit(ctx, selectSSSE); err != nil || !bytes.Equal(resp, fciSSSE) {
				t.Fatalf("user SELECT while polled → % X, %v", resp, err)
			}
			if resp, err := ps.Transmit(ctx, readTermNo); err != nil || len(resp) != 8 {
				t.Fatalf("PSAM READ BINARY while polled → % X, %v", resp, err)
			}
		}
		stop()
		wg.Wait()
		if user.count() != userOns || sam.count() != samOns {
			t.Errorf("power-ons during polling: user %d→%d, psam1 %d→%d; want none", userOns, user.count(), samOns, sam.count())
		}
		rs, err = b.Readers(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if u, s := rs[0].Slots[0], rs[0].Slots[1]; !u.InUse || !s.InUse || !bytes.Equal(u.ATR, atrT0) || !bytes.Equal(s.ATR, atrT1) {
			t.Errorf("connected slots listed as %+v and %+v, want in use with their ATRs", u, s)
		}
		if err := us.Disconnect(); err != nil {
			t.Errorf("Disconnect: %v", err)
		}
	})
}

func TestBackendErrors(t *testing.T) {
	p := loadProfile(t, "crt310.yaml")
	for _, tc := range []struct {
		name string
		cfg  []Config
	}{
		{"no port", []Config{{Profile: p}}},
		{"no profile", []Config{{Port: "/dev/ttyUSB0"}}},
		{"port twice", []Config{{Port: "/dev/ttyUSB0", Profile: p}, {Port: "/dev/ttyUSB0", Profile: p}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := NewBackend(BackendOptions{Readers: tc.cfg}); err == nil {
				t.Error("NewBackend accepted it")
			}
		})
	}

	missing := filepath.Join(t.TempDir(), "ttyGONE")
	b, err := NewBackend(fastOptions(Config{Port: missing, Profile: p, Name: "kiosk reader"}))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx := ctxT(t)
	rs, err := b.Readers(ctx)
	if len(rs) != 0 || !errors.Is(err, reader.ErrReaderGone) {
		t.Errorf("Readers with a missing port → %+v, %v; want none and ErrReaderGone", rs, err)
	}
	rid := "serial:" + p.ID + "@" + missing
	if _, err := b.Slot("serial:other@/dev/x:user"); !errors.Is(err, reader.ErrUnknownSlot) {
		t.Errorf("Slot of an unknown reader: %v", err)
	}
	if _, err := b.Slot(rid + ":psam9"); !errors.Is(err, reader.ErrUnknownSlot) {
		t.Errorf("Slot the profile lacks: %v", err)
	}
	s, err := b.Slot(rid + ":user")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Connect(ctx); !errors.Is(err, reader.ErrReaderGone) {
		t.Errorf("Connect on a closed reader: %v, want ErrReaderGone", err)
	}
	if _, err := b.Reader(rid); !errors.Is(err, reader.ErrReaderGone) {
		t.Errorf("Reader of a closed port: %v", err)
	}

	// Watch retries with back-off and reports the failure once, not per
	// attempt.
	var mu sync.Mutex
	var evs []reader.Event
	wctx, cancel := context.WithTimeout(ctx, 400*time.Millisecond)
	defer cancel()
	if err := b.Watch(wctx, func(ev reader.Event) { mu.Lock(); evs = append(evs, ev); mu.Unlock() }); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(evs) != 1 || evs[0].Kind != reader.ReaderError || evs[0].ReaderID != rid || !errors.Is(evs[0].Err, reader.ErrReaderGone) {
		t.Errorf("events %v, want one ReaderError for %s wrapping ErrReaderGone", evs, rid)
	}
}

// A port with a /dev/serial/by-id-style link is named by the link.
func TestBackendStablePort(t *testing.T) {
	dir := t.TempDir()
	dev := filepath.Join(dir, "ttyUSB0")
	if err := os.WriteFile(dev, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	byID := filepath.Join(dir, "by-id")
	if err := os.Mkdir(byID, 0o700); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(byID, "usb-FTDI_FT232R_A1B2C3-if00-port0")
	if err := os.Symlink(dev, link); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(dir, "ttyUSB1")
	for _, tc := range []struct{ port, want string }{
		{dev, link}, {link, link}, {other, other},
	} {
		if got := stablePortIn(byID, tc.port); got != tc.want {
			t.Errorf("stablePortIn(%s) = %s, want %s", tc.port, got, tc.want)
		}
	}
}

// A reader that stops answering behind a working port (switched off) is
// reported removed after FailuresBeforeGone failed polls, and added again
// once it answers.
func TestBackendSilentReader(t *testing.T) {
	p := loadProfile(t, "crt310.yaml")
	p.Link.Timers.ACK = 30 * time.Millisecond // a silent exchange fails in 4 × 30 ms
	emu, pt := serveEmu(t, p, map[string]virtual.Card{"user": newTestCard(atrT0)})
	b, err := NewBackend(fastOptions(Config{Port: pt.Path, Profile: p}))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan reader.Event, 64)
	done := make(chan struct{})
	go func() { defer close(done); _ = b.Watch(ctx, func(ev reader.Event) { ch <- ev }) }()
	defer func() { cancel(); <-done }()

	added := expect(t, ch, reader.ReaderAdded, "")
	emu.SetFaults(Faults{Silent: true})
	var errs int
	deadline := time.After(10 * time.Second)
wait:
	for {
		select {
		case ev := <-ch:
			switch ev.Kind {
			case reader.ReaderError:
				errs++
				if !errors.Is(ev.Err, reader.ErrTimeout) {
					t.Errorf("ReaderError %v, want ErrTimeout", ev.Err)
				}
			case reader.ReaderRemoved:
				break wait
			default:
				t.Fatalf("unexpected %s", ev)
			}
		case <-deadline:
			t.Fatal("a silent reader was never removed")
		}
	}
	if errs != 1 {
		t.Errorf("%d ReaderError events before the removal, want 1", errs)
	}
	emu.SetFaults(Faults{})
	if ev := expect(t, ch, reader.ReaderAdded, ""); ev.ReaderID != added.ReaderID {
		t.Errorf("re-added as %s, want %s", ev.ReaderID, added.ReaderID)
	}
}

// Close during Watch reports the reader removed, fails its slots with
// ErrReaderGone and stops reopening the port.
func TestBackendClose(t *testing.T) {
	p := loadProfile(t, "ict3q8.yaml")
	emu, pt := serveEmu(t, p, map[string]virtual.Card{"user": newTestCard(atrT0)})
	b, err := NewBackend(fastOptions(Config{Port: pt.Path, Profile: p}))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan reader.Event, 64)
	done := make(chan struct{})
	go func() { defer close(done); _ = b.Watch(ctx, func(ev reader.Event) { ch <- ev }) }()
	ev := expect(t, ch, reader.ReaderAdded, "")
	s, err := b.Slot(ev.Reader.Slots[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	expect(t, ch, reader.ReaderRemoved, "")
	if _, err := s.Connect(ctxT(t)); !errors.Is(err, reader.ErrReaderGone) {
		t.Errorf("Connect after Close: %v, want ErrReaderGone", err)
	}
	before := emu.Stats().Commands
	time.Sleep(100 * time.Millisecond) // several poll and reopen periods
	cancel()
	<-done
	if n := emu.Stats().Commands; n != before {
		t.Errorf("%d commands reached the reader after Close", n-before)
	}
	select {
	case ev := <-ch:
		t.Errorf("event after Close: %s", ev)
	default:
	}
}
