package reader_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/onecard-hub/onecard/reader"
	"github.com/onecard-hub/onecard/reader/virtual"
)

// fakeBackend sends the events the test feeds it; each Watch call reads
// from in until ctx is done or fail is closed (then it returns errFail).
// acks gets one value per event sent, so the test knows it was applied.
type fakeBackend struct {
	name    string
	in      chan reader.Event
	acks    chan struct{}
	fail    chan struct{}
	watches atomic.Int32
}

var errFail = errors.New("fake backend failed")

func newFake(name string) *fakeBackend {
	return &fakeBackend{name: name, in: make(chan reader.Event), acks: make(chan struct{}), fail: make(chan struct{}, 1)}
}

func (f *fakeBackend) Name() string { return f.name }
func (f *fakeBackend) Readers(context.Context) ([]reader.ReaderInfo, error) {
	return nil, nil
}
func (f *fakeBackend) Slot(id string) (reader.Slot, error) {
	if id == f.name+":slot" {
		return virtual.NewSlot(id, nil), nil
	}
	return nil, fmt.Errorf("fake: %w", reader.ErrUnknownSlot)
}
func (f *fakeBackend) Watch(ctx context.Context, send func(reader.Event)) error {
	f.watches.Add(1)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-f.fail:
			return errFail
		case ev := <-f.in:
			send(ev)
			f.acks <- struct{}{}
		}
	}
}

// feed sends ev through the backend and waits until the Manager applied it.
func (f *fakeBackend) feed(t *testing.T, ev reader.Event) {
	t.Helper()
	select {
	case f.in <- ev:
	case <-time.After(10 * time.Second):
		t.Fatal("backend not watching")
	}
	<-f.acks
}

