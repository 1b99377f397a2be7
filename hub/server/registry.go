package server

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"fmt"
	"strings"

	"github.com/onecard-hub/onecard/hub/store"
)

// tokenBytes is the entropy of an enrolment token (160 bits).
const tokenBytes = 20

// Invite registers terminal no (12 digits) as invited and returns its
// one-time enrolment token (32 base32 characters, shown once; the store
// keeps only its hash). With replace, an existing terminal is invited
// again: its key is dropped (a replaced kiosk enrols a new one) but its
// acknowledged sequence is kept. Errors: store.ErrExists (without
// replace), store.ErrInvalid, store errors.
func Invite(ctx context.Context, st store.Store, no, name string, replace bool) (string, error) {
	raw := make([]byte, tokenBytes)
	if _, err := rand.Read(raw); err != nil {
		return "", fmt.Errorf("invite terminal: %w", err)
	}
	token := strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(raw))
	t, err := store.NewTerminal(no, name, []byte(token))
	if err != nil {
		return "", fmt.Errorf("invite terminal: %w", err)
	}
	err = st.CreateTerminal(ctx, t)
	if errors.Is(err, store.ErrExists) && replace {
		h := sha256.Sum256([]byte(token))
		_, err = st.UpdateTerminal(ctx, no, func(t *store.Terminal) error {
			t.State, t.TokenHash, t.PublicKey = store.StateInvited, h[:], nil
			if name != "" {
				t.Name = name
			}
			return nil
		})
	}
	if err != nil {
		return "", fmt.Errorf("invite terminal %s: %w", no, err)
	}
	return token, nil
}

// Approve makes an enrolled or suspended terminal active. Errors:
// store.ErrNotFound, store.ErrState (not enrolled yet), store errors.
func Approve(ctx context.Context, st store.Store, no string) (store.Terminal, error) {
	return st.UpdateTerminal(ctx, no, func(t *store.Terminal) error { return t.Approve() })
}

// Suspend refuses the terminal until it is approved again; a connected
// session ends at its next batch. Errors: store.ErrNotFound,
// store.ErrState (not enrolled yet), store errors.
func Suspend(ctx context.Context, st store.Store, no string) (store.Terminal, error) {
	return st.UpdateTerminal(ctx, no, func(t *store.Terminal) error { return t.Suspend() })
}

// Terminals lists the registry, sorted by number.
func Terminals(ctx context.Context, st store.Store) ([]store.Terminal, error) {
	return st.Terminals(ctx)
}
