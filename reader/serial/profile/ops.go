package profile

import "time"

// OpName is a canonical reader operation.
type OpName string

// Canonical operations. The per-slot ones (PerSlot) are declared per slot
// in a profile; the others once.
const (
	OpIdentify    OpName = "identify"     // → version text
	OpResetReader OpName = "reset_reader" // initialise the reader → version text
	OpCardStatus  OpName = "card_status"  // → card position
	OpPowerOn     OpName = "power_on"     // per slot → ATR, protocol
	OpWarmReset   OpName = "warm_reset"   // per slot → ATR, protocol
	OpAPDU        OpName = "apdu"         // per slot, per protocol → R-APDU
	OpPowerOff    OpName = "power_off"    // per slot
	OpSelectSAM   OpName = "select_sam"   // data carries the slot's wire code
	OpEject       OpName = "eject"
	OpCapture     OpName = "capture"
	OpBeep        OpName = "beep"
	OpLEDOn       OpName = "led_on"
	OpLEDOff      OpName = "led_off"
)

// OpNames lists every canonical operation in schema order.
var OpNames = []OpName{OpIdentify, OpResetReader, OpCardStatus, OpPowerOn, OpWarmReset,
	OpAPDU, OpPowerOff, OpSelectSAM, OpEject, OpCapture, OpBeep, OpLEDOn, OpLEDOff}

// PerSlot reports whether the operation is declared per slot.
func (o OpName) PerSlot() bool {
	switch o {
	case OpPowerOn, OpWarmReset, OpAPDU, OpPowerOff:
		return true
	}
	return false
}

func knownOp(s string) bool {
	for _, o := range OpNames {
		if string(o) == s {
			return true
		}
	}
	return false
}

// Op is one entry of the command table.
type Op struct {
	Name        OpName
	Unsupported bool
	Command     *Command            // slot-less operations
	BySlot      map[string]*Command // per-slot operations (a nil value = unsupported on that slot)
	Line        int
}

// Command is one device command: cm · pm · data, the expected reply layout
// and the steps that precede it.
type Command struct {
	CM byte
	PM byte
	// PMByProtocol, when set, replaces PM by the card protocol (T0, T1,
	// auto) — the APDU commands of all known readers differ only there.
	PMByProtocol map[Protocol]byte
	Data         []Item
	Reply        []Item
	// ProtocolFrom says how power_on/warm_reset learn the card protocol
	// when the reply has no `protocol` item: "status" (ok_t1 → T1, ok → T0)
	// or "atr" (first protocol the ATR offers).
	ProtocolFrom string
	// Select: run select_sam for this slot first (readers that address SAMs
	// through a selection instead of a data byte).
	Select bool
	// Before are commands sent first (e.g. move the card to the contacts);
	// their replies are only checked for errors.
	Before []*Command
	// Timeout overrides Link.Timers.Response for this command (0 = default).
	Timeout time.Duration
	Line    int
}

// PMFor returns the parameter byte for protocol p: PMByProtocol[p], else
// PMByProtocol[auto], else PM. ok is false when the command is split by
// protocol and neither p nor auto is listed.
func (c *Command) PMFor(p Protocol) (byte, bool) {
	if c.PMByProtocol == nil {
		return c.PM, true
	}
	if b, ok := c.PMByProtocol[p]; ok {
		return b, true
	}
	if b, ok := c.PMByProtocol[ProtoAuto]; ok {
		return b, true
	}
	return 0, false
}

// ItemKind names a field of a data or reply layout.
type ItemKind string

// Layout items.
const (
	ItemConst    ItemKind = "const"    // fixed bytes (data: sent; reply: skipped)
	ItemSlot     ItemKind = "slot"     // one byte: the slot's wire code
	ItemStatus   ItemKind = "status"   // one byte: operation status letter
	ItemPosition ItemKind = "position" // one byte: card position, mapped
	ItemProtocol ItemKind = "protocol" // one byte: card protocol, mapped
	ItemAPDU     ItemKind = "apdu"     // the C-APDU
	ItemRAPDU    ItemKind = "rapdu"    // the R-APDU
	ItemATR      ItemKind = "atr"      // the ATR
	ItemVersion  ItemKind = "version"  // version text (rest of the data)
)

// Item is one field of a data or reply layout.
type Item struct {
	Kind ItemKind
	// Const holds the bytes of a const item.
	Const []byte
	// Form is "u16be" (2-byte big-endian length prefix) or "rest" (the rest
	// of the data) for apdu, rapdu, atr and version items.
	Form string
	// Positions / Protocols map the byte of position / protocol items.
	Positions map[byte]Position
	Protocols map[byte]Protocol
	Line      int
}

// Protocol is a card transmission protocol.
type Protocol string

// Protocols.
const (
	ProtoT0   Protocol = "T0"
	ProtoT1   Protocol = "T1"
	ProtoAuto Protocol = "auto" // the reader picks (CRT-591 51 39, Sankyo 49 39)
)

// Position is where the reader says the user card is.
type Position string

// Card positions.
const (
	PosAbsent     Position = "absent"
	PosAtGate     Position = "at_gate"
	PosInside     Position = "inside"
	PosAtContacts Position = "at_contacts"
	PosUnknown    Position = "unknown"
)

// Present reports whether the position means a card is in the reader.
func (p Position) Present() bool { return p != PosAbsent && p != "" }

// Condition is a canonical device outcome other than success.
type Condition string

// Canonical conditions (package reader/serial maps them to Go errors).
const (
	CardAbsent        Condition = "card_absent"
	CardMispositioned Condition = "card_mispositioned"
	CardRemoved       Condition = "card_removed"
	CardMute          Condition = "card_mute"
	ProtocolMismatch  Condition = "protocol_mismatch"
	NotInitialised    Condition = "not_initialised"
	BadCommand        Condition = "bad_command"
	BadParameter      Condition = "bad_parameter"
	BadData           Condition = "bad_data"
	NotSupported      Condition = "not_supported"
	Jam               Condition = "jam"
	PowerFault        Condition = "power_fault"
	ChecksumError     Condition = "checksum_error"
	Timeout           Condition = "timeout"
	LinkLost          Condition = "link_lost"
	Busy              Condition = "busy"
)

// Conditions lists every canonical condition.
var Conditions = []Condition{CardAbsent, CardMispositioned, CardRemoved, CardMute,
	ProtocolMismatch, NotInitialised, BadCommand, BadParameter, BadData, NotSupported,
	Jam, PowerFault, ChecksumError, Timeout, LinkLost, Busy}

func knownCondition(s string) bool {
	for _, c := range Conditions {
		if string(c) == s {
			return true
		}
	}
	return false
}

// Outcome is what a status letter means: success (ok, ok_t0, ok_t1) or a
// Condition name.
type Outcome string

// Successful outcomes.
const (
	OutcomeOK   Outcome = "ok"
	OutcomeOKT0 Outcome = "ok_t0"
	OutcomeOKT1 Outcome = "ok_t1"
)

// OK reports whether the outcome is a success.
func (o Outcome) OK() bool { return o == OutcomeOK || o == OutcomeOKT0 || o == OutcomeOKT1 }
