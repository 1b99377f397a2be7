package terminal

import (
	"context"
	"errors"
	"fmt"

	"github.com/onecard-hub/onecard/apdu"
	"github.com/onecard-hub/onecard/hub/proof"
	"github.com/onecard-hub/onecard/sm"
	"github.com/onecard-hub/onecard/terminal/record"
)

// LoadAuthorisation is what the terminal tells the authoriser (the hub)
// about a load the card has initialised: the card's INITIALIZE FOR LOAD
// answer (balance, online counter, random, MAC1) and the terms. The
// terminal number and sequence identify it (idempotency key).
type LoadAuthorisation struct {
	TerminalID  string
	TerminalSeq uint64
	CardID      record.CardID
	AlgFlag     byte   // the card's algorithm flag (01 3DES, 03 SM4)
	Programme   string // benefit or subsidy programme
	Fund        string
	Amount      uint32 // fen
	TxType      record.TxType
	Balance     uint32 // balance INITIALIZE FOR LOAD returned
	OnlineSeq   uint16 // online counter INITIALIZE FOR LOAD returned
	Random      [4]byte
	MAC1        []byte
	CardDate    string // YYYYMMDD sent in CREDIT FOR LOAD (enters MAC2)
	CardTime    string // HHMMSS
}

// Authoriser authorises loads: it checks the card's MAC1 (the card is
// genuine and its balance and counter real) and the holder's entitlement,
// and returns the MAC2 the card needs for CREDIT FOR LOAD. The hub is the
// production authoriser. Refusals wrap ErrNotAuthorised.
type Authoriser interface {
	AuthoriseLoad(ctx context.Context, a LoadAuthorisation) (mac2 []byte, err error)
}

// EntitlementFunc decides whether a load may happen (nil = yes). It is
// given the authorisation request after the card's MAC1 verified.
type EntitlementFunc func(ctx context.Context, a LoadAuthorisation) error

// LocalAuthoriser is an in-process Authoriser using hub/proof with the
// issuer key set. For tests and demos.
type LocalAuthoriser struct {
	Keys *sm.KeySet
	// SuiteSM4 and Suite3DES: suites for flags 03 and 01 (zero: defaults).
	SuiteSM4, Suite3DES sm.Suite
	// Entitled decides entitlement. Nil refuses every load: an authoriser
	// without an entitlement rule must not hand out money.
	Entitled EntitlementFunc
}

// AuthoriseLoad verifies MAC1, asks Entitled and returns MAC2. Errors wrap
// ErrNotAuthorised (bad MAC1, no entitlement) or ErrBadRequest.
func (l *LocalAuthoriser) AuthoriseLoad(ctx context.Context, a LoadAuthorisation) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("authorise load: %w", err)
	}
	if l == nil || l.Keys == nil {
		return nil, fmt.Errorf("authorise load: %w: no key set", ErrNotAuthorised)
	}
	suite, err := suiteForFlag(a.AlgFlag, l.SuiteSM4, l.Suite3DES)
	if err != nil {
		return nil, fmt.Errorf("authorise load: %w", err)
	}
	term, err := apdu.EncodeCN(a.TerminalID, 6)
	if err != nil || !isDigits(a.TerminalID, 12) {
		return nil, fmt.Errorf("authorise load: %w: terminal number", ErrBadRequest)
	}
	date, err1 := apdu.EncodeCN(a.CardDate, 4)
	tm, err2 := apdu.EncodeCN(a.CardTime, 3)
	if err1 != nil || err2 != nil || len(a.CardDate) != 8 || len(a.CardTime) != 6 {
		return nil, fmt.Errorf("authorise load: %w: card date or time", ErrBadRequest)
	}
	pa := proof.LoadAuth{
		CardID: a.CardID[:], Balance: a.Balance, OnlineSeq: a.OnlineSeq, Random: a.Random,
		Amount: a.Amount, Type: byte(a.TxType),
	}
	copy(pa.Terminal[:], term)
	copy(pa.Date[:], date)
	copy(pa.Time[:], tm)
	v := proof.Verifier{Keys: l.Keys, Suite: suite}
	if err := v.VerifyLoadMAC1(pa, a.MAC1); err != nil {
		if errors.Is(err, proof.ErrMACMismatch) {
			return nil, fmt.Errorf("authorise load: %w: card MAC1 invalid: %w", ErrNotAuthorised, err)
		}
		return nil, fmt.Errorf("authorise load: %w: %w", ErrBadRequest, err)
	}
	if l.Entitled == nil {
		return nil, fmt.Errorf("authorise load: %w: no entitlement rule", ErrNotAuthorised)
	}
	if err := l.Entitled(ctx, a); err != nil {
		if !errors.Is(err, ErrNotAuthorised) {
			err = fmt.Errorf("%w: %w", ErrNotAuthorised, err)
		}
		return nil, fmt.Errorf("authorise load: %w", err)
	}
	mac2, err := v.LoadMAC2(pa)
	if err != nil {
		return nil, fmt.Errorf("authorise load: %w", err)
	}
	return mac2, nil
}
