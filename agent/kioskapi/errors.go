package kioskapi

import (
	"context"
	"errors"
	"fmt"

	"github.com/onecard-hub/onecard/agent/logmask"
	"github.com/onecard-hub/onecard/apdu"
	"github.com/onecard-hub/onecard/reader"
	"github.com/onecard-hub/onecard/terminal"
	"github.com/onecard-hub/onecard/terminal/journal"
	"github.com/onecard-hub/onecard/terminal/national"
)

// Error codes on the wire (Error.Code). docs/kiosk-api.md lists them with
// what a page should do.
const (
	// Protocol and access.
	CodeMalformed       = "malformed"         // not a JSON request object
	CodeUnknownMethod   = "unknown_method"    // no such method
	CodeBadRequest      = "bad_request"       // bad parameters
	CodeUnauthorised    = "unauthorised"      // page not paired / token missing
	CodePairingFailed   = "pairing_failed"    // wrong or expired pairing code
	CodePairingDisabled = "pairing_disabled"  // the agent does not pair pages
	CodeRateLimited     = "rate_limited"      // too many requests per second
	CodeTooMany         = "too_many_requests" // too many requests in flight on this connection
	CodeShuttingDown    = "shutting_down"     // the agent is stopping
	CodeInternal        = "internal"          // a bug or an unexpected failure
	CodeUnavailable     = "unavailable"       // the agent lacks what the operation needs (key, journal, PSAM config)

	// Readers and cards.
	CodeBusy            = "busy"             // another request is using this card
	CodeReaderBusy      = "reader_busy"      // another program holds the reader
	CodeNoCard          = "no_card"          // insert a card
	CodeCardRemoved     = "card_removed"     // the card left during the operation
	CodeCardMute        = "card_mute"        // card in the wrong way round / broken
	CodeReaderGone      = "reader_gone"      // reader unplugged
	CodeUnknownReader   = "unknown_reader"   // no reader matches the request
	CodeAmbiguousReader = "ambiguous_reader" // several readers could be meant: give "reader"
	CodeServiceDown     = "service_down"     // pcscd / SCardSvr not running
	CodeTimeout         = "timeout"          // the card or reader did not answer in time

	// PIN.
	CodePINRequired  = "pin_required" // no PIN in the request and no PIN pad
	CodePINFormat    = "pin_format"   // not 4..12 digits
	CodePINWrong     = "pin_wrong"    // triesLeft says how many remain
	CodePINBlocked   = "pin_blocked"
	CodePINCancelled = "pin_cancelled"
	CodePINTimeout   = "pin_timeout"
	CodePINMismatch  = "pin_mismatch"

	// Card and transaction outcomes.
	CodeInsufficient   = "insufficient_balance"
	CodeLostCard       = "lost_card"
	CodeNotGenuine     = "not_genuine"
	CodeWrongCard      = "wrong_card"
	CodeOutcomeUnknown = "outcome_unknown" // re-insert the same card to settle
	CodeUnsettled      = "unsettled"       // an earlier transaction of this card awaits settlement
	CodeNotAuthorised  = "not_authorised"  // load refused by the hub
	CodeNoPSAM         = "no_psam"
	CodeNoKeys         = "no_keys"
	CodeKeyService     = "key_service"
	CodeJournal        = "journal"
	CodeJournalFull    = "journal_full"
	CodeCardError      = "card_error" // another card status word (see national)
)

// retriable lists the codes a page may retry after the user acts (insert,
// re-insert, wait, re-enter the PIN).
var retriable = map[string]bool{
	CodeRateLimited: true, CodeTooMany: true, CodeShuttingDown: true, CodeBusy: true,
	CodeReaderBusy: true, CodeNoCard: true, CodeCardRemoved: true, CodeCardMute: true,
	CodeReaderGone: true, CodeServiceDown: true, CodeTimeout: true, CodePINRequired: true,
	CodePINFormat: true, CodePINWrong: true, CodePINCancelled: true, CodePINTimeout: true,
	CodePINMismatch: true, CodeOutcomeUnknown: true, CodeKeyService: true, CodeAmbiguousReader: true,
}

