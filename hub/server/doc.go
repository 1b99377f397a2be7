// Package server is the hub's end of the sync protocol (hub/sync): it
// authenticates terminals, verifies and posts their records exactly once,
// pushes the lost-card list and configuration, and serves online requests
// (load authorisation, the key service for two-step identity reads,
// pending credits).
//
// # Connections
//
// [Server] is an http.Handler for the sync endpoint (hubsync.Path). A
// connection must offer the subprotocol hubsync.Subprotocol; a browser's
// Origin header must be in Options.AllowedOrigins (agents send none). The
// hub sends a Challenge with a fresh 32-byte nonce; the agent answers
// within Options.HelloTimeout with a Hello signed by its enrolled key (the
// terminal must be Active) or an Enroll with a one-time token. Before the
// hello the read limit is 16 KiB. A second connection of the same terminal
// replaces the first.
//
// # Posting
//
// Every record of a Batch is decoded from its canonical envelope and
// checked: terminal number = the session's, terminal signature
// (record.Envelope.Verify with the enrolled key), the card's TAC
// (hub/proof with the issuer key set, for the record's suite), the card's
// SM2 signature when a certification carries one. Valid records go to the
// Ledger in one call (one store commit); only after it returned are the
// acknowledgements written, so an acknowledged record is durable.
// Rejections are filed as store dead letters (visible to operators) before
// they are acknowledged. A repeated terminal number + sequence with the
// same content is acknowledged as a duplicate; different content is
// rejected (conflict). Verification runs on up to Options.VerifyWorkers
// goroutines shared by all connections.
//
// # Limits
//
// Frames above Options.MaxMessage and batches above Options.MaxBatch end
// the connection (too_large). Each terminal has a token bucket
// (Options.Rate records or requests per second, Options.Burst); a batch
// over it waits up to Options.MaxRateWait, else the agent is told to retry
// (rate_limited). Each connection has a bounded send queue
// (Options.SendQueue frames); a peer that does not read its answers is
// disconnected. The hub pings every Options.PingInterval and drops a
// connection silent for Options.PongWait. Options.MaxConns bounds
// connections (HTTP 503 beyond).
//
// Keys are never logged or sent; log lines carry terminal numbers,
// sequences and codes, never personal fields.
package server
