// Package hublink adapts the hub client (hub/client) to the agent's Hub
// interface: the one place that knows both, so the agent's core does not
// depend on the client's exact API.
package hublink

import (
	"context"
	"fmt"

	"github.com/onecard-hub/onecard/agent"
	"github.com/onecard-hub/onecard/hub/client"
	"github.com/onecard-hub/onecard/terminal/record"
)

// Link is a hub client as an agent.Hub.
type Link struct {
	*client.Client
}

// New builds the hub client from the agent's parameters (an
// agent.HubFactory). Errors: client.New's (client.ErrConfig, the state
// file's).
func New(p agent.HubParams) (agent.Hub, error) {
	c, err := client.New(client.Options{
		URL: p.Config.URL, Pin: p.Config.Pin, HubID: p.Config.HubID,
		TerminalID: p.TerminalID, Key: p.Key, Journal: p.Journal, StatePath: p.StatePath,
		Agent: p.Agent, Logger: p.Logger,
	})
	if err != nil {
		return nil, fmt.Errorf("hub client: %w", err)
	}
	return &Link{Client: c}, nil
}

// IsLost answers from the client's copy of the lost-card list.
func (l *Link) IsLost(ctx context.Context, card record.CardID) (bool, error) {
	return l.LostCards().IsLost(ctx, card)
}

// Status converts the client's status.
func (l *Link) Status() (agent.HubStatus, error) {
	st, err := l.Client.Status()
	if err != nil {
		return agent.HubStatus{}, err
	}
	return agent.HubStatus{
		Connected: st.Connected, HubID: st.HubID, Waiting: st.Waiting, Unsent: st.Unsent, Sent: st.Sent,
		DeadLetters: st.DeadLetters, Oldest: st.Oldest, OldestAgeSeconds: st.OldestAge.Seconds(),
		LostCards: st.LostCards, LostVersion: st.LostVersion, LastError: st.LastError,
		LastErrorAt: st.LastErrorAt, NextAttempt: st.NextAttempt, Alarm: st.Alarm,
	}, nil
}

var _ agent.Hub = (*Link)(nil)
