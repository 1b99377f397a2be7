package profile

import (
	"bytes"
	"errors"
	"fmt"

	"gopkg.in/yaml.v3"
)

// Test is one golden test of a profile: an operation with its arguments,
// the exact frames the host sends, the frames the reader answers and what
// the last answer decodes to.
type Test struct {
	Name      string
	Line      int
	Call      Call
	Exchanges []Exchange
	Want      Want
}

// Exchange is one command frame and (optionally, for the last exchange of
// a test without `want`) its response frame.
type Exchange struct {
	TX, RX       []byte
	Line, RXLine int
}

// Want is the decoded result a test expects; nil/empty fields are not
// checked.
type Want struct {
	Error    Condition // the reply must fail with this condition
	Code     string    // the reply must be negative with this device code
	ATR      []byte
	RAPDU    []byte
	Protocol Protocol
	Position Position
	Version  *string
	Set      bool
}

func (d *decoder) tests(n *yaml.Node, p *Profile) []*Test {
	var out []*Test
	for i, e := range d.seq(n, "tests") {
		path := fmt.Sprintf("tests[%d]", i)
		f := d.fields(e, path, []string{"name", "op", "slot", "protocol", "apdu", "tx", "rx", "exchanges", "want"}, "op")
		t := &Test{Line: d.lineOf(e)}
		if v, ok := f["name"]; ok {
			t.Name = d.str(v.val, path+".name")
		}
		if v, ok := f["op"]; ok {
			name := d.str(v.val, path+".op")
			switch {
			case name == "":
			case !knownOp(name):
				d.errf(v.val, path+".op", "unknown operation %q", name)
			default:
				t.Call.Op = OpName(name)
			}
		}
		if v, ok := f["slot"]; ok {
			t.Call.Slot = d.str(v.val, path+".slot")
			if p.Slot(t.Call.Slot) == nil {
				d.errf(v.val, path+".slot", "unknown slot %s", t.Call.Slot)
			}
		} else if t.Call.Op.PerSlot() || t.Call.Op == OpSelectSAM {
			d.errf(e, path, "operation %s needs a slot", t.Call.Op)
		}
		if t.Call.Op != "" && t.Call.Slot != "" && p.Slot(t.Call.Slot) != nil && p.Op(t.Call.Op, t.Call.Slot) == nil {
			d.errf(e, path, "operation %s is unsupported on slot %q", t.Call.Op, t.Call.Slot)
		} else if t.Call.Op != "" && !t.Call.Op.PerSlot() && p.Op(t.Call.Op, "") == nil {
			d.errf(e, path, "operation %s is unsupported", t.Call.Op)
		}
		if v, ok := f["protocol"]; ok {
			t.Call.Protocol = Protocol(d.enum(v.val, path+".protocol", string(ProtoT0), string(ProtoT1), string(ProtoAuto)))
		}
		if v, ok := f["apdu"]; ok {
			t.Call.APDU, _ = d.hexBytes(v.val, path+".apdu")
		} else if t.Call.Op == OpAPDU {
			d.errf(e, path, "an apdu test needs its apdu")
		}
		_, hasTX := f["tx"]
		_, hasRX := f["rx"]
		if x, ok := f["exchanges"]; ok {
			if hasTX || hasRX {
				d.errf(x.key, path, "write either tx/rx or exchanges, not both")
			}
			for j, xe := range d.seq(x.val, path+".exchanges") {
				xp := fmt.Sprintf("%s.exchanges[%d]", path, j)
				xf := d.fields(xe, xp, []string{"tx", "rx"}, "tx")
				t.Exchanges = append(t.Exchanges, d.exchange(xf, xp, d.lineOf(xe)))
			}
		} else if hasTX {
			t.Exchanges = append(t.Exchanges, d.exchange(f, path, t.Line))
		} else {
			d.errf(e, path, "a test needs tx (and usually rx) or exchanges")
		}
		if v, ok := f["want"]; ok {
			t.Want = d.want(v.val, path+".want")
		}
		if t.Want.Set && (len(t.Exchanges) == 0 || t.Exchanges[len(t.Exchanges)-1].RX == nil) {
			d.errf(e, path, "want needs the last exchange's rx")
		}
		for j, x := range t.Exchanges {
			if x.RX == nil && j < len(t.Exchanges)-1 {
				d.errf(e, path, "only the last exchange may omit rx")
			}
		}
		out = append(out, t)
	}
	return out
}

