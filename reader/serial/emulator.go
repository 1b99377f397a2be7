package serial

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/onecard-hub/onecard/reader/serial/profile"
	"github.com/onecard-hub/onecard/reader/virtual"
)

// EmulatorOptions configures [NewEmulator].
type EmulatorOptions struct {
	// Cards puts simulated cards into slots ("user", "psam1", ...) at
	// start; other slots start empty.
	Cards map[string]virtual.Card
	// Version is the text identify/reset_reader answer with; default
	// "<model> emulator".
	Version string
	// Initialised starts the emulated reader initialised, so profiles with
	// quirks.requires_init accept commands before the init sequence.
	Initialised bool
	// Logger receives debug records; default: discard.
	Logger *slog.Logger
}

// Faults are errors the emulator injects; counts decrease as they are
// used, -1 means "every time".
type Faults struct {
	// CorruptResponses: the next n response frames carry a wrong checksum.
	CorruptResponses int
	// NAKCommands: answer the next n good command frames with NAK.
	NAKCommands int
	// TruncateResponses: send only the first half of the next n responses.
	TruncateResponses int
	// Garbage is sent once, before the next response frame.
	Garbage []byte
	// Silent: ignore all input (no ACK, no response).
	Silent bool
}

// EmulatorStats counts what the emulator saw.
type EmulatorStats struct {
	Commands   int // good command frames
	BadFrames  int // command frames with a bad checksum (answered NAK)
	NAKsSent   int // NAKs sent (bad frames and injected)
	Resends    int // responses sent again after a host NAK or ENQ
	HostACKs   int
	Cancels    int
	Unanswered int // commands the table does not know
}

// Emulator is a serial card reader in software: it answers a profile's
// protocol with virtual cards in its slots. It holds no per-model code:
// commands are recognised and answers built from the profile's data
// (profile.MatchCommand, EncodePositive, EncodeFailure). Its methods are
// safe for concurrent use; Serve one line at a time.
type Emulator struct {
	prof    *profile.Profile
	version string
	log     *slog.Logger

	mu          sync.Mutex
	slots       map[string]*emuSlot
	selected    string
	initialised bool
	faults      Faults
	stats       EmulatorStats
}

type emuSlot struct {
	card    virtual.Card
	powered bool
}

// NewEmulator returns an emulator for the profile. It fails when Cards
// names a slot the profile lacks.
func NewEmulator(p *profile.Profile, o EmulatorOptions) (*Emulator, error) {
	e := &Emulator{prof: p, version: o.Version, log: o.Logger, slots: map[string]*emuSlot{}, initialised: o.Initialised}
	if e.version == "" {
		e.version = p.Model + " emulator"
	}
	if e.log == nil {
		e.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	for _, s := range p.Slots {
		e.slots[s.Name] = &emuSlot{}
	}
	for name, c := range o.Cards {
		if err := e.Insert(name, c); err != nil {
			return nil, err
		}
	}
	return e, nil
}

// Insert puts a card into a slot (replacing any card there, unpowered).
func (e *Emulator) Insert(slot string, c virtual.Card) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	s, ok := e.slots[slot]
	if !ok {
		return fmt.Errorf("emulator insert: profile %s has no slot %q", e.prof.ID, slot)
	}
	s.card, s.powered = c, false
	return nil
}

// Remove takes the card out of a slot; the next command for it reports
// the card gone.
func (e *Emulator) Remove(slot string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	s, ok := e.slots[slot]
	if !ok {
		return fmt.Errorf("emulator remove: profile %s has no slot %q", e.prof.ID, slot)
	}
	if s.card != nil && s.powered {
		s.card.PowerOff()
	}
	// powered stays set: the host's next APDU learns the card was pulled
	// (card_removed), not that the slot was always empty.
	s.card = nil
	return nil
}

// SetFaults replaces the injected faults.
func (e *Emulator) SetFaults(f Faults) {
	e.mu.Lock()
	defer e.mu.Unlock()
	f.Garbage = append([]byte(nil), f.Garbage...)
	e.faults = f
}

// Stats returns the counters.
func (e *Emulator) Stats() EmulatorStats {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.stats
}

