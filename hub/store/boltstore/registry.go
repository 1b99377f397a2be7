package boltstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/onecard-hub/onecard/hub/store"
	"github.com/onecard-hub/onecard/terminal/record"
)

// ---- programmes ----

// CreateProgramme implements store.Store.
func (s *Store) CreateProgramme(ctx context.Context, p store.Programme) error {
	if err := p.Validate(); err != nil {
		return fmt.Errorf("create programme: %w", err)
	}
	p.CreatedAt = normTime(s.now())
	return s.update(ctx, "create programme", func(tx *bolt.Tx) error {
		b := tx.Bucket(bProgrammes)
		if b.Get([]byte(p.ID)) != nil {
			return fmt.Errorf("%s: %w", p.ID, store.ErrExists)
		}
		return b.Put([]byte(p.ID), encodeProgramme(p))
	})
}

// Programme implements store.Store.
func (s *Store) Programme(ctx context.Context, id string) (store.Programme, error) {
	var p store.Programme
	err := s.view(ctx, "get programme", func(tx *bolt.Tx) error {
		v := tx.Bucket(bProgrammes).Get([]byte(id))
		if v == nil {
			return fmt.Errorf("%s: %w", id, store.ErrNotFound)
		}
		var err error
		p, err = decodeProgramme(v)
		return err
	})
	return p, err
}

// Programmes implements store.Store.
func (s *Store) Programmes(ctx context.Context) ([]store.Programme, error) {
	var out []store.Programme
	err := s.view(ctx, "list programmes", func(tx *bolt.Tx) error {
		return tx.Bucket(bProgrammes).ForEach(func(_, v []byte) error {
			p, err := decodeProgramme(v)
			out = append(out, p)
			return err
		})
	})
	return out, err
}

// ---- terminals ----

// CreateTerminal implements store.Store.
func (s *Store) CreateTerminal(ctx context.Context, t store.Terminal) error {
	if err := t.Validate(); err != nil {
		return fmt.Errorf("create terminal: %w", err)
	}
	now := normTime(s.now())
	t.CreatedAt, t.UpdatedAt = now, now
	return s.update(ctx, "create terminal", func(tx *bolt.Tx) error {
		b := tx.Bucket(bTerminals)
		if b.Get([]byte(t.No)) != nil {
			return fmt.Errorf("%s: %w", t.No, store.ErrExists)
		}
		return b.Put([]byte(t.No), encodeTerminal(t))
	})
}

// UpdateTerminal implements store.Store.
func (s *Store) UpdateTerminal(ctx context.Context, no string, fn func(*store.Terminal) error) (store.Terminal, error) {
	var out store.Terminal
	err := s.update(ctx, "update terminal", func(tx *bolt.Tx) error {
		b := tx.Bucket(bTerminals)
		v := b.Get([]byte(no))
		if v == nil {
			return fmt.Errorf("%s: %w", no, store.ErrNotFound)
		}
		t, err := decodeTerminal(v)
		if err != nil {
			return err
		}
		if err := fn(&t); err != nil {
			return err
		}
		if t.No != no {
			return fmt.Errorf("%w: the terminal number cannot change", store.ErrInvalid)
		}
		if err := t.Validate(); err != nil {
			return err
		}
		t.UpdatedAt = normTime(s.now())
		out = t
		return b.Put([]byte(no), encodeTerminal(t))
	})
	return out, err
}

// Terminal implements store.Store.
func (s *Store) Terminal(ctx context.Context, no string) (store.Terminal, error) {
	var t store.Terminal
	err := s.view(ctx, "get terminal", func(tx *bolt.Tx) error {
		v := tx.Bucket(bTerminals).Get([]byte(no))
		if v == nil {
			return fmt.Errorf("%s: %w", no, store.ErrNotFound)
		}
		var err error
		t, err = decodeTerminal(v)
		return err
	})
	return t, err
}

