// Package ledger is the hub's double-entry ledger in fen: it turns
// verified transaction records and operator requests into balanced
// postings, posts them exactly once through a store.Store, and builds the
// end-of-day settlement and reconciliation report.
//
// # Accounts
//
//	card/<card ID>/<fund>        a card's purse share of one fund (may dip below zero while
//	                             a load is on its way: the card's TAC proves every purchase)
//	merchant/<merchant>/<fund>   a merchant's settlement account (never negative)
//	programme/<programme>        a programme's funding account (never negative)
//	grant/<programme>/<card ID>  credits granted to a card, not yet loaded (never negative)
//	hold/<programme>/<card ID>/<TT>-<counter>
//	                             credits reserved for the load authorised at that
//	                             online counter, until its record is posted (never negative)
//	external/<source>            money from outside the books (may be negative)
//
// Text parts are path-escaped ([url.PathEscape]), so names never collide.
//
// # Postings
//
//   - pay (record): card/<card>/<fund> → merchant/<merchant>/<fund>;
//   - load (record): hold (and, for what the hold lacks, grant) →
//     card/<card>/<programme's fund>, any rest of the hold back to the
//     grant: a load consumes the card's grant, so it needs an entitlement
//     ([Ledger.Entitlement]) and consumes it exactly once;
//   - hold (hub, at load authorisation, [Ledger.Reserve]): grant → hold of
//     that load; release (operator, [Ledger.ReleaseHold]): hold → grant;
//   - certify (record): no money, kept as an attestation;
//   - fund (operator): external/<source> → programme/<programme>;
//   - grant (operator): programme/<programme> → grant/<programme>/<card>:
//     a grant beyond the programme's funds is rejected;
//   - opening (operator): external/<source> → card/<card>/<fund>, for
//     purse balances that predate the hub.
//
// Records are posted under their (terminal number, terminal sequence),
// operator postings under the operator's reference: posting the same
// thing again reports store.Duplicate; the same key with other content is
// a *store.ConflictError. Card counters are tracked per card and counter
// type: a reused value is rejected (*store.CounterReuseError), missing
// values show in the report as "missing-record" discrepancies.
//
// Every rejected record becomes a dead letter (record bytes and reason)
// and a warning in the log: that is the "flag".
//
// The ledger trusts the records it is given: the caller (the hub server)
// has checked the terminal's signature and the card's TAC (package
// hub/proof) before calling [Ledger.Post]. A money record without a TAC is
// refused (ErrUnpostable).
package ledger