// Serve speaks the profile's protocol on rw until ctx ends or rw fails;
// it returns ctx.Err() or the I/O error (io.EOF and "file already closed"
// included). When rw has SetReadDeadline (an *os.File pty master), ctx
// cancellation interrupts a pending read.
func (e *Emulator) Serve(ctx context.Context, rw io.ReadWriter) error {
	if d, ok := rw.(interface{ SetReadDeadline(time.Time) error }); ok {
		stop := context.AfterFunc(ctx, func() { _ = d.SetReadDeadline(time.Now()) })
		defer stop()
	}
	s := &session{e: e, p: e.prof, br: bufio.NewReaderSize(rw, 4096), w: rw}
	err := s.loop()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// session is the state of one Serve call.
type session struct {
	e       *Emulator
	p       *profile.Profile
	br      *bufio.Reader
	w       io.Writer
	pending []byte // ack_enq: response waiting for ENQ; else last response (for NAK)
	resends int
	prev    byte
}

func (s *session) loop() error {
	lk := &s.p.Link
	for {
		c, err := s.br.ReadByte()
		if err != nil {
			return err
		}
		if s.e.silent() {
			continue
		}
		prev := s.prev
		s.prev = c
		switch {
		case c == s.p.Framing.Start[0]:
			if err := s.command(c); err != nil {
				return err
			}
		case lk.Style == profile.StyleACKENQ && c == lk.ENQ:
			if s.pending != nil {
				if err := s.send(s.pending, s.resends > 0); err != nil {
					return err
				}
				s.resends++
			}
		case lk.Style == profile.StyleACKThenResponse && c == lk.ACK:
			s.e.count(func(st *EmulatorStats) { st.HostACKs++ })
			s.pending = nil
		case lk.Style == profile.StyleACKThenResponse && c == lk.NAK:
			if s.pending != nil && s.resends < 8 {
				s.resends++
				if err := s.send(s.pending, true); err != nil {
					return err
				}
			}
		case len(lk.Cancel) > 0 && c == lk.Cancel[len(lk.Cancel)-1] && (len(lk.Cancel) == 1 || prev == lk.Cancel[0]):
			s.e.count(func(st *EmulatorStats) { st.Cancels++ })
			s.pending = nil
			if lk.Style == profile.StyleACKENQ {
				if _, err := s.w.Write(lk.Cancel); err != nil {
					return err
				}
			}
		}
	}
}

// command reads the rest of a frame that began with first and answers it.
func (s *session) command(first byte) error {
	f := &s.p.Framing
	buf := []byte{first}
	for len(buf) < f.HeaderLen() {
		c, err := s.br.ReadByte()
		if err != nil {
			return err
		}
		buf = append(buf, c)
	}
	total, err := f.FrameLen(buf)
	if err != nil {
		return nil // not a frame: ignore, keep listening
	}
	for len(buf) < total {
		c, err := s.br.ReadByte()
		if err != nil {
			return err
		}
		buf = append(buf, c)
	}
	lk := &s.p.Link
	fr, _, err := f.Decode(buf)
	if err != nil {
		if errors.Is(err, profile.ErrBadChecksum) && lk.Style != profile.StylePlain {
			s.e.count(func(st *EmulatorStats) { st.BadFrames++; st.NAKsSent++ })
			_, err := s.w.Write([]byte{lk.NAK})
			return err
		}
		return nil
	}
	if lk.Style != profile.StylePlain {
		if s.e.takeFault(func(f *Faults) *int { return &f.NAKCommands }) {
			s.e.count(func(st *EmulatorStats) { st.NAKsSent++ })
			_, err := s.w.Write([]byte{lk.NAK})
			return err
		}
		if _, err := s.w.Write([]byte{lk.ACK}); err != nil {
			return err
		}
	}
	s.e.count(func(st *EmulatorStats) { st.Commands++ })
	text := s.e.handle(fr.Text)
	resp, err := f.Encode(fr.Addr, text)
	if err != nil {
		return fmt.Errorf("emulator: encode response: %w", err)
	}
	s.pending, s.resends = resp, 0
	if lk.Style == profile.StyleACKENQ {
		return nil // sent on ENQ
	}
	return s.send(resp, false)
}

// send writes a response frame, applying the injected faults.
func (s *session) send(frame []byte, resend bool) error {
	if resend {
		s.e.count(func(st *EmulatorStats) { st.Resends++ })
	}
	out := frame
	garbage := s.e.takeGarbage()
	if s.e.takeFault(func(f *Faults) *int { return &f.CorruptResponses }) {
		out = append([]byte(nil), frame...)
		out[len(out)-1] ^= 0x5A
	}
	if s.e.takeFault(func(f *Faults) *int { return &f.TruncateResponses }) {
		out = out[:len(out)/2]
	}
	if len(garbage) > 0 {
		if _, err := s.w.Write(garbage); err != nil {
			return err
		}
	}
	_, err := s.w.Write(out)
	return err
}

func (e *Emulator) silent() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.faults.Silent
}

func (e *Emulator) count(f func(*EmulatorStats)) {
	e.mu.Lock()
	defer e.mu.Unlock()
	f(&e.stats)
}

// takeFault consumes one use of a counted fault.
func (e *Emulator) takeFault(field func(*Faults) *int) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := field(&e.faults)
	switch {
	case *n < 0:
		return true
	case *n > 0:
		*n--
		return true
	}
	return false
}

