package terminal

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/onecard-hub/onecard/apdu"
	"github.com/onecard-hub/onecard/terminal/journal"
	"github.com/onecard-hub/onecard/terminal/record"
)

// Outcome is how a settlement ended.
type Outcome int

const (
	// Unresolved: the card could not tell (its proof was superseded, its
	// log does not reach back far enough, or the card left); the record
	// stays uncertain for the hub's reconciliation.
	Unresolved Outcome = iota
	// Happened: the card's log shows this transaction at the record's
	// counter and GET TRANSACTION PROOF returned its TAC: card-done.
	Happened
	// DidNotHappen: the card's counter never passed the record's counter,
	// or another transaction used it: failed, nothing moved.
	DidNotHappen
)

func (o Outcome) String() string {
	switch o {
	case Happened:
		return "happened"
	case DidNotHappen:
		return "did-not-happen"
	}
	return "unresolved"
}

// Settlement is the result of settling one journal record with its card.
type Settlement struct {
	Seq     uint64
	Kind    record.Kind
	Outcome Outcome
	// TAC and MAC2 from GET TRANSACTION PROOF (Happened).
	TAC, MAC2 []byte
	// Detail explains the decision (no personal data).
	Detail string
}

// Recover is the start-up step: journal.Recover marks every record left
// Prepared by a crash Uncertain, and the non-final records are returned.
// The uncertain ones are settled when their card comes back: every
// operation on a card first settles that card's records (see Settle).
func (s *Session) Recover(ctx context.Context) ([]journal.Entry, error) {
	if s.opts.Journal == nil {
		return nil, fmt.Errorf("recover: %w: no journal", ErrBadRequest)
	}
	if err := s.lock(ctx); err != nil {
		return nil, err
	}
	defer s.unlock()
	entries, err := s.opts.Journal.Recover(ctx, s.opts.Now())
	if err != nil {
		return nil, fmt.Errorf("recover: %w: %w", ErrJournal, err)
	}
	s.orphans = nil
	return entries, nil
}

// Settle settles the inserted card's uncertain records now (every other
// operation does it first anyway) and returns what it decided. A record
// the card cannot settle is left uncertain and reported as Unresolved.
func (s *Session) Settle(ctx context.Context) ([]Settlement, error) {
	if err := s.lock(ctx); err != nil {
		return nil, err
	}
	defer s.unlock()
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	o, err := s.begin(ctx, false)
	if err != nil {
		return nil, fmt.Errorf("settle: %w", err)
	}
	defer o.end()
	ci, err := o.identify(ctx, false)
	if err != nil {
		return nil, fmt.Errorf("settle: %w", err)
	}
	return o.settleAll(ctx, ci)
}

// settle settles ci's records before an operation. Records the card
// cannot settle block money operations (a new transaction of the same type
// would supersede the proof the old one needs): it returns an
// *UnsettledError wrapping ErrUnsettled.
func (o *op) settle(ctx context.Context, ci *cardInfo) error {
	res, err := o.settleAll(ctx, ci)
	if err != nil {
		return err
	}
	for _, r := range res {
		if r.Outcome == Unresolved {
			return &UnsettledError{TerminalSeq: r.Seq, Kind: r.Kind, Err: fmt.Errorf("%w: %s", ErrUnsettled, r.Detail)}
		}
	}
	return nil
}

// settleAll settles every uncertain record of the card (and records this
// process left prepared because a journal write failed).
func (o *op) settleAll(ctx context.Context, ci *cardInfo) ([]Settlement, error) {
	s := o.s
	j := s.opts.Journal
	if j == nil {
		return nil, nil
	}
	// Prepared records this process could not move (journal write
	// failure): they become uncertain first.
	var keep []uint64
	for _, seq := range s.orphans {
		e, err := j.Get(seq)
		if err != nil {
			keep = append(keep, seq)
			continue
		}
		if e.State == journal.Prepared && e.Record.CardID == ci.id {
			if err := j.MarkUncertain(ctx, seq, "journal write failed after the card was addressed"); err != nil {
				keep = append(keep, seq)
			}
		}
	}
	s.orphans = keep
	entries, err := j.PendingForCard(ci.id)
	if err != nil {
		return nil, fmt.Errorf("settle: %w: %w", ErrJournal, err)
	}
	if len(entries) == 0 {
		return nil, nil
	}
	var log []logEntry
	logRead := false
	var out []Settlement
	for _, e := range entries {
		r := e.Record
		st := Settlement{Seq: e.Seq, Kind: r.Kind}
		if !r.Kind.Money() {
			// Nothing moved; an interrupted certification did not complete.
			st.Outcome, st.Detail = DidNotHappen, "certification interrupted before the card's answer"
			if err := j.Fail(ctx, e.Seq, st.Detail); err != nil {
				return out, fmt.Errorf("settle record %d: %w: %w", e.Seq, ErrJournal, err)
			}
			out = append(out, st)
			continue
		}
		if !logRead {
			if log, err = o.readLog(ctx); err != nil {
				return out, fmt.Errorf("settle: %w", err)
			}
			logRead = true
		}
		if err := o.settleMoney(ctx, r, log, &st); err != nil {
			return out, fmt.Errorf("settle record %d: %w", e.Seq, err)
		}
		switch st.Outcome {
		case Happened:
			after := r.BalanceBefore + r.Amount
			if r.Kind == record.KindPay {
				after = r.BalanceBefore - r.Amount
			}
			if err := j.CardDone(ctx, e.Seq, journal.CardResult{TAC: st.TAC, MAC2: st.MAC2, BalanceAfter: after}); err != nil {
				return out, fmt.Errorf("settle record %d: %w: %w", e.Seq, ErrJournal, err)
			}
		case DidNotHappen:
			if err := j.Fail(ctx, e.Seq, st.Detail); err != nil {
				return out, fmt.Errorf("settle record %d: %w: %w", e.Seq, ErrJournal, err)
			}
		}
		s.opts.Logger.Info("settled record", "seq", e.Seq, "kind", r.Kind.String(), "outcome", st.Outcome.String(), "detail", st.Detail)
		out = append(out, st)
	}
	return out, nil
}

