// Package virtual provides readers that hold simulated cards: an in-process
// reader slot and a bridge that puts a simulated card behind pcscd through
// the vpcd driver.
package virtual

import "errors"

// ErrTorn is returned by Card.Transmit when the simulated card is pulled out
// of the reader in the middle of a command: whatever the command changed on
// the card stays changed, but no response leaves the card. A reader that
// gets ErrTorn behaves exactly as if the card left the slot before answering
// (the in-process slot reports reader.ErrCardRemoved; the vpcd bridge closes
// its connection).
var ErrTorn = errors.New("virtual card pulled mid-command")

// Card is a simulated ICC (a social-security card, a PSAM, ...) as a reader
// sees it: it can be powered and it answers command APDUs.
//
// Implementations must be safe for concurrent use (a reader may power the
// card down from one goroutine while another transmits) and must never
// panic, whatever bytes they are given.
type Card interface {
	// PowerOn cold-resets the card's volatile state (selected files,
	// security status, challenges) and returns its ATR. Persistent state
	// (balances, counters, PIN tries, logs) survives.
	PowerOn() (atr []byte)
	// PowerOff removes power; volatile state is lost.
	PowerOff()
	// Transmit processes one command APDU and returns the response APDU
	// (data followed by SW1 SW2). It returns ErrTorn when the simulated
	// card is pulled mid-command.
	Transmit(cmd []byte) (resp []byte, err error)
}
