package national

import (
	"context"
	"errors"

	"github.com/onecard-hub/onecard/apdu"
	"github.com/onecard-hub/onecard/reader"
	"github.com/onecard-hub/onecard/terminal"
)

// Return codes of the national reader interface (ssc-card-facts §2.3).
// Card status words are returned as apdu.NationalCode(sw).
const (
	OK                  = 0
	CodeWrongCardType   = -1
	CodeNoCard          = -2
	CodeNotPowered      = -3
	CodeNoAnswer        = -4
	CodeReaderConnect   = -11
	CodeUnsupported     = -13
	CodeBadParameter    = -14
	CodeNotGenuine      = -21
	CodeInputMismatch   = -22
	CodeInputInvalid    = -23
	CodeHSMMismatch     = -25
	CodePINCancelled    = -31
	CodePINTimeout      = -32
	CodePINLength       = -33
	CodePINMismatch     = -34
	CodeCryptoChar      = -41
	CodeCryptoLength    = -42
	CodePINWrong        = -51
	CodePINLocked       = -52
	CodeNoPSAM          = -2201
	CodePSAMNoAlgorithm = -2202
	CodePSAMNoRKSSSE    = -2203
)

// onecard's own codes, for conditions the national table has no number
// for. They are below -9000 so they never collide with a card status word
// (-24832 and below) or a national code.
const (
	CodeOther           = -9000
	CodeLostCard        = -9001 // card on the lost-card list
	CodeOutcomeUnknown  = -9002 // card left during a money command: re-insert it
	CodeUnsettled       = -9003 // an earlier transaction of this card is unsettled
	CodeJournal         = -9004 // the journal could not store the record
	CodeNotAuthorised   = -9005 // load refused by the authoriser
	CodeKeyService      = -9006 // key service (HSM) failed
	CodeMAC2Invalid     = -9007 // PSAM rejected the card's MAC2 (payment recorded)
	CodeCardCannotSign  = -9008
	CodeTimeoutOrCancel = -9009
)

var messages = map[int]string{
	OK: "成功", CodeWrongCardType: "卡类型不对", CodeNoCard: "无卡", CodeNotPowered: "有卡未上电",
	CodeNoAnswer: "卡无应答", CodeReaderConnect: "读卡器连接错", CodeUnsupported: "不支持该命令",
	CodeBadParameter: "参数错误", CodeNotGenuine: "内部认证失败（非法卡）", CodeInputMismatch: "输入与卡内数据不一致",
	CodeInputInvalid: "输入数据无效", CodeHSMMismatch: "内部认证与加密机不一致",
	CodePINCancelled: "密码键盘：取消输入", CodePINTimeout: "密码键盘：输入超时", CodePINLength: "密码键盘：密码长度错误",
	CodePINMismatch: "密码键盘：两次输入不一致", CodeCryptoChar: "加密数据含非法字符", CodeCryptoLength: "加密数据长度错误",
	CodePINWrong: "密码错误", CodePINLocked: "密码已锁定", CodeNoPSAM: "无PSAM卡",
	CodePSAMNoAlgorithm: "PSAM卡无SSF33或SM4算法", CodePSAMNoRKSSSE: "PSAM卡无RKSSSE密钥",
	CodeOther: "其他错误", CodeLostCard: "挂失卡", CodeOutcomeUnknown: "交易结果未知，请重新插卡",
	CodeUnsettled: "该卡有未处理的交易", CodeJournal: "交易日志写入失败", CodeNotAuthorised: "圈存未获授权",
	CodeKeyService: "加密机服务失败", CodeMAC2Invalid: "MAC2校验失败", CodeCardCannotSign: "卡不支持签名",
	CodeTimeoutOrCancel: "操作超时或取消",
}

// Message returns the Chinese text of a code; card status words get
// apdu.StatusText's.
func Message(code int) string {
	if m, ok := messages[code]; ok {
		return m
	}
	if sw, ok := apdu.SWFromNationalCode(code); ok {
		_, zh := apdu.StatusText(sw)
		return zh
	}
	return "未知错误"
}

