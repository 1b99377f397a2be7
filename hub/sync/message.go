package sync

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/onecard-hub/onecard/terminal/record"
)

// Version is the protocol version this package speaks; a frame with any
// other "v" fails with ErrVersion.
const Version = 1

// Subprotocol is the WebSocket subprotocol name (Sec-WebSocket-Protocol)
// agent and hub negotiate.
const Subprotocol = "onecard.sync.v1"

// Path is the HTTP path of the sync endpoint on the hub.
const Path = "/sync"

// Sizes and default limits.
const (
	NonceLen       = 32   // hub challenge nonce
	SignatureLen   = 64   // raw SM2 r‖s
	PublicKeyLen   = 64   // SM2 point X‖Y
	MaxRecordBytes = 4096 // one envelope (a record is well below 2 KiB)
	MaxHubID       = 64
	MaxText        = 512 // reasons, agent names, notes
	MaxCode        = 32

	DefaultMaxMessage = 1 << 20 // bytes per frame
	DefaultMaxBatch   = 256     // records per batch

	// MaxLostPerMessage bounds the card IDs of one lost-card message (a
	// longer change is split into several).
	MaxLostPerMessage = 8192
	// MaxConfigEntries and MaxConfigValue bound a config push.
	MaxConfigEntries = 256
	MaxConfigValue   = 1024
	// MaxCredits bounds the pending credits in one answer.
	MaxCredits = 256
)

// Type names a message.
type Type string

// Message types. "→hub" messages come from the agent, "→agent" from the
// hub. Requests carry a non-zero frame ID the answer repeats; pushes carry
// ID 0.
const (
	TypeChallenge      Type = "challenge"        // →agent, first frame of every connection
	TypeHello          Type = "hello"            // →hub, answer to the challenge (enrolled terminal)
	TypeWelcome        Type = "welcome"          // →agent, the hello was accepted
	TypeEnroll         Type = "enroll"           // →hub, answer to the challenge (new terminal)
	TypeEnrolled       Type = "enrolled"         // →agent, the enrolment was recorded
	TypeBatch          Type = "batch"            // →hub, signed records to post
	TypeAcks           Type = "acks"             // →agent, one result per record of a batch
	TypeLostCards      Type = "lost_cards"       // →agent push, lost-card list change
	TypeLostSync       Type = "lost_sync"        // →hub, ask for the changes since a version
	TypeConfig         Type = "config"           // →agent push, configuration values
	TypeCreditsQuery   Type = "credits_query"    // →hub, pending credits of a card
	TypeCredits        Type = "credits"          // →agent, answer to credits_query
	TypeLoadAuth       Type = "load_auth"        // →hub, authorise a load (card MAC1 → MAC2)
	TypeLoadAuthResult Type = "load_auth_result" // →agent, the MAC2
	TypeKeyRead        Type = "key_read"         // →hub, two-step identity read (RESULT1/RESULT2)
	TypeKeyReadResult  Type = "key_read_result"  // →agent, the key service's answer
	TypeTotals         Type = "totals"           // →hub, the terminal's signed totals of a day
	TypeTotalsResult   Type = "totals_result"    // →agent, the totals were stored (and whether they match)
	TypeError          Type = "error"            // either way: a refusal or failure
)

// Sentinel errors of decoding and encoding, for errors.Is.
var (
	// ErrMalformed: not a well-formed message of this protocol (bad JSON,
	// unknown type or field, a value breaking the message's rules).
	ErrMalformed = errors.New("sync: malformed message")
	// ErrTooLarge: a frame, batch, record or list above its limit.
	ErrTooLarge = errors.New("sync: message too large")
	// ErrVersion: a protocol version this package does not speak.
	ErrVersion = errors.New("sync: unsupported protocol version")
)

// Message is the body of one frame; each message type is a struct
// implementing it.
type Message interface {
	// Type returns the message's type name.
	Type() Type
	// Validate checks the message's own rules against lim (nil or an
	// error wrapping ErrMalformed or ErrTooLarge).
	Validate(lim Limits) error
}

