package pcsc

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/ebfe/scard"

	"github.com/onecard-hub/onecard/reader"
)

func TestPCSCErrorMapping(t *testing.T) {
	all := []error{
		reader.ErrNoCard, reader.ErrCardRemoved, reader.ErrCardReset, reader.ErrCardMute,
		reader.ErrReaderGone, reader.ErrReaderBusy, reader.ErrTimeout, reader.ErrServiceDown,
	}
	for _, tc := range []struct {
		code scard.Error
		want error // nil: no sentinel
		lost bool  // the context must be re-established
	}{
		{scard.ErrNoSmartcard, reader.ErrNoCard, false},
		{scard.ErrRemovedCard, reader.ErrCardRemoved, false},
		{scard.ErrResetCard, reader.ErrCardReset, false},
		{scard.ErrUnpoweredCard, reader.ErrCardReset, false},
		{scard.ErrUnresponsiveCard, reader.ErrCardMute, false},
		{scard.ErrSharingViolation, reader.ErrReaderBusy, false},
		{scard.ErrUnknownReader, reader.ErrReaderGone, false},
		{scard.ErrReaderUnavailable, reader.ErrReaderGone, false},
		{scard.ErrNoReadersAvailable, reader.ErrReaderGone, false},
		{scard.ErrNotReady, reader.ErrReaderGone, false},
		{scard.ErrTimeout, reader.ErrTimeout, false},
		{scard.ErrNoService, reader.ErrServiceDown, true},
		{scard.ErrServiceStopped, reader.ErrServiceDown, true},
		{scard.ErrInvalidHandle, reader.ErrServiceDown, true},
		{scard.ErrCommError, reader.ErrServiceDown, true},
		{scard.ErrShutdown, reader.ErrServiceDown, true},
		{scard.ErrSystemCancelled, reader.ErrServiceDown, true},
		{scard.ErrSecurityViolation, securityViolation(), securityViolation() != nil},
		{scard.ErrCancelled, nil, false},
		{scard.ErrProtoMismatch, nil, false},
		{scard.ErrInvalidParameter, nil, false},
		{scard.ErrInsufficientBuffer, nil, false},
		{scard.ErrUnsupportedCard, nil, false},
		{scard.ErrNotTransacted, nil, false},
		{scard.Error(0x80100099), nil, false}, // unknown code
	} {
		t.Run(fmt.Sprintf("%08X", uint32(tc.code)), func(t *testing.T) {
			err := fmt.Errorf("transmit pcsc:X: %w", wrap("SCardTransmit", tc.code))
			if got := Sentinel(tc.code); got != tc.want {
				t.Errorf("Sentinel = %v, want %v", got, tc.want)
			}
			for _, s := range all {
				if got := errors.Is(err, s); got != (s == tc.want) {
					t.Errorf("errors.Is(err, %v) = %v", s, got)
				}
			}
			if !errors.Is(err, tc.code) {
				t.Errorf("errors.Is(err, scard code) = false")
			}
			var pe *Error
			if !errors.As(err, &pe) || pe.Code != tc.code || pe.Op != "SCardTransmit" {
				t.Errorf("errors.As *Error: %+v", pe)
			}
			if want := fmt.Sprintf("(0x%08X)", uint32(tc.code)); !strings.Contains(err.Error(), want) {
				t.Errorf("message %q lacks %s", err, want)
			}
			if got := contextLost(err); got != tc.lost {
				t.Errorf("contextLost = %v, want %v", got, tc.lost)
			}
		})
	}
	if wrap("x", nil) != nil {
		t.Error("wrap(nil) != nil")
	}
	other := errors.New("not a PC/SC error")
	if got := wrap("x", other); got != other {
		t.Errorf("wrap of a non-PC/SC error = %v", got)
	}
}

// securityViolation is what SCARD_W_SECURITY_VIOLATION maps to: pcsc-lite
// answers it for a handle of a context a restarted pcscd no longer knows.
func securityViolation() error {
	if runtime.GOOS == "windows" {
		return nil
	}
	return reader.ErrServiceDown
}
