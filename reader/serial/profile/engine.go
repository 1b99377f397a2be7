package profile

import (
	"bytes"
	"errors"
	"fmt"
	"sort"
	"strconv"
)

// Engine errors; wrapped with detail, test with errors.Is.
var (
	// ErrUnsupported: the profile marks the operation (or the operation on
	// that slot) unsupported.
	ErrUnsupported = errors.New("operation not supported by this reader")
	// ErrBadReply: a response text does not fit the profile (wrong head,
	// echo, length or status byte).
	ErrBadReply = errors.New("malformed reply")
	// ErrUnknownCommand: (emulator side) no command of the table matches.
	ErrUnknownCommand = errors.New("unknown command")
	// ErrBadCommandData: (emulator side) a command's cm/pm match but its
	// data does not fit the layout.
	ErrBadCommandData = errors.New("malformed command data")
	// ErrAPDUTooLong: the C-APDU exceeds quirks.max_apdu or the frame.
	ErrAPDUTooLong = errors.New("APDU too long for this reader")
)

// Call is one canonical operation to perform.
type Call struct {
	Op       OpName
	Slot     string   // per-slot operations, and select_sam
	Protocol Protocol // apdu: the card protocol from power-on
	APDU     []byte   // apdu: the command APDU
}

// StepKind tells what a step of a plan is for.
type StepKind string

// Step kinds.
const (
	StepSelect StepKind = "select" // select_sam before a SAM command
	StepBefore StepKind = "before" // a before step of the command
	StepMain   StepKind = "main"   // the command itself
)

// Step is one command of a plan: its text (frame payload) and the table
// entry its reply is parsed against.
type Step struct {
	Kind StepKind
	Cmd  *Command
	Slot *Slot // nil for slot-less operations
	Text []byte
}

// Plan turns a call into the command texts to send, in order. selected is
// the SAM slot the reader currently has selected ("" if unknown); a select
// step is added when the command needs another one. It fails with
// ErrUnsupported, ErrAPDUTooLong or an error naming the bad argument.
func (p *Profile) Plan(call Call, selected string) ([]Step, error) {
	var slot *Slot
	if call.Op.PerSlot() || call.Op == OpSelectSAM {
		if slot = p.Slot(call.Slot); slot == nil {
			return nil, fmt.Errorf("plan %s: unknown slot %q", call.Op, call.Slot)
		}
		if call.Op == OpSelectSAM && slot.Kind != "sam" {
			return nil, fmt.Errorf("plan select_sam: %s is not a SAM slot: %w", slot.Name, ErrUnsupported)
		}
	}
	cmd := p.Op(call.Op, call.Slot)
	if cmd == nil {
		return nil, fmt.Errorf("plan %s on %q: %w", call.Op, call.Slot, ErrUnsupported)
	}
	var steps []Step
	if cmd.Select && selected != slot.Name {
		sel := p.Op(OpSelectSAM, "")
		if sel == nil {
			return nil, fmt.Errorf("plan %s: select_sam: %w", call.Op, ErrUnsupported)
		}
		t, err := p.encodeCommand(sel, slot, call, ProtoAuto)
		if err != nil {
			return nil, err
		}
		steps = append(steps, Step{Kind: StepSelect, Cmd: sel, Slot: slot, Text: t})
	}
	for _, b := range cmd.Before {
		t, err := p.encodeCommand(b, slot, call, call.Protocol)
		if err != nil {
			return nil, err
		}
		steps = append(steps, Step{Kind: StepBefore, Cmd: b, Slot: slot, Text: t})
	}
	t, err := p.encodeCommand(cmd, slot, call, call.Protocol)
	if err != nil {
		return nil, err
	}
	return append(steps, Step{Kind: StepMain, Cmd: cmd, Slot: slot, Text: t}), nil
}

func (p *Profile) encodeCommand(c *Command, slot *Slot, call Call, proto Protocol) ([]byte, error) {
	pm, ok := c.PMFor(proto)
	if !ok {
		return nil, fmt.Errorf("encode %s: no command for protocol %q: %w", call.Op, proto, ErrUnsupported)
	}
	t := append([]byte(nil), p.Messages.CommandHead...)
	t = append(t, c.CM, pm)
	for _, it := range c.Data {
		switch it.Kind {
		case ItemConst:
			t = append(t, it.Const...)
		case ItemSlot:
			t = append(t, slot.Wire)
		case ItemAPDU:
			if len(call.APDU) > p.Quirks.MaxAPDU {
				return nil, fmt.Errorf("encode apdu: %d bytes, reader takes %d: %w", len(call.APDU), p.Quirks.MaxAPDU, ErrAPDUTooLong)
			}
			t = appendField(t, it.Form, call.APDU)
		}
	}
	if len(t) > p.Framing.MaxText() {
		return nil, fmt.Errorf("encode %s: %d bytes exceed the frame: %w", call.Op, len(t), ErrAPDUTooLong)
	}
	return t, nil
}

