package server

import (
	"fmt"
	"log/slog"
	"runtime"
	"time"

	"github.com/onecard-hub/onecard/hub/store"
	hubsync "github.com/onecard-hub/onecard/hub/sync"
	"github.com/onecard-hub/onecard/sm"
)

// Defaults of Options.
const (
	DefaultHelloTimeout     = 10 * time.Second
	DefaultPingInterval     = 25 * time.Second
	DefaultWriteTimeout     = 10 * time.Second
	DefaultSendQueue        = 16
	DefaultRate             = 2000 // records (or requests) per second per terminal
	DefaultBurst            = 4000
	DefaultMaxRateWait      = 2 * time.Second
	DefaultMaxConns         = 10000
	DefaultLostPollInterval = 2 * time.Second
)

// Options configures a Server. HubID, Store, Ledger and Keys are
// required; zero values elsewhere mean the defaults.
type Options struct {
	// HubID names this hub in challenges (terminals sign it).
	HubID string
	// Store holds the terminal registry, the lost-card list and the dead
	// letters.
	Store store.Store
	// Ledger posts verified records and answers entitlement and credit
	// questions.
	Ledger Ledger
	// Keys is the issuer key set (TAC verification, load MAC2, key
	// service). Never logged or sent.
	Keys *sm.KeySet

	MaxMessage int // bytes per frame (hubsync.DefaultMaxMessage)
	MaxBatch   int // records per batch (hubsync.DefaultMaxBatch)

	HelloTimeout time.Duration // challenge → hello (DefaultHelloTimeout)
	PingInterval time.Duration // pings to the agent (DefaultPingInterval)
	PongWait     time.Duration // silence before disconnecting (2·PingInterval + 10 s)
	WriteTimeout time.Duration // one frame write (DefaultWriteTimeout)
	SendQueue    int           // frames queued per connection (DefaultSendQueue)

	Rate        float64       // per-terminal tokens per second (DefaultRate)
	Burst       int           // per-terminal bucket size (DefaultBurst)
	MaxRateWait time.Duration // longest wait for tokens before rate_limited (DefaultMaxRateWait)

	MaxConns      int // open connections (DefaultMaxConns)
	VerifyWorkers int // concurrent record verifications (GOMAXPROCS)

	// LostPollInterval: how often the lost-card list version is checked
	// for changes to push (DefaultLostPollInterval). Server.NotifyLost
	// pushes at once.
	LostPollInterval time.Duration

	// ConfigVersion and Config are pushed to every agent whose version
	// differs (nil Config: no push).
	ConfigVersion uint64
	Config        map[string]string

	// AllowedOrigins lists the browser origins allowed to open the sync
	// endpoint (normally none: agents send no Origin header).
	AllowedOrigins []string

	// Logger receives connection events (default: discard).
	Logger *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
}

func (o *Options) withDefaults() (Options, error) {
	c := *o
	if err := hubsync.CheckHubID(c.HubID); err != nil {
		return c, fmt.Errorf("hub options: %w", err)
	}
	switch {
	case c.Store == nil:
		return c, fmt.Errorf("hub options: no store")
	case c.Ledger == nil:
		return c, fmt.Errorf("hub options: no ledger")
	case c.Keys == nil:
		return c, fmt.Errorf("hub options: no key set")
	}
	if c.MaxMessage <= 0 {
		c.MaxMessage = hubsync.DefaultMaxMessage
	}
	if c.MaxMessage < 16<<10 {
		return c, fmt.Errorf("hub options: MaxMessage below 16 KiB")
	}
	if c.MaxBatch <= 0 {
		c.MaxBatch = hubsync.DefaultMaxBatch
	}
	if c.HelloTimeout <= 0 {
		c.HelloTimeout = DefaultHelloTimeout
	}
	if c.PingInterval <= 0 {
		c.PingInterval = DefaultPingInterval
	}
	if c.PongWait <= 0 {
		c.PongWait = 2*c.PingInterval + 10*time.Second
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	if c.SendQueue <= 0 {
		c.SendQueue = DefaultSendQueue
	}
	if c.Rate <= 0 {
		c.Rate = DefaultRate
	}
	if c.Burst <= 0 {
		c.Burst = DefaultBurst
	}
	if c.Burst < c.MaxBatch {
		c.Burst = c.MaxBatch
	}
	if c.MaxRateWait <= 0 {
		c.MaxRateWait = DefaultMaxRateWait
	}
	if c.MaxConns <= 0 {
		c.MaxConns = DefaultMaxConns
	}
	if c.VerifyWorkers <= 0 {
		c.VerifyWorkers = runtime.GOMAXPROCS(0)
	}
	if c.LostPollInterval <= 0 {
		c.LostPollInterval = DefaultLostPollInterval
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Config != nil {
		if err := (&hubsync.Config{Version: c.ConfigVersion, Values: c.Config}).Validate(hubsync.Limits{}); err != nil {
			return c, fmt.Errorf("hub options: config: %w", err)
		}
	}
	return c, nil
}
