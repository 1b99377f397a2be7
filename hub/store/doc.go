// Package store is the hub's persistence: one [Store] interface with two
// implementations, hub/store/bolt (embedded bbolt, the default, one hub
// process) and hub/store/postgres (PostgreSQL, several hub processes
// sharing one database). hub/store/storetest holds the contract suite
// both pass.
//
// # What it stores
//
//   - The ledger: [Posting] values, each a set of [Entry] values (fen)
//     against named accounts, plus the per-account balances. A store knows
//     nothing about cards or programmes beyond what a posting carries:
//     package hub/ledger decides which entries a record makes.
//   - Card transaction counters: which posting used which value of a
//     card's counter ([Counter]); [Store.Gaps] lists missing values.
//   - Programmes, the terminal registry ([Terminal]), the versioned
//     lost-card list, dead letters, terminal end-of-day [Totals] and
//     one-time nonces.
//
// # Posting contract (exactly once)
//
// [Store.Post] applies each posting atomically and at most once per
// [Key]: a terminal number + terminal sequence for records, an operator
// reference otherwise. Posting a key again with byte-identical Content is
// a no-op that reports [Duplicate]; with different Content it is rejected
// with a *[ConflictError] (errors.Is ErrConflict) and nothing changes. A
// posting is also rejected, with nothing changed, when
//
//   - its card counter value was already used by another key
//     (*[CounterReuseError], ErrCounterReuse);
//   - an entry would take an account below zero that may not go negative
//     (*[InsufficientFundsError], ErrInsufficientFunds): every account
//     except those named "external/..." ([AllowsNegative]);
//   - it is malformed ([Posting.Validate], ErrInvalid), e.g. its entries
//     do not sum to zero.
//
// [IsRejection] tells these permanent rejections from infrastructure
// errors, after which the same posting may simply be retried (a posting
// that did commit before the error then reports Duplicate).
//
// [Store.Check] verifies the invariants: every posting balances, every
// account balance equals the sum of its entries, no forbidden negative
// balance, counters and keys consistent with the postings.
//
// # Errors
//
// Lookups of absent things return ErrNotFound; creating something that
// exists returns ErrExists; bad arguments ErrInvalid; undecodable stored
// data ErrCorrupt. Errors are wrapped as "verb noun: %w".
package store
