package serial

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	bugst "go.bug.st/serial"

	"github.com/onecard-hub/onecard/reader"
	"github.com/onecard-hub/onecard/reader/serial/profile"
)

// BackendName is the name of the serial backend (ReaderInfo.Backend,
// Event.Backend).
const BackendName = "serial"

// ByIDDir is where Linux udev keeps stable symlinks to serial devices
// (/dev/serial/by-id/usb-<vendor>_<product>_<serial>-if00-port0). A
// configured port that one of them points at is named by that link in
// reader IDs.
const ByIDDir = "/dev/serial/by-id"

// Config is one serial reader of a [Backend]: a port and the reader
// model's firmware profile.
type Config struct {
	// Port is the device path ("/dev/ttyUSB0", "/dev/serial/by-id/...",
	// "COM3"). Required. A path that disappears and comes back (a USB
	// adapter re-plugged, a symlink re-pointed) is reopened.
	Port string
	// Profile is the reader model's firmware profile. Required.
	Profile *profile.Profile
	// Baud overrides the profile's default baud rate when non-zero.
	Baud int
	// Address is the frame address for profiles with an address byte
	// (0: the profile's default).
	Address int
	// Name is the display name; default "<vendor> <model> on <port>".
	Name string
}

// BackendOptions configures [NewBackend]. Only Readers is required.
type BackendOptions struct {
	// Readers are the configured serial readers; their ports must differ.
	Readers []Config
	// PollInterval is how often Watch asks each open reader where the
	// user card is (the profile's card_status). Default 500 ms.
	PollInterval time.Duration
	// SAMPollInterval is how often Watch probes the PSAM slots (and user
	// slots of profiles without card_status) by powering them on; a slot
	// that is connected is never probed. Default 10 s; a negative value
	// probes them only when the reader is opened.
	SAMPollInterval time.Duration
	// ReopenMin and ReopenMax bound the back-off between attempts to open
	// a port that is missing or failing. Defaults 250 ms and 5 s.
	ReopenMin, ReopenMax time.Duration
	// FailuresBeforeGone is how many consecutive failed polls (timeouts,
	// checksum errors: a reader switched off behind a working USB
	// adapter) make Watch treat the reader as gone and reopen it.
	// Default 3. A port error (EIO, unplugged adapter) counts at once.
	FailuresBeforeGone int
	// Logger receives debug and warning records (never APDU bytes).
	// Default: discard.
	Logger *slog.Logger
	// OpenPort replaces go.bug.st/serial for the lines (see
	// Options.OpenPort).
	OpenPort func(name string, mode *bugst.Mode) (Port, error)
}

// Backend is the reader.Backend of configured serial readers, for
// reader.Manager and one-shot listings.
//
// IDs: a reader is "serial:<profile id>@<port>", where <port> is the
// /dev/serial/by-id link that points at the configured port when there is
// one, else the configured port as given; its slots are "<reader
// ID>:user", "<reader ID>:psam1", ... (e.g.
// "serial:creator-crt310-v3@/dev/ttyUSB0:psam1"). ReaderInfo.Serial stays
// empty: no shipped profile has a command that reads the reader's serial
// number (the by-id link names the USB adapter's).
//
// Card presence: the user slot is polled with the profile's card_status
// (no card is powered for that); a newly seen card at the contacts is
// powered once to learn its ATR and powered down again, unless it is
// connected, in which case the ATR of its connection is reported. PSAM
// slots (and user slots of profiles without card_status) are probed by
// powering them on, every SAMPollInterval and only while nobody has them
// connected; a probed PSAM is left powered (some readers power every SAM
// down at once), and Connect cold-resets it anyway. A PSAM slot whose
// probe gets no ATR is reported empty: readers without a SAM presence
// switch (CRT-591, Sankyo) answer an empty SAM slot like a mute SAM.
//
// Hot-plug: a reader whose port fails (reader.ErrReaderGone) or that keeps
// failing polls is closed and reported ReaderRemoved; Watch then reopens
// its port with a bounded back-off and reports ReaderAdded when it
// answers again. Slots returned by Slot follow the reader across such a
// reopen: a connection made before it fails with reader.ErrReaderGone,
// and Connect starts a new one.
type Backend struct {
	opts  BackendOptions
	log   *slog.Logger
	units []*unit
}