// Frame is the JSON shape of every message on the wire.
type Frame struct {
	V    int             `json:"v"`
	Type Type            `json:"type"`
	ID   uint64          `json:"id,omitempty"`
	Body json.RawMessage `json:"body"`
}

// Limits bounds what Decode accepts. Zero fields mean the defaults.
type Limits struct {
	MaxMessage int // bytes per frame (DefaultMaxMessage)
	MaxBatch   int // records per batch (DefaultMaxBatch)
}

func (l Limits) withDefaults() Limits {
	if l.MaxMessage <= 0 {
		l.MaxMessage = DefaultMaxMessage
	}
	if l.MaxBatch <= 0 {
		l.MaxBatch = DefaultMaxBatch
	}
	return l
}

var factories = map[Type]func() Message{
	TypeChallenge:      func() Message { return new(Challenge) },
	TypeHello:          func() Message { return new(Hello) },
	TypeWelcome:        func() Message { return new(Welcome) },
	TypeEnroll:         func() Message { return new(Enroll) },
	TypeEnrolled:       func() Message { return new(Enrolled) },
	TypeBatch:          func() Message { return new(Batch) },
	TypeAcks:           func() Message { return new(Acks) },
	TypeLostCards:      func() Message { return new(LostCards) },
	TypeLostSync:       func() Message { return new(LostSync) },
	TypeConfig:         func() Message { return new(Config) },
	TypeCreditsQuery:   func() Message { return new(CreditsQuery) },
	TypeCredits:        func() Message { return new(Credits) },
	TypeLoadAuth:       func() Message { return new(LoadAuth) },
	TypeLoadAuthResult: func() Message { return new(LoadAuthResult) },
	TypeKeyRead:        func() Message { return new(KeyRead) },
	TypeKeyReadResult:  func() Message { return new(KeyReadResult) },
	TypeTotals:         func() Message { return new(Totals) },
	TypeTotalsResult:   func() Message { return new(TotalsResult) },
	TypeError:          func() Message { return new(Error) },
}

// Types lists every message type.
func Types() []Type {
	out := make([]Type, 0, len(factories))
	for t := range factories {
		out = append(out, t)
	}
	return out
}

// Encode returns the frame for m with the given frame ID. It validates m
// first with the default limits (errors wrap ErrMalformed or ErrTooLarge),
// so a peer never receives what Decode would refuse.
func Encode(id uint64, m Message) ([]byte, error) {
	return EncodeLimits(id, m, Limits{})
}

// EncodeLimits is Encode with explicit limits.
func EncodeLimits(id uint64, m Message, lim Limits) ([]byte, error) {
	lim = lim.withDefaults()
	if m == nil {
		return nil, fmt.Errorf("encode sync message: %w: nil message", ErrMalformed)
	}
	if err := m.Validate(lim); err != nil {
		return nil, fmt.Errorf("encode sync message %s: %w", m.Type(), err)
	}
	body, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encode sync message %s: %w: %v", m.Type(), ErrMalformed, err)
	}
	out, err := json.Marshal(Frame{V: Version, Type: m.Type(), ID: id, Body: body})
	if err != nil {
		return nil, fmt.Errorf("encode sync message %s: %w: %v", m.Type(), ErrMalformed, err)
	}
	if len(out) > lim.MaxMessage {
		return nil, fmt.Errorf("encode sync message %s: %w: %d bytes > %d", m.Type(), ErrTooLarge, len(out), lim.MaxMessage)
	}
	return out, nil
}

