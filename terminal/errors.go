package terminal

import (
	"errors"
	"fmt"

	"github.com/onecard-hub/onecard/apdu"
	"github.com/onecard-hub/onecard/terminal/record"
)

// Sentinel errors of card operations, for errors.Is. Card status words
// stay visible through the wrapping (errors.Is(err,
// apdu.ErrInsufficientBalance), errors.As(err, *apdu.StatusError)), and so
// do the reader's (reader.ErrCardRemoved, reader.ErrNoCard, ...).
var (
	// ErrNotGenuine: the card's INTERNAL AUTHENTICATE answer differs from
	// the one the PSAM or key service computed with the issuer's IRK. The
	// card is rejected (national code -21).
	ErrNotGenuine = errors.New("card failed internal authentication (not genuine)")
	// ErrKeyServiceMismatch: in the two-step (HSM) read, the card's
	// internal-authentication answer differs from the key service's
	// RESULT1 (national code -25).
	ErrKeyServiceMismatch = errors.New("internal authentication differs from the key service result")
	// ErrNoPSAM: the operation needs a PSAM and the session has none, or
	// its slot is empty (national code -2201).
	ErrNoPSAM = errors.New("no PSAM")
	// ErrPSAMNoAlgorithm: the PSAM has no keys for the card's algorithm
	// (SM4 or 3DES) (national code -2202).
	ErrPSAMNoAlgorithm = errors.New("PSAM lacks the card's algorithm")
	// ErrPSAMNoRKSSSE: the PSAM cannot make the RKSSSE external
	// authentication a third-generation card needs before its holder data
	// can be read (national code -2203).
	ErrPSAMNoRKSSSE = errors.New("PSAM lacks the RKSSSE key")
	// ErrNoKeys: neither a PSAM nor a key service is available to
	// authenticate the card.
	ErrNoKeys = errors.New("no PSAM and no key service")
	// ErrKeyService: the key service failed or refused (network, hub).
	ErrKeyService = errors.New("key service failed")
	// ErrLostCard: the card is on the lost-card list; it was refused before
	// any money command reached it.
	ErrLostCard = errors.New("card reported lost")
	// ErrWrongCard: the card in the slot is not the card the operation
	// started with (two-step read, settlement), or a step's input does not
	// match the card (national code -22).
	ErrWrongCard = errors.New("card differs from the expected card")
	// ErrBadRequest: an argument is invalid (amount 0, overlong merchant,
	// malformed key-service answer, ...) (national code -14).
	ErrBadRequest = errors.New("invalid request")
	// ErrNoStep1: Step2 without a preceding Step1 on this session.
	ErrNoStep1 = errors.New("two-step read: Step2 without Step1")
	// ErrNotAuthorised: the authoriser refused a load (no entitlement,
	// wrong amount, card's MAC1 invalid).
	ErrNotAuthorised = errors.New("load not authorised")
	// ErrMAC2Invalid: the PSAM rejected the card's purchase MAC2. The card
	// reported the debit (its TAC is journalled); the hub's TAC check
	// decides. Treat the card as suspect.
	ErrMAC2Invalid = errors.New("PSAM rejected the card's MAC2")
	// ErrOutcomeUnknown: the card left (or the link failed) after a money
	// command was sent and before its answer arrived. The journal holds
	// the record as uncertain; it is settled with GET TRANSACTION PROOF
	// when the card is inserted again. See *UnsettledError.
	ErrOutcomeUnknown = errors.New("transaction outcome unknown until the card is re-inserted")
	// ErrUnsettled: the card has a pending or uncertain transaction from an
	// earlier operation that could not be settled now; no new operation is
	// started on it. See *UnsettledError.
	ErrUnsettled = errors.New("card has an unsettled transaction")
	// ErrJournal: the journal could not store a record.
	ErrJournal = errors.New("journal failure")
	// ErrNoSignature: certification needs the card's SM2 signature and the
	// card (generation 2) cannot sign.
	ErrNoSignature = errors.New("card cannot sign")
	// ErrBadCardData: the card returned data that does not parse (wrong
	// record tag, short response, bad BCD).
	ErrBadCardData = errors.New("malformed card data")
)

// PINError is a failed PIN verification or change: the card's 63Cx (wrong
// PIN, TriesLeft > 0) or 6983 / 63C0 (blocked). It wraps the card's
// *apdu.StatusError, so errors.As(err, *apdu.VerifyError) gives the tries
// left too. National codes: -51 (wrong) and -52 (blocked).
type PINError struct {
	TriesLeft int
	Blocked   bool
	Err       error // the card's status error
}

func (e *PINError) Error() string {
	if e.Blocked {
		return "PIN blocked (密码已锁定)"
	}
	return fmt.Sprintf("wrong PIN, %d tries left (密码错误，还可尝试%d次)", e.TriesLeft, e.TriesLeft)
}

func (e *PINError) Unwrap() error { return e.Err }

// pinError turns a VERIFY / CHANGE PIN status error into a *PINError, or
// returns err unchanged when it is not about the PIN.
func pinError(err error) error {
	var v apdu.VerifyError
	switch {
	case errors.Is(err, apdu.ErrAuthBlocked):
		return &PINError{Blocked: true, Err: err}
	case errors.As(err, &v):
		return &PINError{TriesLeft: v.TriesLeft, Err: err}
	}
	return err
}

// UnsettledError names the journal record whose outcome is not settled:
// returned (wrapping ErrOutcomeUnknown) when a card left during a money
// command, and (wrapping ErrUnsettled) when a card's earlier transaction
// could not be settled before a new operation.
type UnsettledError struct {
	TerminalSeq uint64
	Kind        record.Kind
	Err         error // ErrOutcomeUnknown or ErrUnsettled, plus the cause
}

func (e *UnsettledError) Error() string {
	return fmt.Sprintf("%s record %d: %v", e.Kind, e.TerminalSeq, e.Err)
}

func (e *UnsettledError) Unwrap() error { return e.Err }
