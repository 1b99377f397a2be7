package apdu

import (
	"errors"
	"fmt"
)

// Status words used on social-security cards, PBOC e-purses and PSAMs.
//
// Status words that carry a parameter (61xx, 6Cxx, 63Cx) are built with
// [SWMoreData], [SWWrongLe] and [SWVerifyFailed].
const (
	SWOK                  uint16 = 0x9000 // normal processing
	SWDataCorrupted       uint16 = 0x6281 // part of returned data may be corrupted
	SWEndOfFile           uint16 = 0x6282 // end of file/record reached before Ne bytes
	SWFileInvalidated     uint16 = 0x6283 // selected file invalidated (PBOC: application blocked)
	SWMemoryFailure       uint16 = 0x6581 // memory failure
	SWWrongLength         uint16 = 0x6700 // wrong length (Lc or Le)
	SWInvalidState        uint16 = 0x6901 // command not accepted (invalid state)
	SWIncompatibleFile    uint16 = 0x6981 // command incompatible with file structure
	SWSecurityStatus      uint16 = 0x6982 // security status not satisfied
	SWAuthBlocked         uint16 = 0x6983 // authentication method (PIN/key) blocked
	SWRefDataInvalid      uint16 = 0x6984 // reference data invalid (e.g. no challenge)
	SWConditions          uint16 = 0x6985 // conditions of use not satisfied
	SWNoCurrentEF         uint16 = 0x6986 // command not allowed (no current EF)
	SWSMDataMissing       uint16 = 0x6987 // expected secure-messaging data objects missing
	SWSMDataIncorrect     uint16 = 0x6988 // secure-messaging data objects (MAC) incorrect
	SWWrongData           uint16 = 0x6A80 // incorrect parameters in the data field
	SWFuncNotSupported    uint16 = 0x6A81 // function not supported (application/card locked)
	SWFileNotFound        uint16 = 0x6A82 // file or application not found
	SWRecordNotFound      uint16 = 0x6A83 // record not found
	SWNoSpace             uint16 = 0x6A84 // not enough memory space in the file
	SWLcTLVInconsistent   uint16 = 0x6A85 // Lc inconsistent with TLV structure
	SWWrongP1P2           uint16 = 0x6A86 // incorrect parameters P1-P2
	SWLcP1P2Inconsistent  uint16 = 0x6A87 // Lc inconsistent with P1-P2
	SWRefNotFound         uint16 = 0x6A88 // referenced data (key) not found
	SWWrongParams         uint16 = 0x6B00 // wrong parameters P1-P2 (offset outside the EF)
	SWINSNotSupported     uint16 = 0x6D00 // instruction not supported
	SWCLANotSupported     uint16 = 0x6E00 // class not supported
	SWNoDiagnosis         uint16 = 0x6F00 // no precise diagnosis
	SWMACInvalid          uint16 = 0x9302 // MAC invalid (PBOC MAC2)
	SWAppLocked           uint16 = 0x9303 // application permanently locked
	SWInsufficientBalance uint16 = 0x9401 // insufficient balance
	SWCounterMax          uint16 = 0x9402 // transaction counter at maximum
	SWKeyIndex            uint16 = 0x9403 // key index not supported
	SWFileIDNotFound      uint16 = 0x9404 // EF file ID not found (older Chinese COS)
	SWMACUnavailable      uint16 = 0x9406 // required MAC/TAC unavailable
)

// SWVerifyFailed returns 63Cx: verification failed with tries retries
// left. tries is clamped to 0..15.
func SWVerifyFailed(tries int) uint16 { return 0x63C0 | uint16(min(max(tries, 0), 15)) }

// SWMoreData returns 61xx: n more response bytes are available (n = 256 or
// more is coded as 6100). n is clamped to 0..256.
func SWMoreData(n int) uint16 { return 0x6100 | uint16(min(max(n, 0), 256)&0xFF) }

// SWWrongLe returns 6Cxx: wrong Le, n bytes are available (256 is coded as
// 6C00). n is clamped to 0..256.
func SWWrongLe(n int) uint16 { return 0x6C00 | uint16(min(max(n, 0), 256)&0xFF) }

