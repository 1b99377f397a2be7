package terminal

import (
	"context"
	"sync"

	"github.com/onecard-hub/onecard/terminal/record"
)

// LostCards is the lost-card list (挂失), pushed by the hub. The terminal
// asks it after reading the card ID and before any money command; an
// error counts as "refuse" (fail safe).
type LostCards interface {
	IsLost(ctx context.Context, card record.CardID) (bool, error)
}

// LostSet is an in-memory LostCards, safe for concurrent use; Replace
// swaps the whole list atomically (as a hub push does).
type LostSet struct {
	mu  sync.RWMutex
	ids map[record.CardID]struct{}
}

// NewLostSet returns a list holding ids.
func NewLostSet(ids ...record.CardID) *LostSet {
	s := &LostSet{}
	s.Replace(ids)
	return s
}

// IsLost reports whether card is on the list.
func (s *LostSet) IsLost(_ context.Context, card record.CardID) (bool, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	_, ok := s.ids[card]
	return ok, nil
}

// Add puts cards on the list.
func (s *LostSet) Add(ids ...record.CardID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range ids {
		s.ids[id] = struct{}{}
	}
}

// Remove takes cards off the list (found again).
func (s *LostSet) Remove(ids ...record.CardID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range ids {
		delete(s.ids, id)
	}
}

// Replace makes ids the whole list.
func (s *LostSet) Replace(ids []record.CardID) {
	m := make(map[record.CardID]struct{}, len(ids))
	for _, id := range ids {
		m[id] = struct{}{}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ids = m
}

// Len returns the number of cards on the list.
func (s *LostSet) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.ids)
}

// CardVerifier checks a card's SM2 signature from the issuer's knowledge of
// the card (hub/proof.Verifier satisfies it). It returns nil or an error
// (hub/proof wraps proof.ErrBadSignature).
type CardVerifier interface {
	VerifyCardSignature(cardID, msg, sig []byte) error
}
