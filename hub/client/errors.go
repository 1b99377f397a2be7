package client

import "errors"

// Sentinel errors, for errors.Is. A refusal by the hub also carries the
// hub's *hubsync.Error (errors.As) with its code.
var (
	// ErrConfig: a bad option (URL, pin, terminal number, key).
	ErrConfig = errors.New("hub client: bad configuration")
	// ErrPinMismatch: the hub's certificate does not match the pinned
	// public key hash. The connection is refused before anything is sent.
	ErrPinMismatch = errors.New("hub client: hub certificate does not match the pin")
	// ErrUnreachable: the hub could not be reached (network, handshake).
	ErrUnreachable = errors.New("hub client: hub unreachable")
	// ErrProtocol: the hub sent something this client does not expect.
	ErrProtocol = errors.New("hub client: protocol error")
	// ErrRefused: the hub refused the terminal (unknown, pending,
	// suspended, bad token); see the wrapped *hubsync.Error.
	ErrRefused = errors.New("hub client: refused by the hub")
	// ErrOffline: an online request (load authorisation, key service,
	// credits) found no connection to the hub in time.
	ErrOffline = errors.New("hub client: not connected to the hub")
	// ErrClosed: the client was closed.
	ErrClosed = errors.New("hub client: closed")
	// ErrDisconnected: the connection ended while a request was waiting.
	ErrDisconnected = errors.New("hub client: connection lost")
)