func (d *decoder) exchange(f map[string]field, path string, line int) Exchange {
	x := Exchange{Line: line}
	if v, ok := f["tx"]; ok {
		x.TX, _ = d.hexBytes(v.val, path+".tx")
		x.Line = v.val.Line
	}
	if v, ok := f["rx"]; ok {
		if b, ok := d.hexBytes(v.val, path+".rx"); ok {
			x.RX = append([]byte{}, b...)
		}
		x.RXLine = v.val.Line
	}
	return x
}

func (d *decoder) want(n *yaml.Node, path string) Want {
	w := Want{Set: true}
	f := d.fields(n, path, []string{"error", "code", "atr", "rapdu", "protocol", "position", "version"})
	if v, ok := f["error"]; ok {
		c := d.str(v.val, path+".error")
		if c != "" && !knownCondition(c) {
			d.errf(v.val, path+".error", "unknown condition %q", c)
		}
		w.Error = Condition(c)
	}
	if v, ok := f["code"]; ok {
		w.Code = d.str(v.val, path+".code")
	}
	if v, ok := f["atr"]; ok {
		w.ATR, _ = d.hexBytes(v.val, path+".atr")
	}
	if v, ok := f["rapdu"]; ok {
		w.RAPDU, _ = d.hexBytes(v.val, path+".rapdu")
	}
	if v, ok := f["protocol"]; ok {
		w.Protocol = Protocol(d.enum(v.val, path+".protocol", string(ProtoT0), string(ProtoT1)))
	}
	if v, ok := f["position"]; ok {
		w.Position = Position(d.enum(v.val, path+".position", string(PosAbsent), string(PosAtGate), string(PosInside), string(PosAtContacts), string(PosUnknown)))
	}
	if v, ok := f["version"]; ok {
		s := d.str(v.val, path+".version")
		w.Version = &s
	}
	return w
}

// Check runs the profile's golden tests. For each test it encodes the
// operation and compares every command frame byte for byte; recognises
// each command frame again the way the emulator does; decodes every
// response frame (checksum, length, end marker, re-encoding round trip)
// and compares the last one's decoded result with `want`. It returns the
// number of frames checked and an [ErrorList] naming each failing test by
// line.
func (p *Profile) Check() (frames int, err error) {
	var errs ErrorList
	for i, t := range p.Tests {
		n, terr := p.runTest(t)
		frames += n
		if terr != nil {
			errs = append(errs, &Error{File: p.File, Line: t.Line, Path: fmt.Sprintf("tests[%d]", i), Msg: terr.Error()})
		}
	}
	if len(errs) > 0 {
		return frames, errs
	}
	return frames, nil
}

func (p *Profile) runTest(t *Test) (frames int, err error) {
	steps, err := p.Plan(t.Call, "")
	if err != nil {
		return 0, err
	}
	// A test that expects a failure may stop at the failing step.
	failing := t.Want.Error != "" || t.Want.Code != ""
	if len(steps) != len(t.Exchanges) && !(failing && len(t.Exchanges) < len(steps)) {
		return 0, fmt.Errorf("%s encodes to %d command frame(s), the test lists %d", t.Call.Op, len(steps), len(t.Exchanges))
	}
	steps = steps[:len(t.Exchanges)]
	addr := byte(0)
	if p.Framing.Address != nil {
		addr = byte(p.Framing.Address.Default)
	}
	selected := ""
	for i, st := range steps {
		x := t.Exchanges[i]
		tx, err := p.Framing.Encode(addr, st.Text)
		if err != nil {
			return frames, err
		}
		if !bytes.Equal(tx, x.TX) {
			return frames, fmt.Errorf("line %d: tx: encoded % X, test has % X", x.Line, tx, x.TX)
		}
		frames++
		// The emulator's view of the same frame.
		fr, _, err := p.Framing.Decode(x.TX)
		if err != nil {
			return frames, fmt.Errorf("line %d: tx: %v", x.Line, err)
		}
		m, err := p.MatchCommand(fr.Text, selected)
		if err != nil {
			return frames, fmt.Errorf("line %d: tx: emulator: %v", x.Line, err)
		}
		if m.Kind != st.Kind || !sameReply(m.Cmd, st.Cmd) || m.Slot != st.Slot || (st.Kind == StepMain && !bytes.Equal(m.APDU, t.Call.APDU) && t.Call.Op == OpAPDU) {
			return frames, fmt.Errorf("line %d: tx: emulator reads it as %s %s of %s", x.Line, m.Kind, m.Op, slotName(m.Slot))
		}
		if st.Kind == StepSelect {
			selected = st.Slot.Name
		}
		if x.RX == nil {
			continue
		}
		rf, n, err := p.Framing.Decode(x.RX)
		if err != nil {
			return frames, fmt.Errorf("line %d: rx: %v", x.RXLine, err)
		}
		if n != len(x.RX) {
			return frames, fmt.Errorf("line %d: rx: %d bytes after the frame", x.RXLine, len(x.RX)-n)
		}
		if again, err := p.Framing.Encode(rf.Addr, rf.Text); err != nil || !bytes.Equal(again, x.RX) {
			return frames, fmt.Errorf("line %d: rx: re-encoding gives % X", x.RXLine, again)
		}
		frames++
		res, err := p.ParseResponse(st.Cmd, st.Slot, rf.Text)
		if err != nil {
			return frames, fmt.Errorf("line %d: rx: %v", x.RXLine, err)
		}
		last := i == len(steps)-1
		if !last {
			if res.Failed() {
				return frames, fmt.Errorf("line %d: rx: step fails with %s but more exchanges follow", x.RXLine, describe(res))
			}
			continue
		}
		if err := t.Want.compare(res); err != nil {
			return frames, fmt.Errorf("line %d: rx: %v", x.RXLine, err)
		}
	}
	return frames, nil
}

