// Package pcsc is the PC/SC backend of the reader layer, on
// github.com/ebfe/scard (cgo + libpcsclite on Linux):
//
//   - Slot is a reader.Slot for one PC/SC reader slot, with transactions
//     (reader.Transactor): SHARED mode, one PC/SC context per slot, every
//     call bounded by the caller's context and Options.Timeout.
//   - Backend is the reader.Backend that lists and watches the readers for
//     reader.Manager: hot-plug through \\?PnP?\Notification with polling
//     as a fallback, card insert/remove with the event counter, and
//     recovery when pcscd stops or restarts.
//   - Error carries a PC/SC return code and unwraps to the reader sentinel
//     stating its contract (see Sentinel).
//
// Rules kept throughout (reader-protocols §2, §7): the monitor has its own
// context and is woken with SCardCancel; EventState, event counter
// included, is carried into CurrentState; Status().State is never compared
// with the State constants; nothing is sent on a SCARD_SHARE_DIRECT handle
// (only used to read SCARD_ATTR_VENDOR_IFD_SERIAL_NO); ebfe/scard is never
// called with an empty slice (it panics).
//
// Observed with pcscd 1.9.9 and vsmartcard vpcd 3.3 (Debian 12), and relied
// on by the tests:
//
//   - A call in progress when pcscd dies (SCardGetStatusChange) returns
//     SCARD_F_COMM_ERROR; every later call on that context, even after pcscd
//     is back, returns SCARD_E_NO_SERVICE while IsValid still says true. A
//     context has to be released and established again.
//   - SCardGetStatusChange on the PnP pseudo-reader with CurrentState
//     UNAWARE does not return at once (it waits for a reader change or the
//     timeout); its EventState stays 0.
//   - A card pulled in the middle of an APDU makes SCardTransmit succeed
//     with an EMPTY response; the next call fails with
//     SCARD_W_REMOVED_CARD. Slot reports the empty response as
//     reader.ErrCardRemoved.
//   - Just after a card is swapped, SCardConnect can fail with
//     SCARD_W_UNPOWERED_CARD while pcscd still reports the old card
//     present (its presence poll runs every 400 ms).
//   - SCardBeginTransaction blocks while another context holds a
//     transaction (the client library retries) and cannot be cancelled;
//     SCardConnect in SHARED mode fails at once with
//     SCARD_E_SHARING_VIOLATION while another program holds the card
//     exclusively, and the reader state then has SCARD_STATE_EXCLUSIVE.
//   - vpcd answers SCardGetAttrib with "Feature not supported" for every
//     attribute, so virtual readers have no serial number.
//   - Loading vpcd for two readers from one .so file shares its slot state
//     between them: only one reader's slots reach the cards.
package pcsc
