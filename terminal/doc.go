// Package terminal is what a kiosk or a counter does with a social-security
// card (社会保障卡): read the holder's identity, verify and change the PIN,
// pay, load benefits, certify pension eligibility — and keep every money
// movement exactly-once through crashes and pulled cards.
//
// # Session
//
// A [Session] binds a user-card slot (reader.Slot), a PSAM slot or a
// [KeyService] (the hub's HSM; [LocalKeyService] in-process), the
// terminal's SM2 key and 12-digit number, a [PINPad], the lost-card list
// ([LostCards]), the load [Authoriser] and the journal
// (terminal/journal). [Options] has safe defaults: what is absent makes
// the operations that need it fail with a clear error. Operations run one
// at a time, each bounded by Options.Timeout and the caller's context.
//
// One operation is one reader transaction (reader.Begin: exclusive on
// PC/SC, a no-op in-process), started after PIN entry and re-selecting the
// SSSE first. The two operations with a network round trip in the middle
// — the two-step read ([Session.Step1] → key service → [Session.Step2])
// and [Session.Load] (the authoriser's MAC2) — end the transaction before
// the round trip and start another on the still-connected card, as the
// reader.Tx contract requires.
//
// # Identity
//
// [Session.ReadIdentity] selects the SSSE, reads EF05, authenticates the
// card with INTERNAL AUTHENTICATE over a 16-byte terminal random (the PSAM
// computes the expected answer with INIT FOR DESCRYPT usage 28 + DES
// CRYPT, or the key service returns it as RESULT1; a mismatch is
// [ErrNotGenuine] / [ErrKeyServiceMismatch]), authorises reading on
// third-generation cards with EXTERNAL AUTHENTICATE RKSSSE (usage 27, or
// RESULT2, over the card's 16-byte challenge) and reads the card number and
// EF06 (the name is tags 09 + 4E). [ModeAuto] falls back from the PSAM to
// the key service to the public fields, stating the reason
// ([Identity.Reason]). [Identity] masks personal fields in String, Format
// and LogValue. The national interface's strings and return codes are in
// terminal/national.
//
// # Money
//
// [Session.Pay] (PBOC purchase with the PSAM's MAC1/MAC2) and
// [Session.Load] (MAC1 to the Authoriser, its MAC2 to CREDIT FOR LOAD)
// follow one rule: the journal record is Prepared (fsync) with everything
// the TAC and GET TRANSACTION PROOF need — card counter, random, PSAM
// sequence, date and time — before the first APDU that can move money, and
// moved to CardDone with the TAC (fsync) after it. A card that refuses
// (a status word) fails the record: nothing moved. A card that leaves, or
// a link that breaks, during the money APDU makes the record Uncertain and
// the operation returns an [*UnsettledError] wrapping [ErrOutcomeUnknown].
// Lost cards ([ErrLostCard]) are refused after the card ID is read and
// before any money APDU.
//
// # Settlement
//
// Every operation on a card first settles that card's uncertain records
// (journal.PendingForCard, plus records this process could not move):
// the card's transaction log (SFI 18) and GET TRANSACTION PROOF at the
// record's counter say whether the transaction happened — CardDone with
// the card's TAC — or not — Failed; a card that cannot tell leaves the
// record uncertain for the hub and blocks new money operations on that
// card ([ErrUnsettled]), because a new transaction of the same type would
// overwrite the proof. [Session.Recover] is the start-up step
// (journal.Recover: interrupted Prepared records become Uncertain).
//
// # Records
//
// Pay, Load and Certify return a [Receipt]: the journal's record sealed
// with the terminal's SM2 key (record.Seal). Certification on
// third-generation cards includes the card's SM2 signature over a fresh
// 32-byte terminal challenge, verified with [CardVerifier]
// (hub/proof.Verifier) before it is journaled.
//
// # Secrets
//
// PINs are [PIN] values: redacted in every format and log, sent only as
// the card's BCD PIN block, zeroed after use. No APDU, key or unmasked
// personal field is logged.
package terminal
