package pgstore

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/onecard-hub/onecard/hub/store"
)

const postingCols = `p.id, p.terminal_no, p.terminal_seq, p.ref, p.kind, to_char(p.day, 'YYYYMMDD'), p.card_id,
	p.party, p.fund, p.amount, p.counter_type, p.counter_value, p.content, p.posted_at,
	COALESCE((SELECT array_agg(e.account_id ORDER BY e.ord) FROM entries e WHERE e.posting_id = p.id), '{}'),
	COALESCE((SELECT array_agg(e.amount ORDER BY e.ord) FROM entries e WHERE e.posting_id = p.id), '{}')`

func scanPosting(row pgx.Row) (*store.Posting, error) {
	var (
		p          store.Posting
		id         int64
		tn, ref    *string
		seq        *int64
		kind       int16
		card       []byte
		ctype      *int16
		cval       *int32
		accs       []string
		amts       []int64
		postedAtTZ = &p.PostedAt
	)
	if err := row.Scan(&id, &tn, &seq, &ref, &kind, &p.Day, &card, &p.Party, &p.Fund, &p.Amount, &ctype, &cval,
		&p.Content, postedAtTZ, &accs, &amts); err != nil {
		return nil, err
	}
	p.ID = uint64(id)
	p.Key = colsKey(tn, seq, ref)
	p.Kind = store.Kind(kind)
	var err error
	if p.CardID, err = colCard(card); err != nil {
		return nil, err
	}
	if ctype != nil && cval != nil {
		p.Counter = &store.Counter{Type: store.CounterType(*ctype), Value: uint16(*cval)}
	}
	if len(accs) != len(amts) {
		return nil, fmt.Errorf("posting %d entries: %w", id, store.ErrCorrupt)
	}
	for i := range accs {
		p.Entries = append(p.Entries, store.Entry{Account: accs[i], Amount: amts[i]})
	}
	p.PostedAt = p.PostedAt.UTC()
	return &p, nil
}

// Posting implements store.Store.
func (s *Store) Posting(ctx context.Context, k store.Key) (*store.Posting, error) {
	tn, seq, ref := keyCols(k)
	var row pgx.Row
	var p *store.Posting
	err := s.read(ctx, func() (err error) {
		if ref != nil {
			row = s.pool.QueryRow(ctx, "SELECT "+postingCols+" FROM postings p WHERE p.ref = $1", *ref)
		} else {
			row = s.pool.QueryRow(ctx, "SELECT "+postingCols+" FROM postings p WHERE p.terminal_no = $1 AND p.terminal_seq = $2", *tn, *seq)
		}
		p, err = scanPosting(row)
		return err
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("get posting %s: %w", k, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get posting %s: %w", k, err)
	}
	return p, nil
}

// Postings implements store.Store.
func (s *Store) Postings(ctx context.Context, q store.Query) ([]*store.Posting, error) {
	if q.Day != "" && !store.ValidDay(q.Day) {
		return nil, fmt.Errorf("list postings: %w: day", store.ErrInvalid)
	}
	where := []string{"p.id > $1"}
	args := []any{int64(q.AfterID)}
	if q.Day != "" {
		args = append(args, q.Day)
		where = append(where, fmt.Sprintf("p.day = to_date($%d, 'YYYYMMDD')", len(args)))
	}
	if q.TerminalNo != "" {
		args = append(args, q.TerminalNo)
		where = append(where, fmt.Sprintf("p.terminal_no = $%d", len(args)))
	}
	if !q.CardID.IsZero() {
		args = append(args, q.CardID[:])
		where = append(where, fmt.Sprintf("p.card_id = $%d", len(args)))
	}
	limit := q.Limit
	if limit <= 0 {
		limit = 1000
	}
	args = append(args, limit)
	sql := fmt.Sprintf("SELECT %s FROM postings p WHERE %s ORDER BY p.id LIMIT $%d", postingCols, strings.Join(where, " AND "), len(args))
	var out []*store.Posting
	err := s.read(ctx, func() error {
		rows, err := s.pool.Query(ctx, sql, args...)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (*store.Posting, error) { return scanPosting(r) })
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list postings: %w", err)
	}
	if len(out) == 0 {
		out = nil
	}
	return out, nil
}

// Summary implements store.Store.
func (s *Store) Summary(ctx context.Context, day string) ([]store.SummaryLine, error) {
	if !store.ValidDay(day) {
		return nil, fmt.Errorf("summarise day: %w: day", store.ErrInvalid)
	}
	var out []store.SummaryLine
	err := s.read(ctx, func() error {
		rows, err := s.pool.Query(ctx, `SELECT kind, COALESCE(terminal_no, ''), party, fund, count(*), COALESCE(sum(amount), 0)::bigint
		FROM postings WHERE day = to_date($1, 'YYYYMMDD')
		GROUP BY 1, 2, 3, 4
		ORDER BY kind, COALESCE(terminal_no, '') COLLATE "C", party COLLATE "C", fund COLLATE "C"`, day)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.SummaryLine, error) {
			var l store.SummaryLine
			var kind int16
			err := r.Scan(&kind, &l.TerminalNo, &l.Party, &l.Fund, &l.Count, &l.Amount)
			l.Kind = store.Kind(kind)
			return l, err
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("summarise day: %w", err)
	}
	return out, nil
}

// Balance implements store.Store.
func (s *Store) Balance(ctx context.Context, account string) (int64, error) {
	var b int64
	err := s.read(ctx, func() error {
		return s.pool.QueryRow(ctx, "SELECT balance FROM accounts WHERE id = $1", account).Scan(&b)
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read balance: %w", err)
	}
	return b, nil
}

// Gaps implements store.Store.
func (s *Store) Gaps(ctx context.Context, day string) ([]store.Gap, error) {
	if !store.ValidDay(day) {
		return nil, fmt.Errorf("list counter gaps: %w: day", store.ErrInvalid)
	}
	var out []store.Gap
	err := s.read(ctx, func() error {
		rows, err := s.pool.Query(ctx, `WITH series AS (
			SELECT DISTINCT card_id, counter_type FROM postings
			WHERE day = to_date($1, 'YYYYMMDD') AND counter_type IS NOT NULL),
		c AS (
			SELECT cc.card_id, cc.counter_type, cc.value, cc.posting_id,
				lead(cc.value) OVER w AS next_value, lead(cc.posting_id) OVER w AS next_posting
			FROM card_counters cc JOIN series USING (card_id, counter_type)
			WINDOW w AS (PARTITION BY cc.card_id, cc.counter_type ORDER BY cc.value))
		SELECT c.card_id, c.counter_type, c.value, c.next_value,
			a.terminal_no, a.terminal_seq, a.ref, b.terminal_no, b.terminal_seq, b.ref
		FROM c JOIN postings a ON a.id = c.posting_id JOIN postings b ON b.id = c.next_posting
		WHERE c.next_value > c.value + 1
		ORDER BY c.card_id, c.counter_type, c.value`, day)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.Gap, error) {
			var (
				g          store.Gap
				card       []byte
				ct         int16
				val, next  int32
				atn, aref  *string
				btn, bref  *string
				aseq, bseq *int64
			)
			if err := r.Scan(&card, &ct, &val, &next, &atn, &aseq, &aref, &btn, &bseq, &bref); err != nil {
				return g, err
			}
			var err error
			g.CardID, err = colCard(card)
			g.Type = store.CounterType(ct)
			g.From, g.To = uint16(val+1), uint16(next-1)
			g.Before, g.After = colsKey(atn, aseq, aref), colsKey(btn, bseq, bref)
			return g, err
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list counter gaps: %w", err)
	}
	return out, nil
}
