package pcsc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ebfe/scard"

	"github.com/onecard-hub/onecard/reader"
)

// pnpReader is the pseudo-reader whose state changes when readers are
// added or removed.
const pnpReader = `\\?PnP?\Notification`

// BackendName is the name of the PC/SC backend (ReaderInfo.Backend).
const BackendName = "pcsc"

// Backend is the PC/SC reader.Backend: it lists and watches the readers
// pcscd (or WinSCard) knows and opens Slots on them.
//
// Reader and slot IDs: a reader whose driver reports
// SCARD_ATTR_VENDOR_IFD_SERIAL_NO is "pcsc:sn:<serial>" and its slots
// "pcsc:sn:<serial> <slot>"; otherwise the reader is "pcsc:<friendly name>
// <index>" and its slots are "pcsc:" + the PC/SC name (e.g. "pcsc:Virtual
// PCD 00 00"). The serial number is read once per reader appearance over a
// direct connection (SCARD_SHARE_DIRECT, never used for APDUs).
type Backend struct {
	opts Options

	mu      sync.Mutex
	names   map[string]string // slot ID -> PC/SC reader name
	serials map[string]string // reader group -> serial ("" = none found)
}

// NewBackend returns a PC/SC backend. Nothing is opened until a method is
// called.
func NewBackend(opts Options) *Backend {
	return &Backend{
		opts:    opts.withDefaults(),
		names:   make(map[string]string),
		serials: make(map[string]string),
	}
}

// Name returns BackendName.
func (b *Backend) Name() string { return BackendName }

// listReaders is SCardListReaders with "no readers" as an empty list.
func listReaders(sc *scard.Context) ([]string, error) {
	names, err := sc.ListReaders()
	if errors.Is(err, scard.ErrNoReadersAvailable) {
		return nil, nil
	}
	if err != nil {
		return nil, wrap("SCardListReaders", err)
	}
	return names, nil
}

// Readers lists the PC/SC readers with the current state of their slots
// (including SlotInfo.Exclusive and InUse). Errors wrap
// reader.ErrServiceDown when pcscd is not running.
func (b *Backend) Readers(ctx context.Context) ([]reader.ReaderInfo, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("list PC/SC readers: %w", err)
	}
	sc, err := scard.EstablishContext()
	if err != nil {
		return nil, fmt.Errorf("list PC/SC readers: %w", wrap("SCardEstablishContext", err))
	}
	defer func() { _ = sc.Release() }()
	names, err := listReaders(sc)
	if err != nil {
		return nil, fmt.Errorf("list PC/SC readers: %w", err)
	}
	infos := []reader.ReaderInfo{}
	ids := make(map[string]string)
	if len(names) > 0 {
		states := make([]scard.ReaderState, len(names))
		for i, n := range names {
			states[i] = scard.ReaderState{Reader: n, CurrentState: scard.StateUnaware}
		}
		if err := sc.GetStatusChange(states, 0); err != nil && !errors.Is(err, scard.ErrTimeout) {
			return nil, fmt.Errorf("list PC/SC readers: %w", wrap("SCardGetStatusChange", err))
		}
		var groups []string
		byGroup := make(map[string][]int)
		for i, n := range names {
			g := parseName(n).group
			if _, ok := byGroup[g]; !ok {
				groups = append(groups, g)
			}
			byGroup[g] = append(byGroup[g], i)
		}
		used := make(map[string]bool)
		for _, g := range groups {
			idx := byGroup[g]
			first := parseName(names[idx[0]])
			serial := b.serialFor(sc, first)
			rid := readerID(g, serial)
			if used[rid] { // two readers claim one serial number
				serial, rid = "", readerID(g, "")
			}
			used[rid] = true
			info := reader.ReaderInfo{ID: rid, Name: g, Backend: BackendName, Serial: serial}
			for _, i := range idx {
				n := parseName(names[i])
				si := slotInfo(slotID(rid, n), n.full, states[i].EventState, states[i].Atr)
				si.Exclusive = states[i].EventState&scard.StateExclusive != 0
				si.InUse = states[i].EventState&scard.StateInuse != 0
				info.Slots = append(info.Slots, si)
				ids[si.ID] = n.full
			}
			infos = append(infos, info)
		}
	}
	b.mu.Lock()
	b.names = ids
	b.mu.Unlock()
	return infos, nil
}

