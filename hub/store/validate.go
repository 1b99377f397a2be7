package store

import (
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// MaxAmount bounds |Entry.Amount| and Posting.Amount (fen), so that sums
// of a posting's entries cannot overflow.
const MaxAmount = int64(1) << 50

// MaxAccount bounds account names (bytes).
const MaxAccount = 512

// ExternalPrefix starts the names of accounts outside the hub's books
// (funding sources, opening balances); they may go negative.
const ExternalPrefix = "external/"

// CardPrefix starts the names of card purse accounts. They mirror a purse
// the card itself keeps from going below zero (every purchase carries the
// card's TAC), and records reach the hub in any order across terminals,
// hubs and retries (a load uploaded after a later purchase), so the
// hub's mirror may dip below zero until the missing record arrives: a
// proven purchase is never refused for it.
const CardPrefix = "card/"

// AllowsNegative reports whether account may have a negative balance:
// accounts named ExternalPrefix+"..." or CardPrefix+"...". Merchant,
// programme, grant and hold accounts may not.
func AllowsNegative(account string) bool {
	return strings.HasPrefix(account, ExternalPrefix) || strings.HasPrefix(account, CardPrefix)
}

func invalidf(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, a...))
}

// ValidDay reports whether s is a real date written YYYYMMDD.
func ValidDay(s string) bool {
	if len(s) != 8 {
		return false
	}
	_, err := time.Parse("20060102", s)
	return err == nil
}

// Validate checks a key's form. Errors: ErrInvalid.
func (k Key) Validate() error {
	if k.Ref != "" {
		if k.TerminalNo != "" || k.TerminalSeq != 0 {
			return invalidf("key has both a reference and a terminal")
		}
		return checkASCII("reference", k.Ref, MaxRef)
	}
	if !digits(k.TerminalNo, 12) {
		return invalidf("terminal number: want 12 digits")
	}
	if k.TerminalSeq == 0 {
		return invalidf("terminal sequence 0")
	}
	return nil
}

// Validate checks everything Post requires of p before it looks at the
// stored state. Errors: ErrInvalid, naming the rule:
//
//   - a valid Key; record kinds (pay, load, certify) have record keys, the
//     others reference keys; Day is a real date YYYYMMDD;
//   - Party and Fund at most MaxText bytes of UTF-8 without control
//     characters; 0 <= Amount <= MaxAmount;
//   - Counter only on pay and load, of a valid type, with a CardID;
//   - certify has no entries; every other kind has 2..MaxEntries entries
//     with distinct, valid account names (1..MaxAccount bytes of text),
//     non-zero amounts of at most MaxAmount, summing to zero;
//   - Content is 1..MaxContent bytes.
func (p *Posting) Validate() error {
	if p == nil {
		return invalidf("nil posting")
	}
	if err := p.Key.Validate(); err != nil {
		return err
	}
	switch {
	case !p.Kind.Valid():
		return invalidf("unknown posting kind %d", uint8(p.Kind))
	case p.Key.IsRecord() != p.Kind.FromRecord():
		form := "reference"
		if p.Kind.FromRecord() {
			form = "record"
		}
		return invalidf("a %s posting needs a %s key", p.Kind, form)
	case !ValidDay(p.Day):
		return invalidf("day: want YYYYMMDD")
	case p.Amount < 0 || p.Amount > MaxAmount:
		return invalidf("amount out of range")
	case len(p.Content) == 0 || len(p.Content) > MaxContent:
		return invalidf("content: %d bytes, want 1..%d", len(p.Content), MaxContent)
	}
	if err := checkText("party", p.Party, MaxText); err != nil {
		return err
	}
	if err := checkText("fund", p.Fund, MaxText); err != nil {
		return err
	}
	if p.Counter != nil {
		switch {
		case p.Kind != KindPay && p.Kind != KindLoad:
			return invalidf("a %s posting has no card counter", p.Kind)
		case !p.Counter.Type.Valid():
			return invalidf("counter type %02X", uint8(p.Counter.Type))
		case p.CardID.IsZero():
			return invalidf("counter without a card")
		}
	}
	if p.Kind == KindCertify {
		if len(p.Entries) != 0 {
			return invalidf("certify moves no money")
		}
		return nil
	}
	if len(p.Entries) < 2 || len(p.Entries) > MaxEntries {
		return invalidf("%d entries, want 2..%d", len(p.Entries), MaxEntries)
	}
	var sum int64
	seen := make(map[string]bool, len(p.Entries))
	for _, e := range p.Entries {
		if err := ValidateAccount(e.Account); err != nil {
			return err
		}
		if seen[e.Account] {
			return invalidf("account %s appears twice", e.Account)
		}
		seen[e.Account] = true
		if e.Amount == 0 || e.Amount > MaxAmount || e.Amount < -MaxAmount {
			return invalidf("entry amount out of range")
		}
		sum += e.Amount
	}
	if sum != 0 {
		return invalidf("entries sum to %d, not 0", sum)
	}
	return nil
}

