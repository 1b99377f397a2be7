package bridge

import (
	"context"
	"strings"
	"time"
)

// validType checks iType: 1 contact, 2 contactless, 3 auto (contact
// first), 4 auto (contactless first). onecard's lanes have one card slot,
// which every iType reads.
func validType(iType int) bool { return iType >= 1 && iType <= 4 }

// withDeadline bounds a call by Options.CallTimeout.
func (b *Bridge) withDeadline(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, b.opts.CallTimeout)
}

// logged reports a call at debug level and returns r.
func (b *Bridge) logged(fn string, start time.Time, r Result) Result {
	b.log.Debug("sscard call", "function", fn, "result", r.Code, "duration", time.Since(start).Round(time.Millisecond))
	return r
}

// compat is the agent's compatibility answer.
type compat struct {
	Result   int    `json:"result"`
	POutInfo string `json:"pOutInfo"`
	Message  string `json:"message"`
}

// compatCall runs one of the agent's national compatibility methods.
func (b *Bridge) compatCall(ctx context.Context, fn string, params map[string]any) Result {
	start := time.Now()
	ctx, cancel := b.withDeadline(ctx)
	defer cancel()
	var c compat
	if r, ok := b.do(ctx, fn, fn, params, &c); !ok {
		return b.logged(fn, start, r)
	}
	r := Result{Code: c.Result, Out: c.POutInfo}
	if r.Code != OK && r.Out == "" {
		r.Out = Field(c.Message) + "|"
	}
	return b.logged(fn, start, r)
}

// ReadCardBas is iReadCardBas: the 11 fields (region, 社会保障号码, 卡号,
// 卡识别码, 姓名, 卡复位信息, 规范版本, 发卡日期, 卡有效期, 终端机编号,
// 终端设备号), built by the agent (terminal/national). A degraded read
// (no PSAM or keys) returns the public fields with the reason's code.
func (b *Bridge) ReadCardBas(ctx context.Context, iType int) Result {
	if !validType(iType) {
		return failure(CodeBadParameter)
	}
	return b.compatCall(ctx, "iReadCardBas", map[string]any{"iType": iType})
}

// Step1 is iReadCardBas_HSM_Step1: region | 卡复位信息 | 算法标识 | 卡识别码 |
// rnd1..rnd4 | [终端号 |] for the caller's HSM (terminal/national.FormatStep1).
func (b *Bridge) Step1(ctx context.Context, iType int) Result {
	if !validType(iType) {
		return failure(CodeBadParameter)
	}
	return b.compatCall(ctx, "iReadCardBas_HSM_Step1", map[string]any{"iType": iType})
}

// Step2 is iReadCardBas_HSM_Step2 with the HSM's "RESULT1|RESULT2|":
// iReadCardBas's fields. Malformed keys give -41, -42 or -23.
func (b *Bridge) Step2(ctx context.Context, key string) Result {
	return b.compatCall(ctx, "iReadCardBas_HSM_Step2", map[string]any{"pKey": key})
}

// askPIN asks the PINSource for purpose; nil without a source.
func (b *Bridge) askPIN(ctx context.Context, purpose PINPurpose) (secret, int) {
	if b.opts.PIN == nil {
		return nil, OK
	}
	pin, code := b.opts.PIN(ctx, purpose)
	if code != OK {
		clear(pin)
		return nil, code
	}
	if pin == nil { // the source has no PIN: the agent's PIN pad
		return nil, OK
	}
	if len(pin) < 4 || len(pin) > 12 || !isDigits(string(pin)) {
		clear(pin)
		return nil, CodePINLength
	}
	return secret(pin), OK
}

// pinFailure is the Result of a PINSource refusal.
func pinFailure(code int) Result {
	if code < 0 {
		return failure(code)
	}
	return failure(CodePINCancelled)
}

