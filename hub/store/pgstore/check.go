package pgstore

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/onecard-hub/onecard/hub/store"
)

// invariantQueries each return rows (a description) only when an
// invariant is broken.
var invariantQueries = []struct{ name, sql string }{
	{"posting does not balance", `SELECT posting_id || ' sums to ' || sum(amount)
		FROM entries GROUP BY posting_id HAVING sum(amount) <> 0`},
	{"money posting without entries", `SELECT p.id::text FROM postings p
		WHERE p.kind <> 3 AND NOT EXISTS (SELECT 1 FROM entries e WHERE e.posting_id = p.id)`},
	{"certify posting with entries", `SELECT DISTINCT p.id::text FROM postings p JOIN entries e ON e.posting_id = p.id WHERE p.kind = 3`},
	{"balance differs from its entries", `SELECT a.id || ' balance ' || a.balance || ', entries ' || COALESCE(s.total, 0)
		FROM accounts a LEFT JOIN (SELECT account_id, sum(amount) AS total FROM entries GROUP BY account_id) s
		ON s.account_id = a.id WHERE a.balance <> COALESCE(s.total, 0)`},
	{"forbidden negative balance", `SELECT id || ' ' || balance FROM accounts WHERE balance < 0 AND NOT allow_negative`},
	{"account policy differs from its name", `SELECT id FROM accounts WHERE allow_negative <> (starts_with(id, '` + store.ExternalPrefix + `') OR starts_with(id, '` + store.CardPrefix + `'))`},
	{"posting counter not recorded", `SELECT p.id::text FROM postings p
		WHERE p.counter_type IS NOT NULL AND NOT EXISTS (SELECT 1 FROM card_counters c WHERE c.posting_id = p.id
			AND c.card_id = p.card_id AND c.counter_type = p.counter_type AND c.value = p.counter_value)`},
	{"counter recorded for another posting", `SELECT c.posting_id::text FROM card_counters c JOIN postings p ON p.id = c.posting_id
		WHERE p.card_id IS DISTINCT FROM c.card_id OR p.counter_type IS DISTINCT FROM c.counter_type
		   OR p.counter_value IS DISTINCT FROM c.value`},
}

// Check implements store.Store: the invariant queries run in one
// REPEATABLE READ, read-only transaction.
func (s *Store) Check(ctx context.Context) error {
	var probs store.Problems
	err := s.inTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, true, func(tx pgx.Tx) error {
		probs = store.Problems{}
		for _, q := range invariantQueries {
			rows, err := tx.Query(ctx, q.sql+" LIMIT "+fmt.Sprint(store.MaxProblems))
			if err != nil {
				return fmt.Errorf("%s: %w", q.name, err)
			}
			found, err := pgx.CollectRows(rows, pgx.RowTo[string])
			if err != nil {
				return fmt.Errorf("%s: %w", q.name, err)
			}
			for _, f := range found {
				probs.Addf("%s: %s", q.name, f)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("check ledger: %w", err)
	}
	if err := probs.Err(); err != nil {
		return fmt.Errorf("check ledger: %w", err)
	}
	return nil
}