// Result is a national return code with its text and, for -51, the PIN
// tries left.
type Result struct {
	Code      int
	Message   string
	TriesLeft int
}

// ResultOf maps err (nil: success) to a Result.
func ResultOf(err error) Result {
	r := Result{Code: Code(err)}
	r.Message = Message(r.Code)
	var pe *terminal.PINError
	if errors.As(err, &pe) && !pe.Blocked {
		r.TriesLeft = pe.TriesLeft
	}
	return r
}

// Code maps a terminal error to the national return code. The most
// specific condition wins: PIN errors before the card status word they
// wrap, onecard's transaction conditions before the reader error behind
// them, card status words before reader errors.
func Code(err error) int {
	if err == nil {
		return OK
	}
	var pe *terminal.PINError
	if errors.As(err, &pe) {
		if pe.Blocked {
			return CodePINLocked
		}
		return CodePINWrong
	}
	for _, m := range []struct {
		err  error
		code int
	}{
		{terminal.ErrPINCancelled, CodePINCancelled},
		{terminal.ErrPINTimeout, CodePINTimeout},
		{terminal.ErrPINFormat, CodePINLength},
		{terminal.ErrPINMismatch, CodePINMismatch},
		{terminal.ErrOutcomeUnknown, CodeOutcomeUnknown},
		{terminal.ErrUnsettled, CodeUnsettled},
		{terminal.ErrMAC2Invalid, CodeMAC2Invalid},
		{terminal.ErrJournal, CodeJournal},
		{terminal.ErrLostCard, CodeLostCard},
		{terminal.ErrNotGenuine, CodeNotGenuine},
		{terminal.ErrKeyServiceMismatch, CodeHSMMismatch},
		{terminal.ErrWrongCard, CodeInputMismatch},
		{terminal.ErrNoStep1, CodeInputInvalid},
		{ErrCryptoChar, CodeCryptoChar},
		{ErrCryptoLength, CodeCryptoLength},
		{ErrFormat, CodeInputInvalid},
		{terminal.ErrNoPSAM, CodeNoPSAM},
		{terminal.ErrPSAMNoAlgorithm, CodePSAMNoAlgorithm},
		{terminal.ErrPSAMNoRKSSSE, CodePSAMNoRKSSSE},
		{terminal.ErrNoKeys, CodeNoPSAM},
		{terminal.ErrKeyService, CodeKeyService},
		{terminal.ErrNotAuthorised, CodeNotAuthorised},
		{terminal.ErrNoSignature, CodeCardCannotSign},
		{terminal.ErrNoPINPad, CodeUnsupported},
	} {
		if errors.Is(err, m.err) {
			return m.code
		}
	}
	var se *apdu.StatusError
	if errors.As(err, &se) {
		return apdu.NationalCode(se.SW)
	}
	for _, m := range []struct {
		err  error
		code int
	}{
		{reader.ErrNoCard, CodeNoCard},
		{reader.ErrCardRemoved, CodeNoCard},
		{reader.ErrCardReset, CodeNotPowered},
		{reader.ErrCardMute, CodeNoAnswer},
		{reader.ErrTimeout, CodeNoAnswer},
		{reader.ErrReaderGone, CodeReaderConnect},
		{reader.ErrServiceDown, CodeReaderConnect},
		{reader.ErrReaderBusy, CodeReaderConnect},
		{reader.ErrUnknownSlot, CodeReaderConnect},
		{terminal.ErrBadCardData, CodeWrongCardType},
		{apdu.ErrMalformedResponse, CodeNoAnswer},
		{terminal.ErrBadRequest, CodeBadParameter},
		{context.DeadlineExceeded, CodeTimeoutOrCancel},
		{context.Canceled, CodeTimeoutOrCancel},
	} {
		if errors.Is(err, m.err) {
			return m.code
		}
	}
	return CodeOther
}
