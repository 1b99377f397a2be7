// Package client is the agent side of the hub sync protocol (hub/sync): it
// drains the terminal's journal to the hub, keeps the hub's lost-card list
// and configuration on disk for offline use, and makes the online requests
// a terminal needs (load authorisation, the remote key service for
// two-step identity reads, pending credits).
//
// # Upload
//
// [Client.Run] keeps one connection to the hub and, on it, sends the
// journal's records in terminal-sequence order: first the records already
// Sent but never acknowledged (journal.Unacknowledged, after a break),
// merged with the next ones to send (journal.NextToSend), in batches of
// at most Options.BatchSize, with up to Options.Window batches in flight.
// Each batch is moved to Sent (journal.MarkSent, fsync) before it leaves;
// the hub answers one verdict per record: accepted or duplicate
// (journal.MarkCleared), rejected (journal.DeadLetter with the hub's code
// and reason) or retry (left Sent, sent again after a pause). The hub
// acknowledges a record only after its store committed it, and posts a
// terminal number + sequence at most once, so a record cut off at any
// point is simply sent again and ends posted exactly once.
//
// At every connection the hub's last acknowledged sequence goes to
// journal.ObserveHubAck (a journal restored from a backup is detected
// there and reported in [Status].Alarm). Connection failures are retried
// with exponential backoff and jitter (Options.MinBackoff to MaxBackoff).
// [Client.Sync] is the one-shot form: connect, send everything, return.
//
// # End-of-day totals
//
// Whenever the upload queue is empty, the client sends the journal's
// totals (journal.DayTotals) of each of its latest Options.TotalsDays
// card days that changed since the hub stored them, signed with the
// terminal key (hubsync.Totals). [Status].Totals says which days the hub
// stored and whether its postings matched them.
//
// # Security
//
// wss:// with the hub's certificate pinned (Options.Pin, the SHA-256 of
// its SubjectPublicKeyInfo) is required except to a loopback address. The
// terminal proves its identity by signing the hub's nonce (hubsync.SignHello)
// with its enrolled SM2 key; [Enroll] registers that key with a one-time
// token.
//
// # Offline data
//
// The lost-card list ([Client.LostCards], which implements
// terminal.LostCards) and the configuration ([Client.Config]) live in a
// small bbolt file beside the journal (Options.StatePath) and survive
// restarts; the hub pushes changes, versioned, and the client applies each
// change atomically.
//
// # Online requests
//
// [Client.AuthoriseLoad] (terminal.Authoriser), [Client.AuthenticateRead]
// (terminal.KeyService) and [Client.PendingCredits] need Run's connection;
// without one within Options.RequestTimeout they fail with ErrOffline.
package client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	hubsync "github.com/onecard-hub/onecard/hub/sync"
	"github.com/onecard-hub/onecard/sm"
	"github.com/onecard-hub/onecard/terminal/journal"
)

// Defaults of Options.
const (
	DefaultBatchSize      = 100
	DefaultWindow         = 4
	DefaultMinBackoff     = 500 * time.Millisecond
	DefaultMaxBackoff     = 2 * time.Minute
	DefaultPollInterval   = 5 * time.Second
	DefaultDialTimeout    = 10 * time.Second
	DefaultRequestTimeout = 30 * time.Second
)

