package terminal

import (
	"context"
	"fmt"

	"github.com/onecard-hub/onecard/apdu"
	"github.com/onecard-hub/onecard/sm"
	"github.com/onecard-hub/onecard/terminal/journal"
	"github.com/onecard-hub/onecard/terminal/record"
)

// CertifyRequest is a pension-eligibility certification (待遇资格认证).
type CertifyRequest struct {
	Programme string // e.g. the pension scheme code (stored as Merchant)
	Fund      string
}

// CertifyChallengeLen is the size of the terminal challenge a
// third-generation card signs.
const CertifyChallengeLen = 32

// Certify attests that the holder presented a genuine card and knew its
// PIN: an identity read that authenticates the card (PSAM or key service;
// a degraded read is refused with its reason), then one card transaction:
// the same card (ErrWrongCard), VERIFY, a journaled certify record with a
// fresh terminal challenge, and on third-generation cards the card's SM2
// signature over the challenge (80 2A 9E 9A), checked with
// Options.CardVerifier (issuer-derived key) or else the key the card
// reports (GET DATA 7F49). A bad signature fails the record
// (ErrNotGenuine).
//
// Errors: *PINError, ErrNotGenuine, ErrNoKeys and the degraded read's
// reason, ErrNoPINPad, ErrBadRequest, card and reader errors.
func (s *Session) Certify(ctx context.Context, req CertifyRequest) (*Receipt, error) {
	if err := checkField("programme", req.Programme, record.MaxMerchant); err != nil {
		return nil, fmt.Errorf("certify: %w", err)
	}
	if err := checkField("fund", req.Fund, record.MaxFund); err != nil {
		return nil, fmt.Errorf("certify: %w", err)
	}
	if err := s.needMoney(); err != nil {
		return nil, fmt.Errorf("certify: %w", err)
	}
	if err := s.lock(ctx); err != nil {
		return nil, err
	}
	defer s.unlock()
	pin, err := s.readPIN(ctx, PINVerify)
	if err != nil {
		return nil, fmt.Errorf("certify: %w", err)
	}
	defer pin.Zero()
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	r, err := s.certify(ctx, req, pin)
	if err != nil {
		return nil, fmt.Errorf("certify: %w", err)
	}
	return r, nil
}

func (s *Session) certify(ctx context.Context, req CertifyRequest, pin *PIN) (*Receipt, error) {
	id, err := s.readIdentity(ctx, ModeAuto)
	if err != nil {
		return nil, err
	}
	if id.Mode == ModePublic || !id.Genuine {
		reason := id.Reason
		if reason == nil {
			reason = ErrNoKeys
		}
		return nil, fmt.Errorf("card not authenticated: %w", reason)
	}
	o, err := s.begin(ctx, s.termID == "" && s.opts.PSAM != nil)
	if err != nil {
		return nil, err
	}
	defer o.end()
	ci, err := o.identify(ctx, false)
	if err != nil {
		return nil, err
	}
	if err := sameCard(id.CardID, ci.id); err != nil {
		return nil, err
	}
	err = o.verifyPIN(ctx, pin)
	pin.Zero()
	if err != nil {
		return nil, err
	}
	termID, err := s.terminalID()
	if err != nil {
		return nil, err
	}
	date, tm, _, _, at := s.cardClock()
	rec := &record.Record{
		Kind: record.KindCertify, TerminalID: termID, CardID: ci.id, TxType: record.TxNone,
		CardNumber: id.CardNumber, PersonID: id.PersonID, HolderName: id.Name,
		Fund: req.Fund, Merchant: req.Programme,
		CardDate: date, CardTime: tm, At: at, Suite: ci.suite.Name(),
		Attestation: record.Attestation{InternalAuthOK: true, PINVerified: true},
	}
	if ci.gen == 3 {
		if rec.Attestation.Challenge, err = s.random(CertifyChallengeLen); err != nil {
			return nil, err
		}
	}
	seq, err := s.prepare(ctx, rec)
	if err != nil {
		return nil, err
	}
	var res journal.CardResult
	if ci.gen == 3 {
		sig, err := o.cardSign(ctx, ci, rec.Attestation.Challenge)
		if err != nil {
			if ferr := s.opts.Journal.Fail(ctx, seq, err.Error()); ferr != nil {
				s.orphans = append(s.orphans, seq)
			}
			return nil, err
		}
		res.CardSignature = sig
	}
	if err := s.conclude(ctx, seq, record.KindCertify, nil, res); err != nil {
		return nil, err
	}
	s.opts.Logger.Info("certification", "seq", seq, "card", ci.id.String())
	return s.receipt(seq)
}

