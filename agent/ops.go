package agent

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/onecard-hub/onecard/agent/kioskapi"
	"github.com/onecard-hub/onecard/apdu"
	"github.com/onecard-hub/onecard/terminal"
	"github.com/onecard-hub/onecard/terminal/journal"
	"github.com/onecard-hub/onecard/terminal/national"
	"github.com/onecard-hub/onecard/terminal/record"
)

// Kiosk API methods the agent serves (besides hello, pair and auth).
const (
	MethodStatus        = "status"
	MethodReaders       = "readers"
	MethodReadIdentity  = "readIdentity"
	MethodVerifyPIN     = "verifyPIN"
	MethodChangePIN     = "changePIN"
	MethodPay           = "pay"
	MethodLoad          = "load"
	MethodCertify       = "certify"
	MethodJournalStatus = "journalStatus"
	MethodIReadCardBas  = "iReadCardBas"
)

// Progress stages pushed during card operations.
const (
	StageReading  = "reading"
	StageEnterPIN = "enter_pin"
	StageWriting  = "writing"
	StageSyncing  = "syncing"
)

func (a *Agent) methods() map[string]kioskapi.Method {
	return map[string]kioskapi.Method{
		MethodStatus:        a.apiStatus,
		MethodReaders:       a.apiReaders,
		MethodReadIdentity:  a.apiReadIdentity,
		MethodVerifyPIN:     a.apiVerifyPIN,
		MethodChangePIN:     a.apiChangePIN,
		MethodPay:           a.apiPay,
		MethodLoad:          a.apiLoad,
		MethodCertify:       a.apiCertify,
		MethodJournalStatus: a.apiJournalStatus,
		MethodIReadCardBas:  a.apiIReadCardBas,
		// national.go: the two-step (HSM) read for native clients.
		MethodIReadCardBasStep1: a.apiStep1,
		MethodIReadCardBasStep2: a.apiStep2,
	}
}

// cardOp runs fn on the lane sel picks: the lane is taken (busy when
// another request holds it), its session (re)built, the request's PINs
// handed to the lane's PIN pad through ctx and zeroed afterwards, and
// progress, metrics and a log line produced. The operation's context is
// not the page's: a page that leaves does not interrupt a card operation.
func (a *Agent) cardOp(call *kioskapi.Call, kind, sel string, pins requestPINs,
	fn func(ctx context.Context, l *lane, s *terminal.Session) (any, error)) (res any, err error) {
	start := time.Now()
	defer func() {
		for _, p := range pins {
			p.Zero()
		}
		outcome := "ok"
		if err != nil {
			outcome = kioskapi.Classify(err).Code
		}
		a.m.ops.Inc(kind, outcome)
		a.m.opSeconds.Observe(time.Since(start).Seconds(), kind)
	}()
	for _, p := range pins {
		if len(p) > 0 && !*a.cfg.Kiosk.PINInRequest {
			return nil, kioskapi.Errorf(kioskapi.CodeBadRequest, "this agent takes PINs on the reader's PIN pad only (kiosk.pin_in_request: false)")
		}
	}
	l, err := a.lanes.pick(sel)
	if err != nil {
		return nil, err
	}
	if err := l.acquire(); err != nil {
		return nil, err
	}
	defer l.release()
	l.setProgress(func(stage string) { call.Progress(stage, map[string]any{"reader": l.name}) })
	sess, err := a.lanes.session(l)
	if err != nil {
		return nil, err
	}
	l.report(StageReading)
	// PIN entry on a pad comes before the card timeout starts.
	ctx, cancel := context.WithTimeout(withPINs(context.Background(), pins), 2*a.cfg.Terminal.OpTimeout)
	defer cancel()
	res, err = fn(ctx, l, sess)
	a.log.Info("card operation", "kind", kind, "lane", l.name, "outcome", outcomeOf(err), "duration", time.Since(start).Round(time.Millisecond))
	return res, err
}

func outcomeOf(err error) string {
	if err == nil {
		return "ok"
	}
	return kioskapi.Classify(err).Code
}

// afterMoney kicks the hub client after a journaled record.
func (a *Agent) afterMoney(l *lane) {
	if a.hub != nil {
		l.report(StageSyncing)
		a.hub.Kick()
	}
}