func appendField(t []byte, form string, b []byte) []byte {
	if form == "u16be" {
		t = append(t, byte(len(b)>>8), byte(len(b)))
	}
	return append(t, b...)
}

// Result is a decoded reply.
type Result struct {
	// Negative is set for a negative response; Code is its device error
	// code in canonical text form (hex digits for binary codes).
	Negative bool
	Code     string
	// HasStatus/Status/Outcome: the operation-status letter, if the reply
	// layout has one.
	HasStatus bool
	Status    byte
	Outcome   Outcome
	// Condition is the canonical failure, "" on success or when a negative
	// code is not in the profile's errors table.
	Condition Condition
	Position  Position
	Protocol  Protocol
	ATR       []byte
	RAPDU     []byte
	Version   string
}

// Failed reports whether the device reported a failure.
func (r *Result) Failed() bool { return r.Negative || r.HasStatus && !r.Outcome.OK() }

// ParseResponse decodes the text of a response frame to cmd (sent for
// slot, nil for slot-less operations). A device-reported failure is not an
// error: check Result.Failed and Result.Condition. It fails with
// ErrBadReply when the text does not fit the profile.
func (p *Profile) ParseResponse(cmd *Command, slot *Slot, text []byte) (Result, error) {
	var r Result
	m := &p.Messages
	for _, h := range m.Negative.Heads {
		if bytes.HasPrefix(text, h) {
			rest, err := p.checkEcho(text[len(h):], m.Negative.Echo, cmd)
			if err != nil {
				return r, err
			}
			w := m.Negative.Code.Width
			if len(rest) < w {
				return r, fmt.Errorf("parse negative reply: code cut short: %w", ErrBadReply)
			}
			r.Negative = true
			r.Code = codeText(m.Negative.Code, rest[:w])
			r.Condition, _ = p.ErrorCondition(r.Code)
			return r, nil
		}
	}
	if !bytes.HasPrefix(text, m.Positive.Head) {
		return r, fmt.Errorf("parse reply: head % X is neither positive nor negative: %w", firstN(text, 4), ErrBadReply)
	}
	rest, err := p.checkEcho(text[len(m.Positive.Head):], m.Positive.Echo, cmd)
	if err != nil {
		return r, err
	}
	if rest, err = p.decodeItems(m.Positive.Status, rest, slot, &r); err != nil {
		return r, err
	}
	if _, err = p.decodeItems(cmd.Reply, rest, slot, &r); err != nil {
		return r, err
	}
	if r.Failed() {
		r.Condition = Condition(r.Outcome)
		return r, nil
	}
	if hasItem(cmd.Reply, ItemATR) && r.Protocol == "" {
		if cmd.ProtocolFrom == "status" {
			r.Protocol = ProtoT0
			if r.Outcome == OutcomeOKT1 {
				r.Protocol = ProtoT1
			}
		} else {
			r.Protocol = ATRProtocol(r.ATR)
		}
	}
	return r, nil
}

func firstN(b []byte, n int) []byte {
	if len(b) < n {
		return b
	}
	return b[:n]
}

func codeText(c CodeSpec, b []byte) string {
	if c.Encoding == "ascii" {
		return string(b)
	}
	return fmt.Sprintf("%X", b)
}

// checkEcho verifies the echoed command bytes. For a command split by
// protocol any of its pm values is accepted.
func (p *Profile) checkEcho(b []byte, echo []EchoField, cmd *Command) ([]byte, error) {
	if len(b) < len(echo) {
		return nil, fmt.Errorf("parse reply: echo cut short: %w", ErrBadReply)
	}
	for i, e := range echo {
		switch e {
		case EchoCM:
			if b[i] != cmd.CM {
				return nil, fmt.Errorf("parse reply: echoed cm 0x%02X, sent 0x%02X: %w", b[i], cmd.CM, ErrBadReply)
			}
		case EchoPM:
			if !cmd.pmMatches(b[i]) {
				return nil, fmt.Errorf("parse reply: echoed pm 0x%02X does not match the command: %w", b[i], ErrBadReply)
			}
		}
	}
	return b[len(echo):], nil
}

func (c *Command) pmMatches(b byte) bool {
	if c.PMByProtocol == nil {
		return b == c.PM
	}
	for _, v := range c.PMByProtocol {
		if v == b {
			return true
		}
	}
	return false
}

