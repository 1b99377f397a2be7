package serial

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	bugst "go.bug.st/serial"

	"github.com/onecard-hub/onecard/reader"
	"github.com/onecard-hub/onecard/reader/serial/profile"
)

// Options configures [Open]. Port and Profile are required; the rest have
// safe defaults.
type Options struct {
	// Port is the device path ("/dev/ttyUSB0", "/dev/serial/by-id/...",
	// "COM3").
	Port string
	// Profile is the reader model's firmware profile.
	Profile *profile.Profile
	// Baud overrides the profile's default baud rate when non-zero.
	Baud int
	// Address is the frame address for profiles with an address byte;
	// 0 means the profile's default.
	Address int
	// Name prefixes the slot IDs ("<Name>:user"); default "serial:<Port>".
	Name string
	// Logger receives debug records (operation, slot, lengths, errors —
	// never APDU bytes). Default: discard.
	Logger *slog.Logger
	// SkipInit leaves out the profile's init sequence.
	SkipInit bool
	// OpenPort replaces go.bug.st/serial for the line (tests, bridges).
	OpenPort func(name string, mode *bugst.Mode) (Port, error)
}

// Reader is one serial reader: a port, a profile and the slots behind it.
// Its methods and its slots' methods are safe for concurrent use; they
// take turns on the line.
type Reader struct {
	prof  *profile.Profile
	line  line
	sem   chan struct{}
	addr  byte
	log   *slog.Logger
	name  string
	slots []*Slot

	// guarded by sem
	selected string // SAM slot the reader has selected, "" unknown
	lastRx   time.Time
}

// Open opens the port with the profile's line settings, runs the
// profile's init sequence (unless SkipInit) and returns the reader. It
// fails with an error wrapping reader.ErrReaderBusy when another process
// holds the port, reader.ErrReaderGone when it does not exist or fails,
// or the init operation's error. An init answered by a reply that does
// not match it (ErrProtocol: a previous host's late answer) is run again
// once.
func Open(ctx context.Context, o Options) (*Reader, error) {
	if o.Profile == nil || o.Port == "" {
		return nil, errors.New("open serial reader: Options.Port and Options.Profile are required")
	}
	p := o.Profile
	mode := &bugst.Mode{BaudRate: p.Transport.Baud, DataBits: p.Transport.DataBits, StopBits: bugst.OneStopBit}
	if o.Baud != 0 {
		mode.BaudRate = o.Baud
	}
	switch p.Transport.Parity {
	case "even":
		mode.Parity = bugst.EvenParity
	case "odd":
		mode.Parity = bugst.OddParity
	}
	if p.Transport.StopBits == 2 {
		mode.StopBits = bugst.TwoStopBits
	}
	open := o.OpenPort
	if open == nil {
		open = func(name string, mode *bugst.Mode) (Port, error) {
			sp, err := bugst.Open(name, mode)
			if err != nil {
				return nil, err
			}
			return sp, nil
		}
	}
	port, err := open(o.Port, mode)
	if err != nil {
		var pe *bugst.PortError
		if errors.As(err, &pe) && (pe.Code() == bugst.PortBusy || pe.Code() == bugst.PermissionDenied) {
			return nil, fmt.Errorf("open serial reader %s: %v: %w", o.Port, err, reader.ErrReaderBusy)
		}
		return nil, fmt.Errorf("open serial reader %s: %v: %w", o.Port, err, reader.ErrReaderGone)
	}
	r := newReader(port, o)
	if !o.SkipInit {
		err := r.Init(ctx)
		if errors.Is(err, ErrProtocol) {
			// The line may still carry the answer to the last command of
			// a previous host (one killed in the middle of an exchange):
			// arriving after the discard that precedes our first command,
			// it is taken for that command's answer and does not match.
			// It has been read now; the init sequence (idempotent) runs
			// once more.
			r.log.Debug("serial: init answered by a stale reply; initialising again", "port", o.Port, "err", err)
			err = r.Init(ctx)
		}
		if err != nil {
			_ = port.Close()
			return nil, fmt.Errorf("open serial reader %s: %w", o.Port, err)
		}
	}
	return r, nil
}

func newReader(port Port, o Options) *Reader {
	p := o.Profile
	r := &Reader{prof: p, line: line{port: port}, sem: make(chan struct{}, 1), log: o.Logger, name: o.Name}
	if r.log == nil {
		r.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if r.name == "" {
		r.name = "serial:" + o.Port
	}
	if p.Framing.Address != nil {
		r.addr = byte(p.Framing.Address.Default)
		if o.Address != 0 {
			r.addr = byte(o.Address)
		}
	}
	for _, s := range p.Slots {
		r.slots = append(r.slots, &Slot{r: r, def: s, id: r.name + ":" + s.Name})
	}
	return r
}

// Profile returns the reader's profile.
func (r *Reader) Profile() *profile.Profile { return r.prof }

// Slots returns the reader's slots in profile order (user first).
func (r *Reader) Slots() []*Slot { return append([]*Slot(nil), r.slots...) }

// Slot returns the named slot ("user", "psam1", ...).
func (r *Reader) Slot(name string) (*Slot, error) {
	for _, s := range r.slots {
		if s.def.Name == name {
			return s, nil
		}
	}
	return nil, fmt.Errorf("serial reader %s: no slot %q", r.name, name)
}

// Close closes the port, interrupting an exchange in progress (it fails
// with reader.ErrReaderGone). Slots become unusable (reader.ErrReaderGone).
func (r *Reader) Close() error {
	err := r.line.port.Close()
	r.sem <- struct{}{}
	defer func() { <-r.sem }()
	if r.line.gone == nil {
		r.line.gone = fmt.Errorf("serial reader %s closed: %w", r.name, reader.ErrReaderGone)
	}
	return err
}

func (r *Reader) lock(ctx context.Context) error {
	select {
	case r.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctxError("wait for the serial line", ctx.Err())
	}
}

func (r *Reader) unlock() { <-r.sem }

// Init runs the profile's init sequence (e.g. Initialize on CRT-591 and
// Sankyo, which reject everything else until then).
func (r *Reader) Init(ctx context.Context) error {
	if err := r.lock(ctx); err != nil {
		return err
	}
	defer r.unlock()
	return r.initLocked(ctx)
}

func (r *Reader) initLocked(ctx context.Context) error {
	for _, op := range r.prof.Init {
		if _, err := r.runOnce(ctx, profile.Call{Op: op}); err != nil {
			return err
		}
	}
	r.selected = ""
	return nil
}

// Do performs any operation of the profile's command table and returns
// the decoded reply of its last command. It is the escape hatch for
// operations without a method (led_on, beep, ...).
func (r *Reader) Do(ctx context.Context, call profile.Call) (profile.Result, error) {
	if err := r.lock(ctx); err != nil {
		return profile.Result{}, err
	}
	defer r.unlock()
	return r.run(ctx, call)
}

// Identify returns the reader's version text (identify, or reset_reader
// for profiles without identify).
func (r *Reader) Identify(ctx context.Context) (string, error) {
	op := profile.OpIdentify
	if r.prof.Op(op, "") == nil {
		op = profile.OpResetReader
	}
	res, err := r.Do(ctx, profile.Call{Op: op})
	return res.Version, err
}

// CardStatus returns the user card's position as the reader reports it.
func (r *Reader) CardStatus(ctx context.Context) (profile.Position, error) {
	res, err := r.Do(ctx, profile.Call{Op: profile.OpCardStatus})
	return res.Position, err
}

// Eject moves the user card out to the customer.
func (r *Reader) Eject(ctx context.Context) error {
	_, err := r.Do(ctx, profile.Call{Op: profile.OpEject})
	return err
}

// Capture retains the user card (rear exit or reject bin).
func (r *Reader) Capture(ctx context.Context) error {
	_, err := r.Do(ctx, profile.Call{Op: profile.OpCapture})
	return err
}

// run performs a call with the lock held. A reader that lost its
// initialisation (power cycle: not_initialised) is initialised again and
// the call retried once.
func (r *Reader) run(ctx context.Context, call profile.Call) (profile.Result, error) {
	res, err := r.runOnce(ctx, call)
	if errors.Is(err, ErrNotInitialised) && len(r.prof.Init) > 0 {
		r.log.Debug("serial: reader lost its initialisation; initialising again", "op", call.Op)
		if ierr := r.initLocked(ctx); ierr != nil {
			return res, err
		}
		return r.runOnce(ctx, call)
	}
	return res, err
}

func (r *Reader) runOnce(ctx context.Context, call profile.Call) (profile.Result, error) {
	steps, err := r.prof.Plan(call, r.selected)
	if err != nil {
		if errors.Is(err, profile.ErrUnsupported) {
			return profile.Result{}, fmt.Errorf("%s: %v: %w", call.Op, err, ErrNotSupported)
		}
		return profile.Result{}, fmt.Errorf("%s: %w", call.Op, err)
	}
	var res profile.Result
	for _, st := range steps {
		start := time.Now()
		text, err := r.exchange(ctx, st.Text, st.Cmd.Timeout)
		if err != nil {
			r.selected = ""
			r.log.Debug("serial: exchange failed", "op", call.Op, "slot", call.Slot, "step", st.Kind, "err", err)
			return res, fmt.Errorf("%s %s: %w", call.Op, call.Slot, err)
		}
		res, err = r.prof.ParseResponse(st.Cmd, st.Slot, text)
		if err != nil {
			r.selected = ""
			return res, fmt.Errorf("%s %s: %v: %w", call.Op, call.Slot, err, ErrProtocol)
		}
		r.log.Debug("serial: exchange", "op", call.Op, "slot", call.Slot, "step", st.Kind,
			"tx_len", len(st.Text), "rx_len", len(text), "elapsed", time.Since(start))
		if res.Failed() {
			if st.Kind == profile.StepSelect {
				r.selected = ""
			}
			return res, deviceError(call.Op, call.Slot, res)
		}
		if st.Kind == profile.StepSelect {
			r.selected = st.Slot.Name
		}
	}
	return res, nil
}

// exchange sends one command text and returns the response text, doing
// the profile's handshake, retries and timers. Lock held.
func (r *Reader) exchange(ctx context.Context, text []byte, timeout time.Duration) ([]byte, error) {
	p := r.prof
	lk := &p.Link
	frame, err := p.Framing.Encode(r.addr, text)
	if err != nil {
		return nil, err
	}
	if timeout == 0 {
		timeout = lk.Timers.Response
	}
	if wait := lk.Timers.MinGap - time.Since(r.lastRx); wait > 0 {
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return nil, ctxError("wait before sending", ctx.Err())
		}
	}
	naks, ackMisses, bad := 0, 0, 0
send:
	if err := r.line.discard(); err != nil {
		return nil, err
	}
	if err := r.line.write(frame); err != nil {
		return nil, err
	}
	if lk.Style != profile.StylePlain {
		c, err := r.line.readControl(ctx, lk.Timers.ACK, lk.MaxGarbage, lk.ACK, lk.NAK)
		switch {
		case errors.Is(err, reader.ErrTimeout) && ctx.Err() == nil:
			if ackMisses++; ackMisses > lk.Retries.OnACKTimeout {
				return nil, fmt.Errorf("no ACK after %d tries: %w", ackMisses, err)
			}
			goto send
		case err != nil:
			return nil, err
		case c == lk.NAK:
			if naks++; naks > lk.Retries.OnNAK {
				return nil, fmt.Errorf("reader NAKed %d times: %w", naks, ErrChecksum)
			}
			goto send
		}
	}
	if lk.Style == profile.StyleACKENQ {
		if err := r.line.write([]byte{lk.ENQ}); err != nil {
			return nil, err
		}
	}
	foreign := 0
	for {
		fr, err := r.line.readFrame(ctx, &p.Framing, timeout, lk.Timers.InterChar, lk.MaxGarbage)
		if err == nil && p.Framing.Address != nil && fr.Addr != r.addr {
			// Another unit on a multi-drop line.
			if foreign++; foreign > 8 {
				return nil, fmt.Errorf("frames for address %d, not %d: %w", fr.Addr, r.addr, ErrProtocol)
			}
			continue
		}
		if err == nil {
			if lk.HostAcksResponse {
				if err := r.line.write([]byte{lk.ACK}); err != nil {
					return nil, err
				}
			}
			r.lastRx = time.Now()
			return fr.Text, nil
		}
		if !errors.Is(err, profile.ErrBadChecksum) && !errors.Is(err, errShort) {
			if errors.Is(err, reader.ErrTimeout) && len(lk.Cancel) > 0 {
				_ = r.line.write(lk.Cancel) // best effort: abort the command
			}
			return nil, err
		}
		if bad++; bad > lk.Retries.OnNAK {
			return nil, fmt.Errorf("bad response %d times: %v: %w", bad, err, ErrChecksum)
		}
		switch lk.Style {
		case profile.StyleACKENQ:
			err = r.line.write([]byte{lk.ENQ}) // ask for the response again
		case profile.StyleACKThenResponse:
			err = r.line.write([]byte{lk.NAK})
		default:
			goto send
		}
		if err != nil {
			return nil, err
		}
	}
}

