package server

import (
	"context"
	"sync"
	"time"

	"github.com/onecard-hub/onecard/hub/store"
	hubsync "github.com/onecard-hub/onecard/hub/sync"
)

// lostCache keeps the encoded frames of recent deltas: every agent at the
// same version gets the same frames.
type lostCache struct {
	mu      sync.Mutex
	version uint64              // list version the entries lead to
	frames  map[uint64][][]byte // agent's version → frames
}

// lostPusher watches the list version and pokes every session when it
// changes.
func (s *Server) lostPusher() {
	defer s.wg.Done()
	t := time.NewTicker(s.o.LostPollInterval)
	defer t.Stop()
	var known uint64
	first := true
	for {
		if !first {
			select {
			case <-s.stop:
				return
			case <-t.C:
			case <-s.lostKick:
			}
		}
		first = false
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		l, err := s.o.Store.LostCards(ctx, known)
		cancel()
		if err != nil {
			s.o.Logger.Warn("hub: lost-card list unavailable", "err", err)
			continue
		}
		if l.Version == known {
			continue
		}
		known = l.Version
		s.mu.Lock()
		all := make([]*session, 0, len(s.sessions))
		for _, ss := range s.sessions {
			all = append(all, ss)
		}
		s.mu.Unlock()
		for _, ss := range all {
			ss.pokeLost()
		}
	}
}

// lostFrames returns the frames that bring the session's agent to the
// current list version (none when it is current), and records that the
// agent will have it.
func (s *Server) lostFrames(ctx context.Context, ss *session) [][]byte {
	have := ss.lostHave.Load()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	l, err := s.o.Store.LostCards(ctx, have)
	if err != nil {
		ss.log.Warn("hub: lost-card list unavailable", "err", err)
		return nil
	}
	if l.Version == have {
		return nil
	}
	s.lost.mu.Lock()
	if s.lost.version != l.Version {
		s.lost.version, s.lost.frames = l.Version, map[uint64][][]byte{}
	}
	frames, ok := s.lost.frames[have]
	s.lost.mu.Unlock()
	if !ok {
		reset := have == 0 || have > l.Version
		if reset && have != 0 {
			if l, err = s.o.Store.LostCards(ctx, 0); err != nil {
				ss.log.Warn("hub: lost-card list unavailable", "err", err)
				return nil
			}
		}
		frames = encodeLost(have, l, reset)
		s.lost.mu.Lock()
		if s.lost.version == l.Version && len(s.lost.frames) < 64 {
			s.lost.frames[have] = frames
		}
		s.lost.mu.Unlock()
	}
	ss.lostHave.CompareAndSwap(have, l.Version)
	return frames
}

// encodeLost splits a delta into LostCards frames of at most
// hubsync.MaxLostPerMessage cards.
func encodeLost(from uint64, l store.LostList, reset bool) [][]byte {
	var add, remove []string
	for _, c := range l.Changes {
		switch {
		case c.Lost:
			add = append(add, c.CardID.String())
		case !reset:
			remove = append(remove, c.CardID.String())
		}
	}
	var frames [][]byte
	first := true
	for first || len(add)+len(remove) > 0 {
		m := &hubsync.LostCards{From: l.Version, To: l.Version}
		if first {
			m.From, m.Reset = from, reset
		}
		room := hubsync.MaxLostPerMessage
		n := min(room, len(add))
		m.Add, add = add[:n], add[n:]
		room -= n
		n = min(room, len(remove))
		m.Remove, remove = remove[:n], remove[n:]
		m.More = len(add)+len(remove) > 0
		b, err := hubsync.Encode(0, m)
		if err != nil {
			return nil
		}
		frames = append(frames, b)
		first = false
	}
	return frames
}