// settleMoney decides a purchase or load from the card's transaction log
// and GET TRANSACTION PROOF, never by guessing:
//
//   - the log has an entry of the record's type at the record's counter
//     that matches it (amount, terminal, date, time) and the card gives
//     the proof for that counter: Happened, with the card's TAC;
//   - the log has an entry at that counter that does not match: another
//     transaction used the counter, so this one did not happen;
//   - the log has no entry at that counter, none of that type beyond it
//     (the card's counter never passed it) and the card has no proof for
//     it: DidNotHappen;
//   - anything else: Unresolved.
func (o *op) settleMoney(ctx context.Context, r *record.Record, log []logEntry, st *Settlement) error {
	term, err := apdu.EncodeCN(r.TerminalID, 6)
	if err != nil {
		return fmt.Errorf("%w: terminal number", ErrBadRequest)
	}
	date, _ := apdu.EncodeCN(r.CardDate, 4)
	tm, _ := apdu.EncodeCN(r.CardTime, 3)
	typ := byte(r.TxType)
	var match *logEntry
	beyond := false
	for i := range log {
		e := &log[i]
		if e.txType != typ {
			continue
		}
		if e.seq == r.CardCounter && match == nil {
			match = e
		}
		if e.seq > r.CardCounter {
			beyond = true
		}
	}
	ours := match != nil && match.amount == r.Amount && bytes.Equal(match.terminal, term) &&
		bytes.Equal(match.date, date) && bytes.Equal(match.time, tm)
	mac2, tac, perr := o.getProof(ctx, typ, r.CardCounter)
	switch {
	case perr != nil && !cardAnswered(perr):
		return perr // the card left: try again next time
	case ours && perr == nil:
		st.Outcome, st.TAC, st.MAC2 = Happened, tac, mac2
		st.Detail = fmt.Sprintf("card log has the transaction at counter %d; TAC from GET TRANSACTION PROOF", r.CardCounter)
	case match != nil && !ours:
		st.Outcome = DidNotHappen
		st.Detail = fmt.Sprintf("card counter %d was used by another transaction", r.CardCounter)
	case match == nil && !beyond && errors.Is(perr, apdu.ErrMACUnavailable):
		st.Outcome = DidNotHappen
		st.Detail = fmt.Sprintf("card counter never passed %d and the card has no proof for it", r.CardCounter)
	case ours:
		st.Outcome = Unresolved
		st.Detail = fmt.Sprintf("card log has the transaction at counter %d but no proof (%v)", r.CardCounter, perr)
	default:
		st.Outcome = Unresolved
		st.Detail = fmt.Sprintf("card cannot tell whether counter %d was used (log reaches back to other counters; proof: %v)", r.CardCounter, perr)
	}
	return nil
}

// getProof sends GET TRANSACTION PROOF for the counter and returns MAC2
// and TAC. A card without the proof answers 9406 (apdu.ErrMACUnavailable).
func (o *op) getProof(ctx context.Context, typ byte, seq uint16) (mac2, tac []byte, err error) {
	out, err := o.card.run(ctx, "GET TRANSACTION PROOF", apdu.Command{CLA: 0x80, INS: 0x5A, P1: 0x00, P2: typ, Data: []byte{byte(seq >> 8), byte(seq)}, Ne: 8})
	if err != nil {
		return nil, nil, err
	}
	if len(out) != 8 {
		return nil, nil, fmt.Errorf("card GET TRANSACTION PROOF: %w: %d bytes, want 8", ErrBadCardData, len(out))
	}
	return out[:4], out[4:], nil
}

// logEntry is one PBOC transaction-log record (23 bytes).
type logEntry struct {
	seq      uint16
	amount   uint32
	txType   byte
	terminal []byte
	date     []byte
	time     []byte
}

// maxLog is the number of transaction-log records a card keeps.
const maxLog = 10

// readLog reads the transaction log (SFI 18, newest first) until the card
// has no more records.
func (o *op) readLog(ctx context.Context) ([]logEntry, error) {
	var out []logEntry
	for n := 1; n <= maxLog; n++ {
		b, err := o.card.run(ctx, "READ RECORD (transaction log)", apdu.Command{CLA: 0x00, INS: 0xB2, P1: byte(n), P2: 0x18<<3 | 4, Ne: 23})
		if errors.Is(err, apdu.ErrRecordNotFound) {
			break
		}
		if err != nil {
			return nil, err
		}
		e, err := parseLogEntry(b)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

// parseLogEntry decodes seq(2) ‖ overdraft(3) ‖ amount(4) ‖ type(1) ‖
// terminal(6) ‖ date(4) ‖ time(3). Errors wrap ErrBadCardData.
func parseLogEntry(b []byte) (logEntry, error) {
	if len(b) != 23 {
		return logEntry{}, fmt.Errorf("transaction log record: %w: %d bytes, want 23", ErrBadCardData, len(b))
	}
	return logEntry{
		seq: be16(b[0:2]), amount: be32(b[5:9]), txType: b[9],
		terminal: append([]byte(nil), b[10:16]...),
		date:     append([]byte(nil), b[16:20]...),
		time:     append([]byte(nil), b[20:23]...),
	}, nil
}
