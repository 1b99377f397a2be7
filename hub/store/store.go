package store

import (
	"context"
	"time"

	"github.com/onecard-hub/onecard/terminal/record"
)

// Store is the hub's persistence. Implementations are safe for concurrent
// use; see the package doc for the posting contract. Every method honours
// ctx (cancellation returns ctx's error, wrapped).
type Store interface {
	// Post applies the postings in order, each atomically and independently
	// of the others: results[i] tells what happened to ps[i] (Posted or
	// Duplicate, or a rejection in Err). Postings later in the batch see the
	// effects of earlier ones (a load then a pay of the same card). The
	// returned error is non-nil only when the batch as a whole failed (I/O,
	// connection, ctx): then none of it was applied, or, if the failure hit
	// the commit, all of it was; posting the batch again is always safe.
	Post(ctx context.Context, ps []*Posting) ([]Result, error)
	// Posting returns the posting with key k. Errors: ErrNotFound.
	Posting(ctx context.Context, k Key) (*Posting, error)
	// Postings lists postings matching q in ID order.
	Postings(ctx context.Context, q Query) ([]*Posting, error)
	// Summary aggregates the postings of day (YYYYMMDD) by kind, terminal,
	// party and fund, sorted in that order. Errors: ErrInvalid for a bad day.
	Summary(ctx context.Context, day string) ([]SummaryLine, error)
	// Balance returns an account's balance in fen; 0 for an account no
	// posting has touched.
	Balance(ctx context.Context, account string) (int64, error)
	// Gaps lists missing card counter values (records the hub has not seen)
	// of every card and counter type with a posting on day, sorted by card,
	// type and value.
	Gaps(ctx context.Context, day string) ([]Gap, error)

	// CreateProgramme stores a new programme. Errors: ErrExists, ErrInvalid.
	CreateProgramme(ctx context.Context, p Programme) error
	// Programme returns one programme. Errors: ErrNotFound.
	Programme(ctx context.Context, id string) (Programme, error)
	// Programmes lists every programme, sorted by ID.
	Programmes(ctx context.Context) ([]Programme, error)

	// CreateTerminal registers a terminal (normally NewTerminal's result).
	// Errors: ErrExists, ErrInvalid.
	CreateTerminal(ctx context.Context, t Terminal) error
	// UpdateTerminal reads terminal no, calls fn on it and stores the result
	// atomically (fn may run more than once). fn's error is returned as is
	// and nothing is stored. Use the Terminal methods (Enrol, Approve,
	// Suspend, Acknowledge) as fn. Errors: ErrNotFound, fn's.
	UpdateTerminal(ctx context.Context, no string, fn func(*Terminal) error) (Terminal, error)
	// Terminal returns one terminal. Errors: ErrNotFound.
	Terminal(ctx context.Context, no string) (Terminal, error)
	// Terminals lists every terminal, sorted by number.
	Terminals(ctx context.Context) ([]Terminal, error)

	// SetLost marks a card lost (true) or found (false). A change makes a
	// new list version, which it returns; setting the state a card already
	// has returns the current version and changes nothing.
	SetLost(ctx context.Context, card record.CardID, lost bool) (uint64, error)
	// LostCards returns the list version and the latest change of every
	// card changed after version since (0: the whole list), sorted by
	// version. Versions are assigned in commit order, so a client that
	// asks again with the returned Version misses nothing.
	LostCards(ctx context.Context, since uint64) (LostList, error)

	// AddDeadLetter stores a record the hub could not post, and returns its
	// ID. Adding the same key and content again updates Reason and Last and
	// counts the attempt instead of making a second letter.
	AddDeadLetter(ctx context.Context, d DeadLetter) (uint64, error)
	// DeadLetters lists up to limit letters with ID > after, by ID
	// (limit <= 0: 1000).
	DeadLetters(ctx context.Context, after uint64, limit int) ([]DeadLetter, error)
	// DeleteDeadLetter removes a letter (once it is resolved). Errors:
	// ErrNotFound.
	DeleteDeadLetter(ctx context.Context, id uint64) error

	// PutTotals stores a terminal's end-of-day totals, replacing an earlier
	// submission for the same terminal and day. Errors: ErrInvalid.
	PutTotals(ctx context.Context, t Totals) error
	// Totals returns the totals submitted for day, sorted by terminal.
	Totals(ctx context.Context, day string) ([]Totals, error)

	// UseNonce records a one-time value until expires. Errors: ErrReplay
	// when it was recorded before and has not expired; ErrInvalid for an
	// empty nonce or one above MaxNonce bytes. Expired nonces are purged.
	UseNonce(ctx context.Context, nonce []byte, expires time.Time) error

	// Check verifies the ledger invariants on a consistent snapshot.
	// Errors: *InvariantError (ErrInvariant).
	Check(ctx context.Context) error
	// Close releases the store. Using it afterwards is an error.
	Close() error
}

