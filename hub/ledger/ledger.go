package ledger

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/onecard-hub/onecard/hub/store"
	"github.com/onecard-hub/onecard/terminal/record"
)

// ErrUnpostable: a record or request the ledger cannot turn into a
// posting (a money record without a TAC, a pay without a merchant, a load
// for an unknown programme or for another fund than the programme's, a
// non-positive amount). It is a permanent rejection: store.IsRejection
// reports true for it.
var ErrUnpostable = fmt.Errorf("%w: cannot post", store.ErrInvalid)

// CardAccount names a card's account for a fund.
func CardAccount(card record.CardID, fund string) string {
	return store.CardPrefix + card.String() + "/" + url.PathEscape(fund)
}

// MerchantAccount names a merchant's settlement account for a fund.
func MerchantAccount(merchant, fund string) string {
	return "merchant/" + url.PathEscape(merchant) + "/" + url.PathEscape(fund)
}

// ProgrammeAccount names a programme's funding account.
func ProgrammeAccount(programme string) string { return "programme/" + url.PathEscape(programme) }

// GrantAccount names the credits a programme granted a card.
func GrantAccount(programme string, card record.CardID) string {
	return "grant/" + url.PathEscape(programme) + "/" + card.String()
}

// ExternalAccount names an account outside the books (a bank, a treasury).
func ExternalAccount(source string) string { return store.ExternalPrefix + url.PathEscape(source) }

// Options configure New.
type Options struct {
	// Store holds the ledger (required).
	Store store.Store
	// Logger receives a warning per rejected record (default: discard).
	Logger *slog.Logger
	// Now is the clock for operator postings without a day (default
	// time.Now); days are taken in China Standard Time (UTC+8).
	Now func() time.Time
}

// Ledger posts records and operator requests. It is safe for concurrent
// use (the store serialises what must be serialised).
type Ledger struct {
	st  store.Store
	log *slog.Logger
	now func() time.Time
}

// New returns a ledger on opts.Store. Errors: store.ErrInvalid without a
// store.
func New(opts Options) (*Ledger, error) {
	if opts.Store == nil {
		return nil, fmt.Errorf("new ledger: %w: no store", store.ErrInvalid)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Ledger{st: opts.Store, log: opts.Logger, now: opts.Now}, nil
}

// Store returns the ledger's store.
func (l *Ledger) Store() store.Store { return l.st }

var cst = time.FixedZone("CST", 8*3600)

func (l *Ledger) today() string { return l.now().In(cst).Format("20060102") }

// RecordPosting maps a record to its posting (see the package doc). It
// checks the record (Validate, a terminal sequence, a TAC on money
// records, a merchant on pay, a programme on load) but not the store:
// loads name their programme in Party and credit the record's Fund.
// Errors: ErrUnpostable, or the record's validation error (also wrapping
// store.ErrInvalid).
func RecordPosting(r *record.Record) (*store.Posting, error) {
	if r == nil {
		return nil, fmt.Errorf("map record: %w: nil record", ErrUnpostable)
	}
	content, err := r.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("map record: %w: %w", ErrUnpostable, err)
	}
	if r.TerminalSeq == 0 {
		return nil, fmt.Errorf("map record: %w: no terminal sequence", ErrUnpostable)
	}
	p := &store.Posting{
		Key:     store.RecordKey(r.TerminalID, r.TerminalSeq),
		Kind:    store.Kind(r.Kind),
		Day:     r.CardDate,
		CardID:  r.CardID,
		Party:   r.Merchant,
		Fund:    r.Fund,
		Amount:  int64(r.Amount),
		Content: content,
	}
	if r.Kind == record.KindCertify {
		return p, nil
	}
	if len(r.TAC) == 0 {
		return nil, fmt.Errorf("map record %s: %w: %s record without a TAC", p.Key, ErrUnpostable, r.Kind)
	}
	if r.Merchant == "" {
		return nil, fmt.Errorf("map record %s: %w: %s record without a merchant or programme", p.Key, ErrUnpostable, r.Kind)
	}
	p.Counter = &store.Counter{Type: store.CounterType(r.TxType), Value: r.CardCounter}
	amt := int64(r.Amount)
	switch r.Kind {
	case record.KindPay:
		p.Entries = []store.Entry{
			{Account: CardAccount(r.CardID, r.Fund), Amount: -amt},
			{Account: MerchantAccount(r.Merchant, r.Fund), Amount: amt},
		}
	case record.KindLoad:
		p.Entries = []store.Entry{
			{Account: GrantAccount(r.Merchant, r.CardID), Amount: -amt},
			{Account: CardAccount(r.CardID, r.Fund), Amount: amt},
		}
	}
	return p, nil
}

