package agent

import (
	"context"
	"log/slog"
	"time"

	"github.com/onecard-hub/onecard/sm"
	"github.com/onecard-hub/onecard/terminal"
	"github.com/onecard-hub/onecard/terminal/journal"
	"github.com/onecard-hub/onecard/terminal/record"
)

// Hub is what the agent needs from the hub client (hub/client, adapted by
// agent/hublink): keep the journal draining, authorise loads, serve
// two-step reads, answer the lost-card list, and report its state.
type Hub interface {
	// Run keeps the terminal synchronised until ctx ends.
	Run(ctx context.Context) error
	// Kick wakes the uploader after a record was journaled.
	Kick()
	// AuthoriseLoad is terminal.Authoriser.
	AuthoriseLoad(ctx context.Context, a terminal.LoadAuthorisation) ([]byte, error)
	// AuthenticateRead is terminal.KeyService.
	AuthenticateRead(ctx context.Context, s terminal.Step1) (terminal.Step2Key, error)
	// IsLost is terminal.LostCards.
	IsLost(ctx context.Context, card record.CardID) (bool, error)
	// Status reports the sync state for status, metrics and doctor.
	Status() (HubStatus, error)
	// Close releases the client's files; call after Run returned.
	Close() error
}

// HubStatus is the hub client's state as the agent reports it.
type HubStatus struct {
	Connected bool   `json:"connected"`
	HubID     string `json:"hubId,omitempty"`
	// Waiting = Unsent + Sent (not yet acknowledged).
	Waiting     int       `json:"waiting"`
	Unsent      int       `json:"unsent"`
	Sent        int       `json:"sent"`
	DeadLetters int       `json:"deadLetters"`
	Oldest      time.Time `json:"oldest,omitzero"`
	// OldestAgeSeconds is the age of the oldest waiting record.
	OldestAgeSeconds float64   `json:"oldestAgeSeconds"`
	LostCards        int       `json:"lostCards"`
	LostVersion      uint64    `json:"lostVersion"`
	LastError        string    `json:"lastError,omitempty"`
	LastErrorAt      time.Time `json:"lastErrorAt,omitzero"`
	NextAttempt      time.Time `json:"nextAttempt,omitzero"`
	Alarm            string    `json:"alarm,omitempty"`
}

// HubParams is what a HubFactory gets to build the client.
type HubParams struct {
	Config     HubConfig
	StatePath  string // resolved HubConfig.State (default journal + ".hub")
	TerminalID string
	Key        *sm.PrivateKey
	Journal    *journal.Journal
	Agent      string // software name and version for the hello
	Logger     *slog.Logger
}

// HubFactory builds the hub client (agent/hublink.New in the binary).
type HubFactory func(HubParams) (Hub, error)
