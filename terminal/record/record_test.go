package record

import (
	"bytes"
	"errors"
	"flag"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"
)

var (
	propSeed  = flag.Uint64("record.seed", 0, "seed of the round-trip property test (0: time-based)")
	propCount = flag.Int("record.count", 3000, "records the round-trip property test draws")
)

func TestRecordRoundTripSamples(t *testing.T) {
	for _, r := range samples(t) {
		t.Run(r.Kind.String(), func(t *testing.T) {
			b, err := r.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			got, err := Decode(b)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, r) {
				t.Errorf("decoded\n%+v\nwant\n%+v", got, r)
			}
			b2, err := got.MarshalBinary()
			if err != nil || !bytes.Equal(b, b2) {
				t.Errorf("re-encoding differs (%v):\n%X\n%X", err, b, b2)
			}
		})
	}
}

// TestRoundTripProperty: encode → decode → encode gives identical bytes
// and an equal record for random valid records (the seed is logged; rerun
// with -record.seed).
func TestRecordRoundTripProperty(t *testing.T) {
	seed := *propSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (rerun with -record.seed=%d)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, 0x6f6e6563617264))
	kinds := map[Kind]int{}
	for i := 0; i < *propCount; i++ {
		r := randomRecord(rng)
		b, err := r.MarshalBinary()
		if err != nil {
			t.Fatalf("record %d: encode: %v\n%+v", i, err, r)
		}
		got, err := Decode(b)
		if err != nil {
			t.Fatalf("record %d: decode: %v\n%X", i, err, b)
		}
		b2, err := got.MarshalBinary()
		if err != nil || !bytes.Equal(b, b2) {
			t.Fatalf("record %d: re-encoding differs (%v)", i, err)
		}
		want := r.Clone()
		want.At = want.At.Truncate(time.Millisecond)
		if !reflect.DeepEqual(normalize(got), normalize(want)) {
			t.Fatalf("record %d: decoded\n%+v\nwant\n%+v", i, got, want)
		}
		kinds[r.Kind]++
	}
	for _, k := range []Kind{KindPay, KindLoad, KindCertify} {
		if kinds[k] == 0 {
			t.Errorf("generator never produced kind %s", k)
		}
	}
}

// normalize maps empty byte slices to nil (the decoder returns nil).
func normalize(r *Record) *Record {
	c := r.Clone()
	for _, p := range []*[]byte{&c.TAC, &c.MAC2, &c.Attestation.Challenge, &c.Attestation.CardSignature} {
		if len(*p) == 0 {
			*p = nil
		}
	}
	c.At = c.At.UTC()
	return c
}

// fieldOffset returns where the named field starts in r's encoding.
func fieldOffset(t *testing.T, r *Record, name string) int {
	t.Helper()
	var spans []span
	if _, err := r.encode(&spans); err != nil {
		t.Fatal(err)
	}
	for _, s := range spans {
		if s.name == name {
			return s.off
		}
	}
	t.Fatalf("no field %q", name)
	return 0
}

