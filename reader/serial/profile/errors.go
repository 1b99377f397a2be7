package profile

import (
	"fmt"
	"strings"
)

// Error is one problem in a profile file, located by line and by key path.
// Its text reads "crt310.yaml:42: ops.apdu.user: unknown slot psam9".
type Error struct {
	File string
	Line int    // 1-based; 0 when the file could not be parsed that far
	Path string // dotted key path, e.g. "ops.apdu.user" or "tests[3].tx"
	Msg  string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	b.WriteString(": ")
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// ErrorList is every problem found in one file, in line order. It is
// returned as the error of [Parse], [LoadFile] and [Profile.Check]; use
// errors.As to get at the individual *Error values.
type ErrorList []*Error

func (l ErrorList) Error() string {
	s := make([]string, len(l))
	for i, e := range l {
		s[i] = e.Error()
	}
	return strings.Join(s, "\n")
}

// Unwrap exposes the individual errors to errors.Is/As.
func (l ErrorList) Unwrap() []error {
	out := make([]error, len(l))
	for i, e := range l {
		out[i] = e
	}
	return out
}
