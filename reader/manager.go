package reader

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"
)

// ManagerOptions configures a Manager. The zero value has safe defaults but
// no backends.
type ManagerOptions struct {
	// Backends are watched by Run; their names must differ.
	Backends []Backend
	// Buffer is the number of events each subscription buffers before
	// events are dropped for it (see Subscribe). Default 64.
	Buffer int
	// RetryMin and RetryMax bound the back-off before Watch is called again
	// on a backend whose Watch returned an error. Defaults 100 ms and 5 s.
	RetryMin, RetryMax time.Duration
	// Trace, when set, wraps every slot Manager.Slot returns with Traced.
	Trace func(TraceEvent)
	// Logger receives backend failures. Default: discard.
	Logger *slog.Logger
}

// Manager enumerates the readers of all its backends, keeps a snapshot of
// them (Readers) and streams their changes to subscribers (Subscribe).
//
// Run watches the backends; Close stops Run and ends every subscription.
// All methods are safe for concurrent use.
type Manager struct {
	opts ManagerOptions
	log  *slog.Logger

	mu      sync.Mutex
	readers map[string]*readerEntry // by reader ID
	subs    map[*Subscription]struct{}
	running bool
	closed  bool
	stop    context.CancelFunc // cancels an active Run
	done    chan struct{}      // closed when the active Run returns
}

type readerEntry struct {
	backend Backend
	info    ReaderInfo
}

