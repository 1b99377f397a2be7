package virtual_test

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/onecard-hub/onecard/reader"
	"github.com/onecard-hub/onecard/reader/virtual"
)

func TestSlotID(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"user", "virtual:user"},
		{"virtual:psam", "virtual:psam"},
		{"", "virtual:"},
	} {
		if got := virtual.NewSlot(tc.in, nil).ID(); got != tc.want {
			t.Errorf("NewSlot(%q).ID() = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestSlotLifecycle(t *testing.T) {
	ctx := context.Background()
	type step struct {
		name    string
		do      func(s *virtual.Slot, c *echoCard) ([]byte, error)
		wantErr error // nil = success
		want    []byte
		present bool // slot holds a card afterwards
	}
	connect := func(s *virtual.Slot, _ *echoCard) ([]byte, error) { return s.Connect(ctx) }
	tx := func(cmd []byte) func(s *virtual.Slot, _ *echoCard) ([]byte, error) {
		return func(s *virtual.Slot, _ *echoCard) ([]byte, error) { return s.Transmit(ctx, cmd) }
	}
	insert := func(s *virtual.Slot, c *echoCard) ([]byte, error) { s.Insert(c); return nil, nil }
	remove := func(s *virtual.Slot, _ *echoCard) ([]byte, error) { s.Remove(); return nil, nil }
	pull := func(n int) func(s *virtual.Slot, _ *echoCard) ([]byte, error) {
		return func(s *virtual.Slot, _ *echoCard) ([]byte, error) { s.PullDuring(n); return nil, nil }
	}
	tear := func(s *virtual.Slot, c *echoCard) ([]byte, error) { c.SetTorn(true); return nil, nil }
	echo := mustHex("00DC000003AABBCC")
	echoResp := mustHex("AABBCC9000")

	for _, tc := range []struct {
		name  string
		start bool // card inserted at NewSlot
		steps []step
	}{
		{"empty slot", false, []step{
			{"connect", connect, reader.ErrNoCard, nil, false},
			{"transmit", tx(echo), reader.ErrNoCard, nil, false},
		}},
		{"connect and transmit", true, []step{
			{"transmit before connect", tx(echo), virtual.ErrNotConnected, nil, true},
			{"connect", connect, nil, atrEcho, true},
			{"echo", tx(echo), nil, echoResp, true},
			{"short", tx([]byte{0x00, 0xA4, 0x04}), virtual.ErrShortCommand, nil, true},
		}},
		{"remove then insert needs reconnect", true, []step{
			{"connect", connect, nil, atrEcho, true},
			{"remove", remove, nil, nil, false},
			{"transmit after remove", tx(echo), reader.ErrCardRemoved, nil, false},
			{"connect empty", connect, reader.ErrNoCard, nil, false},
			{"insert", insert, nil, nil, true},
			{"transmit on stale session", tx(echo), reader.ErrCardRemoved, nil, true},
			{"reconnect", connect, nil, atrEcho, true},
			{"echo", tx(echo), nil, echoResp, true},
		}},
		{"pull during second transmit", true, []step{
			{"connect", connect, nil, atrEcho, true},
			{"arm", pull(2), nil, nil, true},
			{"first", tx(echo), nil, echoResp, true},
			{"second pulled", tx(echo), reader.ErrCardRemoved, nil, false},
			{"third", tx(echo), reader.ErrCardRemoved, nil, false},
		}},
		{"pull cancelled", true, []step{
			{"connect", connect, nil, atrEcho, true},
			{"arm", pull(1), nil, nil, true},
			{"cancel", pull(0), nil, nil, true},
			{"echo", tx(echo), nil, echoResp, true},
		}},
		{"card torn", true, []step{
			{"connect", connect, nil, atrEcho, true},
			{"tear", tear, nil, nil, true},
			{"torn", tx(echo), reader.ErrCardRemoved, nil, false},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			card := &echoCard{}
			var s *virtual.Slot
			if tc.start {
				s = virtual.NewSlot("user", card)
			} else {
				s = virtual.NewSlot("user", nil)
			}
			for _, st := range tc.steps {
				got, err := st.do(s, card)
				switch {
				case st.wantErr == nil && err != nil:
					t.Fatalf("%s: %v", st.name, err)
				case st.wantErr != nil && !errors.Is(err, st.wantErr):
					t.Fatalf("%s: err = %v, want %v", st.name, err, st.wantErr)
				case !bytes.Equal(got, st.want):
					t.Fatalf("%s: got % X, want % X", st.name, got, st.want)
				case s.Present() != st.present:
					t.Fatalf("%s: Present() = %v, want %v", st.name, s.Present(), st.present)
				}
			}
		})
	}
}

func TestSlotPullDoesNotApply(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name        string
		arm         func(s *virtual.Slot, c *echoCard)
		wantApplied int
	}{
		{"pull before the card sees it", func(s *virtual.Slot, _ *echoCard) { s.PullDuring(1) }, 0},
		{"torn after the card applied it", func(_ *virtual.Slot, c *echoCard) { c.SetTorn(true) }, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			card := &echoCard{}
			s := virtual.NewSlot("user", card)
			if _, err := s.Connect(ctx); err != nil {
				t.Fatal(err)
			}
			tc.arm(s, card)
			if _, err := s.Transmit(ctx, selectSSSE); !errors.Is(err, reader.ErrCardRemoved) {
				t.Fatalf("Transmit err = %v, want ErrCardRemoved", err)
			}
			if got := card.Applied(); got != tc.wantApplied {
				t.Fatalf("card applied %d commands, want %d", got, tc.wantApplied)
			}
		})
	}
}