// decodeItems decodes a reply layout from b into r and returns what is
// left. A failing status letter stops decoding (the device sends nothing
// after it).
func (p *Profile) decodeItems(items []Item, b []byte, slot *Slot, r *Result) ([]byte, error) {
	short := func(it Item) error {
		return fmt.Errorf("parse reply: %s cut short: %w", it.Kind, ErrBadReply)
	}
	for _, it := range items {
		switch it.Kind {
		case ItemConst:
			if len(b) < len(it.Const) {
				return nil, short(it)
			}
			b = b[len(it.Const):]
		case ItemSlot, ItemStatus, ItemPosition, ItemProtocol:
			if len(b) < 1 {
				return nil, short(it)
			}
			c := b[0]
			b = b[1:]
			switch it.Kind {
			case ItemSlot:
				if slot == nil || !slot.HasWire || c != slot.Wire {
					return nil, fmt.Errorf("parse reply: slot byte 0x%02X does not match: %w", c, ErrBadReply)
				}
			case ItemStatus:
				o, ok := p.StatusLetters[c]
				if !ok {
					return nil, fmt.Errorf("parse reply: unknown status byte 0x%02X: %w", c, ErrBadReply)
				}
				r.HasStatus, r.Status, r.Outcome = true, c, o
				if !o.OK() {
					return nil, nil
				}
			case ItemPosition:
				pos, ok := it.Positions[c]
				if !ok {
					pos = PosUnknown
				}
				r.Position = pos
			case ItemProtocol:
				pr, ok := it.Protocols[c]
				if !ok {
					return nil, fmt.Errorf("parse reply: unknown protocol byte 0x%02X: %w", c, ErrBadReply)
				}
				r.Protocol = pr
			}
		case ItemATR, ItemRAPDU, ItemVersion:
			var v []byte
			if it.Form == "u16be" {
				if len(b) < 2 {
					return nil, short(it)
				}
				n := int(b[0])<<8 | int(b[1])
				if len(b)-2 < n {
					return nil, short(it)
				}
				v, b = b[2:2+n], b[2+n:]
			} else {
				v, b = b, nil
			}
			v = append([]byte(nil), v...)
			switch it.Kind {
			case ItemATR:
				r.ATR = v
			case ItemRAPDU:
				if len(v) < 2 {
					return nil, fmt.Errorf("parse reply: R-APDU of %d bytes has no status word: %w", len(v), ErrBadReply)
				}
				r.RAPDU = v
			case ItemVersion:
				r.Version = string(v)
			}
		}
	}
	return b, nil
}

// ATRProtocol returns the first protocol an ATR offers (ISO 7816-3: T=0
// unless TD1 names T=1). A short or odd ATR yields T0.
func ATRProtocol(atr []byte) Protocol {
	if len(atr) < 2 {
		return ProtoT0
	}
	t0 := atr[1]
	if t0&0x80 == 0 {
		return ProtoT0
	}
	i := 2
	for _, bit := range []byte{0x10, 0x20, 0x40} {
		if t0&bit != 0 {
			i++
		}
	}
	if i >= len(atr) {
		return ProtoT0
	}
	if atr[i]&0x0F == 1 {
		return ProtoT1
	}
	return ProtoT0
}

// Emulator side.

// Match is a command text recognised against the table.
type Match struct {
	Op       OpName
	Kind     StepKind
	Slot     *Slot // nil for slot-less operations
	Cmd      *Command
	CM, PM   byte
	Protocol Protocol // apdu: the protocol whose pm was used
	APDU     []byte
}

// MatchCommand recognises a command text (emulator side). selected is the
// SAM slot currently selected, used for commands that address SAMs by
// selection. It fails with ErrUnknownCommand when no entry has the cm/pm,
// ErrBadCommandData when one has but the data does not fit, and
// ErrBadReply-free errors only; it never panics.
func (p *Profile) MatchCommand(text []byte, selected string) (Match, error) {
	h := p.Messages.CommandHead
	if !bytes.HasPrefix(text, h) || len(text) < len(h)+2 {
		return Match{}, fmt.Errorf("match command: % X: %w", firstN(text, 4), ErrUnknownCommand)
	}
	cm, pm, data := text[len(h)], text[len(h)+1], text[len(h)+2:]
	sawCMPM := false
	for _, cand := range p.candidates() {
		c := cand.cmd
		if c.CM != cm || !c.pmMatches(pm) {
			continue
		}
		sawCMPM = true
		slot, apdu, ok := p.decodeData(c, cand, data, selected)
		if !ok {
			continue
		}
		m := Match{Op: cand.op, Kind: cand.kind, Slot: slot, Cmd: c, CM: cm, PM: pm, APDU: apdu}
		if c.PMByProtocol != nil {
			for _, pr := range []Protocol{ProtoT0, ProtoT1, ProtoAuto} {
				if v, ok := c.PMByProtocol[pr]; ok && v == pm {
					m.Protocol = pr
					break
				}
			}
		}
		return m, nil
	}
	if sawCMPM {
		return Match{}, fmt.Errorf("match command %02X %02X: %w", cm, pm, ErrBadCommandData)
	}
	return Match{}, fmt.Errorf("match command %02X %02X: %w", cm, pm, ErrUnknownCommand)
}

