// Package serial is the serial-port backend of package reader: it drives a
// vendor card reader (Creator CRT-310, CRT-591-M, Sankyo ICT3Q8, ...) over
// an RS-232 or USB-serial line using go.bug.st/serial, speaking whatever
// protocol the reader's firmware profile describes (package
// reader/serial/profile, data files under firmware-profiles/).
//
// [Open] opens a port, runs the profile's init sequence and returns a
// [Reader] whose slots ([Slot]: the user card, PSAMs) implement
// reader.Slot: Connect powers the card and returns the ATR, Transmit sends
// one APDU with the command the profile gives for the card's protocol,
// Reset cold-resets, Disconnect powers down. The slots of one reader share
// the line and one lock; every call honours its context and the profile's
// timers.
//
// The link layer cuts frames by their length field (never by scanning for
// an end byte), skips bounded garbage before a frame, NAKs (or re-ENQs) a
// frame with a bad checksum or cut short and re-sends a command the reader
// NAKs or does not ACK, all bounded by the profile's retry counts. A read
// timeout of go.bug.st/serial, which returns (0, nil), becomes an error
// wrapping reader.ErrTimeout; a closed or unplugged port (PortClosed, EIO)
// becomes reader.ErrReaderGone, and the Reader stays gone until reopened.
//
// Device conditions map to errors: card_absent → reader.ErrNoCard (or
// reader.ErrCardRemoved during Transmit), card_removed →
// reader.ErrCardRemoved, timeout → reader.ErrTimeout, link_lost →
// reader.ErrReaderGone, busy → reader.ErrReaderBusy, card_mute →
// reader.ErrCardMute (also named ErrCardMute here), and the sentinels of
// this package (ErrNotInitialised, ErrJam, ...) for the rest,
// all carried by a [*DeviceError] that also holds the device's own code.
//
// [Backend] is the reader.Backend for reader.Manager over configured
// readers ([Config]: port, profile, baud, address): it names readers
// stably ("serial:<profile id>@<port or /dev/serial/by-id link>"), polls
// card presence with the profile's card_status (PSAM slots by power-on
// probing, never touching a connected card), reports card and reader
// events, and reopens a lost port with a bounded back-off.
//
// [Emulator] is the other end of the line: it runs virtual.Card instances
// (user card, PSAMs) behind any io.ReadWriter — usually a pty from
// [OpenPTY] or [Emulator.ServePTY] — and answers in the protocol of the
// same profile data, handshake and error answers included, with injectable
// faults (bad checksums, NAKs, garbage, truncated frames, silence) and run-
// time card insertion and removal. It has no per-model code.
//
// [ListPorts] lists serial ports with USB VID/PID where the OS reports
// them. On Linux it opens every ttyS*/ttyHS* device to weed out
// placeholders, which resets their line settings: never call it while a
// reader on such a port is open; enumerate once at start-up.
//
// APDU bytes (which may carry PINs) are never logged; the optional logger
// sees operation names, lengths and errors only.
package serial