// Error is a failed request as the page sees it: a stable code, whether
// retrying can help, the PIN tries left, whether the card left, and the
// national interface's return code and text for card operations.
type Error struct {
	Code            string `json:"code"`
	Message         string `json:"message"`
	Retriable       bool   `json:"retriable"`
	TriesLeft       *int   `json:"triesLeft,omitempty"`
	CardRemoved     bool   `json:"cardRemoved,omitempty"`
	National        int    `json:"national,omitempty"`
	NationalMessage string `json:"nationalMessage,omitempty"`

	err error
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Unwrap returns the error the Error classifies (nil for protocol errors).
func (e *Error) Unwrap() error { return e.err }

// Errorf returns an *Error with code and a formatted message. Methods
// return it for conditions they detect themselves (bad parameters, busy).
func Errorf(code, format string, a ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, a...), Retriable: retriable[code]}
}

// Wrap returns an *Error with code for err, keeping err for errors.Is.
func Wrap(code string, err error) *Error {
	return &Error{Code: code, Message: logmask.MaskString(err.Error()), Retriable: retriable[code], err: err}
}

// classes maps sentinels to codes, most specific first.
var classes = []struct {
	err  error
	code string
}{
	{terminal.ErrOutcomeUnknown, CodeOutcomeUnknown},
	{terminal.ErrUnsettled, CodeUnsettled},
	{terminal.ErrPINCancelled, CodePINCancelled},
	{terminal.ErrPINTimeout, CodePINTimeout},
	{terminal.ErrPINFormat, CodePINFormat},
	{terminal.ErrPINMismatch, CodePINMismatch},
	{terminal.ErrNoPINPad, CodePINRequired},
	{terminal.ErrLostCard, CodeLostCard},
	{terminal.ErrNotGenuine, CodeNotGenuine},
	{terminal.ErrKeyServiceMismatch, CodeNotGenuine},
	{terminal.ErrWrongCard, CodeWrongCard},
	{terminal.ErrNotAuthorised, CodeNotAuthorised},
	{terminal.ErrMAC2Invalid, CodeCardError},
	{journal.ErrFull, CodeJournalFull},
	{terminal.ErrJournal, CodeJournal},
	{terminal.ErrNoPSAM, CodeNoPSAM},
	{terminal.ErrPSAMNoAlgorithm, CodeNoPSAM},
	{terminal.ErrPSAMNoRKSSSE, CodeNoPSAM},
	{terminal.ErrNoKeys, CodeNoKeys},
	{terminal.ErrKeyService, CodeKeyService},
	{apdu.ErrInsufficientBalance, CodeInsufficient},
	{reader.ErrCardRemoved, CodeCardRemoved},
	{reader.ErrCardReset, CodeCardRemoved},
	{reader.ErrNoCard, CodeNoCard},
	{reader.ErrCardMute, CodeCardMute},
	{reader.ErrReaderBusy, CodeReaderBusy},
	{reader.ErrReaderGone, CodeReaderGone},
	{reader.ErrUnknownSlot, CodeReaderGone},
	{reader.ErrServiceDown, CodeServiceDown},
	{reader.ErrTimeout, CodeTimeout},
	{context.DeadlineExceeded, CodeTimeout},
	{terminal.ErrNoSignature, CodeCardError},
	{terminal.ErrBadCardData, CodeCardError},
	{terminal.ErrBadRequest, CodeBadRequest},
}

// Classify turns an operation's error into the wire form. An *Error in
// err's chain is returned as it is; PIN errors carry TriesLeft; card
// operations get the national interface's return code (national.Code).
// Messages are passed through logmask.MaskString.
func Classify(err error) *Error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	out := &Error{Code: CodeInternal, Message: logmask.MaskString(err.Error()), err: err}
	var pe *terminal.PINError
	var se *apdu.StatusError
	switch {
	case errors.As(err, &pe) && pe.Blocked:
		out.Code = CodePINBlocked
	case errors.As(err, &pe):
		out.Code = CodePINWrong
		n := pe.TriesLeft
		out.TriesLeft = &n
	default:
		for _, c := range classes {
			if errors.Is(err, c.err) {
				out.Code = c.code
				break
			}
		}
		if out.Code == CodeInternal && errors.As(err, &se) {
			out.Code = CodeCardError
		}
	}
	out.Retriable = retriable[out.Code]
	out.CardRemoved = errors.Is(err, reader.ErrCardRemoved) || out.Code == CodeOutcomeUnknown
	if out.Code != CodeInternal && out.Code != CodeBadRequest {
		r := national.ResultOf(err)
		out.National, out.NationalMessage = r.Code, r.Message
	}
	return out
}
