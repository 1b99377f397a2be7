// Package national speaks the national social-security reader interface
// (SSCardDriver / 读卡通用接口, ssc-card-facts §2) on top of package
// terminal, so hospital and kiosk programs written for the vendor DLLs can
// switch to onecard without changing what they parse:
//
//   - [ReadCardBas]: the iReadCardBas / iReadCardBas_HSM_Step2 output, 11
//     fields each followed by '|': region, 社会保障号码, 卡号, 卡识别码, 姓名
//     (09 + 4E), 卡复位信息 (ATR historical bytes), 规范版本, 发卡日期,
//     卡有效期, 终端机编号 (PSAM), 终端设备号. [ParseBasic] reads it back
//     (9 to 11 fields, as real drivers emit).
//   - [FormatStep1] / [ParseStep1]: the iReadCardBas_HSM_Step1 output,
//     region | historical | 算法标识 | 卡识别码 | rnd1 | rnd2 | rnd3 | rnd4 |
//     [终端号 |]. onecard's order of the randoms (drivers differ [U]):
//     rnd1‖rnd2 is the internal-authentication input, rnd3‖rnd4 the card's
//     external-authentication challenge.
//   - [FormatStep2Key] / [ParseStep2Key]: the HSM's answer
//     "RESULT1|RESULT2|" (32 hex digits each; RESULT2 empty for
//     second-generation cards, and an extra trailing '|' is accepted).
//   - [Code] and [ResultOf]: the interface's negative return codes for
//     terminal's typed errors: -2 no card, -21 not genuine, -25 HSM
//     mismatch, -51 wrong PIN (tries left in Result), -52 PIN locked,
//     -2201 no PSAM, -2202, -2203, card status words as minus the
//     unsigned SW (apdu.NationalCode: 6982 → -27010), and onecard's own
//     codes from -9000 for conditions the national table lacks.
//
// Strings are Go strings (UTF-8); [EncodeGBK] gives the GBK bytes a C
// caller expects.
package national

import (
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/text/encoding/simplifiedchinese"

	"github.com/onecard-hub/onecard/terminal"
	"github.com/onecard-hub/onecard/terminal/record"
)

// Parse errors (national codes -23, -41, -42).
var (
	// ErrFormat: a string does not have the interface's field layout.
	ErrFormat = errors.New("national: malformed interface string")
	// ErrCryptoChar: crypto data with a character that is not a hex digit
	// (-41).
	ErrCryptoChar = errors.New("national: illegal character in crypto data")
	// ErrCryptoLength: crypto data of the wrong length (-42).
	ErrCryptoLength = errors.New("national: wrong length of crypto data")
)

// Basic is the iReadCardBas record.
type Basic struct {
	Region      string // 发卡地区行政区划代码
	PersonID    string // 社会保障号码
	CardNumber  string // 卡号
	CardID      string // 卡识别码, 32 hex digits
	Name        string // 姓名
	Historical  string // 卡复位信息, hex
	SpecVersion string // 规范版本
	IssueDate   string // 发卡日期
	ExpiryDate  string // 卡有效期
	TerminalID  string // 终端机编号
	DeviceID    string // 终端设备号
}

// BasicOf takes an Identity's fields. A degraded identity gives empty
// 社会保障号码, 卡号 and 姓名, as vendor drivers do.
func BasicOf(id *terminal.Identity) Basic {
	return Basic{
		Region: id.Region(), PersonID: id.PersonID, CardNumber: id.CardNumber,
		CardID: id.CardID.String(), Name: id.Name,
		Historical:  strings.ToUpper(hex.EncodeToString(id.Historical)),
		SpecVersion: id.SpecVersion, IssueDate: id.IssueDate, ExpiryDate: id.ExpiryDate,
		TerminalID: id.TerminalID, DeviceID: id.DeviceID,
	}
}

func (b Basic) fields() []string {
	return []string{b.Region, b.PersonID, b.CardNumber, b.CardID, b.Name, b.Historical,
		b.SpecVersion, b.IssueDate, b.ExpiryDate, b.TerminalID, b.DeviceID}
}

// String formats the 11 fields, each followed by '|'. A '|' inside a field
// (never in card data) is dropped so the layout cannot break.
func (b Basic) String() string {
	var s strings.Builder
	for _, f := range b.fields() {
		s.WriteString(strings.ReplaceAll(f, "|", ""))
		s.WriteByte('|')
	}
	return s.String()
}

// ReadCardBas returns iReadCardBas's output and return code for the result
// of terminal.Session.ReadIdentity: the string and 0 for an authenticated
// read; the public fields and the reason's code for a degraded read (e.g.
// -2201 without PSAM); "" and the error's code when the read failed.
func ReadCardBas(id *terminal.Identity, err error) (string, int) {
	if err != nil || id == nil {
		if err == nil {
			err = terminal.ErrBadRequest
		}
		return "", Code(err)
	}
	out := BasicOf(id).String()
	if id.Mode == terminal.ModePublic && id.Reason != nil {
		return out, Code(id.Reason)
	}
	return out, 0
}

// splitFields splits a '|'-terminated string into its fields.
func splitFields(s string, minN, maxN int) ([]string, error) {
	if !strings.HasSuffix(s, "|") {
		return nil, fmt.Errorf("%w: no terminating '|'", ErrFormat)
	}
	f := strings.Split(s[:len(s)-1], "|")
	if len(f) < minN || len(f) > maxN {
		return nil, fmt.Errorf("%w: %d fields, want %d to %d", ErrFormat, len(f), minN, maxN)
	}
	return f, nil
}

