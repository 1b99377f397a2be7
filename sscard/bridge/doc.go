// Package bridge is the logic of onecard's drop-in replacement for the
// national reader interface library (SSCardDriver.dll / libsscard.so,
// ssc-card-facts §2): every call is forwarded to the local onecard agent
// over its loopback WebSocket API (docs/kiosk-api.md), so reader
// handling, the journal, lost-card checks and hub sync stay the agent's.
// Package main in sscard/ wraps it in the C functions; this package has
// no cgo and is tested with the race detector.
//
// # Calls
//
// [Bridge] has one method per interface function. Each returns a
// [Result]: the national return code (0 success, negative failure; card
// status words as minus the unsigned SW) and the output string (UTF-8;
// [Encode] makes the GBK bytes for the caller's buffer). Within one
// process calls are serialised (one card, one reader, as with the vendor
// DLLs); every call has a deadline ([Options.CallTimeout]) and the
// connection attempt its own ([Options.ConnectTimeout]): with no agent
// the call fails with [CodeReaderConnect] (-11) and a log line, never a
// hang.
//
// # Authentication
//
// The library connects without an Origin (it is not a browser) and
// presents the agent's native-client token ("Authorization: Bearer",
// read at every call from [Options.TokenFile], which the agent rewrites
// 0640 at each start): then it sees full identities. Without a readable
// token file it connects as a plain native client, which the agent
// admits only with kiosk.allow_no_origin, with masked identities.
//
// # PINs
//
// The national functions take the PIN on the reader's PIN pad. onecard's
// readers may have none, so the PIN comes from [Options.PIN] (the C
// export SetPINCallback): when set, it is asked before the request and
// the digits travel in the request (the agent zeroes them); when unset,
// the request carries no PIN and the agent uses its PIN pad, or answers
// pin_required, which the library returns as [CodeUnsupported] (-13).
package bridge