// Post posts verified records, in order, as one store batch; results[i]
// is records[i]'s (Posted, Duplicate, or a rejection in Err). A rejected
// record is added to the dead letters and logged. The error is non-nil
// only when the batch failed as a whole (then post it again: nothing is
// posted twice).
func (l *Ledger) Post(ctx context.Context, records ...*record.Record) ([]store.Result, error) {
	res := make([]store.Result, len(records))
	var (
		ps    []*store.Posting
		index []int
		progs = map[string]*store.Programme{}
	)
	for i, r := range records {
		p, err := RecordPosting(r)
		if err == nil && p.Kind == store.KindLoad {
			err = l.checkLoad(ctx, progs, p)
			if err == nil {
				err = l.useHold(ctx, p)
			}
		}
		if err != nil {
			if !store.IsRejection(err) {
				return nil, fmt.Errorf("post records: %w", err)
			}
			res[i].Err = err
			continue
		}
		ps = append(ps, p)
		index = append(index, i)
	}
	got, err := l.st.Post(ctx, ps)
	if err != nil {
		return nil, fmt.Errorf("post records: %w", err)
	}
	for j, i := range index {
		res[i] = got[j]
	}
	for i, r := range res {
		if r.Err != nil {
			if err := l.flag(ctx, records[i], r.Err); err != nil {
				return nil, fmt.Errorf("post records: %w", err)
			}
		}
	}
	return res, nil
}

// checkLoad: the programme exists and the load credits its fund.
func (l *Ledger) checkLoad(ctx context.Context, cache map[string]*store.Programme, p *store.Posting) error {
	prog, ok := cache[p.Party]
	if !ok {
		got, err := l.st.Programme(ctx, p.Party)
		switch {
		case errors.Is(err, store.ErrNotFound):
			prog = nil
		case err != nil:
			return err
		default:
			prog = &got
		}
		cache[p.Party] = prog
	}
	if prog == nil {
		return fmt.Errorf("map record %s: %w: no programme %q", p.Key, ErrUnpostable, p.Party)
	}
	if prog.Fund != p.Fund {
		return fmt.Errorf("map record %s: %w: programme %s credits fund %q, the record names %q", p.Key, ErrUnpostable, prog.ID, prog.Fund, p.Fund)
	}
	return nil
}

// flag records a rejected record as a dead letter and logs it (no
// personal data: key, kind and reason only).
func (l *Ledger) flag(ctx context.Context, r *record.Record, reason error) error {
	if r == nil || r.TerminalSeq == 0 {
		return nil
	}
	k := store.RecordKey(r.TerminalID, r.TerminalSeq)
	if k.Validate() != nil {
		return nil // no key to file it under; the caller has the error
	}
	content, _ := r.MarshalBinary()
	if len(content) > store.MaxContent {
		content = nil
	}
	msg := reason.Error()
	if len(msg) > store.MaxText {
		msg = msg[:store.MaxText]
	}
	msg = strings.ToValidUTF8(msg, "?")
	l.log.Warn("record rejected", "key", k.String(), "kind", r.Kind.String(), "reason", msg)
	if _, err := l.st.AddDeadLetter(ctx, store.DeadLetter{Key: k, Content: content, Reason: msg}); err != nil {
		return fmt.Errorf("flag %s: %w", k, err)
	}
	return nil
}

// operator postings

// Request is an operator posting: Ref makes it idempotent (the same Ref
// with the same request is a Duplicate, with another a conflict).
type Request struct {
	Ref       string        // required, 1..store.MaxRef printable ASCII
	Programme string        // fund, grant
	Card      record.CardID // grant, opening
	Fund      string        // opening (fund and grant use the programme's)
	Source    string        // fund, opening: the external account's name (default "treasury")
	Amount    int64         // fen, > 0
	Day       string        // YYYYMMDD; default today (UTC+8)
}

func (q Request) content(kind store.Kind) []byte {
	fields := []string{"onecard-op v1", kind.String(), q.Ref, q.Programme, q.Card.String(), q.Fund, q.Source,
		strconv.FormatInt(q.Amount, 10), q.Day}
	var b []byte
	for _, f := range fields {
		b = strconv.AppendQuote(b, f)
		b = append(b, '\n')
	}
	return b
}

