package client

import (
	"context"
	"fmt"
	"time"

	hubsync "github.com/onecard-hub/onecard/hub/sync"
	"github.com/onecard-hub/onecard/sm"
)

// EnrollOptions are the inputs of Enroll.
type EnrollOptions struct {
	URL        string         // hub URL (as Options.URL)
	Pin        string         // hub certificate pin (required for wss)
	HubID      string         // expected hub ID (optional)
	TerminalID string         // 12-digit terminal number the hub invited
	Token      string         // the one-time enrolment token
	Key        *sm.PrivateKey // the terminal's new SM2 key
	Agent      string
	Timeout    time.Duration // default DefaultDialTimeout
}

// Enroll registers the terminal's public key with the hub using a
// one-time token; the signature over hubsync.EnrollBytes proves the
// terminal holds the private key. It returns the terminal's status on the
// hub (normally hubsync.StatusPending until an operator approves it).
// Errors: ErrConfig, ErrPinMismatch, ErrUnreachable, ErrProtocol,
// ErrRefused wrapping the hub's *hubsync.Error (bad_token,
// bad_signature, ...).
func Enroll(ctx context.Context, o EnrollOptions) (string, error) {
	if !isDigits(o.TerminalID, 12) {
		return "", fmt.Errorf("enroll: %w: terminal number: want 12 digits", ErrConfig)
	}
	if o.Token == "" {
		return "", fmt.Errorf("enroll: %w: no token", ErrConfig)
	}
	if err := keyCheck(o.Key); err != nil {
		return "", fmt.Errorf("enroll: %w", err)
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultDialTimeout
	}
	ws, err := dial(ctx, o.URL, o.Pin, o.Timeout, 64<<10)
	if err != nil {
		return "", fmt.Errorf("enroll: %w", err)
	}
	defer ws.Close()
	_, m, err := handshake(ws, o.Timeout, o.HubID, func(ch *hubsync.Challenge) (hubsync.Message, error) {
		sig, err := hubsync.SignEnroll(o.Key, ch.HubID, o.TerminalID, ch.Nonce, o.Token)
		if err != nil {
			return nil, fmt.Errorf("sign enrolment: %w", err)
		}
		return &hubsync.Enroll{TerminalID: o.TerminalID, PublicKey: o.Key.PublicKey().Point(), Token: o.Token,
			Nonce: ch.Nonce, Signature: sig, Agent: o.Agent}, nil
	})
	if err != nil {
		return "", fmt.Errorf("enroll: %w", err)
	}
	e, ok := m.(*hubsync.Enrolled)
	if !ok || e.TerminalID != o.TerminalID {
		return "", fmt.Errorf("enroll: %w: unexpected answer %s", ErrProtocol, m.Type())
	}
	return e.Status, nil
}