// Options configures a Client. URL, TerminalID, Key and Journal are
// required; the rest have safe defaults.
type Options struct {
	// URL of the hub: wss://host:port[/sync], or ws:// to a loopback host.
	URL string
	// Pin is the hub certificate's SPKI SHA-256 ("sha256/BASE64" or 64 hex
	// digits); required for wss.
	Pin string
	// HubID, when set, must match the hub's challenge.
	HubID string
	// TerminalID is the 12-digit terminal number the key was enrolled as.
	TerminalID string
	// Key is the terminal's SM2 private key.
	Key *sm.PrivateKey
	// Journal is the terminal's open journal (the outbox).
	Journal *journal.Journal
	// StatePath is the client's state file (lost-card list, configuration);
	// default: the journal's path + ".hub".
	StatePath string

	BatchSize      int           // records per batch (default DefaultBatchSize; the hub's limit caps it)
	Window         int           // batches in flight (default DefaultWindow)
	MinBackoff     time.Duration // first reconnection delay (default DefaultMinBackoff)
	MaxBackoff     time.Duration // longest reconnection delay (default DefaultMaxBackoff)
	PollInterval   time.Duration // how often an idle connection looks at the journal (default DefaultPollInterval)
	DialTimeout    time.Duration // connection and hello (default DefaultDialTimeout)
	RequestTimeout time.Duration // wait for an answer (default DefaultRequestTimeout)
	// TotalsDays: the signed end-of-day totals of the journal's latest
	// TotalsDays card days are submitted whenever they change and the
	// upload queue is empty (default DefaultTotalsDays).
	TotalsDays int

	// Agent names the software in the hello (informational).
	Agent string
	// Logger receives connection events; default: discard. Nothing
	// personal, no key, is ever logged.
	Logger *slog.Logger
}

func (o *Options) withDefaults() (Options, error) {
	c := *o
	if c.BatchSize <= 0 {
		c.BatchSize = DefaultBatchSize
	}
	if c.Window <= 0 {
		c.Window = DefaultWindow
	}
	if c.MinBackoff <= 0 {
		c.MinBackoff = DefaultMinBackoff
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = DefaultMaxBackoff
	}
	if c.MaxBackoff < c.MinBackoff {
		c.MaxBackoff = c.MinBackoff
	}
	if c.PollInterval <= 0 {
		c.PollInterval = DefaultPollInterval
	}
	if c.DialTimeout <= 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = DefaultRequestTimeout
	}
	if c.TotalsDays <= 0 {
		c.TotalsDays = DefaultTotalsDays
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Agent == "" {
		c.Agent = "onecard"
	}
	if _, err := CheckURL(c.URL, c.Pin); err != nil {
		return c, err
	}
	if !isDigits(c.TerminalID, 12) {
		return c, fmt.Errorf("%w: terminal number: want 12 digits", ErrConfig)
	}
	if err := keyCheck(c.Key); err != nil {
		return c, err
	}
	if c.Journal == nil {
		return c, fmt.Errorf("%w: no journal", ErrConfig)
	}
	if c.StatePath == "" {
		c.StatePath = c.Journal.Path() + ".hub"
	}
	return c, nil
}

func isDigits(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < n; i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// Client uploads a terminal's journal to the hub and serves the
// terminal's online requests. Create it with New; run Run (or Sync); Close
// it when done. Its methods are safe for concurrent use.
type Client struct {
	o    Options
	st   *state
	kick chan struct{}

	mu        sync.Mutex
	cur       *conn
	connReady chan struct{} // closed when cur becomes non-nil
	stats     counters
	totals    map[string]TotalsStatus // by day: what the hub stored last
	closed    bool
}

type counters struct {
	accepted, duplicates, rejected, retried uint64
	lastErr                                 error
	lastErrAt, nextAttempt                  time.Time
	alarm                                   string
	hubID                                   string
	hubAck                                  uint64
}

// New checks the options and opens the state file. Errors: ErrConfig and
// state file errors.
func New(opts Options) (*Client, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("new hub client: %w", err)
	}
	st, err := openState(o.StatePath)
	if err != nil {
		return nil, fmt.Errorf("new hub client: %w", err)
	}
	return &Client{o: o, st: st, kick: make(chan struct{}, 1), connReady: make(chan struct{}),
		totals: map[string]TotalsStatus{}}, nil
}

// Close releases the state file. Call it after Run or Sync returned.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	cur := c.cur
	c.mu.Unlock()
	if cur != nil {
		cur.close(ErrClosed)
	}
	return c.st.close()
}

// Kick wakes the uploader: call it after journaling a record so it leaves
// now rather than at the next poll.
func (c *Client) Kick() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// LostCards returns the lost-card list (kept current while Run runs).
func (c *Client) LostCards() *LostList { return c.st.lost }

