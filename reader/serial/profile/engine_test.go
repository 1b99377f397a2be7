package profile

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
)

func shipped(t testing.TB, name string) *Profile {
	t.Helper()
	p, err := Parse(name, []byte(shippedFile(t, name)))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

var shippedNames = []string{"crt310.yaml", "crt591.yaml", "ict3q8.yaml"}

// For every supported command of every shipped profile: the host's text is
// recognised by the emulator side as the same operation and slot, and the
// emulator's positive answer decodes on the host side to what it encoded.
func TestProfileEngineRoundTrip(t *testing.T) {
	atr0 := hexb(t, "3B 6C 00 00 53 53 43 20 43 41 52 44 20 56 33 30")
	atr1 := hexb(t, "3B 88 01 50 53 41 4D 20 53 4D 34 44")
	apdu := hexb(t, "00 A4 04 00 0F 73 78 31 2E 73 68 2E C9 E7 BB E1 B1 A3 D5 CF")
	for _, name := range shippedNames {
		p := shipped(t, name)
		for _, op := range OpNames {
			slots := []string{""}
			if op.PerSlot() || op == OpSelectSAM {
				slots = nil
				for _, s := range p.Slots {
					slots = append(slots, s.Name)
				}
			}
			for _, slot := range slots {
				for _, proto := range []Protocol{ProtoT0, ProtoT1} {
					call := Call{Op: op, Slot: slot, Protocol: proto, APDU: apdu}
					steps, err := p.Plan(call, "")
					if errors.Is(err, ErrUnsupported) {
						continue
					}
					if err != nil {
						t.Fatalf("%s %s %s: %v", name, op, slot, err)
					}
					selected := ""
					for _, st := range steps {
						m, err := p.MatchCommand(st.Text, selected)
						if err != nil {
							t.Fatalf("%s %s %s: emulator: %v", name, op, slot, err)
						}
						if m.Slot != st.Slot && st.Slot != nil && st.Slot.Kind != "contact" && !(op == OpPowerOff && m.Slot != nil) {
							t.Errorf("%s %s %s: emulator reads slot %v", name, op, slot, m.Slot)
						}
						if st.Kind == StepSelect {
							selected = st.Slot.Name
						}
						want := Reply{Position: PosAtContacts, Protocol: proto, ATR: atr0, RAPDU: []byte{0x90, 0x00}, Version: "v1"}
						if proto == ProtoT1 {
							want.ATR = atr1
						}
						res, err := p.ParseResponse(st.Cmd, st.Slot, p.EncodePositive(m, want))
						if err != nil || res.Failed() {
							t.Fatalf("%s %s %s: parse own answer: %v %+v", name, op, slot, err, res)
						}
						if hasItem(st.Cmd.Reply, ItemATR) && (!bytes.Equal(res.ATR, want.ATR) || res.Protocol != proto) {
							t.Errorf("%s %s %s: ATR % X %s", name, op, slot, res.ATR, res.Protocol)
						}
						if hasItem(st.Cmd.Reply, ItemRAPDU) && !bytes.Equal(res.RAPDU, want.RAPDU) {
							t.Errorf("%s %s %s: RAPDU % X", name, op, slot, res.RAPDU)
						}
						if op == OpCardStatus && res.Position != PosAtContacts && res.Position != PosInside {
							t.Errorf("%s card_status: position %s", name, res.Position)
						}
						if m.Op == OpAPDU && !bytes.Equal(m.APDU, apdu) {
							t.Errorf("%s %s: emulator read APDU % X", name, slot, m.APDU)
						}
					}
				}
			}
		}
	}
}

// The emulator's failure answers decode on the host side to the condition
// asked for, or to its documented fallback.
func TestProfileEncodeFailure(t *testing.T) {
	cases := []struct {
		profile string
		op      OpName
		cond    Condition
		want    Condition
	}{
		{"crt310.yaml", OpAPDU, CardRemoved, CardAbsent}, // status letter 'E'
		{"crt310.yaml", OpPowerOn, CardAbsent, CardAbsent},
		{"crt310.yaml", OpResetReader, NotInitialised, BadCommand}, // negative 'N' 00
		{"crt591.yaml", OpPowerOn, CardAbsent, CardMute},           // no card_absent code
		{"crt591.yaml", OpAPDU, CardRemoved, CardRemoved},          // "45"
		{"crt591.yaml", OpCardStatus, NotInitialised, NotInitialised},
		{"ict3q8.yaml", OpAPDU, CardRemoved, CardRemoved}, // "16"
		{"ict3q8.yaml", OpAPDU, Busy, BadCommand},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%s %s %s", c.profile, c.op, c.cond), func(t *testing.T) {
			p := shipped(t, c.profile)
			slot := ""
			if c.op.PerSlot() {
				slot = "user"
			}
			steps, err := p.Plan(Call{Op: c.op, Slot: slot, APDU: []byte{0, 0xB0, 0, 0, 1}, Protocol: ProtoT0}, "")
			if err != nil {
				t.Fatal(err)
			}
			st := steps[len(steps)-1]
			m, err := p.MatchCommand(st.Text, "")
			if err != nil {
				t.Fatal(err)
			}
			text, ok := p.EncodeFailure(m, c.cond, Reply{})
			if !ok {
				t.Fatal("not expressible")
			}
			res, err := p.ParseResponse(st.Cmd, st.Slot, text)
			if err != nil || !res.Failed() || res.Condition != c.want {
				t.Errorf("answer % X decodes to %+v, %v; want %s", text, res, err, c.want)
			}
		})
	}
}