// Sentinel errors matched with errors.Is against a *StatusError (and so
// against any error wrapping one). A status word may match more than one:
// 63C0 matches both ErrVerifyFailed and ErrAuthBlocked.
var (
	ErrMoreData            = errors.New("more response data available (61xx)")
	ErrWrongLe             = errors.New("wrong Le (6Cxx)")
	ErrWarning             = errors.New("warning status (62xx/63xx)")
	ErrDataCorrupted       = errors.New("returned data may be corrupted")
	ErrMemoryFailure       = errors.New("card memory failure")
	ErrWrongLength         = errors.New("wrong length")
	ErrInvalidState        = errors.New("command not accepted in the current state")
	ErrIncompatibleFile    = errors.New("command incompatible with file structure")
	ErrSecurityStatus      = errors.New("security status not satisfied")
	ErrAuthBlocked         = errors.New("authentication method blocked")
	ErrRefDataInvalid      = errors.New("reference data invalid")
	ErrConditions          = errors.New("conditions of use not satisfied")
	ErrNoCurrentEF         = errors.New("command not allowed: no current EF")
	ErrSMDataIncorrect     = errors.New("secure-messaging data incorrect")
	ErrWrongData           = errors.New("incorrect data field")
	ErrFuncNotSupported    = errors.New("function not supported")
	ErrFileNotFound        = errors.New("file not found")
	ErrRecordNotFound      = errors.New("record not found")
	ErrNoSpace             = errors.New("not enough memory space")
	ErrWrongP1P2           = errors.New("incorrect parameters P1-P2")
	ErrRefNotFound         = errors.New("referenced data not found")
	ErrINSNotSupported     = errors.New("instruction not supported")
	ErrCLANotSupported     = errors.New("class not supported")
	ErrVerifyFailed        = errors.New("verification failed")
	ErrMACInvalid          = errors.New("MAC invalid")
	ErrAppLocked           = errors.New("application permanently locked")
	ErrInsufficientBalance = errors.New("insufficient balance")
	ErrCounterMax          = errors.New("transaction counter at maximum")
	ErrKeyIndex            = errors.New("key index not supported")
	ErrMACUnavailable      = errors.New("MAC or TAC unavailable")
)

// StatusError is a status word other than 9000. Its Error method gives the
// meaning in English and Chinese, e.g.
// "63C2: verification failed, 2 tries left (校验失败，还可尝试2次)".
//
// errors.Is matches the sentinels above (see [StatusError.Unwrap]); for 63Cx
// errors.As also fills a [VerifyError] (value or pointer target).
type StatusError struct {
	SW uint16
}

// Error implements error.
func (e *StatusError) Error() string {
	en, zh := StatusText(e.SW)
	return fmt.Sprintf("%04X: %s (%s)", e.SW, en, zh)
}

// Unwrap returns the sentinels the status word matches, so that
// errors.Is(err, ErrSecurityStatus) works for 6982.
func (e *StatusError) Unwrap() []error {
	sw := e.SW
	if err, ok := swSentinels[sw]; ok {
		return []error{err}
	}
	switch sw >> 8 {
	case 0x61:
		return []error{ErrMoreData}
	case 0x6C:
		return []error{ErrWrongLe}
	case 0x67:
		return []error{ErrWrongLength}
	case 0x62, 0x63:
		if sw&0xFFF0 == 0x63C0 {
			if sw&0x0F == 0 {
				return []error{ErrVerifyFailed, ErrAuthBlocked}
			}
			return []error{ErrVerifyFailed}
		}
		return []error{ErrWarning}
	}
	return nil
}

// As fills target when it is a *VerifyError or **VerifyError and the status
// word is 63Cx.
func (e *StatusError) As(target any) bool {
	if e.SW&0xFFF0 != 0x63C0 {
		return false
	}
	v := VerifyError{TriesLeft: int(e.SW & 0x0F)}
	switch t := target.(type) {
	case *VerifyError:
		*t = v
		return true
	case **VerifyError:
		*t = &v
		return true
	}
	return false
}

// VerifyError reports a failed PIN verification or key authentication
// (63Cx) with the number of tries left before the PIN or key is blocked.
// Reach it with errors.As from a *StatusError.
type VerifyError struct {
	TriesLeft int
}

// Error implements error.
func (e VerifyError) Error() string {
	return fmt.Sprintf("verification failed, %d tries left", e.TriesLeft)
}

// Unwrap makes errors.Is(VerifyError{...}, ErrVerifyFailed) true.
func (e VerifyError) Unwrap() error { return ErrVerifyFailed }

