package journal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/onecard-hub/onecard/terminal/record"
)

// Transition is one step of a record's state history.
type Transition struct {
	To State
	At time.Time
}

// Entry is a journaled record with its state.
type Entry struct {
	Seq   uint64
	State State
	// Record is the record as journaled (TerminalSeq == Seq). When Sealed
	// and the journal has no key, its personal fields are empty.
	Record *record.Record
	// Sealed: the personal fields are sealed at rest (SM4-GCM).
	Sealed bool
	// Reason is the last reason given (Fail, MarkUncertain, Recover,
	// DeadLetter); empty otherwise.
	Reason string
	// History lists every state the record entered, oldest first; History[0]
	// is Prepared.
	History []Transition
	// Overdue: Uncertain and prepared at least Options.UncertainHold ago, so
	// NextToSend offers it to the hub for reconciliation.
	Overdue bool
}

// PreparedAt is when the record was journaled.
func (e *Entry) PreparedAt() time.Time {
	if len(e.History) == 0 {
		return time.Time{}
	}
	return e.History[0].At
}

// stored is the decoded value of the records bucket.
type stored struct {
	state   State
	sealed  []byte // nonce ‖ SM4-GCM ciphertext of the personal fields; nil if none
	reason  string
	history []Transition
	rec     []byte // canonical record (personal fields blank when sealed)
}

const (
	entryFormat = 1
	maxReason   = 512
	maxHistory  = 16
	maxSealed   = 1024
)

func (s *stored) encode() []byte {
	b := make([]byte, 0, 32+len(s.reason)+len(s.rec)+len(s.sealed)+9*len(s.history))
	b = append(b, entryFormat, byte(s.state), byte(len(s.history)))
	for _, h := range s.history {
		b = append(b, byte(h.To))
		b = binary.BigEndian.AppendUint64(b, uint64(h.At.UnixMilli()))
	}
	b = binary.BigEndian.AppendUint16(b, uint16(len(s.reason)))
	b = append(b, s.reason...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(s.rec)))
	b = append(b, s.rec...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(s.sealed)))
	return append(b, s.sealed...)
}

var errEntry = errors.New("malformed entry")

// decodeStored parses a records-bucket value strictly (the record bytes are
// checked by record.Decode later). Errors wrap ErrCorrupt.
func decodeStored(b []byte) (*stored, error) {
	fail := func(what string) (*stored, error) {
		return nil, fmt.Errorf("%w: %w: %s", ErrCorrupt, errEntry, what)
	}
	if len(b) < 3 {
		return fail("short header")
	}
	if b[0] != entryFormat {
		return fail(fmt.Sprintf("format %d", b[0]))
	}
	s := &stored{state: State(b[1])}
	if !s.state.Valid() {
		return fail("unknown state")
	}
	n := int(b[2])
	b = b[3:]
	if n == 0 || n > maxHistory || len(b) < 9*n {
		return fail("bad history")
	}
	for i := 0; i < n; i++ {
		st := State(b[0])
		if !st.Valid() {
			return fail("unknown state in history")
		}
		s.history = append(s.history, Transition{To: st, At: time.UnixMilli(int64(binary.BigEndian.Uint64(b[1:9]))).UTC()})
		b = b[9:]
	}
	var field []byte
	var ok bool
	if field, b, ok = lp16(b, maxReason); !ok || !utf8.Valid(field) {
		return fail("bad reason")
	}
	s.reason = string(field)
	if field, b, ok = lp16(b, 1<<12); !ok || len(field) == 0 {
		return fail("bad record field")
	}
	s.rec = field
	if field, b, ok = lp16(b, maxSealed); !ok {
		return fail("bad sealed field")
	}
	if len(field) > 0 {
		s.sealed = field
	}
	if len(b) != 0 {
		return fail("trailing bytes")
	}
	return s, nil
}

func lp16(b []byte, max int) (v, rest []byte, ok bool) {
	if len(b) < 2 {
		return nil, nil, false
	}
	n := int(binary.BigEndian.Uint16(b))
	if n > max || len(b) < 2+n {
		return nil, nil, false
	}
	return append([]byte(nil), b[2:2+n]...), b[2+n:], true
}

// clipReason bounds a reason to maxReason bytes at a rune boundary and
// replaces invalid UTF-8.
func clipReason(s string) string {
	s = string([]rune(s)) // invalid bytes become U+FFFD
	for len(s) > maxReason {
		_, size := utf8.DecodeLastRuneInString(s)
		s = s[:len(s)-size]
	}
	return s
}

// openIndex is the value of the open bucket (non-final records): state ‖
// card ID ‖ prepared-at (ms).
type openIndex struct {
	state    State
	card     record.CardID
	prepared time.Time
}

func (o openIndex) encode() []byte {
	b := append([]byte{byte(o.state)}, o.card[:]...)
	return binary.BigEndian.AppendUint64(b, uint64(o.prepared.UnixMilli()))
}

func decodeOpen(b []byte) (openIndex, bool) {
	var o openIndex
	if len(b) != 25 {
		return o, false
	}
	o.state = State(b[0])
	copy(o.card[:], b[1:17])
	o.prepared = time.UnixMilli(int64(binary.BigEndian.Uint64(b[17:]))).UTC()
	return o, o.state.Valid() && !o.state.Final()
}

func u64key(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }
