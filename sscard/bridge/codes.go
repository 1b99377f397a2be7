package bridge

// Return codes of the national interface (ssc-card-facts §2.3) that the
// library produces itself; the agent supplies the others (card status
// words, PSAM and key conditions) with its answers. They equal
// terminal/national's constants (checked by a test), restated here so the
// library does not link the terminal stack.
const (
	OK                = 0
	CodeNoCard        = -2
	CodeNoAnswer      = -4
	CodeReaderConnect = -11 // no agent, agent refused us, reader busy or missing
	CodeUnsupported   = -13 // no PIN source, unsupported file or tag
	CodeBadParameter  = -14 // bad iType / iAuthType, NULL pointer, input too long
	CodeInputMismatch = -22 // pCardInfo does not match the card
	CodeInputInvalid  = -23 // malformed pCardInfo, pPayInfo, pFileAddr
	CodePINCancelled  = -31
	CodePINLength     = -33
	CodePINWrong      = -51
	CodePINLocked     = -52
	CodeNoPSAM        = -2201
	CodeOther         = -9000
	// CodeOutputTruncated: the output did not fit BufferSize bytes; the
	// buffer holds the complete fields that fit (onecard's own code, in
	// terminal/national's range of onecard codes).
	CodeOutputTruncated = -9010
)

var messages = map[int]string{
	OK: "成功", CodeNoCard: "无卡", CodeNoAnswer: "卡无应答", CodeReaderConnect: "读卡器连接错",
	CodeUnsupported: "不支持该命令", CodeBadParameter: "参数错误", CodeInputMismatch: "输入与卡内数据不一致",
	CodeInputInvalid: "输入数据无效", CodePINCancelled: "密码键盘：取消输入", CodePINLength: "密码键盘：密码长度错误",
	CodePINWrong: "密码错误", CodePINLocked: "密码已锁定", CodeNoPSAM: "无PSAM卡", CodeOther: "其他错误",
	CodeOutputTruncated: "输出超出缓冲区",
}

// Message is the library's text for a code it produces ("其他错误" for
// others; the agent's answers carry their own text).
func Message(code int) string {
	if m, ok := messages[code]; ok {
		return m
	}
	return messages[CodeOther]
}

// apiError is an error answer of the kiosk API (docs/kiosk-api.md).
type apiError struct {
	Code            string `json:"code"`
	Message         string `json:"message"`
	TriesLeft       *int   `json:"triesLeft"`
	National        int    `json:"national"`
	NationalMessage string `json:"nationalMessage"`
}

// byAPICode maps API error codes without a national code (the agent's
// own refusals) to the national table.
var byAPICode = map[string]int{
	"no_card": CodeNoCard, "card_removed": CodeNoCard, "card_mute": CodeNoAnswer, "timeout": CodeNoAnswer,
	"busy": CodeReaderConnect, "reader_busy": CodeReaderConnect, "reader_gone": CodeReaderConnect,
	"unknown_reader": CodeReaderConnect, "ambiguous_reader": CodeReaderConnect, "service_down": CodeReaderConnect,
	"shutting_down": CodeReaderConnect, "unauthorised": CodeReaderConnect, "rate_limited": CodeReaderConnect,
	"too_many_requests": CodeReaderConnect, "pin_required": CodeUnsupported, "unknown_method": CodeUnsupported,
	"unavailable": CodeUnsupported, "pin_format": CodePINLength, "bad_request": CodeBadParameter,
	"no_psam": CodeNoPSAM,
}

// result turns an API error into the national result: the agent's
// national code when it gave one, else byAPICode, else CodeOther. The
// output is the code's text followed by '|'; for a wrong PIN the tries
// left follow as a second field ("密码错误|2|").
func (e *apiError) result() Result {
	code := e.National
	if code == 0 {
		code = CodeOther
		if c, ok := byAPICode[e.Code]; ok {
			code = c
		}
	}
	msg := e.NationalMessage
	if msg == "" || e.National == 0 {
		msg = Message(code)
	}
	out := Field(msg) + "|"
	if code == CodePINWrong && e.TriesLeft != nil {
		out += itoa(*e.TriesLeft) + "|"
	}
	return Result{Code: code, Out: out}
}

// failure is a Result with the library's text for code.
func failure(code int) Result { return Result{Code: code, Out: Field(Message(code)) + "|"} }