var swSentinels = map[uint16]error{
	SWDataCorrupted:       ErrDataCorrupted,
	SWMemoryFailure:       ErrMemoryFailure,
	SWInvalidState:        ErrInvalidState,
	SWIncompatibleFile:    ErrIncompatibleFile,
	SWSecurityStatus:      ErrSecurityStatus,
	SWAuthBlocked:         ErrAuthBlocked,
	SWRefDataInvalid:      ErrRefDataInvalid,
	SWConditions:          ErrConditions,
	SWNoCurrentEF:         ErrNoCurrentEF,
	SWSMDataMissing:       ErrSMDataIncorrect,
	SWSMDataIncorrect:     ErrSMDataIncorrect,
	SWWrongData:           ErrWrongData,
	SWFuncNotSupported:    ErrFuncNotSupported,
	SWFileNotFound:        ErrFileNotFound,
	SWRecordNotFound:      ErrRecordNotFound,
	SWNoSpace:             ErrNoSpace,
	SWLcTLVInconsistent:   ErrWrongLength,
	SWWrongP1P2:           ErrWrongP1P2,
	SWLcP1P2Inconsistent:  ErrWrongLength,
	SWRefNotFound:         ErrRefNotFound,
	SWWrongParams:         ErrWrongP1P2,
	SWINSNotSupported:     ErrINSNotSupported,
	SWCLANotSupported:     ErrCLANotSupported,
	SWMACInvalid:          ErrMACInvalid,
	SWAppLocked:           ErrAppLocked,
	SWInsufficientBalance: ErrInsufficientBalance,
	SWCounterMax:          ErrCounterMax,
	SWKeyIndex:            ErrKeyIndex,
	SWFileIDNotFound:      ErrFileNotFound,
	SWMACUnavailable:      ErrMACUnavailable,
}

type swText struct{ en, zh string }

var swTexts = map[uint16]swText{
	SWOK:                  {"success", "成功"},
	SWDataCorrupted:       {"part of returned data may be corrupted", "部分返回数据可能有误"},
	SWEndOfFile:           {"end of file or record reached before Le bytes", "读到文件或记录末尾，数据不足Le字节"},
	SWFileInvalidated:     {"selected file invalidated (application blocked)", "选择的文件无效（应用已锁定）"},
	SWMemoryFailure:       {"memory failure", "存储器错误"},
	SWWrongLength:         {"wrong length (Lc or Le)", "长度错误（Lc或Le）"},
	SWInvalidState:        {"command not accepted, invalid state", "命令不被接受（无效状态）"},
	SWIncompatibleFile:    {"command incompatible with file structure", "命令与文件结构不相容"},
	SWSecurityStatus:      {"security status not satisfied (PIN or key authentication missing)", "不满足安全状态（未校验PIN或未认证密钥）"},
	SWAuthBlocked:         {"authentication method blocked (PIN or key locked)", "认证方法锁定（PIN或密钥已锁）"},
	SWRefDataInvalid:      {"reference data invalid (e.g. no prior GET CHALLENGE)", "引用数据无效（如未先取随机数）"},
	SWConditions:          {"conditions of use not satisfied", "使用条件不满足"},
	SWNoCurrentEF:         {"command not allowed (no current EF)", "不允许的命令（无当前EF）"},
	SWSMDataMissing:       {"expected secure-messaging data objects missing", "缺少安全报文数据对象"},
	SWSMDataIncorrect:     {"secure-messaging data object or MAC incorrect", "安全报文数据对象或MAC不正确"},
	SWWrongData:           {"incorrect parameters in the data field", "数据域参数不正确"},
	SWFuncNotSupported:    {"function not supported (application or card locked)", "功能不支持（应用或卡已锁定）"},
	SWFileNotFound:        {"file or application not found", "未找到文件或应用"},
	SWRecordNotFound:      {"record not found", "未找到记录"},
	SWNoSpace:             {"not enough memory space in the file", "文件存储空间不足"},
	SWLcTLVInconsistent:   {"Lc inconsistent with TLV structure", "Lc与TLV结构不一致"},
	SWWrongP1P2:           {"incorrect parameters P1-P2", "参数P1、P2不正确"},
	SWLcP1P2Inconsistent:  {"Lc inconsistent with P1-P2", "Lc与P1、P2不一致"},
	SWRefNotFound:         {"referenced data or key not found", "未找到引用数据或密钥"},
	SWWrongParams:         {"wrong parameters P1-P2 (offset outside the EF)", "参数错误（偏移超出EF）"},
	SWINSNotSupported:     {"instruction not supported", "指令不支持"},
	SWCLANotSupported:     {"class not supported", "类别不支持"},
	SWNoDiagnosis:         {"no precise diagnosis", "无精确诊断"},
	SWMACInvalid:          {"MAC invalid", "MAC无效"},
	SWAppLocked:           {"application permanently locked", "应用已被永久锁定"},
	SWInsufficientBalance: {"insufficient balance", "金额不足"},
	SWCounterMax:          {"transaction counter at maximum", "交易计数器达到最大值"},
	SWKeyIndex:            {"key index not supported", "密钥索引不支持"},
	SWFileIDNotFound:      {"EF file ID not found", "EF的文件ID没有找到"},
	0x9405:                {"e-purse error 9405 (meaning not confirmed)", "电子钱包错误9405（含义未确认）"},
	SWMACUnavailable:      {"required MAC or TAC unavailable", "所需的MAC或TAC不可用"},
}

