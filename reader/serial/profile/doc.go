// Package profile is the firmware-profile engine of the serial reader
// backend: it loads one declarative data file per reader model (YAML, schema
// "reader-profile/v1", documented in firmware-profiles/SCHEMA.md), validates
// it with line-precise errors, and turns the canonical reader operations
// (power on, APDU, power off, ...) into wire frames and back.
//
// A profile carries data only, never code. The same data drives both ends of
// the line: the host side ([Profile.Plan], [Profile.ParseResponse]) and the
// reader emulator ([Profile.MatchCommand], [Profile.EncodeReply]), so a new
// reader model needs a new file and no new Go.
//
// The pieces:
//
//   - [Framing] cuts and builds frames: start bytes, optional address byte,
//     a length field (width, byte order, binary or ASCII decimal, what it
//     counts), optional end byte and a checksum (xor8, sum8, crc16-xmodem,
//     crc16-ccitt-false) over a stated range. Frames are delimited by their
//     length field, never by scanning for the end byte, because ATRs and
//     APDUs may contain it.
//   - The message layer ([Messages]) adds the command head ('C' on
//     CRT-591/Sankyo), the positive and negative response heads, the echoed
//     command bytes, per-response status bytes and the device error code.
//   - The command table ([Op], [Command]) maps each canonical operation, per
//     slot and per card protocol, to command bytes, a data layout and a reply
//     layout ([Item]).
//   - Device outcomes (status letters, error codes) map to canonical
//     [Condition] names; package reader/serial maps those to Go errors.
//
// Load a profile with [Parse] or [LoadFile]; both return an [ErrorList] of
// [*Error] values ("file:line: path: message") when the file is invalid.
// [Profile.Check] runs the profile's golden test frames.
package profile
