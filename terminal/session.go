package terminal

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/onecard-hub/onecard/reader"
	"github.com/onecard-hub/onecard/sm"
	"github.com/onecard-hub/onecard/terminal/journal"
)

// Defaults of Options.
const (
	DefaultTimeout = 30 * time.Second
)

// Options configures a Session. Card is required; everything else has a
// safe default (absent = the operations that need it fail with a clear
// error, never silently succeed).
type Options struct {
	// Card is the user-card slot.
	Card reader.Slot
	// PSAM is the PSAM slot. Nil: no PSAM (identity reads use the key
	// service or degrade; Pay fails with ErrNoPSAM).
	PSAM reader.Slot
	// KeyService authenticates cards when there is no capable PSAM
	// (two-step read). Nil: none.
	KeyService KeyService
	// Authoriser authorises loads (the hub). Nil: Load fails with
	// ErrNotAuthorised.
	Authoriser Authoriser
	// LostCards is the lost-card list. Nil: no card is refused.
	LostCards LostCards
	// CardVerifier checks card SM2 signatures in Certify
	// (hub/proof.Verifier satisfies it). Nil: Certify checks the signature
	// against the public key the card reports only.
	CardVerifier CardVerifier
	// Journal stores every record (Pay, Load, Certify need it).
	Journal *journal.Journal
	// TerminalKey signs records (Pay, Load, Certify need it).
	TerminalKey *sm.PrivateKey
	// TerminalID is the 12-digit terminal number. "": read from the PSAM
	// (EF16). When both are set they must agree.
	TerminalID string
	// DeviceID is the national interface's 终端设备号 (free text).
	DeviceID string
	// PINPad collects PINs (VerifyPIN, ChangePIN, Pay, Certify).
	PINPad PINPad
	// SuiteSM4 and Suite3DES are the regional crypto suites of third- and
	// second-generation cards. Zero: sm.SuiteSM4 and sm.Suite3DES.
	SuiteSM4, Suite3DES sm.Suite
	// Timeout bounds one operation when ctx has no earlier deadline.
	// Default DefaultTimeout.
	Timeout time.Duration
	// Now is the clock (default time.Now); the card's date and time are
	// taken from it in the local time zone.
	Now func() time.Time
	// Rand supplies terminal randoms and challenges (default crypto/rand).
	Rand io.Reader
	// Logger receives operation events: no PINs, keys or unmasked
	// personal data. Default: discard.
	Logger *slog.Logger
}

// Session is a terminal: a user-card slot with its PSAM or key service,
// the terminal's key and number, and the journal. Its operations run one
// at a time; each is one reader transaction on the card (two for the
// two-step read, whose key-service round trip must not hold the card).
// A Session is safe for concurrent use; concurrent operations wait.
//
// Call Recover once at start-up, before the first operation of the
// process (and only once per journal, even when several sessions share
// it): it turns records a crash left Prepared into Uncertain ones, which
// the operations then settle card by card. Records that a failed journal
// write left Prepared while the process runs are remembered by the
// Session and settled the same way.
type Session struct {
	opts Options
	sem  chan struct{}

	// Guarded by sem.
	termID        string
	psamTermID    string // terminal number read from the connected PSAM
	psamConnected bool
	pending       *pendingStep1
	stats         Stats
	// orphans are records this process left Prepared because a journal
	// write after the card's answer failed; settle moves them on.
	orphans []uint64
}

// Stats counts what a session did (for benchmarks and diagnostics).
type Stats struct {
	Operations int // operations started
	CardAPDUs  int // APDUs sent to user cards (GET RESPONSE included)
	PSAMAPDUs  int // APDUs sent to the PSAM
}

// New validates opts and returns a Session. Errors wrap ErrBadRequest.
func New(opts Options) (*Session, error) {
	if opts.Card == nil {
		return nil, fmt.Errorf("new session: %w: no card slot", ErrBadRequest)
	}
	if opts.TerminalID != "" && !isDigits(opts.TerminalID, 12) {
		return nil, fmt.Errorf("new session: %w: terminal ID must be 12 digits", ErrBadRequest)
	}
	for _, su := range []struct {
		s   sm.Suite
		alg sm.Alg
	}{{opts.SuiteSM4, sm.AlgSM4}, {opts.Suite3DES, sm.Alg3DES}} {
		if su.s != (sm.Suite{}) && su.s.Alg != su.alg {
			return nil, fmt.Errorf("new session: %w: suite %s has the wrong algorithm", ErrBadRequest, su.s)
		}
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Rand == nil {
		opts.Rand = rand.Reader
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Session{opts: opts, sem: make(chan struct{}, 1), termID: opts.TerminalID}, nil
}

// Stats returns the session's counters.
func (s *Session) Stats() Stats {
	s.sem <- struct{}{}
	defer func() { <-s.sem }()
	return s.stats
}

func (s *Session) lock(ctx context.Context) error {
	select {
	case s.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("wait for the terminal: %w", ctx.Err())
	}
}

func (s *Session) unlock() { <-s.sem }

func (s *Session) opCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.opts.Timeout)
}

