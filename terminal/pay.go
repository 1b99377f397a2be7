package terminal

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/onecard-hub/onecard/apdu"
	"github.com/onecard-hub/onecard/terminal/journal"
	"github.com/onecard-hub/onecard/terminal/record"
)

// Purse selects the card's purse: the electronic purse (EP, 电子钱包, the
// default) or the electronic deposit (ED, 电子存折).
type Purse int

const (
	PurseEP Purse = iota
	PurseED
)

// p2 is the purse's P2 in INITIALIZE and GET BALANCE.
func (p Purse) p2() byte {
	if p == PurseED {
		return 0x01
	}
	return 0x02
}

func (p Purse) purchaseType() record.TxType {
	if p == PurseED {
		return record.TxPurchaseED
	}
	return record.TxPurchaseEP
}

func (p Purse) loadType() record.TxType {
	if p == PurseED {
		return record.TxLoadED
	}
	return record.TxLoadEP
}

// String returns "EP" or "ED".
func (p Purse) String() string {
	if p == PurseED {
		return "ED"
	}
	return "EP"
}

// PayRequest is a medical payment at a counter.
type PayRequest struct {
	Amount   uint32 // fen, > 0
	Merchant string // merchant (hospital, pharmacy) id, ≤ record.MaxMerchant bytes
	Fund     string // fund or account code, ≤ record.MaxFund bytes
	Purse    Purse
}

// Receipt is the outcome of a money or certification operation: the
// journal's entry and the record sealed with the terminal's SM2 key.
type Receipt struct {
	Seq      uint64
	State    journal.State
	Envelope *record.Envelope
}

// Record returns the signed record.
func (r *Receipt) Record() *record.Record { return r.Envelope.Record }

// String describes the receipt with personal fields masked.
func (r *Receipt) String() string {
	rec := r.Envelope.Record.Masked()
	var b strings.Builder
	fmt.Fprintf(&b, "%s #%d %s card %s amount %s", rec.Kind, r.Seq, r.State, rec.CardID, apdu.FormatFen(rec.Amount))
	if rec.Kind.Money() {
		fmt.Fprintf(&b, " balance %s→%s TAC %X", apdu.FormatFen(rec.BalanceBefore), apdu.FormatFen(rec.BalanceAfter), rec.TAC)
	}
	return b.String()
}

// checkText validates a merchant/fund/programme field.
func checkField(name, v string, max int) error {
	if len(v) > max {
		return fmt.Errorf("%w: %s longer than %d bytes", ErrBadRequest, name, max)
	}
	return nil
}

// needMoney checks what every money operation needs.
func (s *Session) needMoney() error {
	switch {
	case s.opts.Journal == nil:
		return fmt.Errorf("%w: no journal", ErrBadRequest)
	case s.opts.TerminalKey == nil:
		return fmt.Errorf("%w: no terminal key", ErrBadRequest)
	}
	return nil
}

// stamp is what a card transaction's commands carry: the terminal number
// (6 bytes BCD) and the card date (4) and time (3) in BCD.
type stamp struct{ term, date, time []byte }

// startPurse runs what a purse transaction (pay, load) does before its own
// first command: read the card ID, refuse a lost card (ErrLostCard),
// settle the card's uncertain records (ErrUnsettled), VERIFY pin when it
// is not nil (zeroing it either way: *PINError), and find the terminal
// number. It returns the card, the stamp and a record skeleton of kind
// with the card, terminal, card clock and suite set; the caller sets the
// transaction's own fields.
func (s *Session) startPurse(ctx context.Context, o *op, kind record.Kind, pin *PIN) (*cardInfo, *record.Record, stamp, error) {
	ci, err := o.identify(ctx, false)
	if err != nil {
		return nil, nil, stamp{}, err
	}
	if err := s.checkLost(ctx, ci.id); err != nil {
		return nil, nil, stamp{}, err
	}
	if err := o.settle(ctx, ci); err != nil {
		return nil, nil, stamp{}, err
	}
	if pin != nil {
		err = o.verifyPIN(ctx, pin)
		pin.Zero()
		if err != nil {
			return nil, nil, stamp{}, err
		}
	}
	termID, err := s.terminalID()
	if err != nil {
		return nil, nil, stamp{}, err
	}
	var st stamp
	st.term, _ = apdu.EncodeCN(termID, 6)
	date, tm, dateBCD, timeBCD, at := s.cardClock()
	st.date, st.time = dateBCD, timeBCD
	rec := &record.Record{Kind: kind, TerminalID: termID, CardID: ci.id, CardDate: date, CardTime: tm, At: at, Suite: ci.suite.Name()}
	return ci, rec, st, nil
}

// prepare journals rec before the transaction's first money command.
// Errors wrap ErrJournal (a sequence the journal handed out without the
// record reaching Prepared is kept for Session.Close to report).
func (s *Session) prepare(ctx context.Context, rec *record.Record) (uint64, error) {
	seq, err := s.opts.Journal.Prepare(ctx, rec)
	if err != nil {
		if seq != 0 {
			s.orphans = append(s.orphans, seq)
		}
		return 0, fmt.Errorf("%w: %w", ErrJournal, err)
	}
	return seq, nil
}

