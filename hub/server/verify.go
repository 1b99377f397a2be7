package server

import (
	"errors"
	"fmt"
	"sync"

	"github.com/onecard-hub/onecard/apdu"
	"github.com/onecard-hub/onecard/hub/proof"
	hubsync "github.com/onecard-hub/onecard/hub/sync"
	"github.com/onecard-hub/onecard/sm"
	"github.com/onecard-hub/onecard/terminal/record"
)

// checked is one record of a batch after verification: rec is set when it
// passed; otherwise code and reason say why it is rejected.
type checked struct {
	raw    []byte
	rec    *record.Record
	seq    uint64
	code   string
	reason string
	filed  bool // the ledger filed the rejection as a dead letter
}

// verifyBatch decodes and verifies every record of a batch for the
// session's terminal, on the server's shared verification workers.
func (s *Server) verifyBatch(ss *session, raws [][]byte) []checked {
	out := make([]checked, len(raws))
	var wg sync.WaitGroup
	for i, raw := range raws {
		out[i].raw = raw
		select {
		case s.verify <- struct{}{}:
		case <-ss.done:
			// The session ended: what is left is never acknowledged.
			out[i].code, out[i].reason = hubsync.RetryUnavailable, "session ended"
			continue
		}
		wg.Add(1)
		go func(c *checked) {
			defer func() { <-s.verify; wg.Done() }()
			s.verifyOne(ss, c)
		}(&out[i])
	}
	wg.Wait()
	return out
}

func (s *Server) verifyOne(ss *session, c *checked) {
	env, err := record.DecodeEnvelope(c.raw)
	if err != nil {
		c.code, c.reason = hubsync.RejectMalformed, err.Error()
		return
	}
	r := env.Record
	c.seq = r.TerminalSeq
	if r.TerminalID != ss.term {
		c.code, c.reason = hubsync.RejectWrongTerminal, "record of terminal "+r.TerminalID+" on the session of "+ss.term
		return
	}
	if r.TerminalSeq == 0 {
		c.code, c.reason = hubsync.RejectMalformed, "terminal sequence 0"
		return
	}
	if err := env.Verify(ss.pub); err != nil {
		c.code, c.reason = hubsync.RejectSignature, "terminal signature does not verify"
		return
	}
	if code, reason := s.checkCard(r); code != "" {
		c.code, c.reason = code, reason
		return
	}
	c.rec = r
}

// checkCard verifies what the card vouches for: the TAC of a purchase or
// load, the card's SM2 signature of a certification that carries one. It
// returns a reject code and reason, or "" when the record passes.
func (s *Server) checkCard(r *record.Record) (code, reason string) {
	if !r.Kind.Money() {
		sig := r.Attestation.CardSignature
		if len(sig) == 0 {
			return "", ""
		}
		v := proof.Verifier{Keys: s.o.Keys, Suite: sm.SuiteSM4}
		if err := v.VerifyCardSignature(r.CardID[:], r.Attestation.Challenge, sig); err != nil {
			return hubsync.RejectCardSignature, "card signature does not verify"
		}
		return "", ""
	}
	if len(r.TAC) == 0 {
		return hubsync.RejectNoProof, "money record without the card's TAC (outcome uncertain): reconcile with the card's log"
	}
	suite, err := sm.ParseSuite(r.Suite)
	if err != nil {
		return hubsync.RejectSuite, "unknown crypto suite"
	}
	term, err1 := apdu.EncodeCN(r.TerminalID, 6)
	date, err2 := apdu.EncodeCN(r.CardDate, 4)
	tm, err3 := apdu.EncodeCN(r.CardTime, 3)
	if err := errors.Join(err1, err2, err3); err != nil {
		return hubsync.RejectInvalid, "terminal number, date or time not BCD"
	}
	v := proof.Verifier{Keys: s.o.Keys, Suite: suite}
	switch r.Kind {
	case record.KindPay:
		p := proof.Purchase{CardID: r.CardID[:], Amount: r.Amount, Type: byte(r.TxType), TermSeq: r.PSAMSeq}
		copy(p.Terminal[:], term)
		copy(p.Date[:], date)
		copy(p.Time[:], tm)
		err = v.VerifyPurchaseTAC(p, r.TAC)
	case record.KindLoad:
		l := proof.Load{CardID: r.CardID[:], NewBalance: r.BalanceAfter, OnlineSeq: r.CardCounter,
			Amount: r.Amount, Type: byte(r.TxType)}
		copy(l.Terminal[:], term)
		copy(l.Date[:], date)
		copy(l.Time[:], tm)
		err = v.VerifyLoadTAC(l, r.TAC)
	default:
		return hubsync.RejectInvalid, fmt.Sprintf("kind %s", r.Kind)
	}
	switch {
	case errors.Is(err, proof.ErrTACMismatch):
		return hubsync.RejectTAC, "the card's TAC does not match the record"
	case err != nil:
		return hubsync.RejectInvalid, "TAC cannot be checked: " + err.Error()
	}
	return "", ""
}