// identityResult is readIdentity's result.
type identityResult struct {
	Reader   string          `json:"reader"`
	Masked   bool            `json:"masked"`
	Identity json.RawMessage `json:"identity"`
}

func identityJSON(id *terminal.Identity, full bool) (json.RawMessage, error) {
	if !full {
		id = id.Masked()
	}
	return id.MarshalJSON()
}

func (a *Agent) apiReadIdentity(_ context.Context, call *kioskapi.Call) (any, error) {
	var p struct {
		Reader string `json:"reader"`
		Mode   string `json:"mode"`
	}
	if err := call.Decode(&p); err != nil {
		return nil, err
	}
	mode := a.readMode
	if p.Mode != "" {
		m, err := terminal.ParseReadMode(p.Mode)
		if err != nil {
			return nil, kioskapi.Errorf(kioskapi.CodeBadRequest, "mode %q: want auto, psam, key-service or public", p.Mode)
		}
		mode = m
	}
	return a.cardOp(call, MethodReadIdentity, p.Reader, nil, func(ctx context.Context, l *lane, s *terminal.Session) (any, error) {
		id, err := s.ReadIdentity(ctx, terminal.ReadOptions{Mode: mode})
		if err != nil {
			return nil, err
		}
		raw, err := identityJSON(id, call.FullIdentity)
		if err != nil {
			return nil, err
		}
		return identityResult{Reader: l.name, Masked: !call.FullIdentity, Identity: raw}, nil
	})
}

func (a *Agent) apiVerifyPIN(_ context.Context, call *kioskapi.Call) (any, error) {
	var p struct {
		Reader string          `json:"reader"`
		PIN    kioskapi.Secret `json:"pin"`
	}
	if err := call.Decode(&p); err != nil {
		return nil, err
	}
	pins := requestPINs{terminal.PINVerify: p.PIN}
	return a.cardOp(call, MethodVerifyPIN, p.Reader, pins, func(ctx context.Context, l *lane, s *terminal.Session) (any, error) {
		if err := s.VerifyPIN(ctx); err != nil {
			return nil, err
		}
		return map[string]any{"reader": l.name, "verified": true}, nil
	})
}

func (a *Agent) apiChangePIN(_ context.Context, call *kioskapi.Call) (any, error) {
	var p struct {
		Reader string          `json:"reader"`
		PIN    kioskapi.Secret `json:"pin"`
		NewPIN kioskapi.Secret `json:"newPin"`
	}
	if err := call.Decode(&p); err != nil {
		return nil, err
	}
	if (len(p.PIN) == 0) != (len(p.NewPIN) == 0) {
		p.PIN.Zero()
		p.NewPIN.Zero()
		return nil, kioskapi.Errorf(kioskapi.CodeBadRequest, "give both pin and newPin, or neither (PIN pad)")
	}
	pins := requestPINs{terminal.PINCurrent: p.PIN, terminal.PINNew: p.NewPIN}
	return a.cardOp(call, MethodChangePIN, p.Reader, pins, func(ctx context.Context, l *lane, s *terminal.Session) (any, error) {
		if err := s.ChangePIN(ctx); err != nil {
			return nil, err
		}
		return map[string]any{"reader": l.name, "changed": true}, nil
	})
}

// purseOf parses "ep" (default) or "ed".
func purseOf(s string) (terminal.Purse, error) {
	switch strings.ToLower(s) {
	case "", "ep":
		return terminal.PurseEP, nil
	case "ed":
		return terminal.PurseED, nil
	}
	return 0, kioskapi.Errorf(kioskapi.CodeBadRequest, "purse %q: want ep or ed", s)
}

type moneyParams struct {
	Reader    string          `json:"reader"`
	Amount    uint32          `json:"amount"` // fen
	Merchant  string          `json:"merchant"`
	Programme string          `json:"programme"`
	Fund      string          `json:"fund"`
	Purse     string          `json:"purse"`
	PIN       kioskapi.Secret `json:"pin"`
}

func (a *Agent) apiPay(_ context.Context, call *kioskapi.Call) (any, error) {
	var p moneyParams
	if err := call.Decode(&p); err != nil {
		return nil, err
	}
	req, err := payRequest(p)
	if err != nil {
		p.PIN.Zero()
		return nil, err
	}
	return a.cardOp(call, MethodPay, p.Reader, requestPINs{terminal.PINVerify: p.PIN}, func(ctx context.Context, l *lane, s *terminal.Session) (any, error) {
		rc, err := s.Pay(ctx, req)
		if rc != nil {
			a.afterMoney(l)
		}
		if err != nil {
			return nil, err
		}
		return receiptOf(l.name, rc, call.FullIdentity), nil
	})
}