// Terminals implements store.Store.
func (s *Store) Terminals(ctx context.Context) ([]store.Terminal, error) {
	var out []store.Terminal
	err := s.view(ctx, "list terminals", func(tx *bolt.Tx) error {
		return tx.Bucket(bTerminals).ForEach(func(_, v []byte) error {
			t, err := decodeTerminal(v)
			out = append(out, t)
			return err
		})
	})
	return out, err
}

// ---- lost cards ----

// SetLost implements store.Store.
func (s *Store) SetLost(ctx context.Context, card record.CardID, lost bool) (uint64, error) {
	if card.IsZero() {
		return 0, fmt.Errorf("set lost card: %w: zero card ID", store.ErrInvalid)
	}
	var version uint64
	err := s.update(ctx, "set lost card", func(tx *bolt.Tx) error {
		meta, lb, vb := tx.Bucket(bMeta), tx.Bucket(bLost), tx.Bucket(bLostVer)
		if v := meta.Get(kLostVersion); v != nil {
			var err error
			if version, err = getU64(v, "lost version"); err != nil {
				return err
			}
		}
		old := lb.Get(card[:])
		if old != nil {
			if len(old) != 9 || old[0] > 1 {
				return fmt.Errorf("decode lost card: %w", store.ErrCorrupt)
			}
			if (old[0] == 1) == lost {
				return nil // no change
			}
			if err := vb.Delete(old[1:]); err != nil {
				return err
			}
		} else if !lost {
			return nil // never lost: nothing to remove
		}
		version++
		flag := byte(0)
		if lost {
			flag = 1
		}
		if err := lb.Put(card[:], append([]byte{flag}, u64(version)...)); err != nil {
			return err
		}
		if err := vb.Put(u64(version), card[:]); err != nil {
			return err
		}
		return meta.Put(kLostVersion, u64(version))
	})
	return version, err
}

// LostCards implements store.Store.
func (s *Store) LostCards(ctx context.Context, since uint64) (store.LostList, error) {
	var out store.LostList
	err := s.view(ctx, "list lost cards", func(tx *bolt.Tx) error {
		if v := tx.Bucket(bMeta).Get(kLostVersion); v != nil {
			var err error
			if out.Version, err = getU64(v, "lost version"); err != nil {
				return err
			}
		}
		lb := tx.Bucket(bLost)
		c := tx.Bucket(bLostVer).Cursor()
		for k, v := c.Seek(u64(since + 1)); k != nil; k, v = c.Next() {
			ver, err := getU64(k, "lost version")
			if err != nil {
				return err
			}
			if len(v) != 16 {
				return fmt.Errorf("decode lost card: %w", store.ErrCorrupt)
			}
			var card record.CardID
			copy(card[:], v)
			st := lb.Get(v)
			if len(st) != 9 || st[0] > 1 || binary.BigEndian.Uint64(st[1:]) != ver {
				return fmt.Errorf("decode lost card: %w: index and state disagree", store.ErrCorrupt)
			}
			out.Changes = append(out.Changes, store.LostChange{CardID: card, Lost: st[0] == 1, Version: ver})
		}
		return nil
	})
	return out, err
}

// ---- dead letters ----

// AddDeadLetter implements store.Store.
func (s *Store) AddDeadLetter(ctx context.Context, d store.DeadLetter) (uint64, error) {
	if err := d.Validate(); err != nil {
		return 0, fmt.Errorf("add dead letter: %w", err)
	}
	now := normTime(s.now())
	var id uint64
	err := s.update(ctx, "add dead letter", func(tx *bolt.Tx) error {
		db, ib := tx.Bucket(bDead), tx.Bucket(bDeadKey)
		dk := deadKey(d.Key, d.Content)
		if v := ib.Get(dk); v != nil {
			var err error
			if id, err = getU64(v, "dead letter index"); err != nil {
				return err
			}
			old := db.Get(u64(id))
			if old == nil {
				return fmt.Errorf("dead letter %d: %w: indexed but missing", id, store.ErrCorrupt)
			}
			l, err := decodeDeadLetter(old)
			if err != nil {
				return err
			}
			l.Reason, l.Last = d.Reason, now
			l.Count++
			return db.Put(u64(id), encodeDeadLetter(l))
		}
		var err error
		if id, err = db.NextSequence(); err != nil {
			return err
		}
		d.ID, d.Count, d.First, d.Last = id, 1, now, now
		if err := db.Put(u64(id), encodeDeadLetter(d)); err != nil {
			return err
		}
		return ib.Put(dk, u64(id))
	})
	return id, err
}