// VerifyPIN is iVerifyPIN: the PIN from the PINSource (or the agent's PIN
// pad) verified on the card. Success: code 0, empty output; a wrong PIN
// -51 with output "密码错误|<tries left>|"; blocked -52.
func (b *Bridge) VerifyPIN(ctx context.Context, iType int) Result {
	if !validType(iType) {
		return failure(CodeBadParameter)
	}
	pin, code := b.askPIN(ctx, PINVerify)
	if code != OK {
		return pinFailure(code)
	}
	defer pin.zero()
	start := time.Now()
	ctx, cancel := b.withDeadline(ctx)
	defer cancel()
	params := map[string]any{}
	if pin != nil {
		params["pin"] = pin
	}
	if r, ok := b.do(ctx, "iVerifyPIN", "verifyPIN", params, nil); !ok {
		return b.logged("iVerifyPIN", start, r)
	}
	return b.logged("iVerifyPIN", start, Result{})
}

// ChangePIN is iChangePIN: the current and the new PIN from the
// PINSource (purposes PINCurrent, PINNew) or the agent's PIN pad.
// Results as VerifyPIN.
func (b *Bridge) ChangePIN(ctx context.Context, iType int) Result {
	if !validType(iType) {
		return failure(CodeBadParameter)
	}
	old, code := b.askPIN(ctx, PINCurrent)
	if code != OK {
		return pinFailure(code)
	}
	defer old.zero()
	params := map[string]any{}
	if old != nil {
		nw, code := b.askPIN(ctx, PINNew)
		if code != OK {
			return pinFailure(code)
		}
		defer nw.zero()
		params["pin"], params["newPin"] = old, nw
	}
	start := time.Now()
	ctx, cancel := b.withDeadline(ctx)
	defer cancel()
	if r, ok := b.do(ctx, "iChangePIN", "changePIN", params, nil); !ok {
		return b.logged("iChangePIN", start, r)
	}
	return b.logged("iChangePIN", start, Result{})
}

// identity is the part of the agent's readIdentity answer the library
// uses (docs/kiosk-api.md).
type identity struct {
	Mode        string `json:"mode"`
	CardID      string `json:"card_id"`
	CardType    string `json:"card_type"`
	SpecVersion string `json:"spec_version"`
	InitOrg     string `json:"init_org"`
	IssueDate   string `json:"issue_date"`
	ExpiryDate  string `json:"expiry_date"`
	CardNumber  string `json:"card_number"`
	PersonID    string `json:"person_id"`
	Name        string `json:"name"`
	Sex         string `json:"sex"`
	Nation      string `json:"nation"`
	Birthplace  string `json:"birthplace"`
	BirthDate   string `json:"birth_date"`
}

// recordValue maps the supported files and tags of iReadCard to identity
// fields (ssc-card-facts §1.4). Tags 07..0D need an authorised read.
var recordValue = map[string]map[byte]func(*identity) string{
	"SSSEEF05": {
		0x01: func(i *identity) string { return i.CardID },
		0x02: func(i *identity) string { return i.CardType },
		0x03: func(i *identity) string { return i.SpecVersion },
		0x04: func(i *identity) string { return i.InitOrg },
		0x05: func(i *identity) string { return i.IssueDate },
		0x06: func(i *identity) string { return i.ExpiryDate },
		0x07: func(i *identity) string { return i.CardNumber },
	},
	"SSSEEF06": {
		0x08: func(i *identity) string { return i.PersonID },
		0x09: func(i *identity) string { return i.Name },
		0x0A: func(i *identity) string { return i.Sex },
		0x0B: func(i *identity) string { return i.Nation },
		0x0C: func(i *identity) string { return i.Birthplace },
		0x0D: func(i *identity) string { return i.BirthDate },
	},
}