func payRequest(p moneyParams) (terminal.PayRequest, error) {
	if p.Amount == 0 {
		return terminal.PayRequest{}, kioskapi.Errorf(kioskapi.CodeBadRequest, "amount (fen) must be more than 0")
	}
	if p.Programme != "" {
		return terminal.PayRequest{}, kioskapi.Errorf(kioskapi.CodeBadRequest, "pay takes merchant, not programme")
	}
	purse, err := purseOf(p.Purse)
	if err != nil {
		return terminal.PayRequest{}, err
	}
	return terminal.PayRequest{Amount: p.Amount, Merchant: p.Merchant, Fund: p.Fund, Purse: purse}, nil
}

func (a *Agent) apiLoad(_ context.Context, call *kioskapi.Call) (any, error) {
	var p moneyParams
	if err := call.Decode(&p); err != nil {
		return nil, err
	}
	purse, err := purseOf(p.Purse)
	switch {
	case err != nil:
	case p.Amount == 0:
		err = kioskapi.Errorf(kioskapi.CodeBadRequest, "amount (fen) must be more than 0")
	case p.Merchant != "":
		err = kioskapi.Errorf(kioskapi.CodeBadRequest, "load takes programme, not merchant")
	}
	if err != nil {
		p.PIN.Zero()
		return nil, err
	}
	req := terminal.LoadRequest{Amount: p.Amount, Programme: p.Programme, Fund: p.Fund, Purse: purse}
	return a.cardOp(call, MethodLoad, p.Reader, requestPINs{terminal.PINVerify: p.PIN}, func(ctx context.Context, l *lane, s *terminal.Session) (any, error) {
		rc, err := s.Load(ctx, req)
		if rc != nil {
			a.afterMoney(l)
		}
		if err != nil {
			return nil, err
		}
		return receiptOf(l.name, rc, call.FullIdentity), nil
	})
}

func (a *Agent) apiCertify(_ context.Context, call *kioskapi.Call) (any, error) {
	var p struct {
		Reader    string          `json:"reader"`
		Programme string          `json:"programme"`
		Fund      string          `json:"fund"`
		PIN       kioskapi.Secret `json:"pin"`
	}
	if err := call.Decode(&p); err != nil {
		return nil, err
	}
	req := terminal.CertifyRequest{Programme: p.Programme, Fund: p.Fund}
	return a.cardOp(call, MethodCertify, p.Reader, requestPINs{terminal.PINVerify: p.PIN}, func(ctx context.Context, l *lane, s *terminal.Session) (any, error) {
		rc, err := s.Certify(ctx, req)
		if rc != nil {
			a.afterMoney(l)
		}
		if err != nil {
			return nil, err
		}
		return receiptOf(l.name, rc, call.FullIdentity), nil
	})
}

// receiptJSON is a receipt as pages print it.
type receiptJSON struct {
	Reader        string    `json:"reader"`
	Kind          string    `json:"kind"`
	State         string    `json:"state"`
	TerminalID    string    `json:"terminalId"`
	TerminalSeq   uint64    `json:"terminalSeq"`
	CardID        string    `json:"cardId"`
	CardNumber    string    `json:"cardNumber,omitempty"`
	PersonID      string    `json:"personId,omitempty"`
	HolderName    string    `json:"holderName,omitempty"`
	Masked        bool      `json:"masked"`
	Amount        uint32    `json:"amount"`
	AmountText    string    `json:"amountText"`
	BalanceBefore uint32    `json:"balanceBefore"`
	BalanceAfter  uint32    `json:"balanceAfter"`
	BalanceText   string    `json:"balanceText"`
	Purse         string    `json:"purse,omitempty"`
	Merchant      string    `json:"merchant,omitempty"`
	Fund          string    `json:"fund,omitempty"`
	CardDate      string    `json:"cardDate"`
	CardTime      string    `json:"cardTime"`
	At            time.Time `json:"at"`
	TAC           string    `json:"tac,omitempty"`
	CardSigned    bool      `json:"cardSigned,omitempty"`
	Signature     string    `json:"signature"`
}