func TestRecordDecodeErrors(t *testing.T) {
	base := samplePay(t)
	good, err := base.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	// at patches the byte(s) of a field (offset relative to the field).
	at := func(field string, rel int, v ...byte) []byte {
		b := bytes.Clone(good)
		copy(b[fieldOffset(t, base, field)+rel:], v)
		return b
	}
	// setLP replaces a length-prefixed field's value.
	setLP := func(field string, v []byte) []byte {
		off := fieldOffset(t, base, field)
		n := int(good[off])
		out := append(bytes.Clone(good[:off]), byte(len(v)))
		out = append(out, v...)
		return append(out, good[off+1+n:]...)
	}
	for _, tt := range []struct {
		name  string
		in    []byte
		want  error
		field string
	}{
		{"empty", nil, ErrTruncated, "magic"},
		{"magic", at("magic", 0, 'X'), ErrMagic, ""},
		{"version 0", at("version", 0, 0), ErrVersion, ""},
		{"version 2", at("version", 0, 2), ErrVersion, ""},
		{"kind 0", at("kind", 0, 0), ErrInvalid, "kind"},
		{"kind 9", at("kind", 0, 9), ErrInvalid, "kind"},
		{"tx type for load", at("tx_type", 0, 0x01), ErrInvalid, "tx_type"},
		{"tx type unknown", at("tx_type", 0, 0x09), ErrInvalid, "tx_type"},
		{"terminal not BCD", at("terminal_id", 5, 0x1A), ErrInvalid, "terminal_id"},
		{"card id zero", at("card_id", 0, make([]byte, 16)...), ErrInvalid, "card_id"},
		{"amount zero", at("amount", 0, 0, 0, 0, 0), ErrInvalid, "amount"},
		{"balance after wrong", at("balance_after", 3, 0), ErrInvalid, "balance_after"},
		{"date month 13", at("card_date", 2, 0x13), ErrInvalid, "card_date"},
		{"date not BCD", at("card_date", 3, 0xFF), ErrInvalid, "card_date"},
		{"time 24h", at("card_time", 0, 0x24), ErrInvalid, "card_time"},
		{"at zero time", at("at", 0, 0xFF, 0xFF, 0xC7, 0x7C, 0xED, 0xD3, 0x28, 0x00), ErrInvalid, "at"},
		{"unknown flag", at("flags", 0, 0x83), ErrInvalid, "flags"},
		{"suite empty", setLP("suite", nil), ErrInvalid, "suite"},
		{"suite space", setLP("suite", []byte("S M4")), ErrInvalid, "suite"},
		{"suite too long", setLP("suite", bytes.Repeat([]byte("S"), MaxSuite+1)), ErrFieldTooLong, "suite"},
		{"fund too long", setLP("fund", bytes.Repeat([]byte("f"), MaxFund+1)), ErrFieldTooLong, "fund"},
		{"name bad UTF-8", setLP("holder_name", []byte{0xE5, 0xBC}), ErrInvalid, "holder_name"},
		{"name control", setLP("holder_name", []byte("a\nb")), ErrInvalid, "holder_name"},
		{"card number non-ASCII", setLP("card_number", []byte("卡")), ErrInvalid, "card_number"},
		{"person id too long", setLP("person_id", bytes.Repeat([]byte("1"), MaxPersonID+1)), ErrFieldTooLong, "person_id"},
		{"tac 3 bytes", setLP("tac", []byte{1, 2, 3}), ErrInvalid, "tac"},
		{"tac 5 bytes", setLP("tac", []byte{1, 2, 3, 4, 5}), ErrFieldTooLong, "tac"},
		{"no tac but balance after", setLP("tac", nil), ErrInvalid, "balance_after"},
		{"mac2 2 bytes", setLP("mac2", []byte{1, 2}), ErrInvalid, "mac2"},
		{"signature without challenge", setLP("card_signature", bytes.Repeat([]byte{1}, 64)), ErrInvalid, "card_signature"},
		{"signature short", setLP("card_signature", []byte{1}), ErrInvalid, "card_signature"},
		{"challenge too long", setLP("challenge", make([]byte, MaxChallenge+1)), ErrFieldTooLong, "challenge"},
		{"length beyond input", append(bytes.Clone(good[:len(good)-1]), 5), ErrTruncated, "card_signature"},
		{"trailing byte", append(bytes.Clone(good), 0), ErrTrailingData, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r, err := Decode(tt.in)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err %v, want %v", err, tt.want)
			}
			if r != nil {
				t.Errorf("record returned with error")
			}
			if tt.field == "" {
				return
			}
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("%v is not a *FieldError", err)
			}
			if fe.Field != tt.field {
				t.Errorf("field %q, want %q (%v)", fe.Field, tt.field, err)
			}
			if fe.Offset < 0 || fe.Offset > len(tt.in) {
				t.Errorf("offset %d outside the input (len %d)", fe.Offset, len(tt.in))
			}
		})
	}
	// Every proper prefix is truncated.
	for n := 0; n < len(good); n++ {
		if _, err := Decode(good[:n]); !errors.Is(err, ErrTruncated) {
			t.Fatalf("prefix %d: err %v, want ErrTruncated", n, err)
		}
	}
}