func slotInfo(id, name string, ev scard.StateFlag, atr []byte) reader.SlotInfo {
	si := reader.SlotInfo{ID: id, Name: name}
	if ev&scard.StatePresent != 0 {
		si.Present = true
		si.Mute = ev&scard.StateMute != 0
		if !si.Mute {
			si.ATR = append([]byte(nil), atr...)
		}
	}
	return si
}

// serialFor returns the reader's serial number, probing it unless a
// serial is cached for the reader group.
func (b *Backend) serialFor(sc *scard.Context, n readerName) string {
	b.mu.Lock()
	s := b.serials[n.group]
	b.mu.Unlock()
	if s != "" {
		return s
	}
	s = probeSerial(sc, n.full)
	b.mu.Lock()
	b.serials[n.group] = s
	b.mu.Unlock()
	return s
}

// probeSerial reads SCARD_ATTR_VENDOR_IFD_SERIAL_NO over a direct
// connection; "" when the driver does not report it (vpcd does not) or the
// reader cannot be opened.
func probeSerial(sc *scard.Context, name string) string {
	card, err := sc.Connect(name, scard.ShareDirect, scard.ProtocolUndefined)
	if err != nil {
		return ""
	}
	defer func() { _ = card.Disconnect(scard.LeaveCard) }()
	v, err := card.GetAttrib(scard.AttrVendorIfdSerialNo)
	if err != nil || len(v) == 0 {
		return ""
	}
	return cleanSerial(v)
}

// Slot returns a reader.Slot for the slot ID (see Open).
func (b *Backend) Slot(id string) (reader.Slot, error) {
	s, err := b.Open(id)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// Open returns a Slot for a slot ID from Readers or a ReaderAdded event.
// IDs not seen yet are looked up with a fresh listing. It returns an error
// wrapping reader.ErrUnknownSlot when no PC/SC reader has that slot, or
// the listing's error (e.g. reader.ErrServiceDown). When the reader comes
// back under another PC/SC name (another index), Connect finds it again.
func (b *Backend) Open(id string) (*Slot, error) {
	if !strings.HasPrefix(id, "pcsc:") {
		return nil, fmt.Errorf("open PC/SC slot %q: %w", id, reader.ErrUnknownSlot)
	}
	name, ok := b.lookup(id)
	if !ok {
		var err error
		if name, ok, err = b.relist(id); err != nil {
			return nil, fmt.Errorf("open PC/SC slot %q: %w", id, err)
		}
	}
	if !ok {
		return nil, fmt.Errorf("open PC/SC slot %q: %w", id, reader.ErrUnknownSlot)
	}
	return newSlot(id, name, b.opts, func() (string, bool) {
		name, ok, _ := b.relist(id)
		return name, ok
	}), nil
}

func (b *Backend) lookup(id string) (string, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	name, ok := b.names[id]
	return name, ok
}

// relist refreshes the slot names with a fresh listing and looks id up.
func (b *Backend) relist(id string) (string, bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), b.opts.Timeout)
	defer cancel()
	if _, err := b.Readers(ctx); err != nil {
		return "", false, err
	}
	name, ok := b.lookup(id)
	return name, ok, nil
}

