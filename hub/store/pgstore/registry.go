package pgstore

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/onecard-hub/onecard/hub/store"
	"github.com/onecard-hub/onecard/terminal/record"
)

func isUniqueViolation(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505"
}

// ---- programmes ----

// CreateProgramme implements store.Store.
func (s *Store) CreateProgramme(ctx context.Context, p store.Programme) error {
	if err := p.Validate(); err != nil {
		return fmt.Errorf("create programme: %w", err)
	}
	now := s.clock()
	err := s.exec(ctx, false, func() error {
		_, err := s.pool.Exec(ctx, "INSERT INTO programmes (id, name, fund, created_at) VALUES ($1, $2, $3, $4)",
			p.ID, p.Name, p.Fund, now)
		return err
	})
	if isUniqueViolation(err) {
		return fmt.Errorf("create programme %s: %w", p.ID, store.ErrExists)
	}
	if err != nil {
		return fmt.Errorf("create programme: %w", err)
	}
	return nil
}

func scanProgramme(r pgx.Row) (store.Programme, error) {
	var p store.Programme
	err := r.Scan(&p.ID, &p.Name, &p.Fund, &p.CreatedAt)
	p.CreatedAt = p.CreatedAt.UTC()
	return p, err
}

// Programme implements store.Store.
func (s *Store) Programme(ctx context.Context, id string) (store.Programme, error) {
	var p store.Programme
	err := s.read(ctx, func() (err error) {
		p, err = scanProgramme(s.pool.QueryRow(ctx, "SELECT id, name, fund, created_at FROM programmes WHERE id = $1", id))
		return err
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return p, fmt.Errorf("get programme %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return p, fmt.Errorf("get programme: %w", err)
	}
	return p, nil
}

// Programmes implements store.Store.
func (s *Store) Programmes(ctx context.Context) ([]store.Programme, error) {
	var out []store.Programme
	err := s.read(ctx, func() error {
		rows, err := s.pool.Query(ctx, `SELECT id, name, fund, created_at FROM programmes ORDER BY id COLLATE "C"`)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.Programme, error) { return scanProgramme(r) })
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list programmes: %w", err)
	}
	return out, nil
}

// ---- terminals ----

const terminalCols = "terminal_no, name, state, token_hash, public_key, acked_seq, created_at, updated_at"

func scanTerminal(r pgx.Row) (store.Terminal, error) {
	var t store.Terminal
	var state int16
	var acked int64
	err := r.Scan(&t.No, &t.Name, &state, &t.TokenHash, &t.PublicKey, &acked, &t.CreatedAt, &t.UpdatedAt)
	t.State, t.AckedSeq = store.TerminalState(state), uint64(acked)
	t.CreatedAt, t.UpdatedAt = t.CreatedAt.UTC(), t.UpdatedAt.UTC()
	return t, err
}

// CreateTerminal implements store.Store.
func (s *Store) CreateTerminal(ctx context.Context, t store.Terminal) error {
	if err := t.Validate(); err != nil {
		return fmt.Errorf("create terminal: %w", err)
	}
	now := s.clock()
	err := s.exec(ctx, false, func() error {
		_, err := s.pool.Exec(ctx, "INSERT INTO terminals ("+terminalCols+") VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
			t.No, t.Name, int16(t.State), t.TokenHash, t.PublicKey, int64(t.AckedSeq), now)
		return err
	})
	if isUniqueViolation(err) {
		return fmt.Errorf("create terminal %s: %w", t.No, store.ErrExists)
	}
	if err != nil {
		return fmt.Errorf("create terminal: %w", err)
	}
	return nil
}

// UpdateTerminal implements store.Store (SELECT ... FOR UPDATE, fn,
// UPDATE, in one transaction).
func (s *Store) UpdateTerminal(ctx context.Context, no string, fn func(*store.Terminal) error) (store.Terminal, error) {
	var out store.Terminal
	err := s.inTx(ctx, pgx.TxOptions{}, false, func(tx pgx.Tx) error {
		t, err := scanTerminal(tx.QueryRow(ctx, "SELECT "+terminalCols+" FROM terminals WHERE terminal_no = $1 FOR UPDATE", no))
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("%s: %w", no, store.ErrNotFound)
		}
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
		t.UpdatedAt = s.clock()
		_, err = tx.Exec(ctx, `UPDATE terminals SET name = $2, state = $3, token_hash = $4, public_key = $5,
			acked_seq = $6, updated_at = $7 WHERE terminal_no = $1`,
			t.No, t.Name, int16(t.State), t.TokenHash, t.PublicKey, int64(t.AckedSeq), t.UpdatedAt)
		out = t
		return err
	})
	if err != nil {
		return store.Terminal{}, fmt.Errorf("update terminal: %w", err)
	}
	return out, nil
}

