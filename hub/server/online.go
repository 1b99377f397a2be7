package server

import (
	"errors"

	"github.com/onecard-hub/onecard/apdu"
	"github.com/onecard-hub/onecard/hub/ledger"
	"github.com/onecard-hub/onecard/hub/proof"
	hubsync "github.com/onecard-hub/onecard/hub/sync"
	"github.com/onecard-hub/onecard/sm"
	"github.com/onecard-hub/onecard/terminal"
	"github.com/onecard-hub/onecard/terminal/record"
)

// loadAuth checks the card's MAC1 (the card is genuine, its balance and
// counter real), reserves the amount of the programme's entitlement for
// this load (the card's online counter names it), then answers with MAC2.
// The terminal is the session's.
func (ss *session) loadAuth(id uint64, m *hubsync.LoadAuth) {
	card, err := record.ParseCardID(m.CardID)
	if err != nil {
		ss.send(id, hubsync.NewError(hubsync.CodeBadRequest, "card ID", false))
		return
	}
	suite := sm.SuiteSM4
	if m.AlgFlag == terminal.AlgFlag3DES {
		suite = sm.Suite3DES
	}
	term, err1 := apdu.EncodeCN(ss.term, 6)
	date, err2 := apdu.EncodeCN(m.CardDate, 4)
	tm, err3 := apdu.EncodeCN(m.CardTime, 3)
	if err := errors.Join(err1, err2, err3); err != nil {
		ss.send(id, hubsync.NewError(hubsync.CodeBadRequest, "terminal number, date or time", false))
		return
	}
	a := proof.LoadAuth{CardID: card[:], Balance: m.Balance, OnlineSeq: m.OnlineSeq, Amount: m.Amount, Type: m.TxType}
	copy(a.Random[:], m.Random)
	copy(a.Terminal[:], term)
	copy(a.Date[:], date)
	copy(a.Time[:], tm)
	v := proof.Verifier{Keys: ss.s.o.Keys, Suite: suite}
	if err := v.VerifyLoadMAC1(a, m.MAC1); err != nil {
		ss.log.Warn("hub: load refused: card MAC1 invalid", "seq", m.TerminalSeq)
		ss.send(id, hubsync.NewError(hubsync.CodeNotAuthorised, "card MAC1 invalid", false))
		return
	}
	// One authorisation per card at a time in this hub: the reservation
	// reads the hold and the grant, then posts.
	lk := ss.s.cardLock(card)
	lk.Lock()
	err = ss.s.o.Ledger.ReserveLoad(ss.ctx, ledger.LoadRequest{Programme: m.Programme, Card: card,
		TxType: record.TxType(m.TxType), Counter: m.OnlineSeq, Amount: m.Amount, Day: m.CardDate})
	lk.Unlock()
	if err != nil {
		code := hubsync.CodeNotAuthorised
		if errors.Is(err, ErrLedgerUnavailable) {
			code = hubsync.CodeUnavailable
		}
		ss.log.Info("hub: load refused", "seq", m.TerminalSeq, "programme", m.Programme, "err", err)
		ss.send(id, hubsync.NewError(code, err.Error(), false))
		return
	}
	mac2, err := v.LoadMAC2(a)
	if err != nil {
		ss.send(id, hubsync.NewError(hubsync.CodeUnavailable, "MAC2 could not be computed", false))
		return
	}
	ss.log.Info("hub: load authorised", "seq", m.TerminalSeq, "programme", m.Programme, "amount", m.Amount)
	ss.send(id, &hubsync.LoadAuthResult{MAC2: mac2})
}

// keyRead is the remote key service of a two-step identity read.
func (ss *session) keyRead(id uint64, m *hubsync.KeyRead) {
	card, err := record.ParseCardID(m.CardID)
	if err != nil {
		ss.send(id, hubsync.NewError(hubsync.CodeBadRequest, "card ID", false))
		return
	}
	st := terminal.Step1{Region: m.Region, Historical: m.Historical, AlgFlag: m.AlgFlag, CardID: card, TerminalID: ss.term}
	for i := range st.Randoms {
		copy(st.Randoms[i][:], m.Randoms[i])
	}
	k, err := ss.s.keys.AuthenticateRead(ss.ctx, st)
	if err != nil {
		code := hubsync.CodeUnavailable
		if errors.Is(err, terminal.ErrBadRequest) || errors.Is(err, terminal.ErrPSAMNoAlgorithm) {
			code = hubsync.CodeBadRequest
		}
		ss.send(id, hubsync.NewError(code, "key service: request not served", false))
		return
	}
	ss.send(id, &hubsync.KeyReadResult{Result1: k.Result1, Result2: k.Result2})
}

// credits answers a pending-credits query.
func (ss *session) credits(id uint64, m *hubsync.CreditsQuery) {
	card, err := record.ParseCardID(m.CardID)
	if err != nil {
		ss.send(id, hubsync.NewError(hubsync.CodeBadRequest, "card ID", false))
		return
	}
	cs, err := ss.s.o.Ledger.PendingCredits(ss.ctx, card)
	if err != nil {
		ss.log.Warn("hub: pending credits unavailable", "err", err)
		ss.send(id, hubsync.NewError(hubsync.CodeUnavailable, "credits unavailable", false))
		return
	}
	if len(cs) > hubsync.MaxCredits {
		cs = cs[:hubsync.MaxCredits]
	}
	ss.send(id, &hubsync.Credits{CardID: card.String(), Credits: cs})
}
