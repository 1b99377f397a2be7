package journal

import "fmt"

// State is where a record is in its life. The numeric values are stored in
// the journal file.
type State uint8

// States. Only the moves in the transition table (see [CanMove]) are
// allowed; Failed, Cleared and Dead are final.
const (
	// Prepared: journaled before the first money APDU; the card has not
	// answered yet.
	Prepared State = 1
	// CardDone: the card answered and (for money) returned its TAC.
	CardDone State = 2
	// Sent: handed to the hub, not yet acknowledged.
	Sent State = 3
	// Cleared: the hub acknowledged (posted) the record. Final.
	Cleared State = 4
	// Failed: the card refused; nothing moved. Final; never uploaded.
	Failed State = 5
	// Uncertain: torn or interrupted; only the card (its counter, GET
	// TRANSACTION PROOF) or the hub's reconciliation can tell what happened.
	Uncertain State = 6
	// Dead: the hub rejected the record; kept with the reason in the
	// dead-letter bucket for an operator. Final.
	Dead State = 7
)

// States lists every state in numeric order.
var States = []State{Prepared, CardDone, Sent, Cleared, Failed, Uncertain, Dead}

var stateNames = map[State]string{
	Prepared: "prepared", CardDone: "card-done", Sent: "sent", Cleared: "cleared",
	Failed: "failed", Uncertain: "uncertain", Dead: "dead",
}

// String returns the lower-case name ("card-done", ...).
func (s State) String() string {
	if n, ok := stateNames[s]; ok {
		return n
	}
	return fmt.Sprintf("state(%d)", uint8(s))
}

// ParseState parses the String form. Errors: ErrInvalidArgument.
func ParseState(name string) (State, error) {
	for s, n := range stateNames {
		if n == name {
			return s, nil
		}
	}
	return 0, fmt.Errorf("parse journal state: %w: %q", ErrInvalidArgument, name)
}

// Valid reports whether s is a known state.
func (s State) Valid() bool { _, ok := stateNames[s]; return ok }

// Final reports whether no move leaves s.
func (s State) Final() bool { return s == Cleared || s == Failed || s == Dead }

// transitions is the table of allowed moves (from → set of to).
//
//	prepared  → card-done | failed | uncertain
//	uncertain → card-done | failed | sent | cleared | dead
//	card-done → sent | cleared | dead
//	sent      → cleared | dead
//
// card-done/uncertain → cleared/dead cover a hub answer that arrives for a
// record whose MarkSent was lost in a crash.
var transitions = map[State][]State{
	Prepared:  {CardDone, Failed, Uncertain},
	Uncertain: {CardDone, Failed, Sent, Cleared, Dead},
	CardDone:  {Sent, Cleared, Dead},
	Sent:      {Cleared, Dead},
}

// CanMove reports whether the table allows from → to.
func CanMove(from, to State) bool {
	for _, s := range transitions[from] {
		if s == to {
			return true
		}
	}
	return false
}