// Slot is one card position of a serial reader; it implements
// reader.Slot.
type Slot struct {
	r   *Reader
	def *profile.Slot
	id  string

	// guarded by r.sem
	connected bool
	atr       []byte
	proto     profile.Protocol
}

var _ reader.Slot = (*Slot)(nil)

// ID returns "<Options.Name>:<slot>", e.g. "serial:/dev/ttyUSB0:user".
func (s *Slot) ID() string { return s.id }

// Name returns the profile's slot name ("user", "psam1", ...).
func (s *Slot) Name() string { return s.def.Name }

// Protocol returns the card protocol learnt at the last power-on ("" when
// not connected).
func (s *Slot) Protocol() profile.Protocol {
	s.r.sem <- struct{}{}
	defer s.r.unlock()
	return s.proto
}

// Connect powers the card and returns its ATR; on a connected slot it
// returns the ATR of the last power-on. It fails with an error wrapping
// reader.ErrNoCard when the slot is empty, ErrCardMute when the card does
// not answer, reader.ErrTimeout or reader.ErrReaderGone.
func (s *Slot) Connect(ctx context.Context) ([]byte, error) {
	if err := s.r.lock(ctx); err != nil {
		return nil, err
	}
	defer s.r.unlock()
	if s.connected {
		return append([]byte(nil), s.atr...), nil
	}
	return s.powerOn(ctx, profile.OpPowerOn)
}

