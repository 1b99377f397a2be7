package simcard

import (
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"golang.org/x/text/encoding/simplifiedchinese"

	"github.com/onecard-hub/onecard/apdu"
	"github.com/onecard-hub/onecard/sm"
)

// Field sizes of the SSSE records (ssc-card-facts §1.4).
const (
	nameLen    = 30 // tag 09
	nameExtLen = 20 // tag 4E
	histLen    = 13 // ATR historical bytes
	maxTries   = 15 // 63Cx carries the count in one nibble
	maxDelayMS = 10000
	defBalCap  = 1<<31 - 1
)

// TornPoint says where the torn-transaction switch pulls the card.
type TornPoint int

const (
	// TornNone disarms the switch.
	TornNone TornPoint = iota
	// TornAfterDebit pulls the card after DEBIT FOR PURCHASE has been
	// applied and persisted, before its answer leaves the card.
	TornAfterDebit
	// TornAfterLoad does the same for CREDIT FOR LOAD.
	TornAfterLoad
)

func parseTorn(s string) (TornPoint, error) {
	switch strings.ToUpper(s) {
	case "", "NONE":
		return TornNone, nil
	case "DEBIT":
		return TornAfterDebit, nil
	case "LOAD", "CREDIT":
		return TornAfterLoad, nil
	}
	return TornNone, badf("torn.after %q: want DEBIT or LOAD", s)
}

// sscConfig is a validated SSCSpec in card form.
type sscConfig struct {
	gen        int
	suite      sm.Suite
	proto      Protocol
	delay      time.Duration
	hist       []byte
	cardID     []byte
	ef05       []apdu.Record // tags 01..07 = records 1..7
	ef06       []apdu.Record // tags 08, 09, 4E, 0A, 0B, 0C, 0D = records 1..7
	pin        []byte        // BCD, F-padded
	pinTries   int
	authTries  int
	keyVersion byte
	balance    [2]uint32 // ED, EP
	maxBalance uint32
	torn       TornPoint
	tornTimes  int
}

func (s *SSCSpec) normalize() (*sscConfig, error) {
	if s.Kind != "ssc" {
		return nil, badf("kind %q: want ssc", s.Kind)
	}
	c := &sscConfig{gen: s.Generation}
	var err error
	switch s.Generation {
	case 2:
		c.suite = sm.Suite3DES
	case 3:
		c.suite = sm.SuiteSM4
	default:
		return nil, badf("generation %d: want 2 or 3", s.Generation)
	}
	if s.Suite != "" {
		su, err := sm.ParseSuite(s.Suite)
		if err != nil {
			return nil, badf("suite: %v", err)
		}
		if su.Alg != c.suite.Alg {
			return nil, badf("suite %q does not fit generation %d", s.Suite, s.Generation)
		}
		c.suite = su
	}
	if c.proto, err = ParseProtocol(s.Protocol); err != nil {
		return nil, badf("%v", err)
	}
	if s.DelayMS < 0 || s.DelayMS > maxDelayMS {
		return nil, badf("delay_ms %d: want 0..%d", s.DelayMS, maxDelayMS)
	}
	c.delay = time.Duration(s.DelayMS) * time.Millisecond
	if c.cardID, err = decodeHexN("card_id", s.CardID, 16); err != nil {
		return nil, err
	}
	if err := s.Keys.validate(); err != nil {
		return nil, err
	}
	if c.ef05, err = s.ef05(c.cardID); err != nil {
		return nil, err
	}
	if c.ef06, err = s.Holder.ef06(); err != nil {
		return nil, err
	}
	if s.ATRHistorical != "" {
		if c.hist, err = decodeHexN("atr_historical", s.ATRHistorical, histLen); err != nil {
			return nil, err
		}
	} else {
		c.hist = deriveHistorical(byte(s.Generation), c.ef05[4].Value, c.cardID)
	}
	if c.pin, err = encodePIN(s.PIN); err != nil {
		return nil, err
	}
	if c.pinTries, err = tries("pin_tries", s.PINTries); err != nil {
		return nil, err
	}
	if c.authTries, err = tries("auth_tries", s.AuthTries); err != nil {
		return nil, err
	}
	switch {
	case s.KeyVersion == 0:
		c.keyVersion = 1
	case s.KeyVersion > 0 && s.KeyVersion < 256:
		c.keyVersion = byte(s.KeyVersion)
	default:
		return nil, badf("key_version %d: want 1..255", s.KeyVersion)
	}
	c.maxBalance = s.Purse.MaxBalance
	if c.maxBalance == 0 {
		c.maxBalance = defBalCap
	}
	c.balance = [2]uint32{s.Purse.EDBalance, s.Purse.Balance}
	if c.balance[0] > c.maxBalance || c.balance[1] > c.maxBalance {
		return nil, badf("purse: balance above max_balance %d", c.maxBalance)
	}
	if s.Torn != nil {
		if c.torn, err = parseTorn(s.Torn.After); err != nil {
			return nil, err
		}
		if s.Torn.Times < 0 || s.Torn.Times > 1000 {
			return nil, badf("torn.times %d: want 0..1000", s.Torn.Times)
		}
		c.tornTimes = max(s.Torn.Times, 1)
	}
	return c, nil
}