// unit is one configured reader.
type unit struct {
	b   *Backend
	cfg Config

	openMu sync.Mutex // serialises opening

	mu     sync.Mutex
	r      *Reader // nil while closed
	gen    uint64  // incremented on every open
	id     string  // reader ID of the current (or last) opening
	closed bool    // Backend.Close was called

	pollMu   sync.Mutex // serialises polls; guards the fields below
	last     []reader.SlotInfo
	lastGen  uint64
	lastSAMs time.Time
}

// NewBackend returns a serial backend for opts.Readers. Nothing is opened
// until Readers or Watch is called. It fails when a Config lacks its Port
// or Profile, or two share a port.
func NewBackend(opts BackendOptions) (*Backend, error) {
	if opts.PollInterval <= 0 {
		opts.PollInterval = 500 * time.Millisecond
	}
	if opts.SAMPollInterval == 0 {
		opts.SAMPollInterval = 10 * time.Second
	}
	if opts.ReopenMin <= 0 {
		opts.ReopenMin = 250 * time.Millisecond
	}
	if opts.ReopenMax < opts.ReopenMin {
		opts.ReopenMax = max(5*time.Second, opts.ReopenMin)
	}
	if opts.FailuresBeforeGone <= 0 {
		opts.FailuresBeforeGone = 3
	}
	b := &Backend{opts: opts, log: opts.Logger}
	if b.log == nil {
		b.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	ports := map[string]bool{}
	for i, c := range opts.Readers {
		if c.Port == "" || c.Profile == nil {
			return nil, fmt.Errorf("new serial backend: reader %d: Port and Profile are required", i+1)
		}
		if ports[c.Port] {
			return nil, fmt.Errorf("new serial backend: port %s configured twice", c.Port)
		}
		ports[c.Port] = true
		u := &unit{b: b, cfg: c}
		u.id = readerID(c.Profile, c.Port)
		b.units = append(b.units, u)
	}
	return b, nil
}

// Name returns BackendName.
func (b *Backend) Name() string { return BackendName }

// readerID names a reader on port: "serial:<profile id>@<by-id link or
// port>".
func readerID(p *profile.Profile, port string) string {
	return "serial:" + p.ID + "@" + stablePort(port)
}

// stablePort returns the ByIDDir link pointing at port, or port.
func stablePort(port string) string { return stablePortIn(ByIDDir, port) }

// stablePortIn returns the link in dir that points at port, or port.
func stablePortIn(dir, port string) string {
	if strings.HasPrefix(port, dir+string(filepath.Separator)) {
		return port
	}
	target, err := filepath.EvalSymlinks(port)
	if err != nil {
		return port
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return port
	}
	for _, e := range entries {
		link := filepath.Join(dir, e.Name())
		if t, err := filepath.EvalSymlinks(link); err == nil && t == target {
			return link
		}
	}
	return port
}

// current returns the open reader and its generation (nil when closed).
func (u *unit) current() (*Reader, uint64, string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.r, u.gen, u.id
}

// open returns the open reader, opening the port first if needed. Errors
// wrap reader.ErrReaderGone (missing or failing port), reader.ErrReaderBusy
// (port held by another process) or the profile's init failure.
func (u *unit) open(ctx context.Context) (*Reader, error) {
	u.openMu.Lock()
	defer u.openMu.Unlock()
	u.mu.Lock()
	r, closed := u.r, u.closed
	u.mu.Unlock()
	if closed {
		return nil, fmt.Errorf("open serial reader %s: backend closed: %w", u.cfg.Port, reader.ErrReaderGone)
	}
	if r != nil {
		return r, nil
	}
	id := readerID(u.cfg.Profile, u.cfg.Port)
	r, err := Open(ctx, Options{
		Port: u.cfg.Port, Profile: u.cfg.Profile, Baud: u.cfg.Baud, Address: u.cfg.Address,
		Name: id, Logger: u.b.opts.Logger, OpenPort: u.b.opts.OpenPort,
	})
	if err != nil {
		return nil, err
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.closed {
		_ = r.Close()
		return nil, fmt.Errorf("open serial reader %s: backend closed: %w", u.cfg.Port, reader.ErrReaderGone)
	}
	u.r, u.id = r, id
	u.gen++
	u.b.log.Debug("serial: reader opened", "reader", id, "port", u.cfg.Port)
	return r, nil
}

// drop closes r if it is still the unit's reader.
func (u *unit) drop(r *Reader) {
	u.mu.Lock()
	if u.r != r {
		u.mu.Unlock()
		return
	}
	u.r = nil
	u.mu.Unlock()
	_ = r.Close()
}

func (u *unit) name() string {
	if u.cfg.Name != "" {
		return u.cfg.Name
	}
	return fmt.Sprintf("%s %s on %s", u.cfg.Profile.Vendor, u.cfg.Profile.Model, u.cfg.Port)
}

// info describes the reader with slot states.
func (u *unit) info(id string, slots []reader.SlotInfo) reader.ReaderInfo {
	return reader.ReaderInfo{ID: id, Name: u.name(), Backend: BackendName, Slots: slots}
}

// poll returns the slot states of the open reader r (generation gen).
// SAM slots are probed when forceSAMs is set, when the interval is due or
// on the first poll of this opening; otherwise their last state is kept.
func (u *unit) poll(ctx context.Context, r *Reader, gen uint64, forceSAMs bool) ([]reader.SlotInfo, error) {
	u.pollMu.Lock()
	defer u.pollMu.Unlock()
	var prev []reader.SlotInfo
	if u.lastGen == gen {
		prev = u.last
	}
	iv := u.b.opts.SAMPollInterval
	probeSAMs := forceSAMs || prev == nil || (iv > 0 && time.Since(u.lastSAMs) >= iv)
	now, err := r.slotStates(ctx, prev, probeSAMs)
	if err != nil {
		return nil, err
	}
	if probeSAMs {
		u.lastSAMs = time.Now()
	}
	u.last, u.lastGen = now, gen
	return cloneSlots(now), nil
}

func cloneSlots(s []reader.SlotInfo) []reader.SlotInfo {
	return reader.ReaderInfo{Slots: s}.Clone().Slots
}

// slotStates reads the state of every slot with the line held. prev is
// the previous state of this opening (nil: none).
func (r *Reader) slotStates(ctx context.Context, prev []reader.SlotInfo, probeSAMs bool) ([]reader.SlotInfo, error) {
	if err := r.lock(ctx); err != nil {
		return nil, err
	}
	defer r.unlock()
	var pos profile.Position
	hasStatus := r.prof.Op(profile.OpCardStatus, "") != nil
	if hasStatus {
		res, err := r.run(ctx, profile.Call{Op: profile.OpCardStatus})
		if err != nil {
			return nil, fmt.Errorf("poll %s: %w", r.name, err)
		}
		pos = res.Position
	}
	out := make([]reader.SlotInfo, len(r.slots))
	for i, s := range r.slots {
		si := reader.SlotInfo{ID: s.id, Name: s.def.Name}
		var old *reader.SlotInfo
		if prev != nil && i < len(prev) {
			old = &prev[i]
		}
		switch {
		case s.def.Kind == "contact" && hasStatus:
			if !pos.Present() {
				break // a connected card that left: its next APDU says so
			}
			si.Present = true
			switch {
			case s.connected:
				si.ATR, si.InUse = append([]byte(nil), s.atr...), true
			case old != nil && old.Present:
				si.ATR, si.Mute = old.ATR, old.Mute // the same card: do not power it again
			case pos == profile.PosAtContacts || pos == profile.PosInside:
				// A new card: learn its ATR. Cards at the gate are left
				// alone (powering would pull them in).
				atr, present, mute, err := s.probeLocked(ctx, true)
				if err != nil {
					return nil, fmt.Errorf("poll %s: %w", s.id, err)
				}
				si.Present, si.ATR, si.Mute = present, atr, mute
			}
		case s.connected:
			si.Present, si.ATR, si.InUse = true, append([]byte(nil), s.atr...), true
		case !probeSAMs && old != nil:
			si.Present, si.ATR, si.Mute = old.Present, old.ATR, old.Mute
		default:
			atr, present, mute, err := s.probeLocked(ctx, s.def.Kind == "contact")
			if err != nil {
				return nil, fmt.Errorf("poll %s: %w", s.id, err)
			}
			si.Present, si.ATR, si.Mute = present, atr, mute
		}
		out[i] = si
	}
	return out, nil
}

// probeLocked powers the slot's card on to see whether there is one and
// learn its ATR, powering it down again when powerOff is set. A card that
// does not answer is reported present and mute. It returns an error only
// for failures of the reader or the line. Lock held; the slot is not
// connected afterwards.
func (s *Slot) probeLocked(ctx context.Context, powerOff bool) (atr []byte, present, mute bool, err error) {
	atr, err = s.powerOn(ctx, profile.OpPowerOn)
	s.connected = false
	switch {
	case err == nil:
		if powerOff {
			_, perr := s.r.run(ctx, profile.Call{Op: profile.OpPowerOff, Slot: s.def.Name})
			if errors.Is(perr, reader.ErrReaderGone) {
				return nil, false, false, perr
			}
		}
		return atr, true, false, nil
	case errors.Is(err, reader.ErrNoCard), errors.Is(err, reader.ErrCardRemoved):
		return nil, false, false, nil
	case errors.Is(err, ErrCardMute), errors.Is(err, ErrProtocolMismatch):
		if s.def.Kind == "sam" {
			// SAM slots have no presence switch: CRT-591 and Sankyo
			// answer an empty one like a mute SAM ("activation failed").
			return nil, false, false, nil
		}
		return nil, true, true, nil
	case errors.Is(err, ErrCardMispositioned):
		return nil, true, false, nil
	}
	return nil, false, false, err
}

// Readers opens every configured reader that is not open yet (one
// attempt each) and returns those that are open, with the current state
// of their slots (PSAM slots are probed unless connected). When some
// readers cannot be opened or polled it returns the others together with
// an error joining one per failed reader, each naming the port and
// wrapping reader.ErrReaderGone, reader.ErrReaderBusy, reader.ErrTimeout
// or a *DeviceError; callers may show both.
func (b *Backend) Readers(ctx context.Context) ([]reader.ReaderInfo, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("list serial readers: %w", err)
	}
	out := []reader.ReaderInfo{}
	var errs []error
	for _, u := range b.units {
		r, err := u.open(ctx)
		if err != nil {
			errs = append(errs, fmt.Errorf("serial reader on %s: %w", u.cfg.Port, err))
			continue
		}
		_, gen, id := u.current()
		slots, err := u.poll(ctx, r, gen, true)
		if err != nil {
			if errors.Is(err, reader.ErrReaderGone) {
				u.drop(r)
			}
			errs = append(errs, fmt.Errorf("serial reader on %s: %w", u.cfg.Port, err))
			continue
		}
		out = append(out, u.info(id, slots))
	}
	if len(errs) > 0 {
		return out, fmt.Errorf("list serial readers: %w", errors.Join(errs...))
	}
	return out, nil
}

// Watch opens the configured readers and reports them until ctx is done,
// then returns nil; the ports stay open for the slots handed out (see
// Close). Each reader is watched by its own goroutine: ReaderAdded when
// it opens (and again after a reopen), CardInserted/CardRemoved from the
// polls, ReaderError when opening or polling fails (once per run of
// failures), ReaderRemoved when its port is lost.
func (b *Backend) Watch(ctx context.Context, send func(reader.Event)) error {
	var mu sync.Mutex
	var stopped bool
	safeSend := func(ev reader.Event) {
		mu.Lock()
		defer mu.Unlock()
		if !stopped {
			send(ev)
		}
	}
	var wg sync.WaitGroup
	for _, u := range b.units {
		wg.Go(func() { u.watch(ctx, safeSend) })
	}
	wg.Wait()
	mu.Lock()
	stopped = true
	mu.Unlock()
	return nil
}

// watch is one reader's open–poll–reopen loop.
func (u *unit) watch(ctx context.Context, send func(reader.Event)) {
	o := &u.b.opts
	delay := o.ReopenMin
	var (
		r         *Reader
		gen       uint64
		id        string
		reported  []reader.SlotInfo // as last sent
		failures  int
		errorSent bool
	)
	wait := func(d time.Duration) bool {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
			return true
		}
	}
	reportError := func(readerID string, err error) {
		if !errorSent {
			send(reader.Event{Kind: reader.ReaderError, ReaderID: readerID, Err: err})
			errorSent = true
		}
	}
	lose := func(err error) {
		u.b.log.Warn("serial: reader lost; reopening", "reader", id, "err", err)
		u.drop(r)
		send(reader.Event{Kind: reader.ReaderRemoved, ReaderID: id})
		r, reported, failures, delay, errorSent = nil, nil, 0, o.ReopenMin, false
	}
	for ctx.Err() == nil {
		u.mu.Lock()
		closed := u.closed
		u.mu.Unlock()
		if closed {
			// Backend.Close: report the reader gone and stop reopening.
			if r != nil {
				send(reader.Event{Kind: reader.ReaderRemoved, ReaderID: id})
			}
			<-ctx.Done()
			return
		}
		if r == nil {
			var err error
			r, err = u.open(ctx)
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				u.b.log.Debug("serial: open failed", "port", u.cfg.Port, "err", err, "retry_in", delay)
				reportError(readerID(u.cfg.Profile, u.cfg.Port), fmt.Errorf("open serial reader on %s: %w", u.cfg.Port, err))
				if !wait(delay) {
					return
				}
				delay = min(2*delay, o.ReopenMax)
				continue
			}
			_, gen, id = u.current()
			slots, err := u.poll(ctx, r, gen, true)
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				reportError(id, fmt.Errorf("poll serial reader %s: %w", id, err))
				u.drop(r) // opened but not answering: retry with back-off
				r = nil
				if !wait(delay) {
					return
				}
				delay = min(2*delay, o.ReopenMax)
				continue
			}
			delay, errorSent, failures = o.ReopenMin, false, 0
			reported = slots
			send(reader.Event{Kind: reader.ReaderAdded, ReaderID: id, Reader: u.info(id, slots)})
		}
		if !wait(o.PollInterval) {
			return
		}
		if cur, _, _ := u.current(); cur != r {
			// Closed under us (Backend.Close, or Readers dropped a dead
			// port).
			send(reader.Event{Kind: reader.ReaderRemoved, ReaderID: id})
			r, reported = nil, nil
			continue
		}
		slots, err := u.poll(ctx, r, gen, false)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			failures++
			if errors.Is(err, reader.ErrReaderGone) || failures >= o.FailuresBeforeGone {
				lose(err)
				continue
			}
			reportError(id, fmt.Errorf("poll serial reader %s: %w", id, err))
			continue
		}
		failures, errorSent = 0, false
		for i, now := range slots {
			old := reported[i]
			if old.Present == now.Present && old.Mute == now.Mute && bytes.Equal(old.ATR, now.ATR) {
				continue
			}
			if old.Present {
				send(reader.Event{Kind: reader.CardRemoved, ReaderID: id, SlotID: now.ID})
			}
			if now.Present {
				send(reader.Event{Kind: reader.CardInserted, ReaderID: id, SlotID: now.ID, ATR: now.ATR, Mute: now.Mute})
			}
		}
		reported = slots
	}
}