func receiptOf(laneName string, rc *terminal.Receipt, full bool) receiptJSON {
	r := rc.Record()
	if !full {
		r = r.Masked()
	}
	out := receiptJSON{
		Reader: laneName, Kind: r.Kind.String(), State: rc.State.String(),
		TerminalID: r.TerminalID, TerminalSeq: r.TerminalSeq, CardID: r.CardID.String(),
		CardNumber: r.CardNumber, PersonID: r.PersonID, HolderName: r.HolderName, Masked: !full,
		Amount: r.Amount, AmountText: apdu.FormatFen(r.Amount),
		BalanceBefore: r.BalanceBefore, BalanceAfter: r.BalanceAfter, BalanceText: apdu.FormatFen(r.BalanceAfter),
		Merchant: r.Merchant, Fund: r.Fund, CardDate: r.CardDate, CardTime: r.CardTime, At: r.At,
		TAC: upperHex(r.TAC), CardSigned: len(r.Attestation.CardSignature) > 0,
		Signature: strings.ToUpper(hex.EncodeToString(rc.Envelope.Signature)),
	}
	switch r.TxType {
	case record.TxLoadED, record.TxPurchaseED:
		out.Purse = "ed"
	case record.TxLoadEP, record.TxPurchaseEP:
		out.Purse = "ep"
	}
	return out
}

// apiIReadCardBas is the compatibility method for pages written for the
// vendors' local services: params {"iType":1..4} (contact, contactless,
// auto contact first, auto contactless first — all read the lane's card
// slot), result {"result": national return code, "pOutInfo": the
// 11-field string, "message": the code's text}. Failures are results
// with a negative code, never errors, as in the DLL. Pages not allowed
// full identities get the masked fields in pOutInfo.
func (a *Agent) apiIReadCardBas(_ context.Context, call *kioskapi.Call) (any, error) {
	var p struct {
		IType  int    `json:"iType"`
		Reader string `json:"reader"`
	}
	if err := call.Decode(&p); err != nil {
		return nil, err
	}
	type result struct {
		Result   int    `json:"result"`
		POutInfo string `json:"pOutInfo"`
		Message  string `json:"message"`
	}
	if p.IType < 1 || p.IType > 4 {
		return result{Result: national.CodeBadParameter, Message: national.Message(national.CodeBadParameter)}, nil
	}
	var id *terminal.Identity
	_, err := a.cardOp(call, MethodIReadCardBas, p.Reader, nil, func(ctx context.Context, l *lane, s *terminal.Session) (any, error) {
		var err error
		id, err = s.ReadIdentity(ctx, terminal.ReadOptions{Mode: a.readMode})
		return nil, err
	})
	if err != nil {
		code := compatCode(err)
		return result{Result: code, Message: national.Message(code)}, nil
	}
	if !call.FullIdentity {
		id = id.Masked()
	}
	out, code := national.ReadCardBas(id, nil)
	return result{Result: code, POutInfo: out, Message: national.Message(code)}, nil
}

// compatCode maps an agent refusal to the national table: lane busy,
// reader missing or ambiguous → -11 (读卡器连接错), no card → -2.
func compatCode(err error) int {
	var e *kioskapi.Error
	if errors.As(err, &e) && e.Unwrap() == nil {
		switch e.Code {
		case kioskapi.CodeNoCard:
			return national.CodeNoCard
		case kioskapi.CodeBadRequest:
			return national.CodeBadParameter
		}
		return national.CodeReaderConnect
	}
	return national.Code(err)
}

// journalJSON is the journal's state for pages and operators.
type journalJSON struct {
	Records                map[string]int `json:"records"`
	Unsent                 int            `json:"unsent"`
	OldestUnsent           time.Time      `json:"oldestUnsent,omitzero"`
	OldestUnsentAgeSeconds float64        `json:"oldestUnsentAgeSeconds"`
	DeadLetters            int            `json:"deadLetters"`
	HubAck                 uint64         `json:"hubAck"`
	NextSeq                uint64         `json:"nextSeq"`
}