func tries(field string, n int) (int, error) {
	if n == 0 {
		return 3, nil
	}
	if n < 1 || n > maxTries {
		return 0, badf("%s %d: want 1..%d", field, n, maxTries)
	}
	return n, nil
}

// encodePIN packs 4–12 digits as BCD, padding an odd count with F.
func encodePIN(pin string) ([]byte, error) {
	if len(pin) < 4 || len(pin) > 12 || !isDigits(pin) {
		return nil, badf("pin: want 4..12 digits")
	}
	b, err := apdu.EncodeCN(pin, (len(pin)+1)/2)
	if err != nil {
		return nil, badf("pin: %v", err)
	}
	return b, nil
}

// validPIN reports whether b is a PIN block VERIFY and CHANGE PIN accept:
// 2..6 bytes of BCD digits, F-padding only in the last nibble.
func validPIN(b []byte) bool {
	if len(b) < 2 || len(b) > 6 {
		return false
	}
	for i, x := range b {
		hi, lo := x>>4, x&0x0F
		if hi > 9 || (lo > 9 && !(lo == 0x0F && i == len(b)-1)) {
			return false
		}
	}
	return true
}

func (s *SSCSpec) ef05(cardID []byte) ([]apdu.Record, error) {
	version := s.SpecVersion
	if version == "" {
		version = fmt.Sprintf("%d.00", s.Generation)
	}
	cardType := s.CardType
	if cardType == "" {
		cardType = "3"
	}
	org := s.InitOrg
	if org == "" {
		org = strings.ToUpper(hex.EncodeToString(cardID[:3]))
	}
	if !isDigits(org) || len(org) > 24 {
		return nil, badf("init_org: want up to 24 digits")
	}
	if !isDigits(s.IssueDate) || !isDigits(s.ExpiryDate) {
		return nil, badf("issue_date/expiry_date: want YYYYMMDD")
	}
	var recs []apdu.Record
	add := func(tag byte, field string, b []byte, err error) error {
		if err != nil {
			return badf("%s: %v", field, err)
		}
		recs = append(recs, apdu.Record{Tag: tag, Value: b})
		return nil
	}
	an := func(field, v string, n int) ([]byte, error) {
		if v == "" || len(v) > n {
			return nil, fmt.Errorf("want 1..%d characters", n)
		}
		return apdu.EncodeAN(v, n)
	}
	steps := []func() error{
		func() error { return add(0x01, "card_id", cardID, nil) },
		func() error { b, err := an("card_type", cardType, 1); return add(0x02, "card_type", b, err) },
		func() error { b, err := an("spec_version", version, 4); return add(0x03, "spec_version", b, err) },
		func() error { b, err := apdu.EncodeCN(org, 12); return add(0x04, "init_org", b, err) },
		func() error { b, err := encodeDate(s.IssueDate); return add(0x05, "issue_date", b, err) },
		func() error { b, err := encodeDate(s.ExpiryDate); return add(0x06, "expiry_date", b, err) },
		func() error { b, err := an("card_number", s.CardNumber, 9); return add(0x07, "card_number", b, err) },
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return nil, err
		}
	}
	return recs, nil
}