// Kind is what a posting records. The record kinds share record.Kind's
// numbers.
type Kind uint8

// Posting kinds.
const (
	KindPay          = Kind(record.KindPay)     // card fund → merchant fund
	KindLoad         = Kind(record.KindLoad)    // programme grant → card fund
	KindCertify      = Kind(record.KindCertify) // attestation only: no entries
	KindFund    Kind = 16                       // external source → programme funding
	KindGrant   Kind = 17                       // programme funding → card's grant
	KindOpening Kind = 18                       // external → card fund (opening balance)
	KindHold    Kind = 19                       // card's grant → hold of one load authorisation
	KindRelease Kind = 20                       // hold → card's grant (the load did not happen)
)

var kindNames = map[Kind]string{
	KindPay: "pay", KindLoad: "load", KindCertify: "certify",
	KindFund: "fund", KindGrant: "grant", KindOpening: "opening",
	KindHold: "hold", KindRelease: "release",
}

// String returns the kind's name, or "kind(N)".
func (k Kind) String() string {
	if s, ok := kindNames[k]; ok {
		return s
	}
	return "kind(" + itoa(uint64(k)) + ")"
}

// Valid reports whether k is a known kind.
func (k Kind) Valid() bool { _, ok := kindNames[k]; return ok }

// FromRecord reports whether postings of this kind come from terminal
// records (pay, load, certify) rather than from the hub's operators.
func (k Kind) FromRecord() bool { return k == KindPay || k == KindLoad || k == KindCertify }

// Key identifies a posting: TerminalNo (12 digits) and TerminalSeq (> 0)
// for a record, or Ref (an operator's reference, 1..MaxRef printable ASCII)
// for a posting made by the hub itself (fund, grant, opening balance).
// Exactly one of the two forms is set.
type Key struct {
	TerminalNo  string
	TerminalSeq uint64
	Ref         string
}

// RecordKey is the key of a terminal's record.
func RecordKey(terminalNo string, seq uint64) Key {
	return Key{TerminalNo: terminalNo, TerminalSeq: seq}
}

// RefKey is the key of an operator posting.
func RefKey(ref string) Key { return Key{Ref: ref} }

// String returns "370100000001/42" or "ref:<ref>".
func (k Key) String() string {
	if k.Ref != "" {
		return "ref:" + k.Ref
	}
	return k.TerminalNo + "/" + itoa(k.TerminalSeq)
}

// IsRecord reports whether k is a record key.
func (k Key) IsRecord() bool { return k.Ref == "" }

// CounterType is the card counter a transaction used, named by the PBOC
// transaction type byte: 01 ED online (loads), 02 EP online, 05 ED offline
// (purchases), 06 EP offline. Each purse has its own counters.
type CounterType uint8

// String returns e.g. "ED-online".
func (c CounterType) String() string {
	switch record.TxType(c) {
	case record.TxLoadED:
		return "ED-online"
	case record.TxLoadEP:
		return "EP-online"
	case record.TxPurchaseED:
		return "ED-offline"
	case record.TxPurchaseEP:
		return "EP-offline"
	}
	return "counter(" + itoa(uint64(c)) + ")"
}

// Valid reports whether c is one of the four counter types.
func (c CounterType) Valid() bool {
	switch record.TxType(c) {
	case record.TxLoadED, record.TxLoadEP, record.TxPurchaseED, record.TxPurchaseEP:
		return true
	}
	return false
}

// Counter is one value of a card counter.
type Counter struct {
	Type  CounterType
	Value uint16
}

// Entry moves Amount fen into (positive) or out of (negative) Account.
type Entry struct {
	Account string
	Amount  int64
}

