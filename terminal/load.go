package terminal

import (
	"context"
	"errors"
	"fmt"

	"github.com/onecard-hub/onecard/apdu"
	"github.com/onecard-hub/onecard/terminal/journal"
	"github.com/onecard-hub/onecard/terminal/record"
)

// LoadRequest is a benefit or subsidy credit onto the card.
type LoadRequest struct {
	Amount    uint32 // fen, > 0
	Programme string // programme id (stored as the record's Merchant)
	Fund      string
	Purse     Purse // EP (default; no PIN) or ED (needs the PIN)
}

// Load credits the card (PBOC load) with the authoriser's MAC2:
//
//  1. select SSSE, read the card ID; refuse a lost card; settle the
//     card's uncertain records; VERIFY for the ED purse;
//  2. INITIALIZE FOR LOAD → balance, online counter, random, MAC1 (a
//     refusal is journaled as a failed record); journal Prepare;
//  3. the card transaction ends; the Authoriser checks MAC1 and the
//     entitlement and returns MAC2 (a refusal fails the record,
//     ErrNotAuthorised);
//  4. a new transaction on the same, still-connected card: CREDIT FOR LOAD
//     → TAC; journal CardDone.
//
// Errors as for Pay, plus ErrNotAuthorised.
func (s *Session) Load(ctx context.Context, req LoadRequest) (*Receipt, error) {
	if req.Amount == 0 {
		return nil, fmt.Errorf("load: %w: amount 0", ErrBadRequest)
	}
	if err := checkField("programme", req.Programme, record.MaxMerchant); err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	if err := checkField("fund", req.Fund, record.MaxFund); err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	if err := s.needMoney(); err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	if s.opts.Authoriser == nil {
		return nil, fmt.Errorf("load: %w: no authoriser", ErrNotAuthorised)
	}
	if err := s.lock(ctx); err != nil {
		return nil, err
	}
	defer s.unlock()
	var pin *PIN
	if req.Purse == PurseED {
		var err error
		if pin, err = s.readPIN(ctx, PINVerify); err != nil {
			return nil, fmt.Errorf("load: %w", err)
		}
		defer pin.Zero()
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	r, err := s.load(ctx, req, pin)
	if err != nil {
		return r, fmt.Errorf("load: %w", err)
	}
	return r, nil
}

func (s *Session) load(ctx context.Context, req LoadRequest, pin *PIN) (*Receipt, error) {
	o, err := s.begin(ctx, s.termID == "" && s.opts.PSAM != nil)
	if err != nil {
		return nil, err
	}
	defer o.end()
	ci, rec, st, err := s.startPurse(ctx, o, record.KindLoad, pin)
	if err != nil {
		return nil, err
	}
	rec.TxType, rec.Fund, rec.Merchant, rec.Amount = req.Purse.loadType(), req.Fund, req.Programme, req.Amount
	data := append(append([]byte{0x01}, apdu.EncodeAmount(req.Amount)...), st.term...)
	init, err := o.card.run(ctx, "INITIALIZE FOR LOAD", apdu.Command{CLA: 0x80, INS: 0x50, P1: 0x00, P2: req.Purse.p2(), Data: data, Ne: 16})
	if err != nil {
		if cardAnswered(err) {
			s.declined(ctx, rec, err)
		}
		return nil, err
	}
	if len(init) != 16 {
		return nil, fmt.Errorf("card INITIALIZE FOR LOAD: %w: %d bytes, want 16", ErrBadCardData, len(init))
	}
	rec.BalanceBefore = be32(init[0:4])
	rec.CardCounter = be16(init[4:6])
	copy(rec.CardRandom[:], init[8:12])
	mac1 := append([]byte(nil), init[12:16]...)
	seq, err := s.prepare(ctx, rec)
	if err != nil {
		return nil, err
	}
	// The authoriser is a network round trip: no transaction (card or
	// PSAM) is held across it. The card stays connected (its INITIALIZE
	// session lives until CREDIT).
	o.end()
	mac2, aerr := s.opts.Authoriser.AuthoriseLoad(ctx, LoadAuthorisation{
		TerminalID: rec.TerminalID, TerminalSeq: seq, CardID: ci.id, AlgFlag: ci.algFlag,
		Programme: req.Programme, Fund: req.Fund, Amount: req.Amount, TxType: rec.TxType,
		Balance: rec.BalanceBefore, OnlineSeq: rec.CardCounter, Random: rec.CardRandom, MAC1: mac1,
		CardDate: rec.CardDate, CardTime: rec.CardTime,
	})
	if aerr == nil && len(mac2) != record.CodeLen {
		aerr = fmt.Errorf("%w: MAC2 of %d bytes", ErrNotAuthorised, len(mac2))
	}
	if aerr != nil {
		if !errors.Is(aerr, ErrNotAuthorised) {
			aerr = fmt.Errorf("%w: %w", ErrNotAuthorised, aerr)
		}
		if err := s.opts.Journal.Fail(ctx, seq, aerr.Error()); err != nil {
			s.orphans = append(s.orphans, seq)
		}
		return nil, aerr
	}
	if err := o.restartCard(ctx); err != nil {
		// CREDIT was never sent: nothing moved.
		if ferr := s.opts.Journal.Fail(ctx, seq, err.Error()); ferr != nil {
			s.orphans = append(s.orphans, seq)
		}
		return nil, err
	}
	credit := make([]byte, 0, 11)
	credit = append(credit, st.date...)
	credit = append(credit, st.time...)
	credit = append(credit, mac2...)
	out, cerr := o.card.run(ctx, "CREDIT FOR LOAD", apdu.Command{CLA: 0x80, INS: 0x52, P1: 0x00, P2: 0x00, Data: credit, Ne: 4})
	if cerr == nil && len(out) != 4 {
		cerr = fmt.Errorf("card CREDIT FOR LOAD: %w: %d bytes, want 4", ErrBadCardData, len(out))
	}
	var res journal.CardResult
	if cerr == nil {
		res = journal.CardResult{TAC: out, MAC2: mac2, BalanceAfter: rec.BalanceBefore + req.Amount}
	}
	if err := s.conclude(ctx, seq, record.KindLoad, cerr, res); err != nil {
		return nil, err
	}
	s.opts.Logger.Info("load", "seq", seq, "card", ci.id.String(), "amount", req.Amount)
	return s.receipt(seq)
}