type candidate struct {
	op   OpName
	kind StepKind
	slot *Slot // nil: slot-less, or decided by data
	cmd  *Command
}

// candidates lists every command of the table in a fixed order: operations
// in OpNames order, slots in declaration order, before steps first.
func (p *Profile) candidates() []candidate {
	var out []candidate
	for _, name := range OpNames {
		o := p.Ops[name]
		if o == nil || o.Unsupported {
			continue
		}
		if o.Command != nil {
			for _, b := range o.Command.Before {
				out = append(out, candidate{name, StepBefore, nil, b})
			}
			kind := StepMain
			if name == OpSelectSAM {
				kind = StepSelect
			}
			out = append(out, candidate{name, kind, nil, o.Command})
			continue
		}
		for _, s := range p.Slots {
			c := o.BySlot[s.Name]
			if c == nil {
				continue
			}
			for _, b := range c.Before {
				out = append(out, candidate{name, StepBefore, s, b})
			}
			out = append(out, candidate{name, StepMain, s, c})
		}
	}
	return out
}

// decodeData checks a command's data against a candidate's layout.
func (p *Profile) decodeData(c *Command, cand candidate, data []byte, selected string) (*Slot, []byte, bool) {
	slot := cand.slot
	var apdu []byte
	for i, it := range c.Data {
		switch it.Kind {
		case ItemConst:
			if !bytes.HasPrefix(data, it.Const) {
				return nil, nil, false
			}
			data = data[len(it.Const):]
		case ItemSlot:
			if len(data) < 1 {
				return nil, nil, false
			}
			w := data[0]
			data = data[1:]
			if slot != nil {
				if !slot.HasWire || slot.Wire != w {
					return nil, nil, false
				}
				continue
			}
			for _, s := range p.Slots {
				if s.HasWire && s.Wire == w && s.Kind == "sam" {
					slot = s
				}
			}
			if slot == nil {
				return nil, nil, false
			}
		case ItemAPDU:
			if it.Form == "u16be" {
				if len(data) < 2 {
					return nil, nil, false
				}
				n := int(data[0])<<8 | int(data[1])
				if len(data)-2 < n || i == len(c.Data)-1 && len(data)-2 != n {
					return nil, nil, false
				}
				apdu, data = data[2:2+n], data[2+n:]
			} else {
				apdu, data = data, nil
			}
			apdu = append([]byte(nil), apdu...)
		}
	}
	if len(data) != 0 {
		return nil, nil, false
	}
	if c.Select && cand.slot != nil && cand.slot.Name != selected {
		return nil, nil, false
	}
	return slot, apdu, true
}

// Reply is what the emulator answers with on success.
type Reply struct {
	Position Position
	Protocol Protocol
	ATR      []byte
	RAPDU    []byte
	Version  string
}

// EncodePositive builds the text of a positive response to m.
func (p *Profile) EncodePositive(m Match, r Reply) []byte {
	t := p.positiveHead(m)
	t = p.encodeItems(t, p.Messages.Positive.Status, m, r, OutcomeOK)
	outcome := OutcomeOK
	if hasItem(m.Cmd.Reply, ItemATR) {
		outcome = OutcomeOKT0
		if r.Protocol == ProtoT1 {
			outcome = OutcomeOKT1
		}
	}
	return p.encodeItems(t, m.Cmd.Reply, m, r, outcome)
}

func (p *Profile) positiveHead(m Match) []byte {
	t := append([]byte(nil), p.Messages.Positive.Head...)
	return appendEcho(t, p.Messages.Positive.Echo, m)
}

func appendEcho(t []byte, echo []EchoField, m Match) []byte {
	for _, e := range echo {
		if e == EchoCM {
			t = append(t, m.CM)
		} else {
			t = append(t, m.PM)
		}
	}
	return t
}

