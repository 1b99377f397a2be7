package reader

import (
	"context"
	"fmt"
	"time"
)

// ReaderInfo describes one reader as a backend sees it. A reader holds one
// or more slots (the user card's contacts, PSAM slots, ...).
type ReaderInfo struct {
	// ID names the reader stably across restarts and re-plugging where the
	// backend can: a PC/SC reader with a serial number is "pcsc:sn:<serial>",
	// one without "pcsc:<name without the slot number>"; a serial reader
	// uses its profile and port; an in-process one its configured name.
	ID string `json:"id"`
	// Name is for display only (e.g. the PC/SC friendly name).
	Name string `json:"name"`
	// Backend is the kind of backend that reported the reader: "pcsc",
	// "serial", "virtual".
	Backend string `json:"backend"`
	// Serial is the reader's serial number when the backend could read it
	// (SCARD_ATTR_VENDOR_IFD_SERIAL_NO for PC/SC), else "".
	Serial string `json:"serial,omitempty"`
	// Slots lists the reader's card slots in slot-number order.
	Slots []SlotInfo `json:"slots"`
}

// SlotInfo is the state of one slot of a reader.
type SlotInfo struct {
	// ID is the slot's stable name, equal to Slot.ID() of the slot the
	// backend opens for it.
	ID string `json:"id"`
	// Name is for display only (the PC/SC reader name for PC/SC slots).
	Name string `json:"name"`
	// Present reports a card in the slot.
	Present bool `json:"present"`
	// ATR is the card's answer to reset when Present and known.
	ATR []byte `json:"atr,omitempty"`
	// Mute: a card is present but does not answer (inserted the wrong
	// way round, or broken).
	Mute bool `json:"mute,omitempty"`
	// Exclusive: another program holds the card exclusively; connecting
	// fails with ErrReaderBusy until it lets go. Only backends that can see
	// other programs (PC/SC) set it, and only in one-shot listings.
	Exclusive bool `json:"exclusive,omitempty"`
	// InUse: some program (possibly this one) is connected to the card.
	InUse bool `json:"in_use,omitempty"`
}

// Clone returns a deep copy of r (slots and ATRs are not shared).
func (r ReaderInfo) Clone() ReaderInfo {
	c := r
	c.Slots = make([]SlotInfo, len(r.Slots))
	for i, s := range r.Slots {
		s.ATR = cloneBytes(s.ATR)
		c.Slots[i] = s
	}
	return c
}

// EventKind says what an Event reports.
type EventKind int

// Event kinds.
const (
	// ReaderAdded: a reader appeared, with the state of its slots in
	// Event.Reader. It is sent again, with the full new description, when a
	// known reader's slot list changes.
	ReaderAdded EventKind = iota + 1
	// ReaderRemoved: the reader is gone (unplugged, its driver stopped, or
	// the smart-card service went away). Cards in it are gone too; no
	// CardRemoved events are sent for them.
	ReaderRemoved
	// CardInserted: a card arrived in Event.SlotID; Event.ATR is its ATR
	// when known, Event.Mute is set for a card that does not answer.
	CardInserted
	// CardRemoved: the card left Event.SlotID. A card removed and another
	// inserted between two polls is reported as CardRemoved then
	// CardInserted (backends that can see it use the PC/SC event counter).
	CardRemoved
	// ReaderError: the backend (Event.Reader empty) or a reader hit a
	// failure it is recovering from, e.g. ErrServiceDown while pcscd is
	// not running. Event.Err says what.
	ReaderError
)

func (k EventKind) String() string {
	switch k {
	case ReaderAdded:
		return "reader-added"
	case ReaderRemoved:
		return "reader-removed"
	case CardInserted:
		return "card-inserted"
	case CardRemoved:
		return "card-removed"
	case ReaderError:
		return "reader-error"
	}
	return fmt.Sprintf("EventKind(%d)", int(k))
}

// Event is one change reported by a Backend and fanned out by a Manager.
// The slices in an Event (ATR, Reader.Slots) are shared between
// subscribers: treat them as read-only.
type Event struct {
	Kind EventKind
	// Backend is the backend's name ("pcsc", ...). The Manager fills it in.
	Backend string
	// ReaderID names the reader ("" for a backend-wide ReaderError).
	ReaderID string
	// SlotID names the slot for card events.
	SlotID string
	// Reader is the reader's description for ReaderAdded.
	Reader ReaderInfo
	// ATR is the card's ATR for CardInserted (nil when unknown).
	ATR []byte
	// Mute marks a CardInserted whose card does not answer (no ATR).
	Mute bool
	// Err is the failure for ReaderError; it wraps one of the sentinels.
	Err error
	// Time is when the change was seen. The Manager fills it in if zero.
	Time time.Time
	// Missed counts events a Manager dropped for this subscriber just
	// before this one because its buffer was full; when it is not zero the
	// subscriber should re-read Manager.Readers.
	Missed uint64
}

func (e Event) String() string {
	s := fmt.Sprintf("%s %s", e.Kind, e.ReaderID)
	if e.SlotID != "" {
		s += " slot " + e.SlotID
	}
	if len(e.ATR) > 0 {
		s += fmt.Sprintf(" ATR %X", e.ATR)
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	if e.Missed > 0 {
		s += fmt.Sprintf(" (%d events missed before)", e.Missed)
	}
	return s
}

// Backend is one kind of reader (PC/SC, vendor serial readers, in-process
// virtual readers) as the Manager sees it.
type Backend interface {
	// Name is the backend's kind, e.g. "pcsc"; it is copied into
	// ReaderInfo.Backend and Event.Backend.
	Name() string
	// Readers lists the readers present now, with their slot states. It
	// returns an error wrapping ErrServiceDown when the backend's service
	// is not running.
	Readers(ctx context.Context) ([]ReaderInfo, error)
	// Watch reports the backend's readers through send until ctx is done:
	// first one ReaderAdded per reader present (slot states included),
	// then changes. Failures the backend recovers from (the service
	// restarting, a reader erroring) are sent as ReaderError events and
	// Watch keeps going; it returns nil when ctx is done, or an error it
	// cannot recover from (the Manager then drops the backend's readers,
	// reports the error and calls Watch again after a back-off). send does
	// not block for long and must not be called after Watch returns.
	Watch(ctx context.Context, send func(Event)) error
	// Slot returns the slot named id (a SlotInfo.ID). It returns an error
	// wrapping ErrUnknownSlot when the backend has no such slot.
	Slot(id string) (Slot, error)
}

func cloneBytes(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append([]byte(nil), b...)
}
