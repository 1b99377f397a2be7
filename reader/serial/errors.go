package serial

import (
	"errors"
	"fmt"

	"github.com/onecard-hub/onecard/reader"
	"github.com/onecard-hub/onecard/reader/serial/profile"
)

// Sentinel errors for device conditions package reader has no error for.
// They are reached through [*DeviceError] with errors.Is.
var (
	ErrCardMispositioned = errors.New("card not at an operable position")
	// ErrCardMute is reader.ErrCardMute: the card does not answer, the
	// same condition as on every other backend.
	ErrCardMute         = reader.ErrCardMute
	ErrProtocolMismatch = errors.New("card protocol mismatch")
	ErrNotInitialised   = errors.New("reader not initialised")
	ErrBadCommand       = errors.New("reader rejected the command")
	ErrBadParameter     = errors.New("reader rejected a command parameter")
	ErrBadData          = errors.New("reader rejected the command data")
	ErrNotSupported     = errors.New("not supported by the reader or card")
	ErrJam              = errors.New("card jam or mechanical fault")
	ErrPowerFault       = errors.New("reader power fault")
	// ErrChecksum: frames kept failing their checksum (or arriving cut
	// short) after the profile's retries.
	ErrChecksum = errors.New("frame checksum errors persist")
	// ErrProtocol: the reader sent something the profile does not allow
	// (a malformed reply, no frame within the garbage bound).
	ErrProtocol = errors.New("reader protocol violation")
	// ErrNotConnected: Transmit or WarmReset on a slot that is not
	// connected.
	ErrNotConnected = errors.New("slot not connected")
)

// ConditionError returns the error a canonical condition maps to, or nil
// for an unknown one.
func ConditionError(c profile.Condition) error {
	switch c {
	case profile.CardAbsent:
		return reader.ErrNoCard
	case profile.CardRemoved:
		return reader.ErrCardRemoved
	case profile.Timeout:
		return reader.ErrTimeout
	case profile.LinkLost:
		return reader.ErrReaderGone
	case profile.Busy:
		return reader.ErrReaderBusy
	case profile.CardMispositioned:
		return ErrCardMispositioned
	case profile.CardMute:
		return ErrCardMute
	case profile.ProtocolMismatch:
		return ErrProtocolMismatch
	case profile.NotInitialised:
		return ErrNotInitialised
	case profile.BadCommand:
		return ErrBadCommand
	case profile.BadParameter:
		return ErrBadParameter
	case profile.BadData:
		return ErrBadData
	case profile.NotSupported:
		return ErrNotSupported
	case profile.Jam:
		return ErrJam
	case profile.PowerFault:
		return ErrPowerFault
	case profile.ChecksumError:
		return ErrChecksum
	}
	return nil
}

// DeviceError is a failure the reader reported: a negative response or a
// failing status letter. Unwrap gives the condition's sentinel (see
// [ConditionError]); a code missing from the profile's table unwraps to
// nothing.
type DeviceError struct {
	Op        profile.OpName
	Slot      string            // "" for reader-level operations
	Condition profile.Condition // "" when the code is not in the profile
	Code      string            // device error code of a negative reply
	Status    byte              // status letter, when Code is empty
	err       error
}

func (e *DeviceError) Error() string {
	where := string(e.Op)
	if e.Slot != "" {
		where += " " + e.Slot
	}
	what := string(e.Condition)
	if what == "" {
		what = "an unlisted error"
	}
	if e.Code != "" {
		return fmt.Sprintf("%s: reader reports %s (code %s)", where, what, e.Code)
	}
	return fmt.Sprintf("%s: reader reports %s (status 0x%02X)", where, what, e.Status)
}

// Unwrap returns the sentinel of the condition.
func (e *DeviceError) Unwrap() error { return e.err }

func deviceError(op profile.OpName, slot string, r profile.Result) *DeviceError {
	e := &DeviceError{Op: op, Slot: slot, Condition: r.Condition, Code: r.Code, Status: r.Status}
	e.err = ConditionError(r.Condition)
	return e
}