func TestProfileMatchCommandErrors(t *testing.T) {
	p := shipped(t, "crt591.yaml")
	for _, c := range []struct {
		text string
		want error
	}{
		{"43 99 30", ErrUnknownCommand},
		{"44 31 30", ErrUnknownCommand}, // wrong head
		{"43", ErrUnknownCommand},
		{"43 52 40 39", ErrBadCommandData}, // select SAM 10: no such slot
		{"43 31 30 30", ErrBadCommandData}, // status takes no data
	} {
		if _, err := p.MatchCommand(hexb(t, c.text), ""); !errors.Is(err, c.want) {
			t.Errorf("MatchCommand(%s): %v, want %v", c.text, err, c.want)
		}
	}
	// SAM commands go to the selected SAM.
	m, err := p.MatchCommand(hexb(t, "43 52 33 00 84 00 00 08"), "psam2")
	if err != nil || m.Slot == nil || m.Slot.Name != "psam2" || m.Protocol != ProtoT0 {
		t.Errorf("SAM APDU with psam2 selected → %+v, %v", m, err)
	}
	// A u16be APDU whose length does not match the data is rejected.
	q := shipped(t, "crt310.yaml")
	if _, err := q.MatchCommand(hexb(t, "37 31 00 09 00 84 00 00 08"), ""); !errors.Is(err, ErrBadCommandData) {
		t.Errorf("bad APDU length prefix: %v", err)
	}
}

func TestProfileParseResponseErrors(t *testing.T) {
	p := shipped(t, "crt310.yaml")
	apdu := p.Op(OpAPDU, "user")
	user := p.Slot("user")
	for _, c := range []struct {
		text string
		want error
	}{
		{"37 32 59 00 02 90 00", nil},         // T1 pm echoed for a command split by protocol
		{"38 31 59 00 02 90 00", ErrBadReply}, // echo
		{"37 31 59 00 05 90 00", ErrBadReply}, // R-APDU length beyond the data
		{"37 31 59 00 01 90", ErrBadReply},    // R-APDU without SW
		{"37 31 41 00 02 90 00", ErrBadReply}, // unknown status letter
		{"37", ErrBadReply},                   // cut short
		{"4E", ErrBadReply},                   // negative without CM
		{"4E 37", ErrBadReply},                // negative without code
		{"4E 38 04", ErrBadReply},             // negative echoing another CM
	} {
		_, err := p.ParseResponse(apdu, user, hexb(t, c.text))
		if c.want == nil && err != nil || c.want != nil && !errors.Is(err, c.want) {
			t.Errorf("ParseResponse(%s): %v, want %v", c.text, err, c.want)
		}
	}
	res, err := p.ParseResponse(apdu, user, hexb(t, "4E 37 03"))
	if err != nil || !res.Negative || res.Condition != "" || res.Code != "03" {
		t.Errorf("unlisted code → %+v, %v", res, err)
	}
}

func TestProfilePlanErrors(t *testing.T) {
	p := shipped(t, "crt591.yaml")
	if _, err := p.Plan(Call{Op: OpBeep}, ""); !errors.Is(err, ErrUnsupported) {
		t.Errorf("beep: %v", err)
	}
	if _, err := p.Plan(Call{Op: OpAPDU, Slot: "user", APDU: make([]byte, 300)}, ""); !errors.Is(err, ErrAPDUTooLong) {
		t.Errorf("long APDU: %v", err)
	}
	if _, err := p.Plan(Call{Op: OpAPDU, Slot: "psam9"}, ""); err == nil {
		t.Error("unknown slot accepted")
	}
	// No select step when the SAM is already selected.
	steps, err := p.Plan(Call{Op: OpAPDU, Slot: "psam1", APDU: []byte{0, 0x84, 0, 0, 8}, Protocol: ProtoT0}, "psam1")
	if err != nil || len(steps) != 1 {
		t.Errorf("selected SAM: %d steps, %v", len(steps), err)
	}
	steps, err = p.Plan(Call{Op: OpAPDU, Slot: "psam1", APDU: []byte{0, 0x84, 0, 0, 8}, Protocol: ProtoT0}, "psam2")
	if err != nil || len(steps) != 2 || steps[0].Kind != StepSelect {
		t.Errorf("other SAM selected: %d steps, %v", len(steps), err)
	}
}