func (a *Agent) journalState() (journalJSON, error) {
	js, err := a.journal.Stats()
	if err != nil {
		return journalJSON{}, err
	}
	out := journalJSON{Records: map[string]int{}, Unsent: js.Unsent, OldestUnsent: js.OldestUnsent,
		OldestUnsentAgeSeconds: js.OldestUnsentAge.Seconds(), DeadLetters: js.DeadLetters, HubAck: js.HubAck, NextSeq: js.NextSeq}
	for _, s := range journal.States {
		out.Records[s.String()] = js.Counts[s]
	}
	return out, nil
}

func (a *Agent) hubState() *HubStatus {
	if a.hub == nil {
		return nil
	}
	st, err := a.hub.Status()
	if err != nil {
		return &HubStatus{LastError: err.Error()}
	}
	return &st
}

func (a *Agent) apiJournalStatus(_ context.Context, call *kioskapi.Call) (any, error) {
	if err := call.Decode(&struct{}{}); err != nil {
		return nil, err
	}
	js, err := a.journalState()
	if err != nil {
		return nil, kioskapi.Wrap(kioskapi.CodeJournal, err)
	}
	return map[string]any{"journal": js, "hub": a.hubState()}, nil
}

// laneJSON describes a lane.
type laneJSON struct {
	Name        string `json:"name"`
	CardSlot    string `json:"cardSlot,omitempty"`
	PSAMSlot    string `json:"psamSlot,omitempty"`
	CardPresent bool   `json:"cardPresent"`
	Busy        bool   `json:"busy"`
	Error       string `json:"error,omitempty"`
}

// laneList resolves the lanes now: the configured ones, or one per
// non-PSAM slot.
func (a *Agent) laneList() []laneJSON {
	refs := allSlots(a.mgr.Readers())
	var out []laneJSON
	if len(a.lanes.configured) > 0 {
		for _, l := range a.lanes.configured {
			j := laneJSON{Name: l.name, Busy: l.busy.Load()}
			if u, err := a.lanes.cardSlot(l, refs); err != nil {
				j.Error = err.Error()
			} else {
				j.CardSlot, j.CardPresent = u.s.ID, u.s.Present
				j.PSAMSlot, _ = a.lanes.psamSlot(l, u, refs)
			}
			out = append(out, j)
		}
		return out
	}
	for _, x := range refs {
		if isPSAMSlot(x.s) {
			continue
		}
		l := &lane{name: x.s.ID, autoID: x.s.ID}
		j := laneJSON{Name: x.s.ID, CardSlot: x.s.ID, CardPresent: x.s.Present}
		a.lanes.mu.Lock()
		if known, ok := a.lanes.auto[x.s.ID]; ok {
			j.Busy = known.busy.Load()
		}
		a.lanes.mu.Unlock()
		j.PSAMSlot, _ = a.lanes.psamSlot(l, x, refs)
		out = append(out, j)
	}
	return out
}

func (a *Agent) apiReaders(_ context.Context, call *kioskapi.Call) (any, error) {
	if err := call.Decode(&struct{}{}); err != nil {
		return nil, err
	}
	rs := []readerJSON{}
	for _, r := range a.mgr.Readers() {
		rs = append(rs, readerOf(r))
	}
	return map[string]any{"readers": rs, "lanes": a.laneList()}, nil
}

// Status is the agent's state (the status method, the admin /v1/status
// and 'onecard agent status').
func (a *Agent) Status() map[string]any {
	st := map[string]any{
		"agent": "onecard", "version": a.opts.Version, "api": kioskapi.APIVersion,
		"uptimeSeconds": time.Since(a.started).Seconds(),
		"terminalId":    a.cfg.Terminal.ID, "deviceId": a.cfg.Terminal.DeviceID,
		"pinPad": a.opts.PINPad != nil, "pinInRequest": *a.cfg.Kiosk.PINInRequest,
		"moneyReady": a.termKey != nil, "readers": len(a.mgr.Readers()), "lanes": a.laneList(),
		"connections": a.kiosk.Connections(), "hub": a.hubState(),
	}
	if js, err := a.journalState(); err == nil {
		st["journal"] = js
	} else {
		st["journalError"] = err.Error()
	}
	return st
}

func (a *Agent) apiStatus(_ context.Context, call *kioskapi.Call) (any, error) {
	if err := call.Decode(&struct{}{}); err != nil {
		return nil, err
	}
	return a.Status(), nil
}
