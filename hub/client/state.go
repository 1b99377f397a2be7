package client

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	hubsync "github.com/onecard-hub/onecard/hub/sync"
	"github.com/onecard-hub/onecard/terminal/record"
)

// State file buckets and keys.
var (
	bucketLost   = []byte("lost") // card ID (16 bytes) → empty
	bucketMeta   = []byte("meta") // keys below
	keyLostVer   = []byte("lost_version")
	keyConfig    = []byte("config") // JSON {"version":N,"values":{...}}
	maxLostTotal = 4 << 20          // cards buffered for one change
)

// LostList is the terminal's copy of the hub's lost-card list (挂失),
// persisted in the client's state file so the terminal can refuse lost
// cards while offline. It is safe for concurrent use and implements
// terminal.LostCards.
type LostList struct {
	db      *bolt.DB
	mu      sync.RWMutex
	cards   map[record.CardID]struct{}
	version uint64

	// a change arriving in several messages, applied when complete
	pending *hubsync.LostCards
}

// Contains reports whether card is on the list.
func (l *LostList) Contains(card record.CardID) bool {
	l.mu.RLock()
	defer l.mu.RUnlock()
	_, ok := l.cards[card]
	return ok
}

// IsLost implements terminal.LostCards; it never fails.
func (l *LostList) IsLost(_ context.Context, card record.CardID) (bool, error) {
	return l.Contains(card), nil
}

// Version returns the list version the terminal holds (0: none yet).
func (l *LostList) Version() uint64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.version
}

// Len returns the number of cards on the list.
func (l *LostList) Len() int {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return len(l.cards)
}

// state is the client's small bbolt file beside the journal: the lost-card
// list, the configuration and the last hub acknowledgement seen.
type state struct {
	db     *bolt.DB
	lost   *LostList
	mu     sync.RWMutex
	cfgVer uint64
	cfg    map[string]string
}

type configFile struct {
	Version uint64            `json:"version"`
	Values  map[string]string `json:"values"`
}

func openState(path string) (*state, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("open hub client state %s: %w", path, err)
	}
	s := &state{db: db, lost: &LostList{db: db, cards: map[record.CardID]struct{}{}}, cfg: map[string]string{}}
	err = db.Update(func(tx *bolt.Tx) error {
		lb, err := tx.CreateBucketIfNotExists(bucketLost)
		if err != nil {
			return err
		}
		mb, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return err
		}
		if v := mb.Get(keyLostVer); len(v) == 8 {
			s.lost.version = binary.BigEndian.Uint64(v)
		}
		if v := mb.Get(keyConfig); v != nil {
			var cf configFile
			if err := json.Unmarshal(v, &cf); err != nil {
				return fmt.Errorf("config: %w", err)
			}
			s.cfgVer, s.cfg = cf.Version, cf.Values
			if s.cfg == nil {
				s.cfg = map[string]string{}
			}
		}
		return lb.ForEach(func(k, _ []byte) error {
			var c record.CardID
			if len(k) != len(c) {
				return errors.New("bad lost-card key")
			}
			copy(c[:], k)
			s.lost.cards[c] = struct{}{}
			return nil
		})
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open hub client state %s: %w", path, err)
	}
	return s, nil
}

func (s *state) close() error { return s.db.Close() }

// config returns a copy of the configuration and its version.
func (s *state) config() (uint64, map[string]string) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.cfgVer, maps.Clone(s.cfg)
}

// setConfig persists a config push.
func (s *state) setConfig(m *hubsync.Config) error {
	vals := maps.Clone(m.Values)
	if vals == nil {
		vals = map[string]string{}
	}
	b, err := json.Marshal(configFile{Version: m.Version, Values: vals})
	if err != nil {
		return err
	}
	if err := s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMeta).Put(keyConfig, b)
	}); err != nil {
		return fmt.Errorf("store config: %w", err)
	}
	s.mu.Lock()
	s.cfgVer, s.cfg = m.Version, vals
	s.mu.Unlock()
	return nil
}

// applyLost takes one lost-card message. It returns resync = true when the
// change does not follow the local version (the caller sends a LostSync
// with the local version). A complete change is written in one
// transaction, then made visible.
func (l *LostList) apply(m *hubsync.LostCards) (resync bool, err error) {
	l.mu.Lock()
	local := l.version
	p := l.pending
	l.mu.Unlock()
	if p == nil {
		if !m.Reset && m.From != local {
			return true, nil
		}
		p = &hubsync.LostCards{From: m.From, To: m.To, Reset: m.Reset}
	} else if m.Reset || m.From != p.To {
		// A new change started before the previous one finished.
		l.mu.Lock()
		l.pending = nil
		l.mu.Unlock()
		return true, nil
	}
	p.To = max(p.To, m.To)
	if len(p.Add)+len(p.Remove)+len(m.Add)+len(m.Remove) > maxLostTotal {
		l.mu.Lock()
		l.pending = nil
		l.mu.Unlock()
		return false, fmt.Errorf("%w: lost-card change above %d cards", ErrProtocol, maxLostTotal)
	}
	p.Add = append(p.Add, m.Add...)
	p.Remove = append(p.Remove, m.Remove...)
	if m.More {
		l.mu.Lock()
		l.pending = p
		l.mu.Unlock()
		return false, nil
	}
	l.mu.Lock()
	l.pending = nil
	l.mu.Unlock()
	add, err := hubsync.ParseCardIDs("add", p.Add)
	if err != nil {
		return false, err
	}
	remove, err := hubsync.ParseCardIDs("remove", p.Remove)
	if err != nil {
		return false, err
	}
	err = l.db.Update(func(tx *bolt.Tx) error {
		if p.Reset {
			if err := tx.DeleteBucket(bucketLost); err != nil {
				return err
			}
			if _, err := tx.CreateBucket(bucketLost); err != nil {
				return err
			}
		}
		b := tx.Bucket(bucketLost)
		for _, c := range add {
			if err := b.Put(c[:], nil); err != nil {
				return err
			}
		}
		for _, c := range remove {
			if err := b.Delete(c[:]); err != nil {
				return err
			}
		}
		return tx.Bucket(bucketMeta).Put(keyLostVer, binary.BigEndian.AppendUint64(nil, p.To))
	})
	if err != nil {
		return false, fmt.Errorf("store lost-card list: %w", err)
	}
	l.mu.Lock()
	if p.Reset {
		l.cards = make(map[record.CardID]struct{}, len(add))
	}
	for _, c := range add {
		l.cards[c] = struct{}{}
	}
	for _, c := range remove {
		delete(l.cards, c)
	}
	l.version = p.To
	l.mu.Unlock()
	return false, nil
}

// resetPending drops a half-received change (the connection ended).
func (l *LostList) resetPending() {
	l.mu.Lock()
	l.pending = nil
	l.mu.Unlock()
}
