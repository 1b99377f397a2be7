package pgstore

import (
	"context"
	"crypto/sha256"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/onecard-hub/onecard/hub/store"
)

// The Restore methods write records copied from another store (see
// hub/store/migrate) with their identities, states and times kept, which
// the store.Store methods set themselves. Each is idempotent: a record
// that is present already is left as it is, and the method reports false
// (nothing copied). Postings are copied with Post (idempotent by key) and
// RestorePostedAt.

// Empty reports whether the database holds nothing a hub wrote: no
// posting, account, programme, terminal, lost-card change, dead letter or
// totals.
func (s *Store) Empty(ctx context.Context) (bool, error) {
	var used bool
	err := s.read(ctx, func() error {
		return s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM postings) OR EXISTS (SELECT 1 FROM accounts)
			OR EXISTS (SELECT 1 FROM programmes) OR EXISTS (SELECT 1 FROM terminals)
			OR EXISTS (SELECT 1 FROM lost_cards) OR (SELECT version FROM lost_list) > 0
			OR EXISTS (SELECT 1 FROM dead_letters) OR EXISTS (SELECT 1 FROM terminal_totals)`).Scan(&used)
	})
	if err != nil {
		return false, fmt.Errorf("check store empty: %w", err)
	}
	return !used, nil
}

// inserted runs one idempotent INSERT ... ON CONFLICT DO NOTHING and
// reports whether it inserted a row.
func (s *Store) inserted(ctx context.Context, sql string, args ...any) (bool, error) {
	var n int64
	err := s.exec(ctx, true, func() error {
		tag, err := s.pool.Exec(ctx, sql, args...)
		n = tag.RowsAffected()
		return err
	})
	return n == 1, err
}

func (s *Store) orNow(t time.Time) time.Time {
	if t.IsZero() {
		return s.clock()
	}
	return t.UTC()
}

// RestoreProgramme stores p with its CreatedAt (now when zero). Errors:
// ErrInvalid.
func (s *Store) RestoreProgramme(ctx context.Context, p store.Programme) (bool, error) {
	if err := p.Validate(); err != nil {
		return false, fmt.Errorf("restore programme: %w", err)
	}
	ok, err := s.inserted(ctx, "INSERT INTO programmes (id, name, fund, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT (id) DO NOTHING",
		p.ID, p.Name, p.Fund, s.orNow(p.CreatedAt))
	if err != nil {
		return false, fmt.Errorf("restore programme %s: %w", p.ID, err)
	}
	return ok, nil
}

// RestoreTerminal stores t as it is (state, token hash, public key,
// acknowledged sequence, CreatedAt and UpdatedAt). Errors: ErrInvalid.
func (s *Store) RestoreTerminal(ctx context.Context, t store.Terminal) (bool, error) {
	if err := t.Validate(); err != nil {
		return false, fmt.Errorf("restore terminal: %w", err)
	}
	created := s.orNow(t.CreatedAt)
	updated := t.UpdatedAt
	if updated.IsZero() {
		updated = created
	}
	ok, err := s.inserted(ctx, "INSERT INTO terminals ("+terminalCols+") VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (terminal_no) DO NOTHING",
		t.No, t.Name, int16(t.State), t.TokenHash, t.PublicKey, int64(t.AckedSeq), created, updated.UTC())
	if err != nil {
		return false, fmt.Errorf("restore terminal %s: %w", t.No, err)
	}
	return ok, nil
}

// RestoreLostCards stores each card's latest change with its version and
// raises the list version to at least l.Version, so terminals that
// synchronised with the source miss nothing. A card whose stored version
// is already as high is left alone. It returns how many cards it wrote.
// Errors: ErrInvalid (a zero card ID or version, or a version above
// l.Version), the database's (a version another card holds).
func (s *Store) RestoreLostCards(ctx context.Context, l store.LostList) (int, error) {
	for _, c := range l.Changes {
		if c.CardID.IsZero() || c.Version == 0 || c.Version > l.Version {
			return 0, fmt.Errorf("restore lost cards: %w: change %s version %d of list version %d", store.ErrInvalid, c.CardID, c.Version, l.Version)
		}
	}
	var n int
	err := s.inTx(ctx, pgx.TxOptions{}, true, func(tx pgx.Tx) error {
		n = 0
		if _, err := tx.Exec(ctx, "SELECT version FROM lost_list FOR UPDATE"); err != nil {
			return err
		}
		for _, c := range l.Changes {
			tag, err := tx.Exec(ctx, `INSERT INTO lost_cards (card_id, lost, version) VALUES ($1, $2, $3)
				ON CONFLICT (card_id) DO UPDATE SET lost = EXCLUDED.lost, version = EXCLUDED.version
				WHERE lost_cards.version < EXCLUDED.version`, c.CardID[:], c.Lost, int64(c.Version))
			if err != nil {
				return err
			}
			n += int(tag.RowsAffected())
		}
		_, err := tx.Exec(ctx, "UPDATE lost_list SET version = GREATEST(version, $1)", int64(l.Version))
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("restore lost cards: %w", err)
	}
	return n, nil
}

// RestoreDeadLetter stores d with its Count, First and Last (its ID is
// the store's). A letter with the same key and content is left alone.
// Errors: ErrInvalid.
func (s *Store) RestoreDeadLetter(ctx context.Context, d store.DeadLetter) (bool, error) {
	if err := d.Validate(); err != nil {
		return false, fmt.Errorf("restore dead letter: %w", err)
	}
	digest := sha256.Sum256(d.Content)
	content := d.Content
	if content == nil {
		content = []byte{}
	}
	first := s.orNow(d.First)
	last := d.Last
	if last.IsZero() {
		last = first
	}
	ok, err := s.inserted(ctx, `INSERT INTO dead_letters (terminal_no, terminal_seq, ref, digest, content, reason, count, first_at, last_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
		ON CONFLICT (terminal_no, terminal_seq, ref, digest) DO NOTHING`,
		d.Key.TerminalNo, int64(d.Key.TerminalSeq), d.Key.Ref, digest[:], content, d.Reason, int32(max(d.Count, 1)), first, last.UTC())
	if err != nil {
		return false, fmt.Errorf("restore dead letter %s: %w", d.Key, err)
	}
	return ok, nil
}

// RestoreTotals stores t with its ReceivedAt. Totals already stored for
// the terminal and day are left alone. Errors: ErrInvalid.
func (s *Store) RestoreTotals(ctx context.Context, t store.Totals) (bool, error) {
	if err := t.Validate(); err != nil {
		return false, fmt.Errorf("restore totals: %w", err)
	}
	ok, err := s.inserted(ctx, `INSERT INTO terminal_totals (day, terminal_no, pay_count, pay_amount, load_count, load_amount,
			certify_count, signed, signature, received_at)
		VALUES (to_date($1, 'YYYYMMDD'), $2, $3, $4, $5, $6, $7, $8, $9, $10)
		ON CONFLICT (day, terminal_no) DO NOTHING`,
		t.Day, t.TerminalNo, t.PayCount, t.PayAmount, t.LoadCount, t.LoadAmount, t.CertifyCount, t.Signed, t.Signature, s.orNow(t.ReceivedAt))
	if err != nil {
		return false, fmt.Errorf("restore totals %s/%s: %w", t.TerminalNo, t.Day, err)
	}
	return ok, nil
}

// RestorePostedAt sets the PostedAt of the postings with ids[i] to at[i]
// (the time the source store posted them). Errors: ErrInvalid when the
// lengths differ.
func (s *Store) RestorePostedAt(ctx context.Context, ids []uint64, at []time.Time) error {
	if len(ids) != len(at) {
		return fmt.Errorf("restore posting times: %w: %d IDs, %d times", store.ErrInvalid, len(ids), len(at))
	}
	if len(ids) == 0 {
		return nil
	}
	pid := make([]int64, len(ids))
	ts := make([]time.Time, len(at))
	for i := range ids {
		pid[i], ts[i] = int64(ids[i]), s.orNow(at[i]).Truncate(time.Microsecond)
	}
	err := s.exec(ctx, true, func() error {
		_, err := s.pool.Exec(ctx, `UPDATE postings p SET posted_at = u.t
			FROM unnest($1::bigint[], $2::timestamptz[]) AS u(id, t) WHERE p.id = u.id`, pid, ts)
		return err
	})
	if err != nil {
		return fmt.Errorf("restore posting times: %w", err)
	}
	return nil
}
