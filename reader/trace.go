package reader

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"
)

// TraceEvent is one slot operation seen by a trace hook (see Traced). Secret
// bytes are already blanked: a hook may log every field as it is.
type TraceEvent struct {
	// Slot is the slot's ID.
	Slot string
	// Op is "connect", "reset", "transmit", "disconnect", "begin" or "end".
	Op string
	// Command is the command APDU of a transmit, with secret data bytes
	// replaced by 00 (see RedactCommand); nil for other operations.
	Command []byte
	// Response is the response APDU of a transmit (secret data replaced by
	// 00), or the ATR of a connect or reset; nil on error.
	Response []byte
	// CommandRedacted and ResponseRedacted say that bytes were blanked;
	// String prints them as "**".
	CommandRedacted, ResponseRedacted bool
	// Err is the operation's error, if any.
	Err error
	// Start is when the operation began; Duration how long it took.
	Start    time.Time
	Duration time.Duration
}

// String formats the event on one line, e.g.
//
//	virtual:user transmit 00 20 00 00 03 ** ** ** -> 90 00 (1.2ms)
func (e TraceEvent) String() string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "%s %s", e.Slot, e.Op)
	if e.Command != nil {
		sb.WriteByte(' ')
		sb.WriteString(MaskedHex(e.Command, true, e.CommandRedacted))
	}
	if e.Response != nil {
		sb.WriteString(" -> ")
		sb.WriteString(MaskedHex(e.Response, false, e.Op == "transmit" && e.ResponseRedacted))
	}
	if e.Err != nil {
		fmt.Fprintf(&sb, " error: %v", e.Err)
	}
	fmt.Fprintf(&sb, " (%s)", e.Duration.Round(10*time.Microsecond))
	return sb.String()
}

// MaskedHex formats a command APDU (command set) or a response APDU as
// spaced hex. When redacted is set, the bytes RedactCommand or
// RedactResponse blank (the command's data field, the response's data)
// print as "**".
func MaskedHex(b []byte, command, redacted bool) string {
	from, to := 0, 0
	switch {
	case redacted && command:
		from, to = commandDataRange(b)
	case redacted:
		from, to = responseDataRange(b)
	}
	var sb strings.Builder
	for i, x := range b {
		if i > 0 {
			sb.WriteByte(' ')
		}
		if i >= from && i < to {
			sb.WriteString("**")
		} else {
			fmt.Fprintf(&sb, "%02X", x)
		}
	}
	return sb.String()
}

// secretINS lists the instructions whose command data is secret, with
// whether their response data is secret too. It goes by INS alone, for any
// class byte, so a proprietary variant of a PIN command is covered as well.
//
// Redacted on purpose: PIN blocks and everything a PIN or key could be
// recovered from. Not redacted: MACs, TACs, challenges and authentication
// cryptograms of INTERNAL AUTHENTICATE — they are one-way values computed
// over data that is logged anyway and are what a diagnosis needs.
var secretINS = map[byte]struct {
	resp bool
	why  string
}{
	0x20: {false, "VERIFY: PIN block"},
	0x24: {false, "CHANGE REFERENCE DATA / PIN UNBLOCK (84 24): PIN blocks"},
	0x2C: {false, "RESET RETRY COUNTER: PUK and new PIN"},
	0x5E: {false, "CHANGE/RELOAD PIN (80 5E): old and new PIN"},
	0x82: {false, "EXTERNAL AUTHENTICATE: key cryptogram"},
	0xD4: {false, "WRITE KEY: key material"},
	0xDE: {false, "PSAM KEY OPERATION: key material"},
	0xFA: {true, "DES CRYPT (PSAM): plaintext in, ciphertext or MAC out — may be a PIN block or key"},
}

// SecretCommand reports whether cmd's data field (or, for secretResponse,
// its response data) must not be logged, and why. cmd needs at least the
// 4-byte header; shorter input is not secret (there is no data to hide).
func SecretCommand(cmd []byte) (secretData, secretResponse bool, why string) {
	if len(cmd) < 4 {
		return false, false, ""
	}
	s, ok := secretINS[cmd[1]]
	if !ok {
		return false, false, ""
	}
	return true, s.resp, s.why
}

// commandDataRange returns the span of cmd's data field: [5, 5+Lc) for a
// short case 3/4 command, [7, 7+Lc) for an extended one. For bytes that are
// not a well-formed command it returns everything after the header, so a
// malformed secret command is hidden entirely.
func commandDataRange(cmd []byte) (from, to int) {
	n := len(cmd)
	switch {
	case n <= 5:
		// Case 1 or 2 short: no data.
		return n, n
	case cmd[4] != 0:
		lc := int(cmd[4])
		if n == 5+lc || n == 6+lc {
			return 5, 5 + lc
		}
	case n >= 7:
		lc := int(cmd[5])<<8 | int(cmd[6])
		if lc == 0 && n == 7 {
			return n, n // case 2 extended
		}
		if lc > 0 && (n == 7+lc || n == 9+lc) {
			return 7, 7 + lc
		}
	}
	return 4, n
}

// responseDataRange returns the span of a response's data (all but SW1 SW2).
func responseDataRange(resp []byte) (from, to int) {
	if len(resp) < 2 {
		return 0, len(resp)
	}
	return 0, len(resp) - 2
}

