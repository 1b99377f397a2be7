// Package record is the transaction record every card operation produces
// (a payment, a load, an eligibility certification) and its canonical,
// signed byte encoding: the unit the terminal journals, uploads and the hub
// verifies and posts.
//
// # Identity
//
// A record is identified by its terminal number (12 digits, as PSAMs number
// terminals) and terminal sequence (a uint64 the journal assigns, never
// reused): that pair is the idempotency key from the card to the ledger. The
// card is identified by its 卡识别码 ([CardID], 16 bytes).
//
// # Encoding
//
// [Record.MarshalBinary] writes the canonical encoding (version [Version]):
// a magic "OCTR", a version byte, fixed-size fields in a fixed order with
// big-endian integers and BCD dates, then length-prefixed (one byte)
// variable fields. docs/record-encoding.md documents it byte by byte with a
// worked example that a test regenerates. [Decode] is strict: it rejects a
// wrong magic (ErrMagic), an unknown version (ErrVersion), short input
// (ErrTruncated), trailing bytes (ErrTrailingData), over-long fields
// (ErrFieldTooLong) and bad values or enums (ErrInvalid); every decoded
// record satisfies [Record.Validate], and decoding then encoding gives the
// same bytes. Field errors are *[FieldError] values naming the field; they
// never contain personal data or key material.
//
// # Signatures
//
// [Record.Sign] makes an SM2 signature (SM3 with the Z value) over the
// canonical bytes with the user ID = the 12 ASCII digits of the terminal
// number, returned in the fixed 64-byte raw r‖s form. The signature is not
// part of the signed bytes; an [Envelope] carries record bytes and signature
// together ([Seal], [DecodeEnvelope], [Envelope.Verify]).
//
// # Personal fields
//
// CardNumber (卡号, AAZ500), PersonID (社会保障号码, AAC002) and HolderName
// (姓名, AAC003) are personal. They are optional (empty when the terminal
// could not read them) and [Record.Masked] returns a copy fit for display
// and logs. Encryption at rest is the journal's job (package
// terminal/journal seals these three fields with SM4-GCM when given a key).
package record
