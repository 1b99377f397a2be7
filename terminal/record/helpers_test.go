package record

import (
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// sampleAt is the terminal clock of the sample records.
var sampleAt = time.Date(2026, 3, 14, 1, 2, 3, 456e6, time.UTC)

func mustCardID(t testing.TB, s string) CardID {
	t.Helper()
	c, err := ParseCardID(s)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// samplePay is a completed purchase from the ED purse with a TAC.
func samplePay(t testing.TB) *Record {
	return &Record{
		Kind:          KindPay,
		TerminalID:    "370100000001",
		TerminalSeq:   0x00002A3B4C5D0001,
		CardID:        mustCardID(t, "411600D156000005C38275EEFC9B9648"),
		CardNumber:    "C00000001",
		PersonID:      "110000199001010000",
		HolderName:    "张三",
		CardCounter:   7,
		TxType:        TxPurchaseED,
		Fund:          "310",
		Merchant:      "H37010000001",
		Amount:        1250,
		BalanceBefore: 10000,
		BalanceAfter:  8750,
		CardDate:      "20260314",
		CardTime:      "090203",
		At:            sampleAt,
		CardRandom:    [4]byte{0x1A, 0x2B, 0x3C, 0x4D},
		PSAMSeq:       42,
		TAC:           []byte{0xDE, 0xAD, 0xBE, 0xEF},
		MAC2:          []byte{0x01, 0x02, 0x03, 0x04},
		Suite:         "SM4",
		Attestation:   Attestation{InternalAuthOK: true, PINVerified: true},
	}
}

// sampleLoad is a load onto the EP purse, prepared (no TAC yet), without
// personal fields.
func sampleLoad(t testing.TB) *Record {
	return &Record{
		Kind:          KindLoad,
		TerminalID:    "370100000001",
		TerminalSeq:   0x00002A3B4C5D0002,
		CardID:        mustCardID(t, "331100D156000005500509728DB46EF9"),
		CardCounter:   3,
		TxType:        TxLoadEP,
		Fund:          "subsidy-2026",
		Merchant:      "惠民惠农补贴",
		Amount:        50000,
		BalanceBefore: 100,
		CardDate:      "20260314",
		CardTime:      "235959",
		At:            sampleAt.Add(time.Hour),
		CardRandom:    [4]byte{9, 8, 7, 6},
		Suite:         "3DES",
	}
}

// sampleCertify is a certification with the card's SM2 signature.
func sampleCertify(t testing.TB) *Record {
	return &Record{
		Kind:        KindCertify,
		TerminalID:  "440300123456",
		TerminalSeq: 1 << 40,
		CardID:      mustCardID(t, "639900D15600000500BF7C7A48FB4966"),
		CardNumber:  "C00000002",
		HolderName:  "李四",
		CardDate:    "20261231",
		CardTime:    "000000",
		At:          sampleAt.Add(48 * time.Hour),
		Suite:       "SM4",
		Attestation: Attestation{
			InternalAuthOK: true,
			PINVerified:    true,
			Challenge:      []byte(strings.Repeat("c", 32)),
			CardSignature:  []byte(strings.Repeat("s", 64)),
		},
	}
}

func samples(t testing.TB) []*Record {
	return []*Record{samplePay(t), sampleLoad(t), sampleCertify(t)}
}

// randomRecord returns a valid record drawn from rng, covering every kind,
// optional field and boundary length.
func randomRecord(rng *rand.Rand) *Record {
	digits := func(n int) string {
		b := make([]byte, n)
		for i := range b {
			b[i] = '0' + byte(rng.IntN(10))
		}
		return string(b)
	}
	ascii := func(max int, spaces bool) string {
		b := make([]byte, rng.IntN(max+1))
		for i := range b {
			c := byte(0x21 + rng.IntN(0x7E-0x21+1))
			if spaces && rng.IntN(8) == 0 {
				c = ' '
			}
			b[i] = c
		}
		return string(b)
	}
	runes := []rune("abcXYZ 0123_-张三李四惠民补贴医保·")
	text := func(max int) string {
		var b strings.Builder
		n := rng.IntN(max + 1)
		for {
			c := string(runes[rng.IntN(len(runes))])
			if b.Len()+len(c) > n {
				return b.String()
			}
			b.WriteString(c)
		}
	}
	bytesN := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	r := &Record{
		Kind:        Kind(1 + rng.IntN(3)),
		TerminalID:  digits(12),
		TerminalSeq: rng.Uint64(),
		CardNumber:  ascii(MaxCardNumber, true),
		PersonID:    ascii(MaxPersonID, false),
		HolderName:  text(MaxHolderName),
		CardCounter: uint16(rng.Uint32()),
		Fund:        text(MaxFund),
		Merchant:    text(MaxMerchant),
		At:          time.UnixMilli(rng.Int64N(1<<45) - 1<<44).UTC(),
		PSAMSeq:     rng.Uint32(),
		Suite:       ascii(MaxSuite-1, false) + "S",
	}
	copy(r.CardID[:], bytesN(16))
	r.CardID[0] |= 1
	copy(r.CardRandom[:], bytesN(4))
	d := time.Date(1990+rng.IntN(80), time.Month(1+rng.IntN(12)), 1+rng.IntN(28), rng.IntN(24), rng.IntN(60), rng.IntN(60), 0, time.UTC)
	r.CardDate, r.CardTime = d.Format("20060102"), d.Format("150405")
	a := &r.Attestation
	a.InternalAuthOK, a.PINVerified = rng.IntN(2) == 0, rng.IntN(2) == 0
	if rng.IntN(2) == 0 {
		a.Challenge = bytesN(1 + rng.IntN(MaxChallenge))
		if rng.IntN(2) == 0 {
			a.CardSignature = bytesN(SignatureLen)
		}
	}
	switch r.Kind {
	case KindPay:
		r.TxType = []TxType{TxPurchaseED, TxPurchaseEP}[rng.IntN(2)]
		r.BalanceBefore = 1 + rng.Uint32N(1<<31)
		r.Amount = 1 + rng.Uint32N(r.BalanceBefore)
	case KindLoad:
		r.TxType = []TxType{TxLoadED, TxLoadEP}[rng.IntN(2)]
		r.BalanceBefore = rng.Uint32N(1 << 31)
		r.Amount = 1 + rng.Uint32N(1<<31)
	}
	if r.Kind.Money() && rng.IntN(2) == 0 {
		r.TAC, r.MAC2 = bytesN(CodeLen), bytesN(CodeLen)
		if r.Kind == KindPay {
			r.BalanceAfter = r.BalanceBefore - r.Amount
		} else {
			r.BalanceAfter = r.BalanceBefore + r.Amount
		}
	}
	return r
}
