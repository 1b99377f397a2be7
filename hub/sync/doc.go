// Package sync is the agent ⇄ hub synchronisation protocol: the message
// catalogue, its JSON codec with enforced limits, and the canonical byte
// strings the terminal signs to prove its identity (hello) and to enrol
// its key (enroll). docs/sync-protocol.md is the reference with examples.
//
// # Transport
//
// One WebSocket connection per agent, wss:// with the hub's certificate
// pinned by the agent (SHA-256 of the SubjectPublicKeyInfo, see
// [SPKIPin]); plain ws:// only to a loopback address (tests, demos). The
// WebSocket subprotocol is [Subprotocol]. Every message is one text frame
// holding one JSON [Frame]: {"v":1,"type":"…","id":N,"body":{…}}. Binary
// fields (records, nonces, signatures, MACs) are base64 (standard
// alphabet, padded) as encoding/json writes []byte.
//
// # Signatures
//
// Nothing is ever signed over JSON text. Records travel as their canonical
// envelope bytes (terminal/record: "OCTE" ‖ record ‖ SM2 signature); the
// hello and enrolment proofs are SM2 signatures over the canonical byte
// strings [HelloBytes] and [EnrollBytes], with the SM2 user ID = the 12
// ASCII digits of the terminal number (as records are signed). The magic
// prefixes ("OCSH", "OCSE", "OCTR") differ, so no signature can pass for
// another kind.
//
// # Decoding
//
// [Decode] is strict: it refuses frames above Limits.MaxMessage, a
// protocol version other than [Version], unknown message types, unknown
// JSON fields, trailing data, batches above Limits.MaxBatch records,
// records above MaxRecordBytes, and values that break a message's own
// rules (Validate). Every failure wraps [ErrMalformed], [ErrTooLarge] or
// [ErrVersion]; none panics (FuzzSyncMessage).
package sync