func (e *Emulator) takeGarbage() []byte {
	e.mu.Lock()
	defer e.mu.Unlock()
	g := e.faults.Garbage
	e.faults.Garbage = nil
	return g
}

// handle answers one command text.
func (e *Emulator) handle(text []byte) []byte {
	e.mu.Lock()
	defer e.mu.Unlock()
	p := e.prof
	m, err := p.MatchCommand(text, e.selected)
	if err != nil {
		e.stats.Unanswered++
		raw := profile.Match{}
		if h := len(p.Messages.CommandHead); len(text) >= h+2 {
			raw.CM, raw.PM = text[h], text[h+1]
		}
		cond := profile.BadCommand
		if errors.Is(err, profile.ErrBadCommandData) {
			cond = profile.BadData
		}
		return e.failure(raw, cond)
	}
	if p.Quirks.RequiresInit && !e.initialised && !isInitOp(p, m.Op) {
		return e.failure(m, profile.NotInitialised)
	}
	reply := profile.Reply{Position: e.position()}
	var slot *emuSlot
	if m.Slot != nil {
		slot = e.slots[m.Slot.Name]
	}
	switch {
	case m.Kind == profile.StepSelect:
		e.selected = m.Slot.Name
		return p.EncodePositive(m, reply)
	case m.Kind == profile.StepBefore:
		if slot != nil && slot.card == nil && m.Slot.Kind == "contact" {
			return e.failure(m, profile.CardAbsent)
		}
		return p.EncodePositive(m, reply)
	}
	switch m.Op {
	case profile.OpIdentify, profile.OpResetReader:
		if m.Op == profile.OpResetReader || isInitOp(p, m.Op) {
			e.initialised = true
			e.selected = ""
		}
		reply.Version = e.version
	case profile.OpPowerOn, profile.OpWarmReset:
		if slot.card == nil {
			slot.powered = false
			return e.failure(m, profile.CardAbsent)
		}
		reply.ATR = slot.card.PowerOn()
		reply.Protocol = profile.ATRProtocol(reply.ATR)
		slot.powered = true
	case profile.OpAPDU:
		switch {
		case slot.card == nil && slot.powered:
			slot.powered = false
			return e.failure(m, profile.CardRemoved)
		case slot.card == nil:
			return e.failure(m, profile.CardAbsent)
		case !slot.powered:
			return e.failure(m, profile.CardMute)
		}
		resp, err := slot.card.Transmit(m.APDU)
		if errors.Is(err, virtual.ErrTorn) {
			slot.card, slot.powered = nil, false
			reply.Position = e.position()
			return e.failure(m, profile.CardRemoved)
		}
		if err != nil || len(resp) < 2 {
			return e.failure(m, profile.CardMute)
		}
		reply.RAPDU = resp
	case profile.OpPowerOff:
		for _, s := range e.targets(m) {
			if s.card != nil && s.powered {
				s.card.PowerOff()
			}
			s.powered = false
		}
	case profile.OpEject, profile.OpCapture:
		if s := e.slots["user"]; s != nil {
			if s.card != nil && s.powered {
				s.card.PowerOff()
			}
			s.card, s.powered = nil, false
		}
		reply.Position = e.position()
	}
	return p.EncodePositive(m, reply)
}

// targets lists the slots a per-slot command acts on: its slot, or every
// SAM slot for a SAM command that addresses none (CRT-310 SIM power off).
func (e *Emulator) targets(m profile.Match) []*emuSlot {
	if m.Slot.Kind == "sam" && !m.Cmd.Select && !hasSlotItem(m.Cmd) {
		var out []*emuSlot
		for _, s := range e.prof.Slots {
			if s.Kind == "sam" {
				out = append(out, e.slots[s.Name])
			}
		}
		return out
	}
	return []*emuSlot{e.slots[m.Slot.Name]}
}

func hasSlotItem(c *profile.Command) bool {
	for _, it := range c.Data {
		if it.Kind == profile.ItemSlot {
			return true
		}
	}
	return false
}

func isInitOp(p *profile.Profile, op profile.OpName) bool {
	for _, o := range p.Init {
		if o == op {
			return true
		}
	}
	return false
}

func (e *Emulator) position() profile.Position {
	if s := e.slots["user"]; s != nil && s.card != nil {
		return profile.PosAtContacts
	}
	return profile.PosAbsent
}

func (e *Emulator) failure(m profile.Match, c profile.Condition) []byte {
	t, ok := e.prof.EncodeFailure(m, c, profile.Reply{Position: e.position()})
	if !ok {
		// The profile has no way to say it; answer with its first code.
		code := ""
		if len(e.prof.Errors) > 0 {
			code = e.prof.Errors[0].Code
		}
		t = e.prof.EncodeNegative(m, code)
	}
	return t
}