// NewManager returns a Manager for opts.Backends; call Run to start it.
func NewManager(opts ManagerOptions) *Manager {
	if opts.Buffer <= 0 {
		opts.Buffer = 64
	}
	if opts.RetryMin <= 0 {
		opts.RetryMin = 100 * time.Millisecond
	}
	if opts.RetryMax < opts.RetryMin {
		opts.RetryMax = max(5*time.Second, opts.RetryMin)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Manager{
		opts:    opts,
		log:     log,
		readers: make(map[string]*readerEntry),
		subs:    make(map[*Subscription]struct{}),
	}
}

// Run watches every backend until ctx is done or Close is called, then
// removes their readers from the snapshot (sending ReaderRemoved for each)
// and returns nil; Run may be called again after it returned. A backend whose Watch fails is reported as a ReaderError
// event, its readers are removed (ReaderRemoved), and it is watched again
// after a bounded back-off. Run returns ErrClosed after Close, and an error
// when Run is already active or two backends share a name.
func (m *Manager) Run(ctx context.Context) error {
	seen := map[string]bool{}
	for _, b := range m.opts.Backends {
		if seen[b.Name()] {
			return fmt.Errorf("run reader manager: two backends named %q", b.Name())
		}
		seen[b.Name()] = true
	}
	m.mu.Lock()
	switch {
	case m.closed:
		m.mu.Unlock()
		return fmt.Errorf("run reader manager: %w", ErrClosed)
	case m.running:
		m.mu.Unlock()
		return errors.New("run reader manager: already running")
	}
	ctx, cancel := context.WithCancel(ctx)
	m.running, m.stop, m.done = true, cancel, make(chan struct{})
	done := m.done
	m.mu.Unlock()

	var wg sync.WaitGroup
	for _, b := range m.opts.Backends {
		wg.Go(func() { m.watch(ctx, b) })
	}
	wg.Wait()
	cancel()

	m.mu.Lock()
	m.running = false
	m.mu.Unlock()
	close(done)
	return nil
}

// watch runs one backend's Watch until ctx is done.
func (m *Manager) watch(ctx context.Context, b Backend) {
	delay := m.opts.RetryMin
	send := func(ev Event) { m.apply(b, ev) }
	for {
		start := time.Now()
		err := b.Watch(ctx, send)
		m.dropBackend(b)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			err = errors.New("watch returned before it was stopped")
		}
		m.log.Warn("reader backend failed; retrying", "backend", b.Name(), "err", err, "after", delay)
		m.apply(b, Event{Kind: ReaderError, Err: fmt.Errorf("watch %s readers: %w", b.Name(), err)})
		if time.Since(start) > m.opts.RetryMax {
			delay = m.opts.RetryMin // it ran fine for a while
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		delay = min(2*delay, m.opts.RetryMax)
	}
}

// dropBackend removes b's readers from the snapshot, reporting each.
func (m *Manager) dropBackend(b Backend) {
	m.mu.Lock()
	defer m.mu.Unlock()
	ids := make([]string, 0)
	for id, e := range m.readers {
		if e.backend == b {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	for _, id := range ids {
		m.applyLocked(b, Event{Kind: ReaderRemoved, ReaderID: id})
	}
}

// apply updates the snapshot with ev and fans it out.
func (m *Manager) apply(b Backend, ev Event) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.applyLocked(b, ev)
}

func (m *Manager) applyLocked(b Backend, ev Event) {
	if m.closed {
		return
	}
	ev.Backend = b.Name()
	if ev.Time.IsZero() {
		ev.Time = time.Now()
	}
	switch ev.Kind {
	case ReaderAdded:
		ev.Reader = ev.Reader.Clone()
		ev.Reader.Backend = b.Name()
		if ev.ReaderID == "" {
			ev.ReaderID = ev.Reader.ID
		}
		ev.Reader.ID = ev.ReaderID
		m.readers[ev.ReaderID] = &readerEntry{backend: b, info: ev.Reader.Clone()}
	case ReaderRemoved:
		e, ok := m.readers[ev.ReaderID]
		if !ok || e.backend != b {
			return // nothing to remove: do not report it
		}
		delete(m.readers, ev.ReaderID)
	case CardInserted, CardRemoved:
		ev.ATR = cloneBytes(ev.ATR)
		if e, ok := m.readers[ev.ReaderID]; ok && e.backend == b {
			for i := range e.info.Slots {
				s := &e.info.Slots[i]
				if s.ID != ev.SlotID {
					continue
				}
				s.Present = ev.Kind == CardInserted
				s.ATR = nil
				s.Mute = false
				if s.Present {
					s.ATR = cloneBytes(ev.ATR)
					s.Mute = ev.Mute
				}
			}
		}
	}
	for s := range m.subs {
		s.deliver(ev)
	}
}

// Readers returns a snapshot of the readers of all backends, sorted by ID.
// It is empty until Run has heard from the backends.
func (m *Manager) Readers() []ReaderInfo {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.snapshotLocked()
}

func (m *Manager) snapshotLocked() []ReaderInfo {
	out := make([]ReaderInfo, 0, len(m.readers))
	for _, e := range m.readers {
		out = append(out, e.info.Clone())
	}
	slices.SortFunc(out, func(a, b ReaderInfo) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// Slot opens the slot named id (a SlotInfo.ID from Readers or an event),
// wrapped with Traced when ManagerOptions.Trace is set. A slot of a reader
// in the snapshot comes from its backend; otherwise every backend is
// asked. It returns an error wrapping ErrUnknownSlot when no backend knows
// id, and ErrClosed after Close.
func (m *Manager) Slot(id string) (Slot, error) {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil, fmt.Errorf("open slot %q: %w", id, ErrClosed)
	}
	var owner Backend
	for _, e := range m.readers {
		for _, s := range e.info.Slots {
			if s.ID == id {
				owner = e.backend
			}
		}
	}
	m.mu.Unlock()
	backends := m.opts.Backends
	if owner != nil {
		backends = []Backend{owner}
	}
	var errs []error
	for _, b := range backends {
		s, err := b.Slot(id)
		if err == nil {
			if m.opts.Trace != nil {
				return Traced(s, m.opts.Trace), nil
			}
			return s, nil
		}
		if !errors.Is(err, ErrUnknownSlot) {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("open slot %q: %w", id, errors.Join(errs...))
	}
	return nil, fmt.Errorf("open slot %q: %w", id, ErrUnknownSlot)
}

// Close stops Run (waiting for it to return) and ends every subscription:
// their channels are closed. Later calls to Run, Subscribe and Slot fail
// with ErrClosed; Close itself is idempotent and returns nil.
func (m *Manager) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	stop, done := m.stop, m.done
	running := m.running
	m.mu.Unlock()
	if running {
		stop()
		<-done
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	for s := range m.subs {
		s.closeLocked()
	}
	clear(m.subs)
	return nil
}

// Subscription receives a Manager's events. Each subscription has its own
// bounded buffer: the Manager never waits for a subscriber. When a
// subscriber falls behind and its buffer is full, further events are
// dropped for it and counted; the next event it does receive carries the
// number dropped just before it in Event.Missed (Dropped gives the total),
// telling it to re-read Manager.Readers.
type Subscription struct {
	m       *Manager
	ch      chan Event
	dropped uint64 // total dropped; guarded by m.mu
	missed  uint64 // dropped since the last delivered event; guarded by m.mu
	closed  bool   // guarded by m.mu
}

// Subscribe returns a new subscription. It starts with one ReaderAdded
// event per reader already known (in ID order, with current slot states),
// so a subscriber sees every reader exactly once however late it joins,
// then receives live events. The buffer holds ManagerOptions.Buffer events
// beyond those. After Close, Subscribe returns a subscription whose channel
// is already closed.
func (m *Manager) Subscribe() *Subscription {
	m.mu.Lock()
	defer m.mu.Unlock()
	snap := m.snapshotLocked()
	s := &Subscription{m: m, ch: make(chan Event, m.opts.Buffer+len(snap))}
	if m.closed {
		s.closeLocked()
		return s
	}
	now := time.Now()
	for _, r := range snap {
		s.ch <- Event{Kind: ReaderAdded, Backend: r.Backend, ReaderID: r.ID, Reader: r, Time: now}
	}
	m.subs[s] = struct{}{}
	return s
}

// Events returns the subscription's channel. It is closed by Close (of the
// subscription or the Manager).
func (s *Subscription) Events() <-chan Event { return s.ch }

// Dropped returns how many events were dropped for this subscription
// because its buffer was full.
func (s *Subscription) Dropped() uint64 {
	s.m.mu.Lock()
	defer s.m.mu.Unlock()
	return s.dropped
}

// Close ends the subscription and closes its channel. It is idempotent.
func (s *Subscription) Close() {
	s.m.mu.Lock()
	defer s.m.mu.Unlock()
	delete(s.m.subs, s)
	s.closeLocked()
}

func (s *Subscription) closeLocked() {
	if !s.closed {
		s.closed = true
		close(s.ch)
	}
}

// deliver queues ev without blocking; the caller holds m.mu.
func (s *Subscription) deliver(ev Event) {
	if s.closed {
		return
	}
	ev.Missed = s.missed
	select {
	case s.ch <- ev:
		s.missed = 0
	default:
		s.dropped++
		s.missed++
	}
}
