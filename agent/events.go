package agent

import (
	"encoding/hex"
	"strings"

	"github.com/onecard-hub/onecard/agent/logmask"
	"github.com/onecard-hub/onecard/reader"
)

// Kiosk API event names (docs/kiosk-api.md).
const (
	EventReaderAdded   = "readerAdded"
	EventReaderRemoved = "readerRemoved"
	EventCardInserted  = "cardInserted"
	EventCardRemoved   = "cardRemoved"
	EventReaderError   = "readerError"
)

// readerJSON is a reader as pages see it.
type readerJSON struct {
	ID      string     `json:"id"`
	Name    string     `json:"name"`
	Backend string     `json:"backend"`
	Serial  string     `json:"serial,omitempty"`
	Slots   []slotJSON `json:"slots"`
}

type slotJSON struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	Role    string `json:"role"` // "card" or "psam"
	Present bool   `json:"present"`
	ATR     string `json:"atr,omitempty"`
	Mute    bool   `json:"mute,omitempty"`
}

func upperHex(b []byte) string { return strings.ToUpper(hex.EncodeToString(b)) }

func readerOf(r reader.ReaderInfo) readerJSON {
	out := readerJSON{ID: r.ID, Name: r.Name, Backend: r.Backend, Serial: r.Serial, Slots: []slotJSON{}}
	for _, s := range r.Slots {
		role := "card"
		if isPSAMSlot(s) {
			role = "psam"
		}
		out.Slots = append(out.Slots, slotJSON{ID: s.ID, Name: s.Name, Role: role, Present: s.Present, ATR: upperHex(s.ATR), Mute: s.Mute})
	}
	return out
}

// events counts reader events, invalidates lanes when readers come and
// go, and pushes the events to the pages, until sub closes.
func (a *Agent) events(sub *reader.Subscription) {
	for ev := range sub.Events() {
		a.m.readerEvents.Inc(ev.Kind.String())
		var data map[string]any
		name := ""
		switch ev.Kind {
		case reader.ReaderAdded:
			a.lanes.gen.Add(1)
			name, data = EventReaderAdded, map[string]any{"reader": readerOf(ev.Reader)}
			a.log.Info("reader added", "reader", ev.ReaderID, "backend", ev.Backend)
		case reader.ReaderRemoved:
			a.lanes.gen.Add(1)
			name, data = EventReaderRemoved, map[string]any{"reader": ev.ReaderID}
			a.log.Info("reader removed", "reader", ev.ReaderID)
		case reader.CardInserted:
			name = EventCardInserted
			data = map[string]any{"reader": ev.ReaderID, "slot": ev.SlotID, "atr": upperHex(ev.ATR), "mute": ev.Mute}
			a.log.Debug("card inserted", "slot", ev.SlotID, "mute", ev.Mute)
		case reader.CardRemoved:
			name, data = EventCardRemoved, map[string]any{"reader": ev.ReaderID, "slot": ev.SlotID}
			a.log.Debug("card removed", "slot", ev.SlotID)
		case reader.ReaderError:
			a.m.readerErrors.Inc(ev.Backend)
			msg := ""
			if ev.Err != nil {
				msg = logmask.MaskString(ev.Err.Error())
			}
			name, data = EventReaderError, map[string]any{"backend": ev.Backend, "reader": ev.ReaderID, "error": msg}
			a.log.Warn("reader error", "backend", ev.Backend, "reader", ev.ReaderID, "err", ev.Err)
		default:
			continue
		}
		if ev.Missed > 0 {
			data["missed"] = ev.Missed
		}
		a.kiosk.Broadcast(name, data)
	}
}