// ValidateAccount checks an account name: 1..MaxAccount bytes of UTF-8
// without control characters. Errors: ErrInvalid.
func ValidateAccount(name string) error {
	if name == "" {
		return invalidf("empty account name")
	}
	return checkText("account", name, MaxAccount)
}

// Validate checks a programme: ID 1..MaxRef printable ASCII, Name and
// Fund text of at most MaxText bytes. Errors: ErrInvalid.
func (p Programme) Validate() error {
	if p.ID == "" {
		return invalidf("empty programme ID")
	}
	if err := checkASCII("programme ID", p.ID, MaxRef); err != nil {
		return err
	}
	if err := checkText("programme name", p.Name, MaxText); err != nil {
		return err
	}
	return checkText("programme fund", p.Fund, MaxText)
}

// Validate checks totals: a 12-digit terminal, a real day, no negative
// figure, evidence within MaxBlob. Errors: ErrInvalid.
func (t Totals) Validate() error {
	switch {
	case !digits(t.TerminalNo, 12):
		return invalidf("totals terminal number: want 12 digits")
	case !ValidDay(t.Day):
		return invalidf("totals day: want YYYYMMDD")
	case t.PayCount < 0 || t.PayAmount < 0 || t.LoadCount < 0 || t.LoadAmount < 0 || t.CertifyCount < 0:
		return invalidf("negative totals")
	case len(t.Signed) > MaxBlob || len(t.Signature) > MaxBlob:
		return invalidf("totals evidence too long")
	}
	return nil
}

// Validate checks a dead letter before it is stored: a valid key, content
// of at most MaxContent bytes, a reason of 1..MaxText bytes of text.
// Errors: ErrInvalid.
func (d DeadLetter) Validate() error {
	if err := d.Key.Validate(); err != nil {
		return err
	}
	if len(d.Content) > MaxContent {
		return invalidf("dead letter content too long")
	}
	if d.Reason == "" {
		return invalidf("dead letter without a reason")
	}
	return checkText("reason", d.Reason, MaxText)
}

// ValidateNonce checks a nonce's size. Errors: ErrInvalid.
func ValidateNonce(n []byte) error {
	if len(n) == 0 || len(n) > MaxNonce {
		return invalidf("nonce: %d bytes, want 1..%d", len(n), MaxNonce)
	}
	return nil
}

func digits(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func checkASCII(field, s string, max int) error {
	if len(s) > max {
		return invalidf("%s: %d bytes > %d", field, len(s), max)
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= 0x20 || s[i] > 0x7E {
			return invalidf("%s: byte %d is not printable ASCII", field, i)
		}
	}
	return nil
}

func checkText(field, s string, max int) error {
	if len(s) > max {
		return invalidf("%s: %d bytes > %d", field, len(s), max)
	}
	if !utf8.ValidString(s) {
		return invalidf("%s: not valid UTF-8", field)
	}
	for _, c := range s {
		if unicode.IsControl(c) {
			return invalidf("%s: control character", field)
		}
	}
	return nil
}