// cardSign asks a third-generation card for its SM2 signature over msg and
// checks it (ErrNotGenuine when it does not verify).
func (o *op) cardSign(ctx context.Context, ci *cardInfo, msg []byte) ([]byte, error) {
	sig, err := o.card.run(ctx, "SIGN (PSO)", apdu.Command{CLA: 0x80, INS: 0x2A, P1: 0x9E, P2: 0x9A, Data: msg, Ne: 64})
	if err != nil {
		return nil, err
	}
	if len(sig) != 64 {
		return nil, fmt.Errorf("card signature: %w: %d bytes, want 64", ErrBadCardData, len(sig))
	}
	if v := o.s.opts.CardVerifier; v != nil {
		if err := v.VerifyCardSignature(ci.id[:], msg, sig); err != nil {
			return nil, fmt.Errorf("card %s signature: %w: %w", ci.id, ErrNotGenuine, err)
		}
		return sig, nil
	}
	point, err := o.card.run(ctx, "GET DATA 7F49", apdu.Command{CLA: 0x00, INS: 0xCA, P1: 0x7F, P2: 0x49, Ne: 65})
	if err != nil {
		return nil, err
	}
	pub, err := sm.PublicKeyFromPoint(point)
	if err != nil {
		return nil, fmt.Errorf("card public key: %w: %w", ErrBadCardData, err)
	}
	der, err := sm.RawToDER(sig)
	if err != nil || !sm.Verify(pub, msg, der, nil) {
		return nil, fmt.Errorf("card %s signature: %w", ci.id, ErrNotGenuine)
	}
	return sig, nil
}

// VerifyPIN asks the PIN pad for the PIN and verifies it on the card
// (iVerifyPIN). Errors: *PINError (wrong: tries left; blocked),
// ErrNoPINPad and the pad's errors, card and reader errors.
func (s *Session) VerifyPIN(ctx context.Context) error {
	if err := s.lock(ctx); err != nil {
		return err
	}
	defer s.unlock()
	pin, err := s.readPIN(ctx, PINVerify)
	if err != nil {
		return fmt.Errorf("verify PIN: %w", err)
	}
	defer pin.Zero()
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	o, err := s.begin(ctx, false)
	if err != nil {
		return fmt.Errorf("verify PIN: %w", err)
	}
	defer o.end()
	if _, err := o.selectSSSE(ctx); err != nil {
		return fmt.Errorf("verify PIN: %w", err)
	}
	if err := o.verifyPIN(ctx, pin); err != nil {
		return fmt.Errorf("verify PIN: %w", err)
	}
	return nil
}

// ChangePIN asks the PIN pad for the current and the new PIN and changes
// it on the card (CHANGE PIN 80 5E 01 00 old FF new). Errors as VerifyPIN.
func (s *Session) ChangePIN(ctx context.Context) error {
	if err := s.lock(ctx); err != nil {
		return err
	}
	defer s.unlock()
	old, err := s.readPIN(ctx, PINCurrent)
	if err != nil {
		return fmt.Errorf("change PIN: %w", err)
	}
	defer old.Zero()
	nw, err := s.readPIN(ctx, PINNew)
	if err != nil {
		return fmt.Errorf("change PIN: %w", err)
	}
	defer nw.Zero()
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	o, err := s.begin(ctx, false)
	if err != nil {
		return fmt.Errorf("change PIN: %w", err)
	}
	defer o.end()
	if _, err := o.selectSSSE(ctx); err != nil {
		return fmt.Errorf("change PIN: %w", err)
	}
	ob, err := old.block()
	if err != nil {
		return fmt.Errorf("change PIN: %w", err)
	}
	defer clear(ob)
	nb, err := nw.block()
	if err != nil {
		return fmt.Errorf("change PIN: %w", err)
	}
	defer clear(nb)
	data := make([]byte, 0, len(ob)+1+len(nb))
	data = append(append(append(data, ob...), 0xFF), nb...)
	defer clear(data)
	if _, err := apdu.Run(ctx, o.card, apdu.Command{CLA: 0x80, INS: 0x5E, P1: 0x01, P2: 0x00, Data: data}); err != nil {
		return fmt.Errorf("change PIN: card CHANGE PIN: %w", pinError(err))
	}
	return nil
}