func TestRecordValidate(t *testing.T) {
	for _, tt := range []struct {
		name  string
		edit  func(r *Record)
		base  func(testing.TB) *Record
		want  error
		field string
	}{
		{"ok pay", func(*Record) {}, samplePay, nil, ""},
		{"ok load prepared", func(*Record) {}, sampleLoad, nil, ""},
		{"ok certify", func(*Record) {}, sampleCertify, nil, ""},
		{"terminal 11 digits", func(r *Record) { r.TerminalID = "37010000000" }, samplePay, ErrInvalid, "terminal_id"},
		{"terminal letters", func(r *Record) { r.TerminalID = "37010000000A" }, samplePay, ErrInvalid, "terminal_id"},
		{"pay above balance", func(r *Record) { r.Amount, r.BalanceBefore, r.BalanceAfter = 5, 4, 0 }, samplePay, ErrInvalid, "amount"},
		{"load overflow", func(r *Record) {
			r.BalanceBefore, r.Amount, r.TAC, r.BalanceAfter = 0xFFFFFFFF, 1, []byte{1, 2, 3, 4}, 0
		}, sampleLoad, ErrInvalid, "balance_after"},
		{"load done ok", func(r *Record) { r.TAC, r.BalanceAfter = []byte{1, 2, 3, 4}, 50100 }, sampleLoad, nil, ""},
		{"certify with amount", func(r *Record) { r.Amount = 1 }, sampleCertify, ErrInvalid, "amount"},
		{"certify with balance", func(r *Record) { r.BalanceBefore = 1 }, sampleCertify, ErrInvalid, "balance_before"},
		{"certify with tac", func(r *Record) { r.TAC = []byte{1, 2, 3, 4} }, sampleCertify, ErrInvalid, "tac"},
		{"certify with tx type", func(r *Record) { r.TxType = TxPurchaseED }, sampleCertify, ErrInvalid, "tx_type"},
		{"zero time", func(r *Record) { r.At = time.Time{} }, samplePay, ErrInvalid, "at"},
		{"date 30 Feb", func(r *Record) { r.CardDate = "20260230" }, samplePay, ErrInvalid, "card_date"},
		{"date with sign", func(r *Record) { r.CardDate = "+2026031" }, samplePay, ErrInvalid, "card_date"},
		{"time 7 chars", func(r *Record) { r.CardTime = "0902030" }, samplePay, ErrInvalid, "card_time"},
		{"merchant too long", func(r *Record) { r.Merchant = strings.Repeat("商", 22) }, samplePay, ErrFieldTooLong, "merchant"},
		{"unknown kind", func(r *Record) { r.Kind = 4 }, samplePay, ErrInvalid, "kind"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := tt.base(t)
			tt.edit(r)
			err := r.Validate()
			if !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
				t.Fatalf("err %v, want %v", err, tt.want)
			}
			if tt.want == nil {
				return
			}
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field != tt.field {
				t.Errorf("err %v, want field %q", err, tt.field)
			}
			if _, err := r.MarshalBinary(); !errors.Is(err, tt.want) {
				t.Errorf("MarshalBinary err %v, want %v", err, tt.want)
			}
		})
	}
}

