package profile

import (
	"strings"
	"time"
)

// SchemaVersion is the only value accepted in a profile's `schema` key.
const SchemaVersion = "reader-profile/v1"

// Profile is one reader model's protocol description, as loaded and
// validated by [Parse]. Every field has been checked; code that uses a
// Profile does not re-validate. A Profile is read-only after loading and
// safe for concurrent use, except that tests may adjust timers before use.
type Profile struct {
	File    string // file name used in error messages
	Schema  string
	ID      string
	Vendor  string
	Model   string
	Aliases []string
	Status  string // "draft" (built from a spec) or "verified" (run on hardware)
	Sources []string
	Notes   []string

	Match     MatchSpec
	Transport Transport
	Framing   Framing
	Link      Link
	Messages  Messages

	// StatusLetters maps the operation-status byte carried inside positive
	// replies (CRT-310 'Y', 'Z', 'E', ...) to an outcome.
	StatusLetters map[byte]Outcome
	// Errors maps device error codes (negative responses) to conditions, in
	// file order.
	Errors []ErrorCode

	Slots  []*Slot
	Ops    map[OpName]*Op
	Init   []OpName
	Quirks Quirks
	Tests  []*Test
}

// MatchSpec tells the agent when this profile may apply to a port.
type MatchSpec struct {
	// USB lists VID/PID pairs (upper-case hex) of the USB-serial bridges
	// seen with this model: a hint only, bridge chips are shared.
	USB []USBID
	// ProbeOp is an operation whose reply confirms the model (usually
	// identify); ProbeContains must occur in the reply's version text.
	ProbeOp       OpName
	ProbeContains string
}

// USBID is a USB vendor/product ID pair in upper-case hex.
type USBID struct{ VID, PID string }

// Transport holds the serial line settings.
type Transport struct {
	Baud         int   // default baud rate
	BaudOptions  []int // rates the device supports
	BaudStrategy string
	DataBits     int
	Parity       string // none | even | odd
	StopBits     int    // 1 | 2
	Flow         string // none | rtscts
	ReadySignal  string // none | dsr | cts
}

// Link holds the handshake style, control characters, timers and retries.
type Link struct {
	Style            LinkStyle
	ACK, NAK, ENQ    byte
	Cancel           []byte
	HostAcksResponse bool
	Timers           Timers
	Retries          Retries
	// MaxGarbage bounds how many bytes the host skips while looking for a
	// control byte or a frame's start before it gives up on a response.
	MaxGarbage int
}

// LinkStyle names a handshake.
type LinkStyle string

// Link styles.
const (
	// StyleACKENQ: command → reader ACK → host ENQ → response (CRT-310).
	StyleACKENQ LinkStyle = "ack_enq"
	// StyleACKThenResponse: command → reader ACK → response → host ACK
	// (CRT-591, Sankyo).
	StyleACKThenResponse LinkStyle = "ack_then_response"
	// StylePlain: command → response, no control characters.
	StylePlain LinkStyle = "plain"
)

// Timers are the link timers. Response is the default time a command may
// take; a Command's Timeout overrides it.
type Timers struct {
	ACK       time.Duration
	InterChar time.Duration
	MinGap    time.Duration
	Response  time.Duration
}

// Retries bounds re-sending: after a NAK (or a bad response frame), and
// after a missing ACK.
type Retries struct {
	OnNAK        int
	OnACKTimeout int
}

// Messages describes the text inside a frame.
type Messages struct {
	CommandHead []byte
	Positive    PositiveSpec
	Negative    NegativeSpec
}

// PositiveSpec describes a positive response: head · echo · status · data.
type PositiveSpec struct {
	Head   []byte
	Echo   []EchoField
	Status []Item // status bytes present in every positive response
}

// NegativeSpec describes a negative response: head · echo · code · data.
type NegativeSpec struct {
	Heads [][]byte // first is used when encoding
	Echo  []EchoField
	Code  CodeSpec
}

// EchoField names a command byte echoed in responses.
type EchoField string

// Echo fields.
const (
	EchoCM EchoField = "cm"
	EchoPM EchoField = "pm"
)

// CodeSpec is the device error code of negative responses.
type CodeSpec struct {
	Width    int
	Encoding string // binary | ascii
}

// ErrorCode maps one device error code (its canonical text form: two hex
// digits per byte for binary codes, the characters for ASCII codes) to a
// condition.
type ErrorCode struct {
	Code      string
	Condition Condition
}

// Slot is one card position of the reader.
type Slot struct {
	Name string // "user" or "psamN"
	Kind string // "contact" or "sam"
	// Wire is the slot's code on the wire (data byte or select parameter);
	// HasWire is false for the user slot of most readers.
	Wire    byte
	HasWire bool
}

// Quirks collects model peculiarities.
type Quirks struct {
	// GetResponse says who handles SW 61xx/6Cxx: "host" (the slot returns
	// them, apdu.Exchange chains) or "reader".
	GetResponse string
	// APDULengthPrefix is how `apdu`/`rapdu` items are carried: "u16be"
	// (CRT-310) or "none".
	APDULengthPrefix string
	// MaxAPDU is the longest C-APDU the reader accepts.
	MaxAPDU int
	// RequiresInit: the reader rejects every command until an init op has
	// run (CRT-591, Sankyo "B0").
	RequiresInit bool
	// PresenceCheck is "card_status" when the host must ask for the card
	// position before powering the user card (the power-on error does not
	// tell "no card" apart), or "none".
	PresenceCheck string
}

// Profile lookups.

// Slot returns the named slot or nil.
func (p *Profile) Slot(name string) *Slot {
	for _, s := range p.Slots {
		if s.Name == name {
			return s
		}
	}
	return nil
}

// Op returns the command for op on slot ("" for slot-less ops), or nil if
// the profile does not support it.
func (p *Profile) Op(op OpName, slot string) *Command {
	o := p.Ops[op]
	if o == nil || o.Unsupported {
		return nil
	}
	if !op.PerSlot() {
		return o.Command
	}
	return o.BySlot[slot]
}

// ErrorCondition maps a device error code to its condition; ok is false
// for codes the profile does not list.
func (p *Profile) ErrorCondition(code string) (Condition, bool) {
	for _, e := range p.Errors {
		if e.Code == code {
			return e.Condition, true
		}
	}
	return "", false
}

// MatchesUSB reports whether vid:pid (any case) is one of the profile's USB
// hints.
func (p *Profile) MatchesUSB(vid, pid string) bool {
	for _, u := range p.Match.USB {
		if strings.EqualFold(u.VID, vid) && strings.EqualFold(u.PID, pid) {
			return true
		}
	}
	return false
}