func run(t *testing.T, m *reader.Manager) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- m.Run(context.Background()) }()
	t.Cleanup(func() {
		_ = m.Close()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

func next(t *testing.T, sub *reader.Subscription) reader.Event {
	t.Helper()
	select {
	case ev, ok := <-sub.Events():
		if !ok {
			t.Fatal("subscription closed")
		}
		return ev
	case <-time.After(10 * time.Second):
		t.Fatal("no event")
	}
	return reader.Event{}
}

func rdr(id string, slots ...string) reader.ReaderInfo {
	r := reader.ReaderInfo{ID: id, Name: "name of " + id}
	for _, s := range slots {
		r.Slots = append(r.Slots, reader.SlotInfo{ID: s, Name: s})
	}
	return r
}

func TestManagerSnapshotAndEvents(t *testing.T) {
	f := newFake("fake")
	m := reader.NewManager(reader.ManagerOptions{Backends: []reader.Backend{f}})
	sub := m.Subscribe()
	run(t, m)
	atr := h("3B021450")
	f.feed(t, reader.Event{Kind: reader.ReaderAdded, Reader: rdr("fake:r1", "fake:r1/0", "fake:r1/1")})
	f.feed(t, reader.Event{Kind: reader.CardInserted, ReaderID: "fake:r1", SlotID: "fake:r1/1", ATR: atr})
	f.feed(t, reader.Event{Kind: reader.ReaderAdded, Reader: rdr("fake:r0", "fake:r0/0")})
	f.feed(t, reader.Event{Kind: reader.CardInserted, ReaderID: "fake:r0", SlotID: "fake:r0/0", Mute: true})
	f.feed(t, reader.Event{Kind: reader.ReaderError, ReaderID: "fake:r0", Err: reader.ErrTimeout})
	// A removal of an unknown reader is not reported.
	f.feed(t, reader.Event{Kind: reader.ReaderRemoved, ReaderID: "fake:nope"})
	f.feed(t, reader.Event{Kind: reader.ReaderRemoved, ReaderID: "fake:r0"})

	want := []struct {
		kind   reader.EventKind
		reader string
	}{
		{reader.ReaderAdded, "fake:r1"}, {reader.CardInserted, "fake:r1"}, {reader.ReaderAdded, "fake:r0"},
		{reader.CardInserted, "fake:r0"}, {reader.ReaderError, "fake:r0"}, {reader.ReaderRemoved, "fake:r0"},
	}
	for i, w := range want {
		ev := next(t, sub)
		if ev.Kind != w.kind || ev.ReaderID != w.reader || ev.Backend != "fake" || ev.Time.IsZero() || ev.Missed != 0 {
			t.Fatalf("event %d: %v (%+v), want %v %s", i, ev, ev, w.kind, w.reader)
		}
		if ev.Kind == reader.ReaderAdded && (ev.Reader.Backend != "fake" || ev.Reader.ID != ev.ReaderID) {
			t.Fatalf("ReaderAdded reader %+v", ev.Reader)
		}
	}
	snap := m.Readers()
	if len(snap) != 1 || snap[0].ID != "fake:r1" || snap[0].Backend != "fake" {
		t.Fatalf("snapshot %+v", snap)
	}
	if s := snap[0].Slots[1]; !s.Present || !bytes.Equal(s.ATR, atr) || s.Mute {
		t.Fatalf("slot %+v", s)
	}
	// The snapshot is a copy.
	snap[0].Slots[1].ATR[0] = 0
	if m.Readers()[0].Slots[1].ATR[0] != 0x3B {
		t.Fatal("snapshot shares memory with the manager")
	}
	f.feed(t, reader.Event{Kind: reader.CardRemoved, ReaderID: "fake:r1", SlotID: "fake:r1/1"})
	if ev := next(t, sub); ev.Kind != reader.CardRemoved || ev.SlotID != "fake:r1/1" {
		t.Fatalf("event %v", ev)
	}
	if s := m.Readers()[0].Slots[1]; s.Present || s.ATR != nil {
		t.Fatalf("slot after removal %+v", s)
	}

	// Slot lookup: from the owning backend, else asking every backend.
	if s, err := m.Slot("fake:slot"); err != nil || s.ID() != "virtual:fake:slot" {
		t.Fatalf("Slot: %v %v", s, err)
	}
	if _, err := m.Slot("other:slot"); !errors.Is(err, reader.ErrUnknownSlot) {
		t.Fatalf("Slot of an unknown ID: %v", err)
	}

	// Close ends Run and subscriptions; later calls fail with ErrClosed.
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	// Run's end removes the readers (reported), then the channel closes.
	if ev := next(t, sub); ev.Kind != reader.ReaderRemoved || ev.ReaderID != "fake:r1" {
		t.Fatalf("event at Close: %v", ev)
	}
	if ev, ok := <-sub.Events(); ok {
		t.Fatalf("subscription open after Close: %v", ev)
	}
	if len(m.Readers()) != 0 {
		t.Fatal("snapshot kept after Close")
	}
	if err := m.Run(context.Background()); !errors.Is(err, reader.ErrClosed) {
		t.Fatalf("Run after Close: %v", err)
	}
	if _, ok := <-m.Subscribe().Events(); ok {
		t.Fatal("Subscribe after Close gave an open channel")
	}
	if _, err := m.Slot("fake:slot"); !errors.Is(err, reader.ErrClosed) {
		t.Fatalf("Slot after Close: %v", err)
	}
	if err := m.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestManagerSlowSubscriber(t *testing.T) {
	f := newFake("fake")
	m := reader.NewManager(reader.ManagerOptions{Backends: []reader.Backend{f}, Buffer: 4})
	slow, fast := m.Subscribe(), m.Subscribe()
	run(t, m)
	f.feed(t, reader.Event{Kind: reader.ReaderAdded, Reader: rdr("fake:r", "fake:r/0")})
	if ev := next(t, fast); ev.Kind != reader.ReaderAdded {
		t.Fatalf("fast: %v", ev)
	}
	const n = 10
	for i := range n {
		kind := reader.CardInserted
		if i%2 == 1 {
			kind = reader.CardRemoved
		}
		f.feed(t, reader.Event{Kind: kind, ReaderID: "fake:r", SlotID: "fake:r/0"})
		if ev := next(t, fast); ev.Kind != kind || ev.Missed != 0 {
			t.Fatalf("fast subscriber: %v", ev)
		}
	}
	// slow holds ReaderAdded + 3 card events; the other 7 were dropped.
	if got := slow.Dropped(); got != n+1-4 {
		t.Fatalf("Dropped = %d, want %d", got, n+1-4)
	}
	for range 4 {
		if ev := next(t, slow); ev.Missed != 0 {
			t.Fatalf("buffered event with Missed %d", ev.Missed)
		}
	}
	f.feed(t, reader.Event{Kind: reader.CardInserted, ReaderID: "fake:r", SlotID: "fake:r/0"})
	if ev := next(t, slow); ev.Missed != n+1-4 || ev.Kind != reader.CardInserted {
		t.Fatalf("first event after the gap: %v", ev)
	}
	// The snapshot has the truth the slow subscriber missed.
	if s := m.Readers()[0].Slots[0]; !s.Present {
		t.Fatalf("snapshot slot %+v", s)
	}
	if fast.Dropped() != 0 {
		t.Fatalf("fast subscriber dropped %d", fast.Dropped())
	}
	slow.Close()
	slow.Close()
	if _, ok := <-slow.Events(); ok {
		t.Fatal("closed subscription still open")
	}
	f.feed(t, reader.Event{Kind: reader.CardRemoved, ReaderID: "fake:r", SlotID: "fake:r/0"})
	next(t, fast)
}

func TestManagerBackendFailure(t *testing.T) {
	f, other := newFake("fake"), newFake("other")
	m := reader.NewManager(reader.ManagerOptions{Backends: []reader.Backend{f, other}, RetryMin: time.Millisecond, RetryMax: 10 * time.Millisecond})
	sub := m.Subscribe()
	run(t, m)
	f.feed(t, reader.Event{Kind: reader.ReaderAdded, Reader: rdr("fake:r", "fake:r/0")})
	other.feed(t, reader.Event{Kind: reader.ReaderAdded, Reader: rdr("other:r", "other:r/0")})
	next(t, sub)
	next(t, sub)
	f.fail <- struct{}{}
	if ev := next(t, sub); ev.Kind != reader.ReaderRemoved || ev.ReaderID != "fake:r" {
		t.Fatalf("after failure: %v", ev)
	}
	if ev := next(t, sub); ev.Kind != reader.ReaderError || !errors.Is(ev.Err, errFail) || ev.Backend != "fake" {
		t.Fatalf("after failure: %v", ev)
	}
	// Watch is called again and the backend reports its reader anew.
	f.feed(t, reader.Event{Kind: reader.ReaderAdded, Reader: rdr("fake:r", "fake:r/0")})
	if ev := next(t, sub); ev.Kind != reader.ReaderAdded || ev.ReaderID != "fake:r" {
		t.Fatalf("after restart: %v", ev)
	}
	if n := f.watches.Load(); n != 2 {
		t.Fatalf("Watch called %d times, want 2", n)
	}
	if snap := m.Readers(); len(snap) != 2 {
		t.Fatalf("snapshot %+v", snap)
	}
}

func TestManagerRunErrors(t *testing.T) {
	m := reader.NewManager(reader.ManagerOptions{Backends: []reader.Backend{newFake("a"), newFake("a")}})
	if err := m.Run(context.Background()); err == nil {
		t.Fatal("two backends with one name accepted")
	}
	f := newFake("fake")
	m = reader.NewManager(reader.ManagerOptions{Backends: []reader.Backend{f}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	f.feed(t, reader.Event{Kind: reader.ReaderAdded, Reader: rdr("fake:r")})
	if err := m.Run(ctx); err == nil {
		t.Fatal("second concurrent Run accepted")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run after cancel: %v", err)
	}
	// Run may be called again after it returned.
	ctx, cancel = context.WithCancel(context.Background())
	go func() { done <- m.Run(ctx) }()
	f.feed(t, reader.Event{Kind: reader.ReaderAdded, Reader: rdr("fake:r")})
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("second Run: %v", err)
	}
}

func TestManagerStaticBackend(t *testing.T) {
	card := &scriptCard{}
	user, sam := virtual.NewSlot("user", card), virtual.NewSlot("sam", nil)
	be := reader.NewStaticBackend(reader.StaticOptions{
		Readers:  []reader.StaticReader{{ID: "virtual:kiosk", Slots: []reader.Slot{user, sam}}},
		Interval: 5 * time.Millisecond,
	})
	infos, err := be.Readers(context.Background())
	if err != nil || len(infos) != 1 || infos[0].Name != "virtual:kiosk" || !infos[0].Slots[0].Present || infos[0].Slots[1].Present {
		t.Fatalf("Readers: %+v %v", infos, err)
	}
	var traced atomic.Int32
	m := reader.NewManager(reader.ManagerOptions{Backends: []reader.Backend{be}, Trace: func(reader.TraceEvent) { traced.Add(1) }})
	sub := m.Subscribe()
	run(t, m)
	ev := next(t, sub)
	if ev.Kind != reader.ReaderAdded || ev.Backend != "virtual" || len(ev.Reader.Slots) != 2 || ev.Reader.Slots[0].ID != "virtual:user" {
		t.Fatalf("first event %v %+v", ev, ev.Reader)
	}
	sam.Insert(card)
	if ev := next(t, sub); ev.Kind != reader.CardInserted || ev.SlotID != "virtual:sam" || ev.ReaderID != "virtual:kiosk" {
		t.Fatalf("insert: %v", ev)
	}
	user.Remove()
	if ev := next(t, sub); ev.Kind != reader.CardRemoved || ev.SlotID != "virtual:user" {
		t.Fatalf("remove: %v", ev)
	}
	s, err := m.Slot("virtual:sam")
	if err != nil {
		t.Fatal(err)
	}
	if ts, ok := s.(*reader.TracedSlot); !ok || ts.Unwrap() != reader.Slot(sam) {
		t.Fatalf("Slot returned %T", s)
	}
	if _, err := s.Connect(context.Background()); err != nil || traced.Load() != 1 {
		t.Fatalf("Connect: %v, %d trace events", err, traced.Load())
	}
	if _, err := be.Slot("virtual:none"); !errors.Is(err, reader.ErrUnknownSlot) {
		t.Fatalf("unknown slot: %v", err)
	}
}

func TestReaderBeginPlainSlot(t *testing.T) {
	s := virtual.NewSlot("user", &scriptCard{})
	ctx := context.Background()
	if _, err := s.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	tx, err := reader.Begin(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	if r, err := tx.Transmit(ctx, h("00A4040002 3F00")); err != nil || !bytes.Equal(r, h("6102")) {
		t.Fatalf("Tx.Transmit: % X %v", r, err)
	}
	if err := tx.End(); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Transmit(ctx, h("00A4040002 3F00")); !errors.Is(err, reader.ErrTxEnded) {
		t.Fatalf("after End: %v", err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := reader.Begin(cancelled, s); !errors.Is(err, context.Canceled) {
		t.Fatalf("Begin with a cancelled context: %v", err)
	}
}