// Config returns the configuration the hub pushed last and its version
// (an empty map and 0 before the first push).
func (c *Client) Config() (uint64, map[string]string) { return c.st.config() }

// Run keeps the terminal synchronised until ctx ends: connect, upload,
// serve pushes and online requests; on any failure wait (exponential
// backoff with jitter, reset after a successful hello) and reconnect. It
// returns ctx's error, or ErrClosed.
func (c *Client) Run(ctx context.Context) error {
	attempt := 0
	for {
		connected, err := c.session(ctx, false)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if c.isClosed() {
			return ErrClosed
		}
		if connected {
			attempt = 0
		}
		d := Backoff(c.o.MinBackoff, c.o.MaxBackoff, attempt)
		attempt++
		c.mu.Lock()
		c.stats.lastErr, c.stats.lastErrAt = err, time.Now()
		c.stats.nextAttempt = time.Now().Add(d)
		c.mu.Unlock()
		c.o.Logger.Warn("hub: connection ended", "err", err, "retry_in", d)
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// Sync connects once, sends every record waiting in the journal, waits for
// their acknowledgements and returns. Errors: ErrConfig, ErrPinMismatch,
// ErrUnreachable, ErrRefused (with the hub's *hubsync.Error),
// ErrDisconnected, ErrProtocol, ErrRetryLater, journal errors.
func (c *Client) Sync(ctx context.Context) error {
	_, err := c.session(ctx, true)
	if err != nil {
		c.mu.Lock()
		c.stats.lastErr, c.stats.lastErrAt = err, time.Now()
		c.mu.Unlock()
	}
	return err
}

// ErrRetryLater: Sync stopped because the hub asked to resend records
// later (AckRetry: store unavailable or rate limit).
var ErrRetryLater = errors.New("hub client: hub asked to retry later")

func (c *Client) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// Backoff returns the delay before reconnection attempt n (0-based):
// min(max, base·2ⁿ), with "equal jitter" (a uniformly random value in the
// upper half), so a fleet of kiosks does not reconnect in step.
func Backoff(base, max time.Duration, n int) time.Duration {
	d := base
	for i := 0; i < n && d < max; i++ {
		d *= 2
	}
	if d > max {
		d = max
	}
	half := d / 2
	return half + rand.N(half+1)
}

// session runs one connection. connected tells whether the hello
// succeeded.
func (c *Client) session(ctx context.Context, untilDrained bool) (connected bool, err error) {
	if c.isClosed() {
		return false, ErrClosed
	}
	cfgVer, _ := c.st.config()
	cn, err := connect(ctx, &c.o, helloFor(&c.o, c.st.lost.Version(), cfgVer), c.onPush)
	if err != nil {
		return false, err
	}
	c.mu.Lock()
	c.cur = cn
	c.stats.hubID, c.stats.hubAck = cn.hubID, cn.welcome.LastAck
	close(c.connReady)
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.cur = nil
		c.connReady = make(chan struct{})
		c.mu.Unlock()
		cn.close(ErrClosed)
		c.st.lost.resetPending()
	}()
	c.o.Logger.Info("hub: connected", "hub", cn.hubID, "last_ack", cn.welcome.LastAck)
	if err := c.o.Journal.ObserveHubAck(ctx, cn.welcome.LastAck); err != nil {
		if !errors.Is(err, journal.ErrRestoredFromBackup) {
			return true, fmt.Errorf("observe hub acknowledgement: %w", err)
		}
		c.mu.Lock()
		c.stats.alarm = err.Error()
		c.mu.Unlock()
		c.o.Logger.Error("hub: journal behind the hub", "err", err)
	}
	return true, c.upload(ctx, cn, untilDrained)
}

// onPush handles a hub push (runs in the connection's reader).
func (c *Client) onPush(cn *conn, m hubsync.Message) {
	switch m := m.(type) {
	case *hubsync.LostCards:
		resync, err := c.st.lost.apply(m)
		if err != nil {
			c.o.Logger.Error("hub: lost-card list change not applied", "err", err)
			resync = true
		}
		if resync {
			if err := cn.send(0, &hubsync.LostSync{Version: c.st.lost.Version()}); err != nil {
				c.o.Logger.Warn("hub: lost-card resync request failed", "err", err)
			}
		}
	case *hubsync.Config:
		if err := c.st.setConfig(m); err != nil {
			c.o.Logger.Error("hub: configuration not stored", "err", err)
		}
	default:
		c.o.Logger.Warn("hub: unexpected push", "type", m.Type())
	}
}

// online waits for a live connection.
func (c *Client) online(ctx context.Context) (*conn, error) {
	t := time.NewTimer(c.o.RequestTimeout)
	defer t.Stop()
	for {
		c.mu.Lock()
		cur, ready, closed := c.cur, c.connReady, c.closed
		c.mu.Unlock()
		if closed {
			return nil, ErrClosed
		}
		if cur != nil && cur.Err() == nil {
			return cur, nil
		}
		select {
		case <-ready:
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: %w", ErrOffline, ctx.Err())
		case <-t.C:
			return nil, ErrOffline
		}
	}
}

// Status is the client's progress for operators.
type Status struct {
	Connected bool
	HubID     string
	// HubAck is the hub's highest acknowledged sequence (the journal's
	// record of it).
	HubAck uint64
	// Waiting records: Unsent (card-done and overdue or not uncertain)
	// plus Sent (sent, not yet acknowledged).
	Waiting, Unsent, Sent int
	// Oldest is when the oldest waiting record was journaled; OldestAge
	// its age now (zero when nothing waits).
	Oldest    time.Time
	OldestAge time.Duration
	// DeadLetters the journal holds (rejected by the hub).
	DeadLetters int
	// Since this client started: records accepted, duplicates, rejected,
	// retries asked by the hub.
	Accepted, Duplicates, Rejected, Retried uint64
	LostVersion                             uint64
	LostCards                               int
	ConfigVersion                           uint64
	// LastError is the last connection or upload failure ("" if none)
	// and NextAttempt when Run tries again.
	LastError   string
	LastErrorAt time.Time
	NextAttempt time.Time
	// Alarm reports a journal behind the hub (restored from a backup).
	Alarm string
	// Totals: the end-of-day totals the hub stored since this client
	// started, by day.
	Totals []TotalsStatus
}

// Status returns the current progress. Errors: the journal's.
func (c *Client) Status() (Status, error) {
	js, err := c.o.Journal.Stats()
	if err != nil {
		return Status{}, fmt.Errorf("hub client status: %w", err)
	}
	st := Status{
		HubAck: js.HubAck, Unsent: js.Unsent, Sent: js.Counts[journal.Sent],
		DeadLetters: js.DeadLetters, Oldest: js.OldestUnsent,
		LostVersion: c.st.lost.Version(), LostCards: c.st.lost.Len(),
	}
	st.Waiting = st.Unsent + st.Sent
	if st.Sent > 0 {
		if es, err := c.o.Journal.Unacknowledged(1); err == nil && len(es) == 1 {
			if p := es[0].PreparedAt(); st.Oldest.IsZero() || p.Before(st.Oldest) {
				st.Oldest = p
			}
		}
	}
	if !st.Oldest.IsZero() {
		st.OldestAge = time.Since(st.Oldest)
	}
	st.ConfigVersion, _ = c.st.config()
	c.mu.Lock()
	defer c.mu.Unlock()
	st.Connected = c.cur != nil && c.cur.Err() == nil
	st.HubID = c.stats.hubID
	st.Accepted, st.Duplicates, st.Rejected, st.Retried = c.stats.accepted, c.stats.duplicates, c.stats.rejected, c.stats.retried
	if c.stats.lastErr != nil {
		st.LastError, st.LastErrorAt = c.stats.lastErr.Error(), c.stats.lastErrAt
	}
	st.NextAttempt, st.Alarm = c.stats.nextAttempt, c.stats.alarm
	for _, t := range c.totals {
		st.Totals = append(st.Totals, t)
	}
	slices.SortFunc(st.Totals, func(a, b TotalsStatus) int { return strings.Compare(a.Day, b.Day) })
	return st, nil
}