// Watch reports the PC/SC readers and their card changes until ctx is
// done, then returns nil; it never gives up.
//
// It runs on a PC/SC context of its own (pcsc-lite holds a context's lock
// for the whole of SCardGetStatusChange), which ctx's cancellation wakes
// with SCardCancel. Each round lists the readers, then waits in
// SCardGetStatusChange on every slot plus \\?PnP?\Notification (unless
// Options.NoPnP, or the stack reports it unknown) for at most
// Options.PollInterval; each slot's EventState, event counter included, is
// carried into its next CurrentState, so a card removed and re-inserted
// between two calls is reported as CardRemoved + CardInserted. pcsc-lite
// 1.9.9 only notices reader changes during a call and keeps the PnP high
// word at 0, hence the re-listing every round.
//
// When pcscd stops or restarts (SCARD_E_NO_SERVICE, SCARD_E_SERVICE_STOPPED,
// SCARD_E_INVALID_HANDLE, or SCARD_F_COMM_ERROR for a call in progress),
// Watch sends a ReaderError wrapping reader.ErrServiceDown and
// ReaderRemoved for every reader, releases the context and establishes a
// new one with back-off (Options.RetryMin..RetryMax); the readers are
// reported again with ReaderAdded when pcscd is back. While pcscd stays
// down the ReaderError is sent once.
func (b *Backend) Watch(ctx context.Context, send func(reader.Event)) error {
	m := &monitor{b: b, send: send, pnp: !b.opts.NoPnP}
	m.reset()
	var (
		cmu  sync.Mutex
		live *scard.Context
	)
	stop := context.AfterFunc(ctx, func() {
		cmu.Lock()
		defer cmu.Unlock()
		if live != nil {
			_ = live.Cancel()
		}
	})
	defer stop()
	log := b.opts.Logger
	delay := b.opts.RetryMin
	down := false // an outage has been reported and pcscd is not back yet
	for ctx.Err() == nil {
		sc, err := scard.EstablishContext()
		if err != nil {
			if !down {
				down = true
				log.Warn("pcscd not reachable; retrying", "err", err)
				send(reader.Event{Kind: reader.ReaderError, Err: fmt.Errorf("connect to the smart-card service: %w", wrap("SCardEstablishContext", err))})
			}
			sleep(ctx, delay)
			delay = min(2*delay, b.opts.RetryMax)
			continue
		}
		cmu.Lock()
		live = sc
		cmu.Unlock()
		m.synced = false
		err = m.run(ctx, sc)
		cmu.Lock()
		live = nil
		cmu.Unlock()
		_ = sc.Release()
		if m.synced {
			if down {
				log.Info("pcscd is back")
			}
			down = false
			delay = b.opts.RetryMin
		}
		if ctx.Err() != nil {
			break
		}
		if !down {
			down = true
			log.Warn("PC/SC context lost; re-establishing", "err", err)
			send(reader.Event{Kind: reader.ReaderError, Err: fmt.Errorf("watch PC/SC readers: %w", err)})
		}
		m.removeAll()
		sleep(ctx, delay)
		delay = min(2*delay, b.opts.RetryMax)
	}
	return nil
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// monitor is the state of one Watch.
type monitor struct {
	b        *Backend
	send     func(reader.Event)
	pnp      bool            // use the PnP pseudo-reader
	pnpState scard.StateFlag // its last EventState
	synced   bool            // the current context listed readers at least once
	slots    map[string]*monSlot
	readers  map[string]*monReader
}

type monSlot struct {
	name   readerName
	id     string
	reader string          // reader ID
	state  scard.StateFlag // last EventState, event counter included
	atr    []byte          // ATR of the card present (nil when none)
}

type monReader struct {
	id, group, serial string
	slots             []string // PC/SC names, sorted
}

func (m *monitor) reset() {
	m.slots = make(map[string]*monSlot)
	m.readers = make(map[string]*monReader)
	m.pnpState = scard.StateUnaware
}

// run watches on sc until ctx is done (nil) or sc is lost (its error).
func (m *monitor) run(ctx context.Context, sc *scard.Context) error {
	poll := m.b.opts.PollInterval
	for ctx.Err() == nil {
		names, err := listReaders(sc)
		if err == nil {
			m.synced = true
			err = m.sync(sc, names)
		}
		if err != nil {
			if contextLost(err) {
				return err
			}
			m.send(reader.Event{Kind: reader.ReaderError, Err: fmt.Errorf("watch PC/SC readers: %w", err)})
			sleep(ctx, poll)
			continue
		}
		states := m.states()
		if len(states) == 0 {
			sleep(ctx, poll)
			continue
		}
		if ctx.Err() != nil {
			break
		}
		err = sc.GetStatusChange(states, poll)
		switch {
		case err == nil:
			m.changed(states)
		case errors.Is(err, scard.ErrTimeout):
		case errors.Is(err, scard.ErrCancelled):
			// ctx's cancellation, checked by the loop.
		case errors.Is(err, scard.ErrUnknownReader):
			// A reader left between listing and waiting; the PnP
			// pseudo-reader is answered this way by stacks without it.
			if m.pnp && len(m.slots) > 0 {
				m.b.opts.Logger.Info("PC/SC stack rejects the PnP pseudo-reader; polling reader list")
				m.pnp = false
			}
		case contextLost(err):
			return wrap("SCardGetStatusChange", err)
		default:
			m.send(reader.Event{Kind: reader.ReaderError, Err: fmt.Errorf("watch PC/SC readers: %w", wrap("SCardGetStatusChange", err))})
			sleep(ctx, poll)
		}
	}
	return nil
}

// sync brings the slot set in line with names, reporting reader changes.
func (m *monitor) sync(sc *scard.Context, names []string) error {
	present := make(map[string]bool, len(names))
	for _, n := range names {
		present[n] = true
	}
	touched := make(map[string]bool)
	for name, sl := range m.slots {
		if present[name] {
			continue
		}
		delete(m.slots, name)
		if r := m.readers[sl.reader]; r != nil {
			r.slots = slices.DeleteFunc(r.slots, func(s string) bool { return s == name })
			touched[r.id] = true
		}
		m.b.forgetName(sl.id)
	}
	var added []string
	for _, n := range names {
		if _, ok := m.slots[n]; !ok && n != pnpReader {
			added = append(added, n)
		}
	}
	if len(added) > 0 {
		states := make([]scard.ReaderState, len(added))
		for i, n := range added {
			states[i] = scard.ReaderState{Reader: n, CurrentState: scard.StateUnaware}
		}
		if err := sc.GetStatusChange(states, 0); err != nil && !errors.Is(err, scard.ErrTimeout) {
			if contextLost(err) {
				return wrap("SCardGetStatusChange", err)
			}
			// Report the readers anyway; their state comes with the
			// next change.
			for i := range states {
				states[i].EventState, states[i].Atr = scard.StateUnaware, nil
			}
		}
		for i, name := range added {
			n := parseName(name)
			r := m.readerFor(sc, n)
			sl := &monSlot{name: n, id: slotID(r.id, n), reader: r.id, state: states[i].EventState}
			if sl.state&scard.StatePresent != 0 && sl.state&scard.StateMute == 0 {
				sl.atr = append([]byte(nil), states[i].Atr...)
			}
			m.slots[name] = sl
			r.slots = append(r.slots, name)
			slices.Sort(r.slots)
			touched[r.id] = true
			m.b.setName(sl.id, name)
		}
	}
	ids := make([]string, 0, len(touched))
	for id := range touched {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		r := m.readers[id]
		if len(r.slots) == 0 {
			delete(m.readers, id)
			m.b.forgetSerial(r.group)
			m.send(reader.Event{Kind: reader.ReaderRemoved, ReaderID: id})
			continue
		}
		m.send(reader.Event{Kind: reader.ReaderAdded, ReaderID: id, Reader: m.info(r)})
	}
	return nil
}

// readerFor returns the reader of slot n, creating it (and probing its
// serial number) for a new reader group.
func (m *monitor) readerFor(sc *scard.Context, n readerName) *monReader {
	for _, r := range m.readers {
		if r.group == n.group {
			return r
		}
	}
	serial := m.b.serialFor(sc, n)
	id := readerID(n.group, serial)
	if _, dup := m.readers[id]; dup { // two readers claim one serial number
		serial, id = "", readerID(n.group, "")
	}
	r := &monReader{id: id, group: n.group, serial: serial}
	m.readers[id] = r
	return r
}

func (m *monitor) info(r *monReader) reader.ReaderInfo {
	info := reader.ReaderInfo{ID: r.id, Name: r.group, Backend: BackendName, Serial: r.serial}
	for _, name := range r.slots {
		sl := m.slots[name]
		info.Slots = append(info.Slots, slotInfo(sl.id, name, sl.state, sl.atr))
	}
	return info
}

// states returns the GetStatusChange input: every slot with its last
// EventState as CurrentState, then the PnP pseudo-reader.
func (m *monitor) states() []scard.ReaderState {
	names := make([]string, 0, len(m.slots))
	for n := range m.slots {
		names = append(names, n)
	}
	slices.Sort(names)
	rs := make([]scard.ReaderState, 0, len(names)+1)
	for _, n := range names {
		rs = append(rs, scard.ReaderState{Reader: n, CurrentState: m.slots[n].state})
	}
	if m.pnp {
		rs = append(rs, scard.ReaderState{Reader: pnpReader, CurrentState: m.pnpState})
	}
	return rs
}

// changed reports the card changes GetStatusChange returned.
func (m *monitor) changed(states []scard.ReaderState) {
	for _, st := range states {
		if st.Reader == pnpReader {
			if st.EventState&scard.StateUnknown != 0 {
				m.b.opts.Logger.Info("PC/SC stack does not know the PnP pseudo-reader; polling reader list")
				m.pnp = false
			} else {
				m.pnpState = st.EventState
			}
			continue
		}
		sl := m.slots[st.Reader]
		if sl == nil || st.EventState&scard.StateChanged == 0 {
			continue
		}
		if st.EventState&(scard.StateUnknown|scard.StateIgnore) != 0 {
			continue // the reader left: the next listing removes it
		}
		m.cardChange(sl, st.EventState, st.Atr)
	}
}

// cardChange compares a slot's new EventState with the last one and
// sends CardRemoved / CardInserted. The event counter in the upper 16 bits
// (pcsc-lite) reveals a card removed and another inserted in between.
func (m *monitor) cardChange(sl *monSlot, ev scard.StateFlag, atr []byte) {
	old := sl.state
	was, is := old&scard.StatePresent != 0, ev&scard.StatePresent != 0
	mute := ev&scard.StateMute != 0
	var newATR []byte
	if is && !mute {
		newATR = append([]byte(nil), atr...)
	}
	events := uint16(ev>>16) - uint16(old>>16)
	bounced := was && is && (events >= 2 || !bytes.Equal(sl.atr, newATR))
	if was && (!is || bounced) {
		m.send(reader.Event{Kind: reader.CardRemoved, ReaderID: sl.reader, SlotID: sl.id})
	}
	if is && (!was || bounced) {
		m.send(reader.Event{Kind: reader.CardInserted, ReaderID: sl.reader, SlotID: sl.id, ATR: newATR, Mute: mute})
	}
	sl.state, sl.atr = ev, newATR
}

// removeAll reports every reader gone (the context was lost).
func (m *monitor) removeAll() {
	ids := make([]string, 0, len(m.readers))
	for id := range m.readers {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		m.b.forgetSerial(m.readers[id].group)
		m.send(reader.Event{Kind: reader.ReaderRemoved, ReaderID: id})
	}
	m.reset()
}

func (b *Backend) setName(id, name string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.names[id] = name
}

func (b *Backend) forgetName(id string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.names, id)
}

func (b *Backend) forgetSerial(group string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.serials, group)
}

var _ reader.Backend = (*Backend)(nil)
