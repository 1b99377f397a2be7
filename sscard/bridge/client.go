package bridge

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/gorilla/websocket"
)

// Defaults of Options.
const (
	DefaultAddr           = "127.0.0.1:17300"
	DefaultConnectTimeout = 2 * time.Second
	// DefaultCallTimeout bounds one call end to end. It outlasts the
	// agent's default card-operation bound (terminal.op_timeout, 30 s).
	DefaultCallTimeout = 40 * time.Second
)

// ErrAgent: the agent could not be reached, refused the connection or
// broke it off (CodeReaderConnect).
var ErrAgent = errors.New("onecard agent unreachable")

// DefaultTokenFile is where the agent with the packaged configuration
// writes its native-client token: /var/lib/onecard/native-token, or
// %ProgramData%\onecard\native-token on Windows.
func DefaultTokenFile() string {
	if runtime.GOOS == "windows" {
		pd := os.Getenv("ProgramData")
		if pd == "" {
			pd = `C:\ProgramData`
		}
		return filepath.Join(pd, "onecard", "native-token")
	}
	return "/var/lib/onecard/native-token"
}

// PINPurpose says which PIN a PINSource is asked for (the values of the
// C callback's iPurpose).
type PINPurpose int

// PIN purposes.
const (
	PINVerify  PINPurpose = 1 // the holder's PIN (iVerifyPIN, iDoDebit, iReadCard with iAuthType 1)
	PINCurrent PINPurpose = 2 // the current PIN for iChangePIN
	PINNew     PINPurpose = 3 // the new PIN for iChangePIN
)

// PINSource supplies a PIN: 4 to 12 ASCII digits and OK, or a national
// code (e.g. CodePINCancelled) that the function then returns; nil and
// OK leave the PIN to the agent's PIN pad. The library zeroes the digits
// after use.
type PINSource func(ctx context.Context, purpose PINPurpose) ([]byte, int)

// Options configures a Bridge. Zero values take the defaults.
type Options struct {
	// Addr is the agent's kiosk API address (default DefaultAddr).
	Addr string
	// TokenFile is the agent's native-client token, read at every call
	// (default DefaultTokenFile()). Missing or unreadable: the library
	// connects without a token (masked identities, and only when the
	// agent has kiosk.allow_no_origin).
	TokenFile string
	// Reader is the agent lane to use (its "reader" parameter); "" lets
	// the agent pick (the only lane, or the only one with a card).
	Reader string
	// ConnectTimeout bounds connecting to the agent (default
	// DefaultConnectTimeout); CallTimeout bounds a whole call (default
	// DefaultCallTimeout), not counting the time a PINSource takes.
	ConnectTimeout, CallTimeout time.Duration
	// PIN supplies PINs (nil: the agent's PIN pad, else CodeUnsupported).
	PIN PINSource
	// Logger receives a line for every failure to reach the agent and,
	// at debug level, every call (function, code, duration; never PINs or
	// personal data). Default: discard.
	Logger *slog.Logger
}

// Bridge forwards the national functions to the agent. Safe for
// concurrent use; calls are served one at a time, in arrival order.
type Bridge struct {
	opts Options
	log  *slog.Logger
	sem  chan struct{}
}

// New returns a Bridge; it connects only when called.
func New(opts Options) *Bridge {
	if opts.Addr == "" {
		opts.Addr = DefaultAddr
	}
	if opts.TokenFile == "" {
		opts.TokenFile = DefaultTokenFile()
	}
	if opts.ConnectTimeout <= 0 {
		opts.ConnectTimeout = DefaultConnectTimeout
	}
	if opts.CallTimeout <= 0 {
		opts.CallTimeout = DefaultCallTimeout
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Bridge{opts: opts, log: log, sem: make(chan struct{}, 1)}
}

// secret is a PIN in request parameters; Zero wipes it.
type secret []byte

// MarshalJSON writes the digits as a JSON string (they are digits only).
func (s secret) MarshalJSON() ([]byte, error) {
	b := make([]byte, 0, len(s)+2)
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"'), nil
}

func (s secret) zero() { clear(s) }

// token reads the native-client token ("" when there is none).
func (b *Bridge) token() string {
	raw, err := os.ReadFile(b.opts.TokenFile)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			b.log.Warn("sscard: cannot read the agent's token file; connecting without it", "file", b.opts.TokenFile, "err", err)
		}
		return ""
	}
	defer clear(raw)
	return strings.TrimSpace(string(raw))
}