// Reset cold-resets the card (power_on again) and returns its ATR.
func (s *Slot) Reset(ctx context.Context) ([]byte, error) {
	if err := s.r.lock(ctx); err != nil {
		return nil, err
	}
	defer s.r.unlock()
	return s.powerOn(ctx, profile.OpPowerOn)
}

// WarmReset warm-resets a connected card and returns its ATR. It fails
// with ErrNotConnected, or ErrNotSupported when the profile has no warm
// reset for the slot.
func (s *Slot) WarmReset(ctx context.Context) ([]byte, error) {
	if err := s.r.lock(ctx); err != nil {
		return nil, err
	}
	defer s.r.unlock()
	if !s.connected {
		return nil, fmt.Errorf("warm reset %s: %w", s.def.Name, ErrNotConnected)
	}
	return s.powerOn(ctx, profile.OpWarmReset)
}

func (s *Slot) powerOn(ctx context.Context, op profile.OpName) ([]byte, error) {
	r := s.r
	s.connected = false
	if s.def.Kind == "contact" && r.prof.Quirks.PresenceCheck == "card_status" {
		res, err := r.run(ctx, profile.Call{Op: profile.OpCardStatus})
		if err != nil {
			return nil, err
		}
		if !res.Position.Present() {
			return nil, fmt.Errorf("%s %s: %w", op, s.def.Name, reader.ErrNoCard)
		}
	}
	res, err := r.run(ctx, profile.Call{Op: op, Slot: s.def.Name})
	if err != nil {
		return nil, err
	}
	s.connected, s.atr, s.proto = true, res.ATR, res.Protocol
	return append([]byte(nil), res.ATR...), nil
}

// Transmit sends one command APDU with the command for the card's
// protocol and returns the response APDU. It does no T=0 chaining. It
// fails with ErrNotConnected before Connect, reader.ErrCardRemoved when the
// card left the slot (the slot is then disconnected), ErrCardMute,
// profile.ErrAPDUTooLong, reader.ErrTimeout, reader.ErrReaderGone, or a
// *DeviceError.
func (s *Slot) Transmit(ctx context.Context, cmd []byte) ([]byte, error) {
	if err := s.r.lock(ctx); err != nil {
		return nil, err
	}
	defer s.r.unlock()
	if !s.connected {
		return nil, fmt.Errorf("transmit %s: %w", s.def.Name, ErrNotConnected)
	}
	res, err := s.r.run(ctx, profile.Call{Op: profile.OpAPDU, Slot: s.def.Name, Protocol: s.proto, APDU: cmd})
	var de *DeviceError
	if errors.As(err, &de) && (de.Condition == profile.CardAbsent || de.Condition == profile.CardRemoved) {
		s.connected = false
		return nil, fmt.Errorf("transmit %s: %s: %w", s.def.Name, de.Error(), reader.ErrCardRemoved)
	}
	if err != nil {
		return nil, err
	}
	return res.RAPDU, nil
}

// Disconnect powers the card down. A card already gone is not an error.
func (s *Slot) Disconnect() error {
	ctx, cancel := context.WithTimeout(context.Background(), s.r.prof.Link.Timers.Response+time.Second)
	defer cancel()
	if err := s.r.lock(ctx); err != nil {
		return err
	}
	defer s.r.unlock()
	if !s.connected {
		return nil
	}
	s.connected = false
	_, err := s.r.run(ctx, profile.Call{Op: profile.OpPowerOff, Slot: s.def.Name})
	if errors.Is(err, reader.ErrNoCard) || errors.Is(err, reader.ErrCardRemoved) || errors.Is(err, ErrNotSupported) {
		return nil
	}
	return err
}