// readIdentity reads the card through the agent; a degraded (public)
// read that cannot serve what the caller needs (holder tags, or a card
// number to compare) gets the agent's reason code from iReadCardBas
// (e.g. -2201 no PSAM), with the identity for the public fields.
func (b *Bridge) readIdentity(ctx context.Context, fn string, needHolder bool) (*identity, Result, bool) {
	var res struct {
		Identity identity `json:"identity"`
	}
	if r, ok := b.do(ctx, fn, "readIdentity", map[string]any{}, &res); !ok {
		return nil, r, false
	}
	id := &res.Identity
	if id.Mode == "public" && needHolder {
		var c compat
		if r, ok := b.do(ctx, fn, "iReadCardBas", map[string]any{"iType": 3}, &c); !ok {
			return nil, r, false
		}
		code, msg := c.Result, c.Message
		if code == OK { // the agent authenticated this time: the card changed hands
			code, msg = CodeNoPSAM, Message(CodeNoPSAM)
		}
		return id, Result{Code: code, Out: Field(msg) + "|"}, false
	}
	return id, Result{}, true
}

// ReadCard is iReadCard: the records named by pFileAddr
// ("SSSEEF05|01|07|$SSSEEF06|08|09|$"), output in the same skeleton with
// values in place of the tags. Supported: SSSEEF05 tags 01–07 and SSSEEF06
// tags 08–0D (others: -13, before the card is touched; 4E is part of 09,
// the full name). iAuthType 1 verifies the PIN first (as VerifyPIN),
// 2 authenticates with the RK key (the agent's PSAM or key service).
// pCardInfo "卡识别码|卡号|" (fields optional, "" = any card) must match
// the card (-22). Values are decoded: dates YYYYMMDD, codes as digits,
// the card ID as 32 hex digits, the name as text.
func (b *Bridge) ReadCard(ctx context.Context, iType, iAuthType int, cardInfo, fileAddr string) Result {
	if !validType(iType) || (iAuthType != 1 && iAuthType != 2) {
		return failure(CodeBadParameter)
	}
	ci, err := ParseCardInfo(cardInfo)
	if err != nil {
		return failure(CodeInputInvalid)
	}
	reqs, err := ParseFileAddr(fileAddr)
	if err != nil {
		return failure(CodeInputInvalid)
	}
	needHolder := ci.CardNumber != ""
	for _, r := range reqs {
		tags, ok := recordValue[r.File]
		if !ok {
			return failure(CodeUnsupported)
		}
		for _, t := range r.Tags {
			if _, ok := tags[t]; !ok {
				return failure(CodeUnsupported)
			}
			needHolder = needHolder || t >= 0x07
		}
	}
	if iAuthType == 1 {
		if r := b.VerifyPIN(ctx, iType); r.Code != OK {
			return r
		}
	}
	start := time.Now()
	ctx, cancel := b.withDeadline(ctx)
	defer cancel()
	id, r, ok := b.readIdentity(ctx, "iReadCard", needHolder)
	if id == nil {
		return b.logged("iReadCard", start, r)
	}
	if ok && !ci.Matches(id.CardID, id.CardNumber) {
		return b.logged("iReadCard", start, failure(CodeInputMismatch))
	}
	r.Out = FormatFileData(reqs, func(file string, tag byte) string { return recordValue[file][tag](id) })
	return b.logged("iReadCard", start, r)
}

// receipt is the part of the agent's pay answer the library uses.
type receipt struct {
	CardID        string `json:"cardId"`
	TerminalID    string `json:"terminalId"`
	TerminalSeq   uint64 `json:"terminalSeq"`
	Amount        uint32 `json:"amount"`
	BalanceBefore uint32 `json:"balanceBefore"`
	BalanceAfter  uint32 `json:"balanceAfter"`
	CardDate      string `json:"cardDate"`
	CardTime      string `json:"cardTime"`
	TAC           string `json:"tac"`
}