// call sends one request to the agent and decodes its result into out.
// It returns an *apiError for an error answer, or an error wrapping
// ErrAgent when the agent was not reached or did not answer in time.
func (b *Bridge) call(ctx context.Context, method string, params map[string]any, out any) (*apiError, error) {
	select {
	case b.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: waiting for the previous call: %w", ErrAgent, ctx.Err())
	}
	defer func() { <-b.sem }()
	if b.opts.Reader != "" && method != "readers" && method != "status" { // card methods take a lane
		params["reader"] = b.opts.Reader
	}
	msg, err := json.Marshal(map[string]any{"id": 1, "method": method, "params": params})
	if err != nil {
		return nil, fmt.Errorf("encode %s request: %w", method, err)
	}
	defer clear(msg) // may hold a PIN
	h := http.Header{}
	if tok := b.token(); tok != "" {
		h.Set("Authorization", "Bearer "+tok)
	}
	d := websocket.Dialer{
		HandshakeTimeout: b.opts.ConnectTimeout,
		NetDialContext:   (&net.Dialer{Timeout: b.opts.ConnectTimeout}).DialContext,
	}
	cctx, cancel := context.WithTimeout(ctx, b.opts.ConnectTimeout)
	ws, resp, err := d.DialContext(cctx, "ws://"+b.opts.Addr+"/v1/ws", h)
	cancel()
	if err != nil {
		if resp != nil {
			err = fmt.Errorf("%w (HTTP %d)", err, resp.StatusCode)
		}
		return nil, fmt.Errorf("%w at %s: %w", ErrAgent, b.opts.Addr, err)
	}
	defer ws.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = ws.SetWriteDeadline(dl)
		_ = ws.SetReadDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = ws.SetReadDeadline(time.Now()) })
	defer stop()
	if err := ws.WriteMessage(websocket.TextMessage, msg); err != nil {
		return nil, fmt.Errorf("%w: send %s: %w", ErrAgent, method, err)
	}
	for {
		_, raw, err := ws.ReadMessage()
		if err != nil {
			return nil, fmt.Errorf("%w: %s: no answer: %w", ErrAgent, method, err)
		}
		var r struct {
			ID     json.RawMessage `json:"id"`
			Event  string          `json:"event"`
			Result json.RawMessage `json:"result"`
			Error  *apiError       `json:"error"`
		}
		if err := json.Unmarshal(raw, &r); err != nil {
			return nil, fmt.Errorf("%w: %s: undecodable answer: %w", ErrAgent, method, err)
		}
		if r.Event != "" || !bytes.Equal(r.ID, []byte("1")) {
			continue // progress and card events
		}
		if r.Error != nil {
			return r.Error, nil
		}
		if out != nil {
			if err := json.Unmarshal(r.Result, out); err != nil {
				return nil, fmt.Errorf("%w: %s: unexpected result: %w", ErrAgent, method, err)
			}
		}
		return nil, nil
	}
}

// do runs call and turns its failures into a Result (ok=false): an error
// answer by apiError.result, an unreachable agent as CodeReaderConnect
// with a log line.
func (b *Bridge) do(ctx context.Context, fn, method string, params map[string]any, out any) (Result, bool) {
	ae, err := b.call(ctx, method, params, out)
	switch {
	case err != nil:
		b.log.Error("sscard: "+fn+": cannot reach the onecard agent: is it running? (onecard agent)", "err", err)
		return failure(CodeReaderConnect), false
	case ae != nil:
		return ae.result(), false
	}
	return Result{}, true
}