// cardClock returns the card date (YYYYMMDD), time (hhmmss), their BCD
// forms and the UTC instant.
func (s *Session) cardClock() (date, tm string, dateBCD, timeBCD []byte, at time.Time) {
	now := s.opts.Now()
	date, tm = now.Format("20060102"), now.Format("150405")
	dateBCD, _ = apdu.EncodeCN(date, 4)
	timeBCD, _ = apdu.EncodeCN(tm, 3)
	return date, tm, dateBCD, timeBCD, now.UTC().Truncate(time.Millisecond)
}

// checkLost refuses a card on the lost-card list (or when the list cannot
// answer).
func (s *Session) checkLost(ctx context.Context, id record.CardID) error {
	if s.opts.LostCards == nil {
		return nil
	}
	lost, err := s.opts.LostCards.IsLost(ctx, id)
	if err != nil {
		return fmt.Errorf("check lost-card list: %w: %w", ErrLostCard, err)
	}
	if lost {
		return fmt.Errorf("card %s: %w", id, ErrLostCard)
	}
	return nil
}

// readPIN asks the PIN pad.
func (s *Session) readPIN(ctx context.Context, purpose PINPurpose) (*PIN, error) {
	if s.opts.PINPad == nil {
		return nil, fmt.Errorf("read %s: %w", purpose, ErrNoPINPad)
	}
	pin, err := s.opts.PINPad.ReadPIN(ctx, purpose)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", purpose, err)
	}
	return pin, nil
}

// declined journals a transaction the card refused at INITIALIZE: a
// record that is Failed from its first commit, so the refusal is on file
// and no crash can leave it waiting for a settlement.
func (s *Session) declined(ctx context.Context, rec *record.Record, cause error) {
	if _, err := s.opts.Journal.Refused(ctx, rec, "card refused INITIALIZE: "+cause.Error()); err != nil {
		s.opts.Logger.Warn("journal declined transaction", "err", err)
	}
}

// conclude records the card's answer to the money command (or its absence)
// in the journal and returns the error for the caller. answerErr is the
// error of the money command: nil (the card answered with its TAC), a
// status word (the card refused: Failed) or anything else (outcome
// unknown: Uncertain).
func (s *Session) conclude(ctx context.Context, seq uint64, kind record.Kind, answerErr error, res journal.CardResult) error {
	j := s.opts.Journal
	switch {
	case answerErr == nil:
		if err := j.CardDone(ctx, seq, res); err != nil {
			s.orphans = append(s.orphans, seq)
			return &UnsettledError{TerminalSeq: seq, Kind: kind, Err: fmt.Errorf("%w: card answered but the journal did not take it: %w", ErrJournal, err)}
		}
		return nil
	case cardAnswered(answerErr):
		if err := j.Fail(ctx, seq, answerErr.Error()); err != nil {
			s.orphans = append(s.orphans, seq)
			return fmt.Errorf("%w (and %w: %w)", answerErr, ErrJournal, err)
		}
		return answerErr
	default:
		if err := j.MarkUncertain(ctx, seq, answerErr.Error()); err != nil {
			s.orphans = append(s.orphans, seq)
		}
		return &UnsettledError{TerminalSeq: seq, Kind: kind, Err: fmt.Errorf("%w: %w", ErrOutcomeUnknown, answerErr)}
	}
}

// receipt seals the journaled record.
func (s *Session) receipt(seq uint64) (*Receipt, error) {
	e, err := s.opts.Journal.Get(seq)
	if err != nil {
		return nil, fmt.Errorf("read journal record %d: %w: %w", seq, ErrJournal, err)
	}
	env, err := record.Seal(e.Record, s.opts.TerminalKey)
	if err != nil {
		return nil, fmt.Errorf("sign record %d: %w", seq, err)
	}
	return &Receipt{Seq: seq, State: e.State, Envelope: env}, nil
}