// TestErrorsHidePersonalData: no error names the value of a personal field.
func TestRecordErrorsHidePersonalData(t *testing.T) {
	r := samplePay(t)
	r.CardNumber = "SECRET-CARD-NUMBER-SECRET-CARD-NUMBER"
	r.PersonID = "SECRETSECRET"
	err := r.Validate()
	if err == nil {
		t.Fatal("over-long card number accepted")
	}
	if strings.Contains(err.Error(), "SECRET") {
		t.Errorf("error leaks the value: %v", err)
	}
	r = samplePay(t)
	r.HolderName = "秘密\x01"
	if err := r.Validate(); err == nil || strings.Contains(err.Error(), "秘密") {
		t.Errorf("err %v leaks or is nil", err)
	}
}

func TestRecordKindAndCardID(t *testing.T) {
	for _, k := range []Kind{KindPay, KindLoad, KindCertify} {
		got, err := ParseKind(k.String())
		if err != nil || got != k {
			t.Errorf("ParseKind(%q) = %v, %v", k.String(), got, err)
		}
	}
	if _, err := ParseKind("refund"); !errors.Is(err, ErrInvalid) {
		t.Errorf("ParseKind(refund) err %v", err)
	}
	if s := Kind(9).String(); s != "kind(9)" {
		t.Errorf("Kind(9) = %q", s)
	}
	const id = "411600D156000005C38275EEFC9B9648"
	c, err := ParseCardID(strings.ToLower(id))
	if err != nil || c.String() != id {
		t.Errorf("ParseCardID: %v %v", c, err)
	}
	for _, bad := range []string{"", "41", id + "00", "Z11600D156000005C38275EEFC9B9648"} {
		if _, err := ParseCardID(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseCardID(%q) err %v", bad, err)
		}
	}
}

func TestRecordMasked(t *testing.T) {
	r := samplePay(t)
	m := r.Masked()
	for _, tt := range []struct{ got, want string }{
		{m.CardNumber, "*****0001"},
		{m.PersonID, "110*************00"},
		{m.HolderName, "张*"},
	} {
		if tt.got != tt.want {
			t.Errorf("masked %q, want %q", tt.got, tt.want)
		}
	}
	if r.CardNumber != "C00000001" {
		t.Error("Masked changed the original")
	}
	if err := m.Validate(); err != nil {
		t.Errorf("masked record invalid: %v", err)
	}
	for _, tt := range []struct {
		in         string
		head, tail int
		want       string
	}{
		{"", 1, 1, ""},
		{"a", 1, 0, "*"},
		{"ab", 0, 4, "*b"},
		{"abcd", 0, 4, "**cd"},
		{"王", 1, 0, "*"},
		{"欧阳娜娜", 1, 0, "欧***"},
	} {
		if got := MaskTail(tt.in, tt.head, tt.tail); got != tt.want {
			t.Errorf("MaskTail(%q,%d,%d) = %q, want %q", tt.in, tt.head, tt.tail, got, tt.want)
		}
	}
}

// TestEncodedSizeBounds pins the sizes docs/record-encoding.md states.
func TestRecordEncodedSizeBounds(t *testing.T) {
	min := &Record{Kind: KindCertify, TerminalID: "000000000000", CardID: CardID{1},
		CardDate: "20000101", CardTime: "000000", At: sampleAt, Suite: "S"}
	b, err := min.MarshalBinary()
	if err != nil || len(b) != 86 {
		t.Errorf("smallest record: %d bytes (%v), want 86", len(b), err)
	}
	max := samplePay(t)
	max.Suite = strings.Repeat("S", MaxSuite)
	max.Fund = strings.Repeat("f", MaxFund)
	max.Merchant = strings.Repeat("m", MaxMerchant)
	max.CardNumber = strings.Repeat("1", MaxCardNumber)
	max.PersonID = strings.Repeat("2", MaxPersonID)
	max.HolderName = strings.Repeat("n", MaxHolderName)
	max.Attestation.Challenge = make([]byte, MaxChallenge)
	max.Attestation.CardSignature = make([]byte, SignatureLen)
	b, err = max.MarshalBinary()
	if err != nil || len(b) != 509 {
		t.Errorf("largest record: %d bytes (%v), want 509", len(b), err)
	}
}
