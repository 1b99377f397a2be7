// Package reader is the hardware boundary of onecard: it hides PC/SC
// readers, vendor serial readers and in-process virtual readers behind one
// small interface.
//
// A [Slot] is one card position of a reader: the user card's contacts, the
// contactless field, or a PSAM slot. Everything above this package talks to
// cards only through Slot, so a virtual card in the same process, a virtual
// card behind pcscd and a real card in a serial reader look the same.
//
// Errors returned by a Slot wrap one of the sentinels below, so callers can
// decide with errors.Is whether to retry, wait for the card or give up.
package reader

import (
	"context"
	"errors"
)

// Sentinel errors. Slot implementations wrap them (fmt.Errorf("...: %w", ...))
// so that errors.Is works through any context they add.
var (
	// ErrNoCard: the slot is empty. Insert a card and retry.
	ErrNoCard = errors.New("no card in slot")
	// ErrCardRemoved: the card left the slot during or since the last
	// exchange. Any session state on the card is gone; whether the last
	// command took effect is unknown.
	ErrCardRemoved = errors.New("card removed")
	// ErrCardReset: another process or a reader glitch reset the card;
	// reconnect and re-select the application.
	ErrCardReset = errors.New("card reset")
	// ErrReaderGone: the reader was unplugged or its driver stopped.
	ErrReaderGone = errors.New("reader gone")
	// ErrReaderBusy: another program holds the reader exclusively.
	ErrReaderBusy = errors.New("reader busy")
	// ErrTimeout: the card or the reader did not answer in time.
	ErrTimeout = errors.New("reader timeout")
	// ErrServiceDown: the smart-card service (pcscd) is not running.
	ErrServiceDown = errors.New("smart-card service not running")
)

// Slot is one card position of a reader.
//
// A Slot is safe for use by one goroutine at a time; callers that share a
// slot serialise their card operations themselves (one logical card
// operation at a time, never held across PIN entry or network waits).
type Slot interface {
	// ID names the slot stably (not only by a PC/SC display name), e.g.
	// "virtual:user" or "pcsc:Virtual PCD 00 00".
	ID() string
	// Connect powers the card if needed and returns its ATR. It returns an
	// error wrapping ErrNoCard when the slot is empty.
	Connect(ctx context.Context) (atr []byte, err error)
	// Reset cold-resets the card and returns its ATR. Card-side session
	// state (selected files, security status, challenges) is lost.
	Reset(ctx context.Context) (atr []byte, err error)
	// Transmit sends one command APDU and returns the raw response APDU
	// (data followed by SW1 SW2). It does no T=0 chaining: 61xx and 6Cxx
	// come back to the caller (see apdu.Exchange). It returns an error
	// wrapping ErrCardRemoved if the card is pulled before the response
	// arrives, and honours ctx's deadline and cancellation.
	Transmit(ctx context.Context, cmd []byte) (resp []byte, err error)
	// Disconnect ends the connection and powers the card down. The slot may
	// be connected again.
	Disconnect() error
}