// StatusText returns the meaning of a status word in English and in
// Chinese. It never fails: status words it does not know get their ISO
// 7816-4 class meaning, or "unknown status word".
func StatusText(sw uint16) (en, zh string) {
	if t, ok := swTexts[sw]; ok {
		return t.en, t.zh
	}
	x := int(sw & 0xFF)
	switch sw >> 8 {
	case 0x61:
		if x == 0 {
			return "256 or more response bytes available (send GET RESPONSE)", "还有256或更多字节数据（发送GET RESPONSE）"
		}
		return fmt.Sprintf("%d more response bytes available (send GET RESPONSE)", x),
			fmt.Sprintf("还有%d字节数据（发送GET RESPONSE）", x)
	case 0x6C:
		if x == 0 {
			return "wrong Le, 256 bytes available", "Le错误，实际可用256字节"
		}
		return fmt.Sprintf("wrong Le, %d bytes available", x), fmt.Sprintf("Le错误，实际可用%d字节", x)
	case 0x63:
		if sw&0xF0 == 0xC0 {
			n := int(sw & 0x0F)
			if n == 0 {
				return "verification failed, no tries left (blocked)", "校验失败，已无剩余次数（已锁定）"
			}
			return fmt.Sprintf("verification failed, %d tries left", n), fmt.Sprintf("校验失败，还可尝试%d次", n)
		}
		return "warning: non-volatile memory changed", "警告：非易失存储器已改变"
	case 0x62:
		return "warning: non-volatile memory unchanged", "警告：非易失存储器未改变"
	case 0x64:
		return "execution error: non-volatile memory unchanged", "执行出错：非易失存储器未改变"
	case 0x65:
		return "execution error: non-volatile memory changed", "执行出错：非易失存储器已改变"
	case 0x66:
		return "security-related error", "安全相关错误"
	case 0x67:
		return "wrong length", "长度错误"
	case 0x68:
		return "function in CLA not supported", "不支持CLA中的功能"
	case 0x69:
		return "command not allowed", "不允许的命令"
	case 0x6A, 0x6B:
		return "wrong parameters P1-P2", "参数P1、P2错误"
	case 0x6D:
		return "instruction not supported", "指令不支持"
	case 0x6E:
		return "class not supported", "类别不支持"
	case 0x6F:
		return "no precise diagnosis", "无精确诊断"
	case 0x93, 0x94:
		return "e-purse or proprietary error", "电子钱包或专有错误"
	}
	if sw>>12 == 0x9 {
		return "proprietary status", "专有状态"
	}
	return "unknown status word", "未知状态字"
}

// PlausibleSW reports whether sw1 can start a status word: 61–6F or 90–9F
// (ISO 7816-4). 60 is a T=0 procedure byte, not a status.
func PlausibleSW(sw uint16) bool {
	sw1 := sw >> 8
	return (sw1 >= 0x61 && sw1 <= 0x6F) || (sw1 >= 0x90 && sw1 <= 0x9F)
}

// NationalCode returns the return code the national reader interface
// (SSCardDriver, ssc-card-facts §2.3) uses for a card status word: 0 for
// 9000, otherwise minus the status word read as an unsigned number, e.g.
// 6982 → -27010 and 63C2 → -25538.
func NationalCode(sw uint16) int {
	if sw == SWOK {
		return 0
	}
	return -int(sw)
}

// SWFromNationalCode is the inverse of [NationalCode] for codes that carry a
// card status word (-24832 … -40959, i.e. SW1 61–6F or 90–9F, or 0 for
// 9000). It returns false for the interface's own error codes such as -2201.
func SWFromNationalCode(code int) (uint16, bool) {
	if code == 0 {
		return SWOK, true
	}
	if code >= 0 || code < -0xFFFF {
		return 0, false
	}
	sw := uint16(-code)
	if !PlausibleSW(sw) {
		return 0, false
	}
	return sw, true
}