func slotName(s *Slot) string {
	if s == nil {
		return "the reader"
	}
	return s.Name
}

func describe(r Result) string {
	switch {
	case r.Negative && r.Condition != "":
		return fmt.Sprintf("%s (code %s)", r.Condition, r.Code)
	case r.Negative:
		return "unlisted code " + r.Code
	case r.Failed():
		return fmt.Sprintf("%s (status 0x%02X)", r.Condition, r.Status)
	}
	return "success"
}

var errMismatch = errors.New("mismatch")

func (w Want) compare(r Result) error {
	if !w.Set {
		return nil
	}
	if w.Error != "" || w.Code != "" {
		if !r.Failed() {
			return fmt.Errorf("want failure %s, reply is a success: %w", w.Error, errMismatch)
		}
		if w.Error != "" && r.Condition != w.Error {
			return fmt.Errorf("want %s, reply says %s: %w", w.Error, describe(r), errMismatch)
		}
		if w.Code != "" && r.Code != w.Code {
			return fmt.Errorf("want code %s, reply has %q: %w", w.Code, r.Code, errMismatch)
		}
		return nil
	}
	if r.Failed() {
		return fmt.Errorf("reply fails with %s: %w", describe(r), errMismatch)
	}
	if w.ATR != nil && !bytes.Equal(w.ATR, r.ATR) {
		return fmt.Errorf("atr % X, want % X: %w", r.ATR, w.ATR, errMismatch)
	}
	if w.RAPDU != nil && !bytes.Equal(w.RAPDU, r.RAPDU) {
		return fmt.Errorf("rapdu % X, want % X: %w", r.RAPDU, w.RAPDU, errMismatch)
	}
	if w.Protocol != "" && w.Protocol != r.Protocol {
		return fmt.Errorf("protocol %s, want %s: %w", r.Protocol, w.Protocol, errMismatch)
	}
	if w.Position != "" && w.Position != r.Position {
		return fmt.Errorf("position %s, want %s: %w", r.Position, w.Position, errMismatch)
	}
	if w.Version != nil && *w.Version != r.Version {
		return fmt.Errorf("version %q, want %q: %w", r.Version, *w.Version, errMismatch)
	}
	return nil
}

// sameReply reports whether two commands are answered alike: the emulator
// cannot tell apart commands with the same bytes (CRT-310 identify and
// reset_reader), which is harmless only if their replies have one layout.
func sameReply(a, b *Command) bool {
	if a == b {
		return true
	}
	if len(a.Reply) != len(b.Reply) {
		return false
	}
	for i := range a.Reply {
		x, y := a.Reply[i], b.Reply[i]
		if x.Kind != y.Kind || x.Form != y.Form || !bytes.Equal(x.Const, y.Const) {
			return false
		}
	}
	return true
}