// EncodeFailure builds the response that reports cond for m, the way the
// profile's device would: a failing status letter when the reply layout
// has a status item and a letter maps to the condition, else a negative
// response with the first error code mapped to it. A condition the device
// cannot express falls back (card_removed → card_absent → card_mute; any
// other → bad_command). ok is false if no fallback is expressible either.
func (p *Profile) EncodeFailure(m Match, cond Condition, r Reply) (text []byte, ok bool) {
	chain := []Condition{cond}
	switch cond {
	case CardRemoved:
		chain = append(chain, CardAbsent, CardMute)
	case CardAbsent:
		chain = append(chain, CardMute)
	}
	chain = append(chain, BadCommand)
	for _, c := range chain {
		if m.Cmd != nil && hasItem(m.Cmd.Reply, ItemStatus) {
			if _, found := p.letterFor(Outcome(c)); found {
				t := p.positiveHead(m)
				t = p.encodeItems(t, p.Messages.Positive.Status, m, r, OutcomeOK)
				return p.encodeItems(t, m.Cmd.Reply, m, r, Outcome(c)), true
			}
		}
		for _, e := range p.Errors {
			if e.Condition == c {
				return p.EncodeNegative(m, e.Code), true
			}
		}
	}
	return nil, false
}

// EncodeNegative builds a negative response with a device error code in
// canonical text form.
func (p *Profile) EncodeNegative(m Match, code string) []byte {
	n := p.Messages.Negative
	t := append([]byte(nil), n.Heads[0]...)
	t = appendEcho(t, n.Echo, m)
	if n.Code.Encoding == "ascii" {
		b := []byte(code)
		for len(b) < n.Code.Width {
			b = append([]byte{'0'}, b...)
		}
		return append(t, b[:n.Code.Width]...)
	}
	v, _ := strconv.ParseUint(code, 16, 16)
	for i := n.Code.Width - 1; i >= 0; i-- {
		t = append(t, byte(v>>(8*i)))
	}
	return t
}

// letterFor finds the status letter for an outcome (lowest byte first, so
// the choice is stable). ok_t0 falls back to ok.
func (p *Profile) letterFor(o Outcome) (byte, bool) {
	try := []Outcome{o}
	if o == OutcomeOKT0 || o == OutcomeOKT1 {
		try = append(try, OutcomeOK)
	}
	keys := make([]int, 0, len(p.StatusLetters))
	for k := range p.StatusLetters {
		keys = append(keys, int(k))
	}
	sort.Ints(keys)
	for _, want := range try {
		for _, k := range keys {
			if p.StatusLetters[byte(k)] == want {
				return byte(k), true
			}
		}
	}
	return 0, false
}

// encodeItems appends a reply layout. outcome is the status letter's
// meaning; a failing outcome ends the layout after the status byte.
func (p *Profile) encodeItems(t []byte, items []Item, m Match, r Reply, outcome Outcome) []byte {
	for _, it := range items {
		switch it.Kind {
		case ItemConst:
			t = append(t, it.Const...)
		case ItemSlot:
			if m.Slot != nil {
				t = append(t, m.Slot.Wire)
			} else {
				t = append(t, 0)
			}
		case ItemStatus:
			b, _ := p.letterFor(outcome)
			t = append(t, b)
			if !outcome.OK() {
				return t
			}
		case ItemPosition:
			t = append(t, positionByte(it.Positions, r.Position))
		case ItemProtocol:
			t = append(t, protocolByte(it.Protocols, r.Protocol))
		case ItemATR:
			t = appendField(t, it.Form, r.ATR)
		case ItemRAPDU:
			t = appendField(t, it.Form, r.RAPDU)
		case ItemVersion:
			t = append(t, r.Version...)
		}
	}
	return t
}

func sortedKeys[V comparable](m map[byte]V) []byte {
	keys := make([]byte, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i] < keys[j] })
	return keys
}

func positionByte(m map[byte]Position, want Position) byte {
	try := []Position{want}
	switch want {
	case PosAtContacts:
		try = append(try, PosInside, PosAtGate)
	case PosInside:
		try = append(try, PosAtContacts, PosAtGate)
	}
	keys := sortedKeys(m)
	for _, w := range try {
		for _, k := range keys {
			if m[k] == w {
				return k
			}
		}
	}
	if len(keys) > 0 {
		return keys[0]
	}
	return 0
}

func protocolByte(m map[byte]Protocol, want Protocol) byte {
	keys := sortedKeys(m)
	for _, k := range keys {
		if m[k] == want {
			return k
		}
	}
	if len(keys) > 0 {
		return keys[0]
	}
	return 0
}
