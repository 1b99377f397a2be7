// Package logmask keeps personal data and secrets out of the agent's logs:
// a [slog.Handler] wrapper that rewrites every record before the wrapped
// handler sees it.
//
// Contract:
//
//   - Secret attributes — keys pin, new_pin, old_pin, pin_block, key,
//     secret, password, token, private_key and every key ending in "_pin",
//     "_key", "_token" or "_secret" (case-insensitive, '-' counts as '_')
//     — are replaced by "[REDACTED]", whatever their value.
//   - Personal attributes are masked as record.MaskTail does for screens:
//     name / holder / holder_name keep their first character; person_id /
//     ssn / id_number / aac002 their first 3 and last 2; card_number /
//     aaz500 their last 4; birth_date / birthplace nothing.
//   - In every other string — the message, string attributes, errors and
//     any other value formatted with %v — a token that looks like an
//     18-character citizen ID (17 digits and a digit or X, not part of a
//     longer run of letters or digits) keeps its first 3 and last 2
//     characters only.
//   - Groups are masked recursively, slog.LogValuer values are resolved
//     first (so terminal.Identity's own masking still applies), and
//     attributes given to WithAttrs are masked once when they are added.
//
// Numbers, booleans, times and durations pass unchanged.
package logmask

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/onecard-hub/onecard/terminal/record"
)

// Redacted replaces the value of a secret attribute.
const Redacted = "[REDACTED]"

// Handler masks records and passes them to the wrapped handler.
type Handler struct {
	next slog.Handler
}

// New wraps next. New(nil) panics: a nil handler is a programming error.
func New(next slog.Handler) *Handler {
	if next == nil {
		panic("logmask: nil handler")
	}
	return &Handler{next: next}
}

// Enabled reports whether the wrapped handler handles level.
func (h *Handler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.next.Enabled(ctx, level)
}

// Handle masks r's message and attributes and passes a copy on.
func (h *Handler) Handle(ctx context.Context, r slog.Record) error {
	out := slog.NewRecord(r.Time, r.Level, MaskString(r.Message), r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(maskAttr(a))
		return true
	})
	return h.next.Handle(ctx, out)
}

// WithAttrs masks attrs and returns a handler that adds them.
func (h *Handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	m := make([]slog.Attr, len(attrs))
	for i, a := range attrs {
		m[i] = maskAttr(a)
	}
	return &Handler{next: h.next.WithAttrs(m)}
}

// WithGroup returns a handler that puts later attributes in group name.
func (h *Handler) WithGroup(name string) slog.Handler {
	return &Handler{next: h.next.WithGroup(name)}
}

// class is how an attribute key is treated.
type class int

const (
	plain class = iota
	secret
	name
	personID
	cardNumber
	hidden
)

var keyClasses = map[string]class{
	"pin": secret, "pins": secret, "new_pin": secret, "old_pin": secret, "pin_block": secret,
	"key": secret, "keys": secret, "secret": secret, "password": secret, "token": secret,
	"private_key": secret,
	"name":        name, "holder": name, "holder_name": name, "aac003": name,
	"person_id": personID, "ssn": personID, "id_number": personID, "aac002": personID,
	"card_number": cardNumber, "aaz500": cardNumber,
	"birth_date": hidden, "birthplace": hidden,
}

// classOf classifies an attribute key.
func classOf(key string) class {
	k := strings.ToLower(strings.ReplaceAll(key, "-", "_"))
	if c, ok := keyClasses[k]; ok {
		return c
	}
	for _, suf := range []string{"_pin", "_key", "_token", "_secret"} {
		if strings.HasSuffix(k, suf) {
			return secret
		}
	}
	return plain
}

// maskAttr returns a masked copy of a.
func maskAttr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	c := classOf(a.Key)
	if c == secret {
		return slog.String(a.Key, Redacted)
	}
	if v.Kind() == slog.KindGroup {
		g := v.Group()
		m := make([]slog.Attr, len(g))
		for i, x := range g {
			m[i] = maskAttr(x)
		}
		return slog.Attr{Key: a.Key, Value: slog.GroupValue(m...)}
	}
	switch c {
	case name, personID, cardNumber, hidden:
		return slog.String(a.Key, maskPersonal(c, valueString(v)))
	}
	switch v.Kind() {
	case slog.KindString:
		return slog.String(a.Key, MaskString(v.String()))
	case slog.KindAny:
		return slog.String(a.Key, MaskString(valueString(v)))
	}
	return slog.Attr{Key: a.Key, Value: v}
}

// valueString formats v as a handler would.
func valueString(v slog.Value) string {
	if v.Kind() == slog.KindAny {
		if err, ok := v.Any().(error); ok {
			return err.Error()
		}
		return fmt.Sprintf("%+v", v.Any())
	}
	return v.String()
}

func maskPersonal(c class, s string) string {
	switch c {
	case name:
		return record.MaskTail(s, 1, 0)
	case personID:
		return record.MaskTail(s, 3, 2)
	case cardNumber:
		return record.MaskTail(s, 0, 4)
	}
	return record.MaskTail(s, 0, 0)
}

// MaskString masks every token of s that looks like an 18-character
// citizen ID (社会保障号码 / 公民身份号码): 17 ASCII digits then a digit, X or
// x, with no letter or digit immediately before or after. The token keeps
// its first 3 and last 2 characters. Other text is unchanged.
func MaskString(s string) string {
	var b []byte // nil until the first match
	n := len(s)
	for i := 0; i+18 <= n; i++ {
		if !isDigit(s[i]) || (i > 0 && isAlnum(s[i-1])) {
			continue
		}
		j := i
		for j < i+17 && isDigit(s[j]) {
			j++
		}
		if j < i+17 {
			i = j // no 17-digit run here; skip past it
			continue
		}
		last := s[i+17]
		if !isDigit(last) && last != 'X' && last != 'x' {
			continue
		}
		if i+18 < n && isAlnum(s[i+18]) {
			continue
		}
		if b == nil {
			b = []byte(s)
		}
		for k := i + 3; k < i+16; k++ {
			b[k] = '*'
		}
		i += 17
	}
	if b == nil {
		return s
	}
	return string(b)
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func isAlnum(c byte) bool {
	return isDigit(c) || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
}

var _ slog.Handler = (*Handler)(nil)
