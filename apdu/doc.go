// Package apdu is the pure, I/O-free language of onecard's smart cards:
// ISO 7816-4 command and response APDUs, status words as typed errors, T=0
// response chaining over an abstract Transmitter, BER-TLV, the fixed
// tag/length/value records of the social-security card (社会保障卡) and the
// value codecs its files use.
//
// # Commands and responses
//
// [Command] covers ISO 7816-4 cases 1–4 in short and extended form. Ne is
// the expected response length (0: no Le; 256 and 65536 are coded 00 and
// 0000). [Command.Bytes] chooses the extended form only when needed;
// [ParseCommand] is strict — the length fields must account for every byte —
// and all its errors wrap [ErrMalformedCommand]. [ParseResponse] needs the
// two status bytes ([ErrMalformedResponse] otherwise). Parsed data is always
// a copy of the input.
//
// # Status words
//
// [Response.Err] is nil only for 9000. Any other status word becomes a
// *[StatusError] whose message gives the meaning in English and Chinese,
// e.g. "63C2: verification failed, 2 tries left (校验失败，还可尝试2次)".
// errors.Is matches sentinels such as [ErrSecurityStatus] (6982),
// [ErrAuthBlocked] (6983 and 63C0) or [ErrInsufficientBalance] (9401);
// errors.As yields a [VerifyError] with the tries left for 63Cx.
// [StatusText] gives the two texts for any status word and [NationalCode]
// the national reader interface's negative return code (6982 → -27010).
//
// # Exchanging with a card
//
// [Exchange] sends one command through a [Transmitter] (reader.Slot is one)
// and resolves 61xx with GET RESPONSE and 6Cxx with one resend, bounded by
// [MaxGetResponses] and [MaxResponseBytes] ([ErrChainTooLong]). [Run] also
// turns a non-9000 status into its *StatusError. Both honour the context
// between commands and wrap the Transmitter's errors ("transmit command: …"),
// so reader sentinels stay visible to errors.Is.
//
// # Data
//
// [ParseTLV] and [EncodeTLV] handle BER-TLV with tags of up to 4 bytes,
// lengths of up to 4 length bytes and nested constructed objects; parsing is
// strict ([ErrMalformedTLV]) and encoding minimal. [Record] is the SSC
// tag(1) len(1) value record of SSSE/EF05 and EF06, and [SSCFields] with
// [FieldByTag] describe every item of those files (name in English and
// Chinese, file, length, encoding); [Field.Decode] and [Field.Encode] turn
// values into display text and back. The codecs [EncodeCN]/[DecodeCN] (BCD,
// F-padded), [EncodeAN]/[DecodeAN] (00-padded), [EncodeGBK]/[DecodeGBK]
// (names; trailing 00/20/FF trimmed), [EncodeDate]/[DecodeDate] (YYYYMMDD,
// real dates only) and [EncodeAmount]/[DecodeAmount] (fen, 4 bytes
// big-endian) report bad values with [ErrBadValue]; DecodeCN and DecodeAN
// never fail and never hide malformed bytes.
//
// # Explaining
//
// [Explain] tells a command from a response (rule on Explain) and describes
// it for people: case and form, header fields, instruction names as used on
// SSC cards and PSAMs (SELECT, READ RECORD, VERIFY, INITIALIZE FOR PURCHASE,
// DES CRYPT, …), decoded data such as the SSSE DF name "sx1.sh.社会保障",
// and status words in English and Chinese. PIN material is masked
// ([Sensitive] tells callers which commands carry it).
//
// No function in this package panics on any input; every decoder has a fuzz
// test seeded with real traces.
package apdu
