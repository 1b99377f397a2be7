package reader

import "errors"

// Sentinel errors added with the reader Manager and the PC/SC backend; see
// reader.go for the ones every Slot uses.
var (
	// ErrUnknownSlot: no backend has a slot with the requested ID (it was
	// never there, or its reader is gone).
	ErrUnknownSlot = errors.New("unknown reader slot")
	// ErrCardMute: a card is in the slot but does not answer the reset
	// (inserted the wrong way round, dirty contacts, or not a smart card).
	// Ask for the card to be re-inserted.
	ErrCardMute = errors.New("card does not answer")
	// ErrTxEnded: a transaction was used after End, or after it outlived
	// its time limit and the slot ended it (see Tx).
	ErrTxEnded = errors.New("card transaction ended")
	// ErrClosed: the Manager (or subscription) was closed.
	ErrClosed = errors.New("reader manager closed")
)
