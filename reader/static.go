package reader

import (
	"bytes"
	"context"
	"fmt"
	"time"
)

// PresenceReporter is implemented by slots that know whether a card is in
// them without connecting to it (reader/virtual.Slot does). StaticBackend
// polls it.
type PresenceReporter interface {
	Present() bool
}

// ATRReporter is implemented by slots that know the ATR of the card in them
// without connecting (and so without resetting it). StaticBackend reports
// it with CardInserted when available.
type ATRReporter interface {
	ATR() []byte
}

// StaticReader is a reader with a fixed set of slots, e.g. in-process
// virtual readers or readers opened by configuration.
type StaticReader struct {
	// ID names the reader stably, e.g. "virtual:kiosk".
	ID string
	// Name is for display; default ID.
	Name string
	// Slots are the reader's slots. Slot IDs must be unique across the
	// backend.
	Slots []Slot
}

// StaticOptions configures a StaticBackend.
type StaticOptions struct {
	// Name is the backend's name; default "virtual".
	Name string
	// Readers are the backend's readers.
	Readers []StaticReader
	// Interval is how often slot presence is polled; default 100 ms.
	Interval time.Duration
}

// StaticBackend is a Backend over fixed readers. Card presence is polled
// every Interval on slots that implement PresenceReporter (others always
// report no card and no card events); a card removed and re-inserted
// between two polls goes unnoticed. Slot returns the configured slot
// itself, so all users of a StaticBackend slot share it.
type StaticBackend struct {
	opts StaticOptions
}

// NewStaticBackend returns a backend over opts.Readers.
func NewStaticBackend(opts StaticOptions) *StaticBackend {
	if opts.Name == "" {
		opts.Name = "virtual"
	}
	if opts.Interval <= 0 {
		opts.Interval = 100 * time.Millisecond
	}
	for i := range opts.Readers {
		if opts.Readers[i].Name == "" {
			opts.Readers[i].Name = opts.Readers[i].ID
		}
	}
	return &StaticBackend{opts: opts}
}

// Name returns the backend's name.
func (b *StaticBackend) Name() string { return b.opts.Name }

// Readers returns the configured readers with their slots' current state.
func (b *StaticBackend) Readers(ctx context.Context) ([]ReaderInfo, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("list %s readers: %w", b.opts.Name, err)
	}
	out := make([]ReaderInfo, len(b.opts.Readers))
	for i, r := range b.opts.Readers {
		out[i] = b.info(r)
	}
	return out, nil
}

func (b *StaticBackend) info(r StaticReader) ReaderInfo {
	info := ReaderInfo{ID: r.ID, Name: r.Name, Backend: b.opts.Name}
	for _, s := range r.Slots {
		info.Slots = append(info.Slots, slotState(s))
	}
	return info
}

func slotState(s Slot) SlotInfo {
	si := SlotInfo{ID: s.ID(), Name: s.ID()}
	if p, ok := s.(PresenceReporter); ok && p.Present() {
		si.Present = true
		if a, ok := s.(ATRReporter); ok {
			si.ATR = cloneBytes(a.ATR())
		}
	}
	return si
}

// Watch reports the readers, then polls their slots every Interval and
// reports card changes until ctx is done; it returns nil.
func (b *StaticBackend) Watch(ctx context.Context, send func(Event)) error {
	last := make([][]SlotInfo, len(b.opts.Readers))
	for i, r := range b.opts.Readers {
		info := b.info(r)
		last[i] = info.Slots
		send(Event{Kind: ReaderAdded, ReaderID: r.ID, Reader: info})
	}
	t := time.NewTicker(b.opts.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		for i, r := range b.opts.Readers {
			for j, s := range r.Slots {
				old, now := last[i][j], slotState(s)
				changed := old.Present != now.Present || !bytes.Equal(old.ATR, now.ATR)
				if !changed {
					continue
				}
				if old.Present {
					send(Event{Kind: CardRemoved, ReaderID: r.ID, SlotID: now.ID})
				}
				if now.Present {
					send(Event{Kind: CardInserted, ReaderID: r.ID, SlotID: now.ID, ATR: now.ATR})
				}
				last[i][j] = now
			}
		}
	}
}

// Slot returns the configured slot named id, or an error wrapping
// ErrUnknownSlot.
func (b *StaticBackend) Slot(id string) (Slot, error) {
	for _, r := range b.opts.Readers {
		for _, s := range r.Slots {
			if s.ID() == id {
				return s, nil
			}
		}
	}
	return nil, fmt.Errorf("open %s slot %q: %w", b.opts.Name, id, ErrUnknownSlot)
}

var _ Backend = (*StaticBackend)(nil)