func (s *Session) random(n int) ([]byte, error) {
	b := make([]byte, n)
	if _, err := io.ReadFull(s.opts.Rand, b); err != nil {
		return nil, fmt.Errorf("draw terminal random: %w", err)
	}
	return b, nil
}

func (s *Session) terminalIDCached() string { return s.termID }

// op is one operation: the user card (and the PSAM) inside reader
// transactions.
type op struct {
	s      *Session
	atr    []byte
	card   *link
	psam   *psamOps
	cardTx reader.Tx
	psamTx reader.Tx
}

// begin connects the card, starts its transaction and, with needPSAM, the
// PSAM's (selecting its application and learning the terminal number).
func (s *Session) begin(ctx context.Context, needPSAM bool) (*op, error) {
	s.stats.Operations++
	s.pending = nil
	atr, err := s.opts.Card.Connect(ctx)
	if err != nil {
		return nil, fmt.Errorf("connect card: %w", err)
	}
	return s.start(ctx, atr, needPSAM)
}

// resume starts a transaction on the card connected by an earlier
// operation (Step2) without resetting it.
func (s *Session) resume(ctx context.Context) (*op, error) {
	s.stats.Operations++
	return s.start(ctx, nil, false)
}

func (s *Session) start(ctx context.Context, atr []byte, needPSAM bool) (*op, error) {
	tx, err := reader.Begin(ctx, s.opts.Card)
	if err != nil {
		return nil, fmt.Errorf("begin card transaction: %w", err)
	}
	o := &op{s: s, atr: atr, cardTx: tx, card: &link{tx: tx, name: "card", count: &s.stats.CardAPDUs}}
	if needPSAM {
		if err := o.startPSAM(ctx); err != nil {
			o.end()
			return nil, err
		}
	}
	return o, nil
}

// startPSAM connects the PSAM (once per session, again after a failure),
// starts its transaction, selects DF01 and reads the terminal number.
func (o *op) startPSAM(ctx context.Context) error {
	s := o.s
	if s.opts.PSAM == nil {
		return fmt.Errorf("start PSAM: %w", ErrNoPSAM)
	}
	fresh := !s.psamConnected
	if fresh {
		if _, err := s.opts.PSAM.Connect(ctx); err != nil {
			if errors.Is(err, reader.ErrNoCard) {
				return fmt.Errorf("start PSAM: %w: %w", ErrNoPSAM, err)
			}
			return fmt.Errorf("start PSAM: %w", err)
		}
		s.psamConnected = true
	}
	tx, err := reader.Begin(ctx, s.opts.PSAM)
	if err != nil {
		s.psamConnected = false
		return fmt.Errorf("begin PSAM transaction: %w", err)
	}
	o.psamTx = tx
	o.psam = &psamOps{l: &link{tx: tx, name: "PSAM", count: &s.stats.PSAMAPDUs}}
	if err := o.psam.selectApp(ctx); err != nil {
		return fmt.Errorf("start PSAM: %w", err)
	}
	if !fresh && s.psamTermID != "" {
		// Same PSAM connection (a swapped PSAM breaks it): its terminal
		// number is known.
		return nil
	}
	id, err := o.psam.terminalID(ctx)
	if err != nil {
		return fmt.Errorf("start PSAM: %w", err)
	}
	if s.opts.TerminalID != "" && s.opts.TerminalID != id {
		return fmt.Errorf("start PSAM: %w: PSAM terminal number %s, configured %s", ErrBadRequest, id, s.opts.TerminalID)
	}
	s.termID, s.psamTermID = id, id
	return nil
}

// end ends the transactions. A PSAM whose link failed is connected
// again by the next operation.
func (o *op) end() {
	if o.psamTx != nil {
		if err := o.psamTx.End(); err != nil || o.psam.l.broken {
			o.s.psamConnected = false
		}
		o.psamTx = nil
	}
	o.endCard()
}

// endCard ends the card transaction.
func (o *op) endCard() {
	if o.cardTx != nil {
		_ = o.cardTx.End()
		o.cardTx = nil
	}
}

// restartCard begins a new transaction on the still-connected card.
func (o *op) restartCard(ctx context.Context) error {
	tx, err := reader.Begin(ctx, o.s.opts.Card)
	if err != nil {
		return fmt.Errorf("begin card transaction: %w", err)
	}
	o.cardTx = tx
	o.card = &link{tx: tx, name: "card", count: &o.s.stats.CardAPDUs}
	return nil
}

// terminalID returns the terminal number, or an error when neither
// Options.TerminalID nor a PSAM gave one.
func (s *Session) terminalID() (string, error) {
	if s.termID == "" {
		return "", fmt.Errorf("%w: no terminal number (set Options.TerminalID or insert a PSAM)", ErrBadRequest)
	}
	return s.termID, nil
}
