// Package journal is the terminal's crash-safe transaction journal: every
// card operation's record is written here, fsync'd, before the card is
// asked to move money, and advances through its states until the hub has
// posted it. It is a bbolt file (one process at a time) and the outbox the
// hub client drains.
//
// # States
//
//	prepared ──► card-done ──► sent ──► cleared
//	   │  │          │   ╲       ╲
//	   │  │          │    ╲       ╲──► dead (dead-letter bucket, with reason)
//	   │  ▼          ▼     ╲
//	   │ failed    cleared  ╲──► dead
//	   ▼
//	uncertain ──► card-done | failed | sent | cleared | dead
//
// Prepared: written by [Journal.Prepare] after INITIALIZE and before the
// money command. CardDone: the card answered ([Journal.CardDone], with the
// TAC for money). Failed: the card said no, nothing moved ([Journal.Fail]).
// Uncertain: torn or interrupted ([Journal.MarkUncertain], or
// [Journal.Recover] at start-up for every prepared record); settled by the
// card's proof (CardDone or Fail) or, once older than
// Options.UncertainHold, offered to the hub. Sent/Cleared/Dead follow the
// hub ([Journal.MarkSent], [Journal.MarkCleared], [Journal.DeadLetter]).
// [CanMove] is the table; states only move forward and every move is
// logged in the record's history. Failed, Cleared and Dead are final.
//
// Every state change is one bbolt read-write transaction, committed with
// fsync before the call returns (there is no option to skip it).
//
// A card transaction (card ID, purse transaction type, card counter) can be
// completed by one record only: CardDone refuses a second with
// ErrDuplicate, so a torn record settled after the card reused its counter
// cannot post the same money twice.
//
// # Sequences
//
// Prepare assigns the terminal sequence (record.TerminalSeq); with the
// terminal number it is the idempotency key from the card to the ledger, so
// it must never repeat:
//
//   - within a file: a meta counter in the same transaction as the record;
//     a failed Prepare consumes nothing, a committed one is never reused;
//   - after a reinstall (a fresh, empty file): the first sequence is
//     [SeedSequence](now) = seconds since 2024-01-01 UTC << 20, above
//     anything an earlier installation issued (fewer than 2^20 records per
//     second of its life, clock not set back);
//   - after a restore from a backup: [Journal.ObserveHubAck] with the hub's
//     last acknowledged sequence; when it is at or above the next sequence
//     the counter jumps to max(ack+1, SeedSequence(now)) and the call returns
//     a *RestoreError (ErrRestoredFromBackup).
//
// Jumps are logged in the file, so [Journal.Check] tells them from gaps.
// The hub must still compare the content of a duplicate key rather than
// silently acknowledge it: a clock set back before a reinstall defeats the
// seed until the first hub contact.
//
// # Failpoints
//
// Options.Failpoint is called with "before-OP-commit" (inside the
// transaction, last; an error rolls it back) and "after-OP-commit" (after
// the fsync'd commit) for OP in prepare, carddone, failed, uncertain,
// recover, sent, cleared, dead, huback, hubjump, prune. The crash tests
// SIGKILL a child process at each of them and check that no record is lost,
// duplicated or moved backwards.
//
// # Limits
//
// Options.LockTimeout (default 2 s) bounds the wait for the file lock
// (ErrLocked). Options.MaxRecords and Options.MaxSize make Prepare return
// ErrFull before anything is written (so before the card is touched);
// records already in the journal can always advance. [Journal.PruneFinal]
// removes the oldest cleared and failed records.
//
// # Personal data
//
// With Options.PersonalKey (an SM4 key kept in a 0600 file, see
// [LoadOrCreateKey]) the card number, person ID and holder name of new
// records are sealed with SM4-GCM (random 12-byte nonce, the sequence and
// card ID as associated data); the rest of the record stays readable.
//
// # Tests
//
// Package journaltest opens journals in temporary directories and runs
// [Journal.Check] when each test ends.
package journal