// Posting is one ledger transaction.
type Posting struct {
	Key  Key
	Kind Kind
	// Day is the business day, YYYYMMDD: the card's transaction date for
	// records, the operator's day for other postings.
	Day string
	// CardID is the card (zero for fund postings).
	CardID record.CardID
	// Party is the merchant (pay) or programme (load, certify, fund, grant).
	Party string
	// Fund is the fund the money belongs to (may be empty).
	Fund string
	// Amount is the posting's amount in fen (informational; Entries move
	// the money).
	Amount int64
	// Counter is the card counter value a pay or load used; nil otherwise.
	Counter *Counter
	// Entries sum to zero; empty only for certify.
	Entries []Entry
	// Content is the canonical description: the record's canonical
	// encoding, or the operator request's. A repeated Key must come with
	// byte-identical Content.
	Content []byte

	// ID and PostedAt are the store's: filled in on postings read back
	// (Posting, Postings) and ignored by Post, which never modifies its
	// arguments (Result.ID tells the ID).
	ID       uint64
	PostedAt time.Time
}

// Outcome is what Post did with one posting.
type Outcome uint8

// Outcomes.
const (
	Posted    Outcome = 1 // applied now
	Duplicate Outcome = 2 // the same key and content were applied before
)

// String returns "posted", "duplicate" or "rejected".
func (o Outcome) String() string {
	switch o {
	case Posted:
		return "posted"
	case Duplicate:
		return "duplicate"
	}
	return "rejected"
}

// Result is the outcome of one posting of a batch. When Err is non-nil
// (a rejection, see IsRejection) Outcome is 0 and nothing was applied.
type Result struct {
	Outcome Outcome
	ID      uint64 // the posting's ID (also for a duplicate)
	Err     error
}

// Query selects postings. Zero fields do not filter.
type Query struct {
	Day        string // YYYYMMDD
	TerminalNo string
	CardID     record.CardID
	AfterID    uint64 // only IDs above this (paging)
	Limit      int    // at most this many; <= 0: 1000
}

// SummaryLine aggregates the postings of one day with the same kind,
// terminal ("" for operator postings), party and fund.
type SummaryLine struct {
	Kind       Kind
	TerminalNo string
	Party      string
	Fund       string
	Count      int64
	Amount     int64
}

// Gap is a run of missing values From..To (inclusive) of one card
// counter: records that used them have not reached the hub. Before and
// After are the postings that used From-1 and To+1.
type Gap struct {
	CardID   record.CardID
	Type     CounterType
	From, To uint16
	Before   Key
	After    Key
}

// Programme is a benefit or subsidy programme with a funding account.
type Programme struct {
	ID        string // 1..MaxRef printable ASCII (the records' Merchant field)
	Name      string
	Fund      string // the fund its loads credit on cards
	CreatedAt time.Time
}

// LostChange is a card's lost state as of Version.
type LostChange struct {
	CardID  record.CardID
	Lost    bool
	Version uint64
}

// LostList is a delta of the lost-card list.
type LostList struct {
	Version uint64 // the list's current version
	Changes []LostChange
}

// DeadLetter is a record the hub could not post.
type DeadLetter struct {
	ID      uint64
	Key     Key
	Content []byte // the record's canonical encoding (or what was received)
	Reason  string // no personal data
	Count   int    // how many times it was rejected
	First   time.Time
	Last    time.Time
}

// Totals are a terminal's end-of-day totals for one card-transaction day.
type Totals struct {
	TerminalNo   string
	Day          string // YYYYMMDD
	PayCount     int64
	PayAmount    int64
	LoadCount    int64
	LoadAmount   int64
	CertifyCount int64
	// Signed is the terminal's signed submission as received and Signature
	// its signature; kept as evidence (the sync layer verifies them).
	Signed     []byte
	Signature  []byte
	ReceivedAt time.Time // set by the store
}

// Limits.
const (
	MaxRef     = 128  // Key.Ref, programme IDs
	MaxText    = 256  // names, funds, parties, reasons
	MaxContent = 4096 // Posting.Content, DeadLetter.Content
	MaxEntries = 16
	MaxNonce   = 64
	MaxBlob    = 8192 // Totals.Signed, Totals.Signature, Terminal.PublicKey
)

func itoa(v uint64) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + v%10)
		v /= 10
		if v == 0 {
			return string(b[i:])
		}
	}
}