func encodeDate(s string) ([]byte, error) {
	if len(s) != 8 || !isDigits(s) {
		return nil, fmt.Errorf("want YYYYMMDD")
	}
	if _, err := time.Parse("20060102", s); err != nil {
		return nil, fmt.Errorf("want a valid YYYYMMDD date")
	}
	return apdu.EncodeDate(s)
}

func (h Holder) ef06() ([]apdu.Record, error) {
	if h.SSN == "" || len(h.SSN) > 18 {
		return nil, badf("holder.ssn: want 1..18 characters")
	}
	ssn, err := apdu.EncodeAN(h.SSN, 18)
	if err != nil {
		return nil, badf("holder.ssn: %v", err)
	}
	name, ext, err := splitName(h.Name)
	if err != nil {
		return nil, err
	}
	switch h.Sex {
	case "0", "1", "2", "9":
	default:
		return nil, badf("holder.sex %q: want 0, 1, 2 or 9", h.Sex)
	}
	if len(h.Nation) != 2 || !isDigits(h.Nation) {
		return nil, badf("holder.nation: want two digits")
	}
	nation, err := apdu.EncodeCN(h.Nation, 1)
	if err != nil {
		return nil, badf("holder.nation: %v", err)
	}
	if h.Birthplace == "" || len(h.Birthplace) > 6 || !isDigits(h.Birthplace) {
		return nil, badf("holder.birthplace: want up to 6 digits")
	}
	place, err := apdu.EncodeCN(h.Birthplace, 3)
	if err != nil {
		return nil, badf("holder.birthplace: %v", err)
	}
	birth, err := encodeDate(h.BirthDate)
	if err != nil {
		return nil, badf("holder.birth_date: %v", err)
	}
	return []apdu.Record{
		{Tag: 0x08, Value: ssn},
		{Tag: 0x09, Value: name},
		{Tag: 0x4E, Value: ext},
		{Tag: 0x0A, Value: []byte{h.Sex[0]}},
		{Tag: 0x0B, Value: nation},
		{Tag: 0x0C, Value: place},
		{Tag: 0x0D, Value: birth},
	}, nil
}

// splitName encodes name in GBK and splits it at a character boundary into
// the 30-byte tag-09 field and the 20-byte tag-4E extension, both padded
// with 00.
func splitName(name string) (main, ext []byte, err error) {
	if name == "" {
		return nil, nil, badf("holder.name: empty")
	}
	enc := simplifiedchinese.GBK.NewEncoder()
	main = make([]byte, 0, nameLen)
	ext = make([]byte, 0, nameExtLen)
	for _, r := range name {
		b, err := enc.String(string(r))
		if err != nil || r < 0x20 {
			return nil, nil, badf("holder.name: %q has no GBK encoding", r)
		}
		switch {
		case len(ext) == 0 && len(main)+len(b) <= nameLen:
			main = append(main, b...)
		case len(ext)+len(b) <= nameExtLen:
			ext = append(ext, b...)
		default:
			return nil, nil, badf("holder.name: longer than %d GBK bytes", nameLen+nameExtLen)
		}
	}
	main = append(main, make([]byte, nameLen-len(main))...)
	ext = append(ext, make([]byte, nameExtLen-len(ext))...)
	return main, ext, nil
}

// deriveHistorical builds the 13 historical bytes when the card file gives
// none: 00 90 (chip maker) ‖ 4F 43 <gen> (COS "OC", generation) ‖ 86 60
// (card maker) ‖ issue date YYMMDD (BCD) ‖ last 3 bytes of the card ID.
func deriveHistorical(gen byte, issueDate, cardID []byte) []byte {
	h := []byte{0x00, 0x90, 0x4F, 0x43, gen, 0x86, 0x60}
	h = append(h, issueDate[1:4]...)
	return append(h, cardID[13:16]...)
}