func TestSlotContext(t *testing.T) {
	s := virtual.NewSlot("user", &echoCard{})
	if _, err := s.Connect(context.Background()); err != nil {
		t.Fatal(err)
	}
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	expired, cancel2 := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel2()
	for _, tc := range []struct {
		name string
		ctx  context.Context
		want []error
	}{
		{"cancelled", cancelled, []error{context.Canceled}},
		{"deadline", expired, []error{context.DeadlineExceeded, reader.ErrTimeout}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, terr := s.Transmit(tc.ctx, selectSSSE)
			_, cerr := s.Connect(tc.ctx)
			_, rerr := s.Reset(tc.ctx)
			for _, err := range []error{terr, cerr, rerr} {
				for _, w := range tc.want {
					if !errors.Is(err, w) {
						t.Errorf("err = %v, want %v", err, w)
					}
				}
			}
		})
	}
}

func TestSlotResetAndDisconnect(t *testing.T) {
	ctx := context.Background()
	s := virtual.NewSlot("psam", newT0Card())
	if _, err := s.Reset(ctx); !errors.Is(err, virtual.ErrNotConnected) {
		t.Fatalf("Reset before Connect: %v, want ErrNotConnected", err)
	}
	if _, err := s.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	resp, err := s.Transmit(ctx, selectSSSE)
	if err != nil || !bytes.Equal(resp, []byte{0x61, byte(len(fciSSSE))}) {
		t.Fatalf("SELECT: % X, %v", resp, err)
	}
	atr, err := s.Reset(ctx)
	if err != nil || !bytes.Equal(atr, atrT0) {
		t.Fatalf("Reset: % X, %v", atr, err)
	}
	// The reset cleared the pending GET RESPONSE data.
	resp, err = s.Transmit(ctx, mustHex("00C0000013"))
	if err != nil || !bytes.Equal(resp, []byte{0x69, 0x85}) {
		t.Fatalf("GET RESPONSE after reset: % X, %v", resp, err)
	}
	if err := s.Disconnect(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Transmit(ctx, selectSSSE); !errors.Is(err, virtual.ErrNotConnected) {
		t.Fatalf("Transmit after Disconnect: %v, want ErrNotConnected", err)
	}
	s.Remove()
	if _, err := s.Reset(ctx); !errors.Is(err, reader.ErrNoCard) {
		t.Fatalf("Reset on empty slot: %v, want ErrNoCard", err)
	}
}

// badCard answers with less than a status word, or a card error.
type badCard struct{ resp []byte }

func (badCard) PowerOn() []byte                       { return atrEcho }
func (badCard) PowerOff()                             {}
func (c badCard) Transmit(cmd []byte) ([]byte, error) { return c.resp, nil }

func TestSlotBadCardResponse(t *testing.T) {
	ctx := context.Background()
	s := virtual.NewSlot("user", badCard{resp: []byte{0x90}})
	if _, err := s.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Transmit(ctx, selectSSSE); !errors.Is(err, virtual.ErrBadResponse) {
		t.Fatalf("err = %v, want ErrBadResponse", err)
	}
}

// gateCard blocks its first Transmit until release is closed.
type gateCard struct {
	entered chan struct{} // closed when the first command arrives
	release chan struct{}
	once    sync.Once
}

func newGateCard() *gateCard {
	return &gateCard{entered: make(chan struct{}), release: make(chan struct{})}
}

func (c *gateCard) PowerOn() []byte { return atrEcho }
func (c *gateCard) PowerOff()       {}
func (c *gateCard) Transmit(cmd []byte) ([]byte, error) {
	first := false
	c.once.Do(func() { first = true })
	if first {
		close(c.entered)
		<-c.release
	}
	return []byte{0x90, 0x00}, nil
}

func TestSlotSlowCard(t *testing.T) {
	t.Run("removed while the card works", func(t *testing.T) {
		card := newGateCard()
		s := virtual.NewSlot("user", card)
		if _, err := s.Connect(context.Background()); err != nil {
			t.Fatal(err)
		}
		errc := make(chan error, 1)
		go func() {
			_, err := s.Transmit(context.Background(), selectSSSE)
			errc <- err
		}()
		<-card.entered
		s.Remove() // must not wait for the card
		close(card.release)
		if err := <-errc; !errors.Is(err, reader.ErrCardRemoved) {
			t.Fatalf("Transmit = %v, want ErrCardRemoved", err)
		}
	})
	t.Run("context ends while the card works", func(t *testing.T) {
		card := newGateCard()
		s := virtual.NewSlot("user", card)
		if _, err := s.Connect(context.Background()); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		errc := make(chan error, 1)
		go func() {
			_, err := s.Transmit(ctx, selectSSSE)
			errc <- err
		}()
		<-card.entered
		cancel()
		if err := <-errc; !errors.Is(err, context.Canceled) {
			t.Fatalf("Transmit = %v, want context.Canceled", err)
		}
		// The card is still busy: an operation with an ended context
		// fails at once, one with a live context waits for the card.
		if _, err := s.Connect(ctx); !errors.Is(err, context.Canceled) {
			t.Fatalf("Connect while busy with a cancelled ctx = %v", err)
		}
		respc := make(chan []byte, 1)
		go func() {
			resp, err := s.Transmit(context.Background(), selectSSSE)
			if err != nil {
				t.Error(err)
			}
			respc <- resp
		}()
		close(card.release)
		if resp := <-respc; !bytes.Equal(resp, []byte{0x90, 0x00}) {
			t.Fatalf("Transmit after the abandoned one: % X", resp)
		}
	})
}

func TestSlotATR(t *testing.T) {
	card := &echoCard{}
	s := virtual.NewSlot("user", nil)
	if got := s.ATR(); got != nil {
		t.Fatalf("empty slot ATR = % X", got)
	}
	s.Insert(card)
	want := card.PowerOn()
	card.PowerOff()
	if got := s.ATR(); !bytes.Equal(got, want) {
		t.Fatalf("ATR = % X, want % X", got, want)
	}
	if _, err := s.Connect(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := s.ATR(); !bytes.Equal(got, want) {
		t.Fatalf("connected ATR = % X, want % X", got, want)
	}
	s.Remove()
	if got := s.ATR(); got != nil {
		t.Fatalf("after Remove ATR = % X", got)
	}
}
