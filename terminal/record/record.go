package record

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Version is the canonical encoding version [Record.MarshalBinary] writes
// and the only one [Decode] accepts.
const Version = 1

// Kind is what an operation did. The values are part of the encoding.
type Kind uint8

// Record kinds. Zero is not a kind; new kinds get new numbers (the decoder
// of an older version rejects them with ErrInvalid).
const (
	KindPay     Kind = 1 // a purchase debited from the card (DEBIT FOR PURCHASE)
	KindLoad    Kind = 2 // a credit loaded onto the card (CREDIT FOR LOAD)
	KindCertify Kind = 3 // an eligibility certification (待遇资格认证); no money
)

var kindNames = map[Kind]string{KindPay: "pay", KindLoad: "load", KindCertify: "certify"}

// String returns "pay", "load", "certify" or "kind(N)".
func (k Kind) String() string {
	if s, ok := kindNames[k]; ok {
		return s
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Valid reports whether k is a known kind.
func (k Kind) Valid() bool { _, ok := kindNames[k]; return ok }

// Money reports whether records of this kind move money (and so need a TAC
// once the card has answered).
func (k Kind) Money() bool { return k == KindPay || k == KindLoad }

// ParseKind parses the String form. Errors: ErrInvalid.
func ParseKind(s string) (Kind, error) {
	for k, n := range kindNames {
		if n == s {
			return k, nil
		}
	}
	return 0, fmt.Errorf("parse record kind: %w: %q", ErrInvalid, s)
}

// TxType is the PBOC transaction type byte the card used (it enters the TAC).
type TxType uint8

// Transaction types allowed per kind: pay 05/06, load 01/02, certify 00.
const (
	TxNone       TxType = 0x00 // no purse transaction (certify)
	TxLoadED     TxType = 0x01 // load onto the ED purse (存折)
	TxLoadEP     TxType = 0x02 // load onto the EP purse (钱包)
	TxPurchaseED TxType = 0x05 // purchase from the ED purse
	TxPurchaseEP TxType = 0x06 // purchase from the EP purse
)

// CardID is the 16-byte card identification code (卡识别码, AAZ501), shown
// as 32 upper-case hex digits.
type CardID [16]byte

// String returns the 32 upper-case hex digits.
func (c CardID) String() string { return strings.ToUpper(hex.EncodeToString(c[:])) }

// IsZero reports whether every byte is zero (no card).
func (c CardID) IsZero() bool { return c == CardID{} }

// ParseCardID parses 32 hex digits (either case). Errors: ErrInvalid.
func ParseCardID(s string) (CardID, error) {
	var c CardID
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != len(c) {
		return c, fmt.Errorf("parse card ID: %w: want 32 hex digits", ErrInvalid)
	}
	copy(c[:], b)
	return c, nil
}

// Attestation is what a certification proved about the card and its holder.
// Any kind may carry it; certify records are made of it.
type Attestation struct {
	// InternalAuthOK: the card passed INTERNAL AUTHENTICATE (it is genuine).
	InternalAuthOK bool
	// PINVerified: the holder's PIN was verified in this session.
	PINVerified bool
	// Challenge is the terminal challenge the card signed (at most
	// MaxChallenge bytes); empty when the card made no signature.
	Challenge []byte
	// CardSignature is the card's SM2 signature over Challenge, raw r‖s (64
	// bytes), with the default user ID; empty when the card has no SM2 key
	// (generation 2) or was not asked.
	CardSignature []byte
}

// Field limits (bytes). Longer values fail with ErrFieldTooLong.
const (
	MaxSuite      = 32
	MaxFund       = 64
	MaxMerchant   = 64
	MaxCardNumber = 32
	MaxPersonID   = 32
	MaxHolderName = 64
	MaxChallenge  = 64
	CodeLen       = 4  // TAC and MAC2: empty or exactly this long
	SignatureLen  = 64 // raw SM2 r‖s
)

// Record is one card operation. The zero value is not valid; see
// [Record.Validate] for the rules.
type Record struct {
	Kind Kind
	// TerminalID is the 12-digit terminal number (PSAM EF16 as digits).
	TerminalID string
	// TerminalSeq is assigned by the journal (Prepare); 0 = not yet
	// assigned. Never reused by a terminal.
	TerminalSeq uint64
	CardID      CardID

	// Personal fields (optional; see the package doc).
	CardNumber string // 卡号 AAZ500, printable ASCII
	PersonID   string // 社会保障号码 AAC002, printable ASCII
	HolderName string // 姓名 AAC003, UTF-8

	// CardCounter is the card's offline sequence (pay) or online sequence
	// (load) the transaction used, as INITIALIZE returned it.
	CardCounter uint16
	TxType      TxType
	// Fund names the fund or purse account (e.g. a medical, benefit or
	// subsidy code); Merchant the merchant or programme id. UTF-8, optional.
	Fund     string
	Merchant string

	// Amounts in fen. BalanceAfter is only meaningful (and must be zero
	// otherwise) once the card answered with a TAC.
	Amount        uint32
	BalanceBefore uint32
	BalanceAfter  uint32

	// CardDate (YYYYMMDD) and CardTime (HHMMSS) are the date and time sent
	// to the card (they enter MAC1 and the TAC). At is the terminal's UTC
	// clock; it is encoded in milliseconds since the Unix epoch.
	CardDate string
	CardTime string
	At       time.Time

	// CardRandom is the card's pseudo-random number from INITIALIZE;
	// PSAMSeq the PSAM's terminal transaction sequence (purchases).
	CardRandom [4]byte
	PSAMSeq    uint32

	// TAC and MAC2: empty, or CodeLen bytes, as the card made (TAC) and
	// the card or issuer made (MAC2).
	TAC  []byte
	MAC2 []byte

	// Suite names the crypto suite (sm.Suite.Name(), e.g. "SM4", "3DES").
	Suite string

	Attestation Attestation
}

// Clone returns a deep copy.
func (r *Record) Clone() *Record {
	c := *r
	c.TAC = bytes.Clone(r.TAC)
	c.MAC2 = bytes.Clone(r.MAC2)
	c.Attestation.Challenge = bytes.Clone(r.Attestation.Challenge)
	c.Attestation.CardSignature = bytes.Clone(r.Attestation.CardSignature)
	return &c
}

// Validate checks every rule the canonical encoding enforces; it returns
// nil or a *FieldError wrapping ErrInvalid or ErrFieldTooLong:
//
//   - Kind is known; TxType fits it (pay 05/06, load 01/02, certify 00).
//   - TerminalID is 12 ASCII digits; CardID is not all zero.
//   - CardNumber and PersonID are printable ASCII, HolderName, Fund and
//     Merchant valid UTF-8 without control characters; Suite is 1 to
//     MaxSuite printable ASCII characters without spaces; each within its
//     Max limit.
//   - CardDate is a real date YYYYMMDD, CardTime a real time HHMMSS; At is
//     not the zero time.
//   - Pay and load: Amount > 0. Certify: Amount, balances, TAC and MAC2
//     are zero or empty.
//   - TAC and MAC2 are empty or CodeLen bytes. Without a TAC BalanceAfter
//     is 0; with one it is BalanceBefore − Amount (pay, which needs
//     Amount ≤ BalanceBefore) or BalanceBefore + Amount (load, no
//     overflow).
//   - Challenge at most MaxChallenge bytes; CardSignature empty or
//     SignatureLen bytes, and only with a Challenge.
func (r *Record) Validate() error {
	switch {
	case !r.Kind.Valid():
		return invalid("kind", "unknown kind %d", uint8(r.Kind))
	case !txTypeFits(r.Kind, r.TxType):
		return invalid("tx_type", "type %02X does not fit kind %s", uint8(r.TxType), r.Kind)
	case !isDigits(r.TerminalID, 12):
		return invalid("terminal_id", "want 12 digits")
	case r.CardID.IsZero():
		return invalid("card_id", "all zero")
	}
	if err := checkASCII("card_number", r.CardNumber, MaxCardNumber, true); err != nil {
		return err
	}
	if err := checkASCII("person_id", r.PersonID, MaxPersonID, true); err != nil {
		return err
	}
	if err := checkText("holder_name", r.HolderName, MaxHolderName); err != nil {
		return err
	}
	if err := checkText("fund", r.Fund, MaxFund); err != nil {
		return err
	}
	if err := checkText("merchant", r.Merchant, MaxMerchant); err != nil {
		return err
	}
	if err := checkASCII("suite", r.Suite, MaxSuite, false); err != nil {
		return err
	}
	if r.Suite == "" {
		return invalid("suite", "empty")
	}
	if _, err := time.Parse("20060102", r.CardDate); err != nil || len(r.CardDate) != 8 {
		return invalid("card_date", "want a date YYYYMMDD")
	}
	if _, err := time.Parse("150405", r.CardTime); err != nil || len(r.CardTime) != 6 {
		return invalid("card_time", "want a time HHMMSS")
	}
	if r.At.IsZero() {
		return invalid("at", "zero time")
	}
	if err := checkCode("tac", r.TAC); err != nil {
		return err
	}
	if err := checkCode("mac2", r.MAC2); err != nil {
		return err
	}
	if err := r.checkMoney(); err != nil {
		return err
	}
	a := r.Attestation
	if len(a.Challenge) > MaxChallenge {
		return tooLong("challenge", len(a.Challenge), MaxChallenge)
	}
	switch {
	case len(a.CardSignature) > SignatureLen:
		return tooLong("card_signature", len(a.CardSignature), SignatureLen)
	case len(a.CardSignature) != 0 && len(a.CardSignature) != SignatureLen:
		return invalid("card_signature", "%d bytes, want 0 or %d", len(a.CardSignature), SignatureLen)
	case len(a.CardSignature) != 0 && len(a.Challenge) == 0:
		return invalid("card_signature", "signature without a challenge")
	}
	return nil
}

func (r *Record) checkMoney() error {
	if r.Kind == KindCertify {
		switch {
		case r.Amount != 0:
			return invalid("amount", "certify moves no money")
		case r.BalanceBefore != 0 || r.BalanceAfter != 0:
			return invalid("balance_before", "certify carries no balance")
		case len(r.TAC) != 0 || len(r.MAC2) != 0:
			return invalid("tac", "certify has no TAC or MAC2")
		}
		return nil
	}
	if r.Amount == 0 {
		return invalid("amount", "zero amount")
	}
	if len(r.TAC) == 0 {
		if r.BalanceAfter != 0 {
			return invalid("balance_after", "set without a TAC")
		}
		return nil
	}
	want := uint64(r.BalanceBefore) + uint64(r.Amount)
	if r.Kind == KindPay {
		if r.Amount > r.BalanceBefore {
			return invalid("amount", "above the balance before")
		}
		want = uint64(r.BalanceBefore - r.Amount)
	}
	if want > 0xFFFFFFFF || uint64(r.BalanceAfter) != want {
		return invalid("balance_after", "does not match balance before and amount")
	}
	return nil
}

func txTypeFits(k Kind, t TxType) bool {
	switch k {
	case KindPay:
		return t == TxPurchaseED || t == TxPurchaseEP
	case KindLoad:
		return t == TxLoadED || t == TxLoadEP
	case KindCertify:
		return t == TxNone
	}
	return false
}

func isDigits(s string, n int) bool {
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

// checkASCII: printable ASCII (spaces allowed when spaces is true).
func checkASCII(field, s string, max int, spaces bool) error {
	if len(s) > max {
		return tooLong(field, len(s), max)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c > 0x7E || (!spaces && c == ' ') {
			return invalid(field, "byte %d is not printable ASCII", i)
		}
	}
	return nil
}

// checkText: valid UTF-8 without control characters.
func checkText(field, s string, max int) error {
	if len(s) > max {
		return tooLong(field, len(s), max)
	}
	if !utf8.ValidString(s) {
		return invalid(field, "not valid UTF-8")
	}
	for _, c := range s {
		if unicode.IsControl(c) {
			return invalid(field, "control character")
		}
	}
	return nil
}

func checkCode(field string, b []byte) error {
	switch {
	case len(b) > CodeLen:
		return tooLong(field, len(b), CodeLen)
	case len(b) != 0 && len(b) != CodeLen:
		return invalid(field, "%d bytes, want 0 or %d", len(b), CodeLen)
	}
	return nil
}

// Masked returns a copy fit for display and logs: CardNumber keeps its
// last 4 characters, PersonID its first 3 and last 2, HolderName its first
// character; every other character becomes '*'. The copy still validates.
func (r *Record) Masked() *Record {
	c := r.Clone()
	c.CardNumber = MaskTail(r.CardNumber, 0, 4)
	c.PersonID = MaskTail(r.PersonID, 3, 2)
	c.HolderName = MaskTail(r.HolderName, 1, 0)
	return c
}

// MaskTail replaces every character of s but the first keepHead and the
// last keepTail with '*'. When those would cover the whole value, at most
// half of it (rounded down) stays visible, so a mask never reveals a whole
// value.
func MaskTail(s string, keepHead, keepTail int) string {
	rs := []rune(s)
	n := len(rs)
	if n == 0 {
		return ""
	}
	limit := n
	if keepHead+keepTail >= n {
		limit = n / 2
	}
	for keepHead+keepTail > limit {
		if keepTail > 0 {
			keepTail--
		} else {
			keepHead--
		}
	}
	var b strings.Builder
	for i, c := range rs {
		if i < keepHead || i >= n-keepTail {
			b.WriteRune(c)
		} else {
			b.WriteByte('*')
		}
	}
	return b.String()
}