// Terminal implements store.Store.
func (s *Store) Terminal(ctx context.Context, no string) (store.Terminal, error) {
	var t store.Terminal
	err := s.read(ctx, func() (err error) {
		t, err = scanTerminal(s.pool.QueryRow(ctx, "SELECT "+terminalCols+" FROM terminals WHERE terminal_no = $1", no))
		return err
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return t, fmt.Errorf("get terminal %s: %w", no, store.ErrNotFound)
	}
	if err != nil {
		return t, fmt.Errorf("get terminal: %w", err)
	}
	return t, nil
}

// Terminals implements store.Store.
func (s *Store) Terminals(ctx context.Context) ([]store.Terminal, error) {
	var out []store.Terminal
	err := s.read(ctx, func() error {
		rows, err := s.pool.Query(ctx, "SELECT "+terminalCols+` FROM terminals ORDER BY terminal_no COLLATE "C"`)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.Terminal, error) { return scanTerminal(r) })
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list terminals: %w", err)
	}
	return out, nil
}

// ---- lost cards ----

// SetLost implements store.Store. The list's version row is locked for
// the transaction, so versions commit in order.
func (s *Store) SetLost(ctx context.Context, card record.CardID, lost bool) (uint64, error) {
	if card.IsZero() {
		return 0, fmt.Errorf("set lost card: %w: zero card ID", store.ErrInvalid)
	}
	var version int64
	err := s.inTx(ctx, pgx.TxOptions{}, true, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, "SELECT version FROM lost_list FOR UPDATE").Scan(&version); err != nil {
			return err
		}
		var was bool
		err := tx.QueryRow(ctx, "SELECT lost FROM lost_cards WHERE card_id = $1", card[:]).Scan(&was)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			if !lost {
				return nil
			}
		case err != nil:
			return err
		case was == lost:
			return nil
		}
		version++
		if _, err := tx.Exec(ctx, `INSERT INTO lost_cards (card_id, lost, version) VALUES ($1, $2, $3)
			ON CONFLICT (card_id) DO UPDATE SET lost = EXCLUDED.lost, version = EXCLUDED.version`, card[:], lost, version); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, "UPDATE lost_list SET version = $1", version)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("set lost card: %w", err)
	}
	return uint64(version), nil
}

// LostCards implements store.Store (one REPEATABLE READ snapshot).
func (s *Store) LostCards(ctx context.Context, since uint64) (store.LostList, error) {
	var out store.LostList
	err := s.inTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, true, func(tx pgx.Tx) error {
		out = store.LostList{}
		var v int64
		if err := tx.QueryRow(ctx, "SELECT version FROM lost_list").Scan(&v); err != nil {
			return err
		}
		out.Version = uint64(v)
		rows, err := tx.Query(ctx, "SELECT card_id, lost, version FROM lost_cards WHERE version > $1 ORDER BY version", int64(since))
		if err != nil {
			return err
		}
		out.Changes, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.LostChange, error) {
			var c store.LostChange
			var b []byte
			var ver int64
			if err := r.Scan(&b, &c.Lost, &ver); err != nil {
				return c, err
			}
			c.Version = uint64(ver)
			var err error
			c.CardID, err = colCard(b)
			return c, err
		})
		if len(out.Changes) == 0 {
			out.Changes = nil
		}
		return err
	})
	if err != nil {
		return store.LostList{}, fmt.Errorf("list lost cards: %w", err)
	}
	return out, nil
}

// ---- dead letters ----

// AddDeadLetter implements store.Store.
func (s *Store) AddDeadLetter(ctx context.Context, d store.DeadLetter) (uint64, error) {
	if err := d.Validate(); err != nil {
		return 0, fmt.Errorf("add dead letter: %w", err)
	}
	digest := sha256.Sum256(d.Content)
	content := d.Content
	if content == nil {
		content = []byte{}
	}
	var id int64
	now := s.clock()
	err := s.exec(ctx, false, func() error {
		return s.pool.QueryRow(ctx, `INSERT INTO dead_letters (terminal_no, terminal_seq, ref, digest, content, reason, count, first_at, last_at)
		VALUES ($1, $2, $3, $4, $5, $6, 1, $7, $7)
		ON CONFLICT (terminal_no, terminal_seq, ref, digest)
		DO UPDATE SET reason = EXCLUDED.reason, last_at = EXCLUDED.last_at, count = dead_letters.count + 1
		RETURNING id`,
			d.Key.TerminalNo, int64(d.Key.TerminalSeq), d.Key.Ref, digest[:], content, d.Reason, now).Scan(&id)
	})
	if err != nil {
		return 0, fmt.Errorf("add dead letter: %w", err)
	}
	return uint64(id), nil
}

