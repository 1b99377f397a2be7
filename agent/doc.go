// Package agent is the kiosk agent daemon ('onecard agent'): it runs the
// reader manager (PC/SC, serial readers driven by firmware profiles,
// simulated readers), one terminal.Session per lane (a user-card slot
// with its PSAM slot), the crash-safe journal, the hub client (when
// configured, through the [Hub] interface that agent/hublink implements)
// and two loopback HTTP servers:
//
//   - the kiosk API (package agent/kioskapi): a WebSocket at
//     ws://127.0.0.1:17300/v1/ws for web pages and the HIS, with origin
//     allowlist and pairing, plus /onecard-client.js (package web) and
//     /version;
//   - the admin endpoint (127.0.0.1:17301): Prometheus /metrics, /healthz,
//     status, pairing codes, paired origins, the log level at run time
//     (see adminHandler; 'onecard agent pair|pairs|unpair|loglevel|status').
//
// # Configuration
//
// [Config] is one YAML file (docs/agent-config.md) with safe defaults:
// loopback only (other addresses are refused), no origin allowed until
// configured or paired, PINs accepted in requests, no test keys, no local
// load authorisation. Flags of 'onecard agent' override it.
//
// # Lanes and concurrency
//
// A request names its lane (or slot, or reader) with "reader", or the
// agent picks the only lane, or the only lane with a card in it. One
// request at a time holds a lane: a second request for the same card is
// refused at once with the retriable error "busy" — never queued, so a
// page never waits behind someone else's PIN entry without knowing it.
// Card operations run on a context of their own: a page that goes away
// does not interrupt a payment half way.
//
// # Shutdown
//
// When Run's context ends the kiosk API refuses new requests
// ("shutting_down") and connections (503), waits for the running card
// operations to finish and answer (bounded by Config.ShutdownTimeout),
// then stops the hub client, the readers and the journal.
//
// # Logs and metrics
//
// Logs are log/slog (text or JSON) through logmask: names, ID numbers,
// card numbers, PINs and keys never reach the output. Metrics are served
// in the Prometheus text format by the small agent/metrics registry:
// reader events and errors, APDU latency by slot role, card operations by
// kind and outcome, kiosk requests and refusals, journal records by state,
// unsent records and the oldest one's age, dead letters, and the hub
// client's state.
package agent