// Pay debits a medical payment from the card (PBOC purchase):
//
//  1. the PIN from the PIN pad (before the card transaction);
//  2. select SSSE, read the card ID; refuse a lost card (ErrLostCard)
//     before any money command; settle the card's uncertain records
//     (ErrUnsettled when it cannot);
//  3. VERIFY; INITIALIZE FOR PURCHASE (a refusal such as 9401 is
//     journaled as a failed record and returned, nothing moved); PSAM
//     INIT SAM FOR PURCHASE → terminal sequence and MAC1;
//  4. journal Prepare (fsync) — then DEBIT FOR PURCHASE → TAC and MAC2;
//     journal CardDone (fsync); PSAM CREDIT SAM FOR PURCHASE checks MAC2.
//
// Errors: a *PINError for a wrong or blocked PIN; the card's
// *apdu.StatusError (errors.Is apdu.ErrInsufficientBalance, ...); an
// *UnsettledError wrapping ErrOutcomeUnknown when the card left during
// DEBIT (re-insert it: the next operation settles it); ErrNoPSAM,
// ErrNoPINPad, ErrBadRequest; reader errors. When the PSAM rejects MAC2
// (ErrMAC2Invalid) the payment did happen: the receipt is returned with
// the error.
func (s *Session) Pay(ctx context.Context, req PayRequest) (*Receipt, error) {
	if req.Amount == 0 {
		return nil, fmt.Errorf("pay: %w: amount 0", ErrBadRequest)
	}
	if err := checkField("merchant", req.Merchant, record.MaxMerchant); err != nil {
		return nil, fmt.Errorf("pay: %w", err)
	}
	if err := checkField("fund", req.Fund, record.MaxFund); err != nil {
		return nil, fmt.Errorf("pay: %w", err)
	}
	if err := s.needMoney(); err != nil {
		return nil, fmt.Errorf("pay: %w", err)
	}
	if s.opts.PSAM == nil {
		return nil, fmt.Errorf("pay: %w", ErrNoPSAM)
	}
	if err := s.lock(ctx); err != nil {
		return nil, err
	}
	defer s.unlock()
	pin, err := s.readPIN(ctx, PINVerify)
	if err != nil {
		return nil, fmt.Errorf("pay: %w", err)
	}
	defer pin.Zero()
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	r, err := s.pay(ctx, req, pin)
	if err != nil {
		return r, fmt.Errorf("pay: %w", err)
	}
	return r, nil
}

func (s *Session) pay(ctx context.Context, req PayRequest, pin *PIN) (*Receipt, error) {
	o, err := s.begin(ctx, true)
	if err != nil {
		return nil, err
	}
	defer o.end()
	ci, rec, st, err := s.startPurse(ctx, o, record.KindPay, pin)
	if err != nil {
		return nil, err
	}
	rec.TxType, rec.Fund, rec.Merchant, rec.Amount = req.Purse.purchaseType(), req.Fund, req.Merchant, req.Amount
	// INITIALIZE FOR PURCHASE: key index 01, amount, terminal.
	data := append(append([]byte{0x01}, apdu.EncodeAmount(req.Amount)...), st.term...)
	init, err := o.card.run(ctx, "INITIALIZE FOR PURCHASE", apdu.Command{CLA: 0x80, INS: 0x50, P1: 0x01, P2: req.Purse.p2(), Data: data, Ne: 15})
	if err != nil {
		if cardAnswered(err) {
			s.declined(ctx, rec, err)
		}
		return nil, err
	}
	if len(init) != 15 {
		return nil, fmt.Errorf("card INITIALIZE FOR PURCHASE: %w: %d bytes, want 15", ErrBadCardData, len(init))
	}
	rec.BalanceBefore = be32(init[0:4])
	rec.CardCounter = be16(init[4:6])
	keyVer, algID := init[9], init[10]
	copy(rec.CardRandom[:], init[11:15])
	termSeq, mac1, err := o.psam.initPurchase(ctx, purchaseInit{
		rnd: rec.CardRandom[:], cardSeq: rec.CardCounter, amount: req.Amount, txType: byte(rec.TxType),
		date: st.date, time: st.time, keyVer: keyVer, algID: algID, cardFact: ci.factor(),
	})
	if err != nil {
		return nil, err
	}
	rec.PSAMSeq = termSeq
	// The record holds everything GET TRANSACTION PROOF and the TAC need
	// before the first money command.
	seq, err := s.prepare(ctx, rec)
	if err != nil {
		return nil, err
	}
	debit := make([]byte, 0, 15)
	debit = append(debit, byte(termSeq>>24), byte(termSeq>>16), byte(termSeq>>8), byte(termSeq))
	debit = append(debit, st.date...)
	debit = append(debit, st.time...)
	debit = append(debit, mac1...)
	out, derr := o.card.run(ctx, "DEBIT FOR PURCHASE", apdu.Command{CLA: 0x80, INS: 0x54, P1: 0x01, P2: 0x00, Data: debit, Ne: 8})
	if derr == nil && len(out) != 8 {
		derr = fmt.Errorf("card DEBIT FOR PURCHASE: %w: %d bytes, want 8", ErrBadCardData, len(out))
	}
	var res journal.CardResult
	if derr == nil {
		res = journal.CardResult{TAC: out[0:4], MAC2: out[4:8], BalanceAfter: rec.BalanceBefore - req.Amount}
	}
	if err := s.conclude(ctx, seq, record.KindPay, derr, res); err != nil {
		return nil, err
	}
	rc, err := s.receipt(seq)
	if err != nil {
		return nil, err
	}
	s.opts.Logger.Info("payment", "seq", seq, "card", ci.id.String(), "amount", req.Amount)
	if err := o.psam.checkMAC2(ctx, res.MAC2); err != nil {
		if !errors.Is(err, ErrMAC2Invalid) {
			err = fmt.Errorf("payment done, MAC2 not checked: %w", err)
		}
		return rc, err
	}
	return rc, nil
}