// DeadLetters implements store.Store.
func (s *Store) DeadLetters(ctx context.Context, after uint64, limit int) ([]store.DeadLetter, error) {
	if limit <= 0 {
		limit = 1000
	}
	var out []store.DeadLetter
	err := s.read(ctx, func() error {
		rows, err := s.pool.Query(ctx, `SELECT id, terminal_no, terminal_seq, ref, content, reason, count, first_at, last_at
		FROM dead_letters WHERE id > $1 ORDER BY id LIMIT $2`, int64(after), limit)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.DeadLetter, error) {
			var d store.DeadLetter
			var id, seq int64
			var count int32
			err := r.Scan(&id, &d.Key.TerminalNo, &seq, &d.Key.Ref, &d.Content, &d.Reason, &count, &d.First, &d.Last)
			d.ID, d.Key.TerminalSeq, d.Count = uint64(id), uint64(seq), int(count)
			d.First, d.Last = d.First.UTC(), d.Last.UTC()
			if len(d.Content) == 0 {
				d.Content = nil
			}
			return d, err
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list dead letters: %w", err)
	}
	return out, nil
}

// DeleteDeadLetter implements store.Store.
func (s *Store) DeleteDeadLetter(ctx context.Context, id uint64) error {
	var tag pgconn.CommandTag
	err := s.exec(ctx, false, func() (err error) {
		tag, err = s.pool.Exec(ctx, "DELETE FROM dead_letters WHERE id = $1", int64(id))
		return err
	})
	if err != nil {
		return fmt.Errorf("delete dead letter: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("delete dead letter %d: %w", id, store.ErrNotFound)
	}
	return nil
}

// ---- totals ----

// PutTotals implements store.Store.
func (s *Store) PutTotals(ctx context.Context, t store.Totals) error {
	if err := t.Validate(); err != nil {
		return fmt.Errorf("store totals: %w", err)
	}
	now := s.clock()
	err := s.exec(ctx, true, func() error {
		_, err := s.pool.Exec(ctx, `INSERT INTO terminal_totals (day, terminal_no, pay_count, pay_amount, load_count, load_amount,
			certify_count, signed, signature, received_at)
		VALUES (to_date($1, 'YYYYMMDD'), $2, $3, $4, $5, $6, $7, $8, $9, $10)
		ON CONFLICT (day, terminal_no) DO UPDATE SET pay_count = EXCLUDED.pay_count, pay_amount = EXCLUDED.pay_amount,
			load_count = EXCLUDED.load_count, load_amount = EXCLUDED.load_amount, certify_count = EXCLUDED.certify_count,
			signed = EXCLUDED.signed, signature = EXCLUDED.signature, received_at = EXCLUDED.received_at`,
			t.Day, t.TerminalNo, t.PayCount, t.PayAmount, t.LoadCount, t.LoadAmount, t.CertifyCount, t.Signed, t.Signature, now)
		return err
	})
	if err != nil {
		return fmt.Errorf("store totals: %w", err)
	}
	return nil
}

// Totals implements store.Store.
func (s *Store) Totals(ctx context.Context, day string) ([]store.Totals, error) {
	if !store.ValidDay(day) {
		return nil, fmt.Errorf("list totals: %w: day", store.ErrInvalid)
	}
	var out []store.Totals
	err := s.read(ctx, func() error {
		rows, err := s.pool.Query(ctx, `SELECT terminal_no, to_char(day, 'YYYYMMDD'), pay_count, pay_amount, load_count, load_amount,
			certify_count, signed, signature, received_at
		FROM terminal_totals WHERE day = to_date($1, 'YYYYMMDD') ORDER BY terminal_no COLLATE "C"`, day)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.Totals, error) {
			var t store.Totals
			err := r.Scan(&t.TerminalNo, &t.Day, &t.PayCount, &t.PayAmount, &t.LoadCount, &t.LoadAmount, &t.CertifyCount,
				&t.Signed, &t.Signature, &t.ReceivedAt)
			t.ReceivedAt = t.ReceivedAt.UTC()
			return t, err
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list totals: %w", err)
	}
	return out, nil
}

// ---- nonces ----

// UseNonce implements store.Store.
func (s *Store) UseNonce(ctx context.Context, nonce []byte, expires time.Time) error {
	if err := store.ValidateNonce(nonce); err != nil {
		return fmt.Errorf("use nonce: %w", err)
	}
	now := s.clock()
	var inserted bool
	err := s.inTx(ctx, pgx.TxOptions{}, false, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "DELETE FROM nonces WHERE expires_at <= $1", now); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, "INSERT INTO nonces (nonce, expires_at) VALUES ($1, $2) ON CONFLICT (nonce) DO NOTHING", nonce, expires)
		inserted = tag.RowsAffected() == 1
		return err
	})
	if err != nil {
		return fmt.Errorf("use nonce: %w", err)
	}
	if !inserted {
		return fmt.Errorf("use nonce: %w", store.ErrReplay)
	}
	return nil
}