func (l *Ledger) operator(ctx context.Context, kind store.Kind, q Request, entries func(q Request) []store.Entry) (store.Outcome, error) {
	verb := kind.String()
	if q.Day == "" {
		q.Day = l.today()
	}
	if q.Source == "" && kind != store.KindGrant {
		q.Source = "treasury"
	}
	if q.Amount <= 0 || q.Amount > store.MaxAmount {
		return 0, fmt.Errorf("%s: %w: amount must be positive", verb, ErrUnpostable)
	}
	if kind == store.KindFund || kind == store.KindGrant {
		p, err := l.st.Programme(ctx, q.Programme)
		if errors.Is(err, store.ErrNotFound) {
			return 0, fmt.Errorf("%s: %w: no programme %q", verb, ErrUnpostable, q.Programme)
		}
		if err != nil {
			return 0, fmt.Errorf("%s: %w", verb, err)
		}
		q.Fund = p.Fund
	}
	if (kind == store.KindGrant || kind == store.KindOpening) && q.Card.IsZero() {
		return 0, fmt.Errorf("%s: %w: no card", verb, ErrUnpostable)
	}
	p := &store.Posting{Key: store.RefKey(q.Ref), Kind: kind, Day: q.Day, CardID: q.Card, Party: q.Programme,
		Fund: q.Fund, Amount: q.Amount, Entries: entries(q), Content: q.content(kind)}
	res, err := l.st.Post(ctx, []*store.Posting{p})
	if err != nil {
		return 0, fmt.Errorf("%s: %w", verb, err)
	}
	if res[0].Err != nil {
		return 0, fmt.Errorf("%s: %w", verb, res[0].Err)
	}
	return res[0].Outcome, nil
}

// CreateProgramme registers a programme (its funding account starts at
// zero). Errors: store.ErrExists, store.ErrInvalid.
func (l *Ledger) CreateProgramme(ctx context.Context, p store.Programme) error {
	return l.st.CreateProgramme(ctx, p)
}

// Fund deposits q.Amount from external/<q.Source> into the funding
// account of q.Programme. Errors: ErrUnpostable (unknown programme,
// amount), *store.ConflictError (Ref reused), store errors.
func (l *Ledger) Fund(ctx context.Context, q Request) (store.Outcome, error) {
	q.Card = record.CardID{}
	return l.operator(ctx, store.KindFund, q, func(q Request) []store.Entry {
		return []store.Entry{{Account: ExternalAccount(q.Source), Amount: -q.Amount}, {Account: ProgrammeAccount(q.Programme), Amount: q.Amount}}
	})
}

// Grant moves q.Amount of q.Programme's funds to q.Card's grant: credits
// the card may load. Errors: *store.InsufficientFundsError (beyond the
// programme's funds), ErrUnpostable, *store.ConflictError, store errors.
func (l *Ledger) Grant(ctx context.Context, q Request) (store.Outcome, error) {
	q.Source = ""
	return l.operator(ctx, store.KindGrant, q, func(q Request) []store.Entry {
		return []store.Entry{{Account: ProgrammeAccount(q.Programme), Amount: -q.Amount}, {Account: GrantAccount(q.Programme, q.Card), Amount: q.Amount}}
	})
}

// OpeningBalance credits q.Card's q.Fund account from external/<q.Source>:
// the purse balance the card had before the hub kept its books. Errors:
// ErrUnpostable, *store.ConflictError, store errors.
func (l *Ledger) OpeningBalance(ctx context.Context, q Request) (store.Outcome, error) {
	q.Programme = ""
	return l.operator(ctx, store.KindOpening, q, func(q Request) []store.Entry {
		return []store.Entry{{Account: ExternalAccount(q.Source), Amount: -q.Amount}, {Account: CardAccount(q.Card, q.Fund), Amount: q.Amount}}
	})
}

// Entitlement returns what card may still load from programme (fen): its
// granted credits not yet loaded nor held for an authorised load (see
// Reserve). The load's posting consumes them; a load beyond them is
// rejected. Errors: store.ErrNotFound for an unknown
// programme.
func (l *Ledger) Entitlement(ctx context.Context, card record.CardID, programme string) (int64, error) {
	if _, err := l.st.Programme(ctx, programme); err != nil {
		return 0, fmt.Errorf("entitlement: %w", err)
	}
	b, err := l.st.Balance(ctx, GrantAccount(programme, card))
	if err != nil {
		return 0, fmt.Errorf("entitlement: %w", err)
	}
	return b, nil
}

// Balance returns a card's balance in one fund, as the hub's books have it.
func (l *Ledger) Balance(ctx context.Context, card record.CardID, fund string) (int64, error) {
	return l.st.Balance(ctx, CardAccount(card, fund))
}
