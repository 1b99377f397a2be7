// Package kioskapi is the agent's local API for web pages and desktop
// programs: JSON messages over a WebSocket bound to the loopback
// interface. docs/kiosk-api.md is the message catalogue.
//
// # Who may talk
//
// [Server.ServeHTTP] decides before the WebSocket upgrade and before any
// card is touched:
//
//   - the Host header must name the machine by a loopback literal or
//     "localhost" (DNS rebinding gets 403);
//   - a browser's Origin must be scheme://host[:port] with http or https
//     (no "null", no paths) and either on the allowlist
//     ([Options.Origins], authorised at once) or, when [Options.Pairing]
//     is set, it may connect unauthorised: then only hello, pair (with the
//     operator's one-time code, answered with a token bound to the origin)
//     and auth (that token) are served; every other method answers
//     "unauthorised" without running;
//   - requests without an Origin (native programs) are refused unless
//     [Options.AllowNoOrigin].
//
// The upgrader's CheckOrigin repeats the same decision; it never returns
// true for an origin that is neither allowed nor pairable.
//
// # Limits
//
// Messages above [Options.MaxMessage] close the connection with 1009;
// more than [Options.MaxConns] connections (or [Options.MaxUnpaired]
// unauthorised ones) get 503; each connection has a token bucket
// ([Options.Rate], [Options.Burst]; "rate_limited") and at most
// [Options.MaxInFlight] running requests ("too_many_requests"). Unknown
// fields, non-object params and bad ids are "malformed"; unknown methods
// "unknown_method".
//
// # Requests
//
// Each request runs in its own goroutine on a context that the page
// leaving does not cancel. Methods decode their parameters with
// [Call.Decode] (strict); PINs arrive as [Secret] values, and the raw
// message is zeroed after the request. Errors are classified by
// [Classify] into [Error]: a stable code, retriable, PIN tries left, card
// removed, and the national interface's return code.
package kioskapi