// DoDebit is iDoDebit: a purchase from the card's e-purse through the
// agent (journal, lost-card check, hub sync are the agent's). pPayInfo
// is "金额(分)|商户号|险种/基金|" (see PayInfo); pCardInfo "卡识别码|卡号|"
// (optional fields) is checked against the card before the payment
// (-22). The PIN comes from the PINSource (PINVerify) or the agent's PIN
// pad. Output: Debit's 9 fields. Should another card complete the
// payment (swapped after the check), the output still carries its
// receipt and the code is -22.
func (b *Bridge) DoDebit(ctx context.Context, iType int, cardInfo, payInfo string) Result {
	if !validType(iType) {
		return failure(CodeBadParameter)
	}
	ci, err := ParseCardInfo(cardInfo)
	if err != nil {
		return failure(CodeInputInvalid)
	}
	pay, err := ParsePayInfo(payInfo)
	if err != nil {
		return failure(CodeInputInvalid)
	}
	start := time.Now()
	if ci != (CardInfo{}) {
		cctx, cancel := b.withDeadline(ctx)
		id, r, ok := b.readIdentity(cctx, "iDoDebit", ci.CardNumber != "")
		cancel()
		if !ok {
			return b.logged("iDoDebit", start, r)
		}
		if !ci.Matches(id.CardID, id.CardNumber) {
			return b.logged("iDoDebit", start, failure(CodeInputMismatch))
		}
	}
	pin, code := b.askPIN(ctx, PINVerify)
	if code != OK {
		return pinFailure(code)
	}
	defer pin.zero()
	ctx, cancel := b.withDeadline(ctx)
	defer cancel()
	params := map[string]any{"amount": pay.Amount}
	if pay.Merchant != "" {
		params["merchant"] = pay.Merchant
	}
	if pay.Fund != "" {
		params["fund"] = pay.Fund
	}
	if pin != nil {
		params["pin"] = pin
	}
	var rc receipt
	if r, ok := b.do(ctx, "iDoDebit", "pay", params, &rc); !ok {
		return b.logged("iDoDebit", start, r)
	}
	out := Debit{CardID: rc.CardID, TerminalID: rc.TerminalID, TerminalSeq: rc.TerminalSeq, Amount: rc.Amount,
		BalanceBefore: rc.BalanceBefore, BalanceAfter: rc.BalanceAfter, Date: rc.CardDate, Time: rc.CardTime, TAC: rc.TAC}.String()
	if ci.CardID != "" && !strings.EqualFold(ci.CardID, rc.CardID) {
		return b.logged("iDoDebit", start, Result{Code: CodeInputMismatch, Out: out})
	}
	return b.logged("iDoDebit", start, Result{Out: out})
}

// ReaderInfo is iGetReaderInfo: the serial number of the lane's card
// reader (its ID when the reader reports none) and the terminal number
// (终端机编号, the agent's terminal.id; "" when not configured).
func (b *Bridge) ReaderInfo(ctx context.Context) (sn, termNo string, code int) {
	start := time.Now()
	ctx, cancel := b.withDeadline(ctx)
	defer cancel()
	var rd struct {
		Readers []struct {
			ID     string `json:"id"`
			Serial string `json:"serial"`
			Slots  []struct {
				ID string `json:"id"`
			} `json:"slots"`
		} `json:"readers"`
		Lanes []struct {
			Name        string `json:"name"`
			CardSlot    string `json:"cardSlot"`
			CardPresent bool   `json:"cardPresent"`
		} `json:"lanes"`
	}
	if r, ok := b.do(ctx, "iGetReaderInfo", "readers", map[string]any{}, &rd); !ok {
		return "", "", b.logged("iGetReaderInfo", start, r).Code
	}
	slot := ""
	for _, l := range rd.Lanes {
		named := b.opts.Reader != "" && l.Name == b.opts.Reader
		picked := b.opts.Reader == "" && (len(rd.Lanes) == 1 || l.CardPresent && slot == "")
		if named || picked {
			slot = l.CardSlot
		}
	}
	if slot == "" {
		return "", "", b.logged("iGetReaderInfo", start, failure(CodeReaderConnect)).Code
	}
	for _, r := range rd.Readers {
		for _, s := range r.Slots {
			if s.ID == slot {
				sn = r.Serial
				if sn == "" {
					sn = r.ID
				}
			}
		}
	}
	var st struct {
		TerminalID string `json:"terminalId"`
	}
	if r, ok := b.do(ctx, "iGetReaderInfo", "status", map[string]any{}, &st); !ok {
		return "", "", b.logged("iGetReaderInfo", start, r).Code
	}
	b.logged("iGetReaderInfo", start, Result{})
	return Field(sn), Field(st.TerminalID), OK
}