// Slot returns the slot named id (a SlotInfo.ID) of a configured reader,
// whether or not its reader is open now; its methods fail with
// reader.ErrReaderGone while the reader is closed. It returns an error
// wrapping reader.ErrUnknownSlot for any other id.
func (b *Backend) Slot(id string) (reader.Slot, error) {
	for _, u := range b.units {
		_, _, rid := u.current()
		name, ok := strings.CutPrefix(id, rid+":")
		if !ok || u.cfg.Profile.Slot(name) == nil {
			continue
		}
		return &backendSlot{u: u, id: id, name: name}, nil
	}
	return nil, fmt.Errorf("open serial slot %q: %w", id, reader.ErrUnknownSlot)
}

// Reader returns the open Reader with the given ID (for the operations
// beyond reader.Slot: Eject, Capture, Do). It fails with an error wrapping
// reader.ErrReaderGone when the reader is configured but not open, and
// reader.ErrUnknownSlot when no configured reader has the ID.
func (b *Backend) Reader(id string) (*Reader, error) {
	for _, u := range b.units {
		r, _, rid := u.current()
		if rid != id {
			continue
		}
		if r == nil {
			return nil, fmt.Errorf("serial reader %s: not open: %w", id, reader.ErrReaderGone)
		}
		return r, nil
	}
	return nil, fmt.Errorf("serial reader %q: %w", id, reader.ErrUnknownSlot)
}