// ParseBasic parses iReadCardBas output: 9 to 11 '|'-terminated fields
// (drivers without a PSAM omit the terminal numbers). The card ID must be
// 32 hex digits. Errors wrap ErrFormat.
func ParseBasic(s string) (Basic, error) {
	f, err := splitFields(s, 9, 11)
	if err != nil {
		return Basic{}, fmt.Errorf("parse iReadCardBas output: %w", err)
	}
	for len(f) < 11 {
		f = append(f, "")
	}
	b := Basic{f[0], f[1], f[2], f[3], f[4], f[5], f[6], f[7], f[8], f[9], f[10]}
	if _, err := record.ParseCardID(b.CardID); err != nil {
		return Basic{}, fmt.Errorf("parse iReadCardBas output: %w: card ID", ErrFormat)
	}
	return b, nil
}

// FormatStep1 formats iReadCardBas_HSM_Step1's output: 8 fields, plus the
// terminal number as a 9th when known.
func FormatStep1(s terminal.Step1) string {
	f := []string{s.Region, strings.ToUpper(hex.EncodeToString(s.Historical)), fmt.Sprintf("%02X", s.AlgFlag), s.CardID.String()}
	for _, r := range s.Randoms {
		f = append(f, strings.ToUpper(hex.EncodeToString(r[:])))
	}
	if s.TerminalID != "" {
		f = append(f, s.TerminalID)
	}
	return strings.Join(f, "|") + "|"
}

// ParseStep1 parses a Step1 string (8 or 9 fields), as a key service
// receives it. Errors wrap ErrFormat, ErrCryptoChar or ErrCryptoLength.
func ParseStep1(s string) (terminal.Step1, error) {
	f, err := splitFields(s, 8, 9)
	if err != nil {
		return terminal.Step1{}, fmt.Errorf("parse Step1: %w", err)
	}
	var st terminal.Step1
	st.Region = f[0]
	if st.Historical, err = hexField(f[1], -1); err != nil {
		return terminal.Step1{}, fmt.Errorf("parse Step1 historical bytes: %w", err)
	}
	flag, err := hexField(f[2], 1)
	if err != nil {
		return terminal.Step1{}, fmt.Errorf("parse Step1 algorithm flag: %w", err)
	}
	st.AlgFlag = flag[0]
	id, err := hexField(f[3], 16)
	if err != nil {
		return terminal.Step1{}, fmt.Errorf("parse Step1 card ID: %w", err)
	}
	copy(st.CardID[:], id)
	if st.Region != st.CardID.String()[:6] {
		return terminal.Step1{}, fmt.Errorf("parse Step1: %w: region %q does not start the card ID", ErrFormat, st.Region)
	}
	for i := range st.Randoms {
		r, err := hexField(f[4+i], 8)
		if err != nil {
			return terminal.Step1{}, fmt.Errorf("parse Step1 random %d: %w", i+1, err)
		}
		copy(st.Randoms[i][:], r)
	}
	if len(f) == 9 {
		st.TerminalID = f[8]
	}
	return st, nil
}

// hexField decodes hex digits; n ≥ 0 is the required byte length.
func hexField(s string, n int) ([]byte, error) {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return nil, ErrCryptoChar
		}
	}
	if len(s)%2 != 0 || (n >= 0 && len(s) != 2*n) {
		return nil, ErrCryptoLength
	}
	b, err := hex.DecodeString(s)
	if err != nil {
		return nil, ErrCryptoChar
	}
	return b, nil
}

// FormatStep2Key formats the key service's answer as "RESULT1|RESULT2|".
func FormatStep2Key(k terminal.Step2Key) string {
	return strings.ToUpper(hex.EncodeToString(k.Result1)) + "|" + strings.ToUpper(hex.EncodeToString(k.Result2)) + "|"
}

// ParseStep2Key parses "RESULT1|RESULT2|" (RESULT1 32 hex digits, RESULT2
// 32 or none; one extra trailing '|' is accepted). Errors wrap ErrFormat,
// ErrCryptoChar (-41) or ErrCryptoLength (-42).
func ParseStep2Key(s string) (terminal.Step2Key, error) {
	f, err := splitFields(s, 2, 3)
	if err != nil {
		return terminal.Step2Key{}, fmt.Errorf("parse Step2 key: %w", err)
	}
	if len(f) == 3 && f[2] != "" {
		return terminal.Step2Key{}, fmt.Errorf("parse Step2 key: %w: unexpected third field", ErrFormat)
	}
	var k terminal.Step2Key
	if k.Result1, err = hexField(f[0], 16); err != nil {
		return terminal.Step2Key{}, fmt.Errorf("parse Step2 key RESULT1: %w", err)
	}
	if f[1] != "" {
		if k.Result2, err = hexField(f[1], 16); err != nil {
			return terminal.Step2Key{}, fmt.Errorf("parse Step2 key RESULT2: %w", err)
		}
	}
	return k, nil
}

// EncodeGBK converts an interface string to the GBK bytes C callers of
// the vendor DLLs expect. Errors: characters GBK cannot encode.
func EncodeGBK(s string) ([]byte, error) {
	b, err := simplifiedchinese.GBK.NewEncoder().String(s)
	if err != nil {
		return nil, fmt.Errorf("encode GBK: %w", err)
	}
	return []byte(b), nil
}

// DecodeGBK converts GBK bytes from a C caller to a Go string.
func DecodeGBK(b []byte) (string, error) {
	s, err := simplifiedchinese.GBK.NewDecoder().Bytes(b)
	if err != nil {
		return "", fmt.Errorf("decode GBK: %w", err)
	}
	return string(s), nil
}
