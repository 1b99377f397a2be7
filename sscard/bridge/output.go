package bridge

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/text/encoding/simplifiedchinese"
)

// BufferSize is the size in bytes the library assumes for every output
// buffer (pOutInfo, pReaderSN, pPsamTermNo), the national interface's
// common practice: it never writes more, the terminating NUL included.
const BufferSize = 1024

// MaxInput bounds an input string (pKey, pCardInfo, pPayInfo, pFileAddr)
// in bytes, terminating NUL excluded; longer input is CodeBadParameter.
const MaxInput = BufferSize - 1

// ErrInput: an input string does not have its documented layout
// (CodeInputInvalid).
var ErrInput = errors.New("sscard: malformed input string")

// Result is a national function's outcome: the return code and the
// output string (UTF-8; '|'-terminated fields).
type Result struct {
	Code int
	Out  string
}

// Field makes s safe as one output field: the separators '|' and '$',
// NUL and other control characters are dropped, so a value can never
// shift the caller's split. Card data never contains them.
func Field(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '|' || r == '$' || r < 0x20 || r == 0x7F {
			return -1
		}
		return r
	}, s)
}

func itoa(n int) string { return strconv.Itoa(n) }

// toGBK encodes s; characters GBK lacks become '?'. (x/text encoders
// are stateful: one per call.)
func toGBK(s string) []byte {
	enc := simplifiedchinese.GBK.NewEncoder()
	if b, err := enc.Bytes([]byte(s)); err == nil {
		return b
	}
	var out []byte
	for _, r := range s {
		enc.Reset()
		b, err := enc.Bytes([]byte(string(r)))
		if err != nil {
			b = []byte{'?'}
		}
		out = append(out, b...)
	}
	return out
}

// Encode converts out to the GBK bytes written into a caller's buffer of
// size bytes: at most size-1 bytes of text and a terminating NUL. Text
// that does not fit is cut after the last complete '|'-terminated field
// that fits (never inside a field or a double-byte character) and the
// code is CodeOutputTruncated; otherwise it is OK. NUL bytes inside out
// are dropped (they would end the C string early); characters GBK lacks
// become '?'. size < 1 gives nil.
func Encode(out string, size int) ([]byte, int) {
	if size < 1 {
		return nil, CodeOutputTruncated
	}
	out = strings.ReplaceAll(out, "\x00", "")
	buf := make([]byte, 0, min(size, len(out)*2+1))
	code := OK
	for rest := out; rest != "" && code == OK; {
		field := rest
		if i := strings.IndexByte(rest, '|'); i >= 0 {
			field = rest[:i+1]
		}
		rest = rest[len(field):]
		b := toGBK(field)
		if len(buf)+len(b) > size-1 {
			code = CodeOutputTruncated
			break
		}
		buf = append(buf, b...)
	}
	return append(buf, 0), code
}

// DecodeInput converts a caller's GBK input string to UTF-8. Errors wrap
// ErrInput.
func DecodeInput(b []byte) (string, error) {
	s, err := simplifiedchinese.GBK.NewDecoder().Bytes(b)
	if err != nil {
		return "", fmt.Errorf("%w: not GBK", ErrInput)
	}
	return string(s), nil
}

// splitFields splits a '|'-terminated string into 1..maxN fields.
func splitFields(s string, maxN int) ([]string, error) {
	if !strings.HasSuffix(s, "|") {
		return nil, fmt.Errorf("%w: fields must end with '|'", ErrInput)
	}
	f := strings.Split(s[:len(s)-1], "|")
	if len(f) > maxN {
		return nil, fmt.Errorf("%w: %d fields, at most %d", ErrInput, len(f), maxN)
	}
	return f, nil
}

// CardInfo is pCardInfo "卡识别码|卡号|": the card the caller means. Empty
// fields (or an empty string) are not checked.
type CardInfo struct {
	CardID     string // 32 hex digits, compared case-insensitively
	CardNumber string
}

// ParseCardInfo parses pCardInfo: "" or "卡识别码|" or "卡识别码|卡号|".
// Errors wrap ErrInput.
func ParseCardInfo(s string) (CardInfo, error) {
	if s == "" {
		return CardInfo{}, nil
	}
	f, err := splitFields(s, 2)
	if err != nil {
		return CardInfo{}, fmt.Errorf("parse pCardInfo: %w", err)
	}
	ci := CardInfo{CardID: strings.ToUpper(f[0])}
	if len(f) == 2 {
		ci.CardNumber = f[1]
	}
	if ci.CardID != "" && !isHex(ci.CardID, 32) {
		return CardInfo{}, fmt.Errorf("parse pCardInfo: %w: card ID must be 32 hex digits", ErrInput)
	}
	if Field(ci.CardNumber) != ci.CardNumber {
		return CardInfo{}, fmt.Errorf("parse pCardInfo: %w: card number", ErrInput)
	}
	return ci, nil
}

// Matches reports whether the card's ID and number agree with the
// non-empty fields of ci.
func (ci CardInfo) Matches(cardID, cardNumber string) bool {
	return (ci.CardID == "" || strings.EqualFold(ci.CardID, cardID)) &&
		(ci.CardNumber == "" || ci.CardNumber == cardNumber)
}

func isHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for _, c := range []byte(s) {
		if !('0' <= c && c <= '9' || 'A' <= c && c <= 'F' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// PayInfo is iDoDebit's pPayInfo, onecard's layout (the national layout is
// unconfirmed, ssc-card-facts §2.1 [U]):
//
//	金额(分)|商户号|险种/基金|
//
// amount in fen (1 to 10 digits, 1..4294967295), then the merchant
// (hospital/pharmacy id) and the fund (险种/基金 code), each optional
// and at most 64 printable ASCII characters. "1234|H001|310|",
// "1234|H001|" and "1234|" are valid.
type PayInfo struct {
	Amount   uint32
	Merchant string
	Fund     string
}

// MaxPayField bounds the merchant and fund fields (record.MaxMerchant,
// record.MaxFund).
const MaxPayField = 64

// ParsePayInfo parses pPayInfo. Errors wrap ErrInput.
func ParsePayInfo(s string) (PayInfo, error) {
	f, err := splitFields(s, 3)
	if err != nil {
		return PayInfo{}, fmt.Errorf("parse pPayInfo: %w", err)
	}
	for len(f) < 3 {
		f = append(f, "")
	}
	if len(f[0]) < 1 || len(f[0]) > 10 || !isDigits(f[0]) {
		return PayInfo{}, fmt.Errorf("parse pPayInfo: %w: amount must be 1 to 10 digits (fen)", ErrInput)
	}
	amt, err := strconv.ParseUint(f[0], 10, 32)
	if err != nil || amt == 0 {
		return PayInfo{}, fmt.Errorf("parse pPayInfo: %w: amount must be 1..4294967295 fen", ErrInput)
	}
	for i, name := range []string{"merchant", "fund"} {
		v := f[i+1]
		if len(v) > MaxPayField {
			return PayInfo{}, fmt.Errorf("parse pPayInfo: %w: %s longer than %d", ErrInput, name, MaxPayField)
		}
		for _, c := range []byte(v) {
			if c <= 0x20 || c >= 0x7F || c == '$' {
				return PayInfo{}, fmt.Errorf("parse pPayInfo: %w: %s must be printable ASCII", ErrInput, name)
			}
		}
	}
	return PayInfo{Amount: uint32(amt), Merchant: f[1], Fund: f[2]}, nil
}

func isDigits(s string) bool {
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// FileRequest is one file of iReadCard's pFileAddr: the file name and the
// record tags asked for, in the caller's order.
type FileRequest struct {
	File string
	Tags []byte
}

// ParseFileAddr parses pFileAddr: groups "FILE|TAG|TAG|...|$", e.g.
// "SSSEEF05|01|07|$SSSEEF06|08|09|$"; tags are two hex digits; at least
// one group, each with at least one tag. File names are upper-cased.
// Errors wrap ErrInput.
func ParseFileAddr(s string) ([]FileRequest, error) {
	if !strings.HasSuffix(s, "$") {
		return nil, fmt.Errorf("parse pFileAddr: %w: groups must end with '$'", ErrInput)
	}
	var out []FileRequest
	for _, g := range strings.Split(s[:len(s)-1], "$") {
		f, err := splitFields(g, BufferSize)
		if err != nil || len(f) < 2 || f[0] == "" {
			return nil, fmt.Errorf("parse pFileAddr: %w: want FILE|TAG|...|$", ErrInput)
		}
		fr := FileRequest{File: strings.ToUpper(f[0])}
		if Field(fr.File) != fr.File {
			return nil, fmt.Errorf("parse pFileAddr: %w: file name", ErrInput)
		}
		for _, t := range f[1:] {
			if !isHex(t, 2) {
				return nil, fmt.Errorf("parse pFileAddr: %w: tag must be 2 hex digits", ErrInput)
			}
			v, _ := strconv.ParseUint(t, 16, 8)
			fr.Tags = append(fr.Tags, byte(v))
		}
		out = append(out, fr)
	}
	return out, nil
}

// FormatFileData builds iReadCard's output: pFileAddr's skeleton with each
// tag replaced by its value ("SSSEEF05|<01>|<07>|$SSSEEF06|<08>|$").
// Values pass through Field.
func FormatFileData(reqs []FileRequest, value func(file string, tag byte) string) string {
	var b strings.Builder
	for _, r := range reqs {
		b.WriteString(Field(r.File))
		b.WriteByte('|')
		for _, t := range r.Tags {
			b.WriteString(Field(value(r.File, t)))
			b.WriteByte('|')
		}
		b.WriteByte('$')
	}
	return b.String()
}

// Debit is iDoDebit's output, onecard's layout:
//
//	卡识别码|终端机编号|终端交易序号|交易金额|交易前余额|交易后余额|交易日期|交易时间|TAC|
//
// amounts in fen, date YYYYMMDD and time hhmmss from the card's
// transaction, TAC as 8 hex digits.
type Debit struct {
	CardID        string
	TerminalID    string
	TerminalSeq   uint64
	Amount        uint32
	BalanceBefore uint32
	BalanceAfter  uint32
	Date, Time    string
	TAC           string
}

// String formats the 9 fields.
func (d Debit) String() string {
	f := []string{d.CardID, d.TerminalID, strconv.FormatUint(d.TerminalSeq, 10),
		strconv.FormatUint(uint64(d.Amount), 10), strconv.FormatUint(uint64(d.BalanceBefore), 10),
		strconv.FormatUint(uint64(d.BalanceAfter), 10), d.Date, d.Time, d.TAC}
	var b strings.Builder
	for _, v := range f {
		b.WriteString(Field(v))
		b.WriteByte('|')
	}
	return b.String()
}
