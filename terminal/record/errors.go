package record

import (
	"errors"
	"fmt"
)

// Sentinel errors, for errors.Is. Decoding and validation failures about a
// single field come as a *FieldError wrapping one of them.
var (
	// ErrTruncated: the input ends inside a field.
	ErrTruncated = errors.New("record: truncated")
	// ErrTrailingData: bytes follow a complete record or envelope.
	ErrTrailingData = errors.New("record: trailing bytes")
	// ErrMagic: the input does not start with the record ("OCTR") or
	// envelope ("OCTE") magic.
	ErrMagic = errors.New("record: not a onecard record")
	// ErrVersion: an encoding version this package does not know.
	ErrVersion = errors.New("record: unsupported version")
	// ErrFieldTooLong: a field above its documented maximum.
	ErrFieldTooLong = errors.New("record: field too long")
	// ErrInvalid: a field value or enum the rules of Validate reject.
	ErrInvalid = errors.New("record: invalid field")
	// ErrSignature: a signature that does not verify, or is malformed.
	ErrSignature = errors.New("record: bad signature")
)

// FieldError reports which field failed and why. Detail never contains the
// field's value (records hold personal data).
type FieldError struct {
	Field  string // snake_case name as in docs/record-encoding.md
	Offset int    // byte offset of the field in the encoding; -1 if unknown
	Err    error  // ErrTruncated, ErrFieldTooLong, ErrInvalid, ...
	Detail string
}

func (e *FieldError) Error() string {
	s := "record field " + e.Field
	if e.Offset >= 0 {
		s += fmt.Sprintf(" (offset %d)", e.Offset)
	}
	s += ": " + e.Err.Error()
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	return s
}

func (e *FieldError) Unwrap() error { return e.Err }

func invalid(field, format string, a ...any) error {
	return &FieldError{Field: field, Offset: -1, Err: ErrInvalid, Detail: fmt.Sprintf(format, a...)}
}

func tooLong(field string, n, max int) error {
	return &FieldError{Field: field, Offset: -1, Err: ErrFieldTooLong, Detail: fmt.Sprintf("%d bytes > %d", n, max)}
}