// DeadLetters implements store.Store.
func (s *Store) DeadLetters(ctx context.Context, after uint64, n int) ([]store.DeadLetter, error) {
	var out []store.DeadLetter
	n = limit(n)
	err := s.view(ctx, "list dead letters", func(tx *bolt.Tx) error {
		c := tx.Bucket(bDead).Cursor()
		for k, v := c.Seek(u64(after + 1)); k != nil && len(out) < n; k, v = c.Next() {
			l, err := decodeDeadLetter(v)
			if err != nil {
				return err
			}
			out = append(out, l)
		}
		return nil
	})
	return out, err
}

// DeleteDeadLetter implements store.Store.
func (s *Store) DeleteDeadLetter(ctx context.Context, id uint64) error {
	return s.update(ctx, "delete dead letter", func(tx *bolt.Tx) error {
		db := tx.Bucket(bDead)
		v := db.Get(u64(id))
		if v == nil {
			return fmt.Errorf("%d: %w", id, store.ErrNotFound)
		}
		l, err := decodeDeadLetter(v)
		if err != nil {
			return err
		}
		if err := tx.Bucket(bDeadKey).Delete(deadKey(l.Key, l.Content)); err != nil {
			return err
		}
		return db.Delete(u64(id))
	})
}

// ---- totals ----

// PutTotals implements store.Store.
func (s *Store) PutTotals(ctx context.Context, t store.Totals) error {
	if err := t.Validate(); err != nil {
		return fmt.Errorf("store totals: %w", err)
	}
	t.ReceivedAt = normTime(s.now())
	return s.update(ctx, "store totals", func(tx *bolt.Tx) error {
		return tx.Bucket(bTotals).Put([]byte(t.Day+t.TerminalNo), encodeTotals(t))
	})
}

// Totals implements store.Store.
func (s *Store) Totals(ctx context.Context, day string) ([]store.Totals, error) {
	if !store.ValidDay(day) {
		return nil, fmt.Errorf("list totals: %w: day", store.ErrInvalid)
	}
	var out []store.Totals
	err := s.view(ctx, "list totals", func(tx *bolt.Tx) error {
		c := tx.Bucket(bTotals).Cursor()
		prefix := []byte(day)
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			t, err := decodeTotals(v)
			if err != nil {
				return err
			}
			out = append(out, t)
		}
		return nil
	})
	return out, err
}

// ---- nonces ----

// UseNonce implements store.Store.
func (s *Store) UseNonce(ctx context.Context, nonce []byte, expires time.Time) error {
	if err := store.ValidateNonce(nonce); err != nil {
		return fmt.Errorf("use nonce: %w", err)
	}
	now := s.now().UnixNano()
	return s.update(ctx, "use nonce", func(tx *bolt.Tx) error {
		nb, eb := tx.Bucket(bNonces), tx.Bucket(bNonceExp)
		// Purge expired nonces.
		c := eb.Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.First() {
			if len(k) < 8 || int64(binary.BigEndian.Uint64(k)) > now {
				break
			}
			if err := nb.Delete(k[8:]); err != nil {
				return err
			}
			if err := eb.Delete(k); err != nil {
				return err
			}
		}
		if v := nb.Get(nonce); v != nil {
			exp, err := getU64(v, "nonce")
			if err != nil {
				return err
			}
			if int64(exp) > now {
				return store.ErrReplay
			}
			if err := eb.Delete(append(append([]byte(nil), v...), nonce...)); err != nil {
				return err
			}
		}
		e := expires.UnixNano()
		if e < 0 {
			e = 0
		}
		exp := u64(uint64(e))
		if err := nb.Put(nonce, exp); err != nil {
			return err
		}
		return eb.Put(append(exp, nonce...), nil)
	})
}