// Close closes every open port; slots fail with reader.ErrReaderGone
// afterwards and a running Watch reports its readers removed and stops
// reopening them. Call it after Watch returned (or instead of it, after
// one-shot use of Readers and Slot).
func (b *Backend) Close() error {
	var errs []error
	for _, u := range b.units {
		u.mu.Lock()
		r := u.r
		u.r, u.closed = nil, true
		u.mu.Unlock()
		if r != nil {
			if err := r.Close(); err != nil && !errors.Is(err, os.ErrClosed) {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// backendSlot is a Backend's slot: it follows its reader across reopens.
type backendSlot struct {
	u    *unit
	id   string
	name string

	mu  sync.Mutex
	gen uint64 // generation of the reader the slot was connected on, 0: none
}

var _ reader.Slot = (*backendSlot)(nil)

func (s *backendSlot) ID() string { return s.id }

// slot returns the serial Slot of the current opening.
func (s *backendSlot) slot(op string) (*Slot, uint64, error) {
	r, gen, _ := s.u.current()
	if r == nil {
		return nil, 0, fmt.Errorf("%s %s: reader not open: %w", op, s.id, reader.ErrReaderGone)
	}
	sl, err := r.Slot(s.name)
	if err != nil {
		return nil, 0, fmt.Errorf("%s %s: %w", op, s.id, reader.ErrUnknownSlot)
	}
	return sl, gen, nil
}

// Connect powers the card (see Slot.Connect) on the reader's current
// opening.
func (s *backendSlot) Connect(ctx context.Context) ([]byte, error) {
	sl, gen, err := s.slot("connect")
	if err != nil {
		return nil, err
	}
	atr, err := sl.Connect(ctx)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.gen = gen
	s.mu.Unlock()
	return atr, nil
}

// Reset cold-resets the card (see Slot.Reset).
func (s *backendSlot) Reset(ctx context.Context) ([]byte, error) {
	sl, gen, err := s.slot("reset")
	if err != nil {
		return nil, err
	}
	atr, err := sl.Reset(ctx)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.gen = gen
	s.mu.Unlock()
	return atr, nil
}

// Transmit sends one APDU (see Slot.Transmit). A connection made before
// the reader was reopened fails with reader.ErrReaderGone.
func (s *backendSlot) Transmit(ctx context.Context, cmd []byte) ([]byte, error) {
	sl, gen, err := s.slot("transmit")
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	connGen := s.gen
	s.mu.Unlock()
	if connGen != 0 && connGen != gen {
		return nil, fmt.Errorf("transmit %s: the reader was re-plugged since Connect: %w", s.id, reader.ErrReaderGone)
	}
	return sl.Transmit(ctx, cmd)
}

// Disconnect powers the card down; on a reader that is gone it does
// nothing.
func (s *backendSlot) Disconnect() error {
	s.mu.Lock()
	connGen := s.gen
	s.gen = 0
	s.mu.Unlock()
	r, gen, _ := s.u.current()
	if r == nil || connGen != gen {
		return nil
	}
	sl, err := r.Slot(s.name)
	if err != nil {
		return nil
	}
	return sl.Disconnect()
}

var _ reader.Backend = (*Backend)(nil)
