package kioskapi

import (
	"fmt"
	"log/slog"
)

// Secret is a PIN in request parameters: a JSON string of 4 to 12 ASCII
// digits, copied into a byte slice (never a Go string, which could not be
// wiped). It prints as "[REDACTED]"; call Zero when done. A value that is
// not such a string fails decoding with CodePINFormat, without echoing it.
type Secret []byte

// secretError is a Secret decoding failure (no value inside).
type secretError struct{ msg string }

func (e *secretError) Error() string { return e.msg }

// UnmarshalJSON copies the digits of a JSON string.
func (s *Secret) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*s = nil
		return nil
	}
	if len(b) < 2 || b[0] != '"' || b[len(b)-1] != '"' {
		return &secretError{"PIN must be a string of 4 to 12 digits"}
	}
	in := b[1 : len(b)-1]
	if len(in) < 4 || len(in) > 12 {
		return &secretError{"PIN must be 4 to 12 digits"}
	}
	for _, c := range in {
		if c < '0' || c > '9' {
			return &secretError{"PIN must be 4 to 12 digits"}
		}
	}
	*s = append(Secret(nil), in...)
	return nil
}

// Zero overwrites the digits.
func (s Secret) Zero() { clear(s) }

// String returns "[REDACTED]".
func (s Secret) String() string { return "[REDACTED]" }

// Format prints "[REDACTED]" for every verb.
func (s Secret) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte("[REDACTED]")) }

// LogValue keeps the digits out of slog.
func (s Secret) LogValue() slog.Value { return slog.StringValue("[REDACTED]") }

// MarshalJSON writes "[REDACTED]" (a Secret is never sent back).
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(`"[REDACTED]"`), nil }