// Decode parses one frame strictly (see the package doc) and returns its
// frame ID and message. Errors wrap ErrMalformed, ErrTooLarge or
// ErrVersion; they never quote the input.
func Decode(b []byte, lim Limits) (uint64, Message, error) {
	lim = lim.withDefaults()
	if len(b) > lim.MaxMessage {
		return 0, nil, fmt.Errorf("decode sync message: %w: %d bytes > %d", ErrTooLarge, len(b), lim.MaxMessage)
	}
	var f Frame
	if err := strictUnmarshal(b, &f); err != nil {
		return 0, nil, fmt.Errorf("decode sync message: %w: frame: %s", ErrMalformed, jsonProblem(err))
	}
	if f.V != Version {
		return 0, nil, fmt.Errorf("decode sync message: %w: %d (want %d)", ErrVersion, f.V, Version)
	}
	mk, ok := factories[f.Type]
	if !ok {
		return 0, nil, fmt.Errorf("decode sync message: %w: unknown type %q", ErrMalformed, clip(string(f.Type), MaxCode))
	}
	if len(f.Body) == 0 || bytes.Equal(bytes.TrimSpace(f.Body), []byte("null")) {
		return 0, nil, fmt.Errorf("decode sync message %s: %w: no body", f.Type, ErrMalformed)
	}
	m := mk()
	if err := strictUnmarshal(f.Body, m); err != nil {
		return 0, nil, fmt.Errorf("decode sync message %s: %w: %s", f.Type, ErrMalformed, jsonProblem(err))
	}
	if err := m.Validate(lim); err != nil {
		return 0, nil, fmt.Errorf("decode sync message %s: %w", f.Type, err)
	}
	return f.ID, m, nil
}

// strictUnmarshal refuses unknown fields and trailing data.
func strictUnmarshal(b []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return err
	}
	if _, err := d.Token(); err != io.EOF {
		return errors.New("trailing data")
	}
	return nil
}

// jsonProblem describes a JSON error without quoting the input.
func jsonProblem(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("syntax error at offset %d", se.Offset)
	case errors.As(err, &te):
		return fmt.Sprintf("field %q: wrong type %s", clip(te.Field, 64), te.Value)
	case strings.HasPrefix(err.Error(), "json: unknown field"):
		return "unknown field"
	}
	return clip(err.Error(), 120)
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for !utf8.ValidString(s) && len(s) > 0 {
		s = s[:len(s)-1]
	}
	return s + "…"
}

// malformed returns an ErrMalformed error about a field.
func malformed(field, format string, a ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrMalformed, field, fmt.Sprintf(format, a...))
}

func tooLarge(field string, n, max int) error {
	return fmt.Errorf("%w: %s: %d > %d", ErrTooLarge, field, n, max)
}

// checkTerminal: 12 ASCII digits.
func checkTerminal(field, s string) error {
	if len(s) != 12 {
		return malformed(field, "want 12 digits")
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return malformed(field, "want 12 digits")
		}
	}
	return nil
}

// checkText: valid UTF-8 without control characters, at most max bytes.
func checkText(field, s string, max int) error {
	if len(s) > max {
		return tooLarge(field, len(s), max)
	}
	if !utf8.ValidString(s) {
		return malformed(field, "not UTF-8")
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7F || (r >= 0x80 && r < 0xA0) {
			return malformed(field, "control character")
		}
	}
	return nil
}

// checkCode: 1..MaxCode of [a-z0-9_].
func checkCode(field, s string, optional bool) error {
	if s == "" {
		if optional {
			return nil
		}
		return malformed(field, "empty")
	}
	if len(s) > MaxCode {
		return tooLarge(field, len(s), MaxCode)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return malformed(field, "want [a-z0-9_]")
		}
	}
	return nil
}

func checkLen(field string, b []byte, n int) error {
	if len(b) != n {
		return malformed(field, "%d bytes, want %d", len(b), n)
	}
	return nil
}

// ParseCardIDs parses hex card IDs (as lost-card messages carry them).
// Errors wrap ErrMalformed.
func ParseCardIDs(field string, ids []string) ([]record.CardID, error) {
	out := make([]record.CardID, 0, len(ids))
	for i, s := range ids {
		c, err := record.ParseCardID(s)
		if err != nil || c.IsZero() {
			return nil, malformed(fmt.Sprintf("%s[%d]", field, i), "want 32 hex digits, not all zero")
		}
		out = append(out, c)
	}
	return out, nil
}

func checkCardID(field, s string) error {
	c, err := record.ParseCardID(s)
	if err != nil || c.IsZero() {
		return malformed(field, "want 32 hex digits, not all zero")
	}
	return nil
}
