package pcsc

import (
	"errors"
	"fmt"
	"runtime"

	"github.com/ebfe/scard"

	"github.com/onecard-hub/onecard/reader"
)

// Error is a PC/SC return code from pcsc-lite (or WinSCard). It unwraps to
// the reader sentinel that states its contract (see Sentinel) and to the
// scard.Error itself, so both errors.Is(err, reader.ErrCardRemoved) and
// errors.Is(err, scard.ErrRemovedCard) work, and errors.As(err, &pe) with
// pe *pcsc.Error gives the code.
type Error struct {
	// Op is the PC/SC call that failed, e.g. "SCardTransmit".
	Op string
	// Code is the PC/SC return code.
	Code scard.Error
}

// Error reads "<op>: <sentinel text>: <PC/SC text> (0x<code>)", e.g.
// "SCardConnect: reader busy: scard: Sharing violation. (0x8010000B)".
func (e *Error) Error() string {
	if s := Sentinel(e.Code); s != nil {
		return fmt.Sprintf("%s: %v: %s (0x%08X)", e.Op, s, e.Code.Error(), uint32(e.Code))
	}
	return fmt.Sprintf("%s: %s (0x%08X)", e.Op, e.Code.Error(), uint32(e.Code))
}

// Unwrap returns the reader sentinel for the code (when there is one) and
// the code.
func (e *Error) Unwrap() []error {
	if s := Sentinel(e.Code); s != nil {
		return []error{s, e.Code}
	}
	return []error{e.Code}
}

// sentinels maps PC/SC return codes to the reader package's contract.
// Codes not listed have no sentinel: they indicate a bug or an unusual
// reader and are reported as they are.
var sentinels = map[scard.Error]error{
	// The slot is empty.
	scard.ErrNoSmartcard: reader.ErrNoCard,
	// The card was pulled since the handle was opened.
	scard.ErrRemovedCard: reader.ErrCardRemoved,
	// Another program reset or powered down the card: reconnect, re-select.
	scard.ErrResetCard:     reader.ErrCardReset,
	scard.ErrUnpoweredCard: reader.ErrCardReset,
	// A card is there but does not answer the reset.
	scard.ErrUnresponsiveCard: reader.ErrCardMute,
	// Another program holds the card exclusively.
	scard.ErrSharingViolation: reader.ErrReaderBusy,
	// The reader left (or is not ready to be used).
	scard.ErrUnknownReader:      reader.ErrReaderGone,
	scard.ErrReaderUnavailable:  reader.ErrReaderGone,
	scard.ErrNoReadersAvailable: reader.ErrReaderGone,
	scard.ErrNotReady:           reader.ErrReaderGone,
	// A PC/SC call ran out of time.
	scard.ErrTimeout: reader.ErrTimeout,
	// pcscd is not running, was restarted (the context or handle died
	// with it) or is shutting down. pcsc-lite 1.9.9 answers a call in
	// progress when pcscd dies with SCARD_F_COMM_ERROR, and every later
	// call on that context with SCARD_E_NO_SERVICE, even after pcscd is
	// back: the context must be released and established again.
	scard.ErrNoService:       reader.ErrServiceDown,
	scard.ErrServiceStopped:  reader.ErrServiceDown,
	scard.ErrInvalidHandle:   reader.ErrServiceDown,
	scard.ErrCommError:       reader.ErrServiceDown,
	scard.ErrShutdown:        reader.ErrServiceDown,
	scard.ErrSystemCancelled: reader.ErrServiceDown,
}

// pcsc-lite (not Windows) also answers SCARD_W_SECURITY_VIOLATION when a
// call's handle belongs to a context its pcscd no longer knows: observed
// on calls in flight across a pcscd restart. On Windows the code is a
// genuine access denial and keeps no sentinel.
func init() {
	if runtime.GOOS != "windows" {
		sentinels[scard.ErrSecurityViolation] = reader.ErrServiceDown
	}
}

// Sentinel returns the reader sentinel error for a PC/SC return code, or
// nil when the code has none.
func Sentinel(code scard.Error) error { return sentinels[code] }

// wrap turns an error from ebfe/scard into an *Error for op; other errors
// are returned unchanged.
func wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	var code scard.Error
	if errors.As(err, &code) {
		return &Error{Op: op, Code: code}
	}
	return err
}

// contextLost reports whether err means the PC/SC context (and every
// handle on it) is dead, so it must be released and established again.
func contextLost(err error) bool {
	var code scard.Error
	if !errors.As(err, &code) {
		return false
	}
	return sentinels[code] == reader.ErrServiceDown
}