// RedactCommand returns a copy of cmd with the data field of a secret
// command (see SecretCommand) replaced by 00 bytes, keeping its length, and
// whether anything was blanked. Other commands are copied unchanged.
func RedactCommand(cmd []byte) (out []byte, redacted bool) {
	out = cloneBytes(cmd)
	secret, _, _ := SecretCommand(cmd)
	if !secret {
		return out, false
	}
	from, to := commandDataRange(out)
	clear(out[from:to])
	return out, to > from
}

// RedactResponse returns a copy of resp with its data (everything before
// SW1 SW2) replaced by 00 bytes when secret is set, and whether anything
// was blanked. A response shorter than 2 bytes is blanked entirely.
func RedactResponse(resp []byte, secret bool) (out []byte, redacted bool) {
	out = cloneBytes(resp)
	if !secret {
		return out, false
	}
	from, to := responseDataRange(out)
	clear(out[from:to])
	return out, to > from
}

// TracedSlot wraps a Slot and reports every operation to a hook, with PIN
// blocks and key material blanked (see SecretCommand). It works with every
// backend. It also implements Transactor: Begin uses the wrapped slot's
// transactions when it has them (see reader.Begin), and APDUs sent inside
// them are traced too.
//
// The hook runs synchronously after each operation, on the caller's
// goroutine: it must be quick and must not call back into the slot.
type TracedSlot struct {
	s    Slot
	hook func(TraceEvent)

	mu sync.Mutex
	// pending: the last response was 61xx to a command whose response data
	// is secret, so the GET RESPONSE data that follows is secret too.
	pending bool
}

// Traced returns s with operations reported to hook. A nil hook returns a
// wrapper that reports nothing.
func Traced(s Slot, hook func(TraceEvent)) *TracedSlot {
	if hook == nil {
		hook = func(TraceEvent) {}
	}
	return &TracedSlot{s: s, hook: hook}
}

// Unwrap returns the wrapped slot.
func (t *TracedSlot) Unwrap() Slot { return t.s }

// ID returns the wrapped slot's ID.
func (t *TracedSlot) ID() string { return t.s.ID() }

// Connect connects the wrapped slot and traces it (Response = ATR).
func (t *TracedSlot) Connect(ctx context.Context) ([]byte, error) {
	start := time.Now()
	atr, err := t.s.Connect(ctx)
	t.resetPending()
	t.emit(TraceEvent{Op: "connect", Response: cloneBytes(atr), Err: err, Start: start})
	return atr, err
}

// Reset resets the wrapped slot's card and traces it (Response = ATR).
func (t *TracedSlot) Reset(ctx context.Context) ([]byte, error) {
	start := time.Now()
	atr, err := t.s.Reset(ctx)
	t.resetPending()
	t.emit(TraceEvent{Op: "reset", Response: cloneBytes(atr), Err: err, Start: start})
	return atr, err
}

// Transmit sends cmd through the wrapped slot and traces it, redacted.
func (t *TracedSlot) Transmit(ctx context.Context, cmd []byte) ([]byte, error) {
	return t.transmit(ctx, cmd, t.s.Transmit)
}

func (t *TracedSlot) transmit(ctx context.Context, cmd []byte, send func(context.Context, []byte) ([]byte, error)) ([]byte, error) {
	start := time.Now()
	resp, err := send(ctx, cmd)
	ev := TraceEvent{Op: "transmit", Err: err, Start: start}
	ev.Command, ev.CommandRedacted = RedactCommand(cmd)
	_, secretResp, _ := SecretCommand(cmd)
	t.mu.Lock()
	if len(cmd) >= 2 && cmd[1] == 0xC0 { // GET RESPONSE continues a chain
		secretResp = secretResp || t.pending
	}
	t.pending = secretResp && err == nil && len(resp) >= 2 && resp[len(resp)-2] == 0x61
	t.mu.Unlock()
	if err == nil {
		ev.Response, ev.ResponseRedacted = RedactResponse(resp, secretResp)
	}
	t.emit(ev)
	return resp, err
}

// Disconnect disconnects the wrapped slot and traces it.
func (t *TracedSlot) Disconnect() error {
	start := time.Now()
	err := t.s.Disconnect()
	t.resetPending()
	t.emit(TraceEvent{Op: "disconnect", Err: err, Start: start})
	return err
}

// Begin starts a transaction on the wrapped slot (reader.Begin) and traces
// it; APDUs sent through the returned Tx are traced like Transmit.
func (t *TracedSlot) Begin(ctx context.Context) (Tx, error) {
	start := time.Now()
	tx, err := Begin(ctx, t.s)
	t.emit(TraceEvent{Op: "begin", Err: err, Start: start})
	if err != nil {
		return nil, err
	}
	return &tracedTx{t: t, tx: tx}, nil
}

func (t *TracedSlot) resetPending() {
	t.mu.Lock()
	t.pending = false
	t.mu.Unlock()
}

func (t *TracedSlot) emit(ev TraceEvent) {
	ev.Slot = t.s.ID()
	ev.Duration = time.Since(ev.Start)
	t.hook(ev)
}

type tracedTx struct {
	t  *TracedSlot
	tx Tx
}

func (x *tracedTx) Transmit(ctx context.Context, cmd []byte) ([]byte, error) {
	return x.t.transmit(ctx, cmd, x.tx.Transmit)
}

func (x *tracedTx) End() error {
	start := time.Now()
	err := x.tx.End()
	x.t.emit(TraceEvent{Op: "end", Err: err, Start: start})
	return err
}

var (
	_ Slot       = (*TracedSlot)(nil)
	_ Transactor = (*TracedSlot)(nil)
)
