package sync_test

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	hubsync "github.com/onecard-hub/onecard/hub/sync"
	"github.com/onecard-hub/onecard/sm"
	"github.com/onecard-hub/onecard/terminal/journal/journaltest"
	"github.com/onecard-hub/onecard/terminal/record"
)

const (
	testHub  = "hub-test-1"
	testTerm = "370100000001"
)

func nonce(b byte) []byte { return bytes.Repeat([]byte{b}, hubsync.NonceLen) }

// sealedRecord returns the envelope bytes of a valid signed record.
func sealedRecord(t testing.TB, priv *sm.PrivateKey, seq uint64) []byte {
	t.Helper()
	r := journaltest.NewRecord(record.KindPay, journaltest.Card(1), 100)
	r.TerminalSeq = seq
	env, err := record.Seal(r, priv)
	if err != nil {
		t.Fatal(err)
	}
	b, err := env.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sampleMessages returns one valid message of every type (the fuzz seeds
// and the round-trip table).
func sampleMessages(t testing.TB) []hubsync.Message {
	t.Helper()
	priv, err := sm.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := hubsync.SignHello(priv, testHub, testTerm, nonce(7))
	if err != nil {
		t.Fatal(err)
	}
	esig, err := hubsync.SignEnroll(priv, testHub, testTerm, nonce(8), "tok-123")
	if err != nil {
		t.Fatal(err)
	}
	card := journaltest.Card(9).String()
	tot := &hubsync.Totals{Day: "20261130", Rev: 7, PayCount: 3, PayAmount: 4500, LoadCount: 1, LoadAmount: 10000, CertifyCount: 2}
	if err := hubsync.SignTotals(priv, testTerm, tot); err != nil {
		t.Fatal(err)
	}
	return []hubsync.Message{
		&hubsync.Challenge{HubID: testHub, Versions: []int{1}, Nonce: nonce(7), MaxMessage: 1 << 20, MaxBatch: 256},
		&hubsync.Hello{TerminalID: testTerm, Nonce: nonce(7), Signature: sig, Agent: "onecard test", LostVersion: 3, ConfigVersion: 1},
		&hubsync.Welcome{TerminalID: testTerm, LastAck: 42, MaxBatch: 256, MaxMessage: 1 << 20, PingIntervalMS: 25000},
		&hubsync.Enroll{TerminalID: testTerm, PublicKey: priv.PublicKey().Point(), Token: "tok-123", Nonce: nonce(8), Signature: esig, Agent: "x"},
		&hubsync.Enrolled{TerminalID: testTerm, Status: hubsync.StatusPending},
		&hubsync.Batch{Records: [][]byte{sealedRecord(t, priv, 1), sealedRecord(t, priv, 2)}},
		&hubsync.Acks{Results: []hubsync.Ack{
			{Seq: 1, Status: hubsync.AckAccepted},
			{Seq: 2, Status: hubsync.AckRejected, Code: hubsync.RejectTAC, Reason: "TAC mismatch"},
		}, LastAck: 1},
		&hubsync.LostCards{From: 1, To: 3, Add: []string{card}, Remove: []string{journaltest.Card(10).String()}},
		&hubsync.LostSync{Version: 3},
		&hubsync.Config{Version: 2, Values: map[string]string{"receipt.footer": "谢谢", "batch": "100"}},
		&hubsync.CreditsQuery{CardID: card},
		&hubsync.Credits{CardID: card, Credits: []hubsync.Credit{{Programme: "P2026", Fund: "310", Amount: 5000, Note: "补贴"}}},
		&hubsync.LoadAuth{TerminalSeq: 9, CardID: card, AlgFlag: 3, Programme: "P2026", Amount: 5000, TxType: 2,
			Balance: 100, OnlineSeq: 4, Random: []byte{1, 2, 3, 4}, MAC1: []byte{5, 6, 7, 8}, CardDate: "20260314", CardTime: "090203"},
		&hubsync.LoadAuthResult{MAC2: []byte{1, 2, 3, 4}},
		&hubsync.KeyRead{Region: "411600", Historical: []byte{0x86, 0x01}, AlgFlag: 3, CardID: card,
			Randoms: [][]byte{bytes.Repeat([]byte{1}, 8), bytes.Repeat([]byte{2}, 8), bytes.Repeat([]byte{3}, 8), bytes.Repeat([]byte{4}, 8)}},
		&hubsync.KeyReadResult{Result1: bytes.Repeat([]byte{9}, 16), Result2: bytes.Repeat([]byte{8}, 16)},
		tot,
		&hubsync.TotalsResult{Day: "20261130", Status: hubsync.TotalsStored, Match: true},
		&hubsync.Error{Code: hubsync.CodeSuspended, Reason: "terminal suspended", Fatal: true},
	}
}

func TestSyncRoundTrip(t *testing.T) {
	msgs := sampleMessages(t)
	seen := map[hubsync.Type]bool{}
	for i, m := range msgs {
		t.Run(string(m.Type()), func(t *testing.T) {
			b, err := hubsync.Encode(uint64(i+1), m)
			if err != nil {
				t.Fatalf("encode: %v", err)
			}
			id, got, err := hubsync.Decode(b, hubsync.Limits{})
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if id != uint64(i+1) || !reflect.DeepEqual(got, m) {
				t.Fatalf("round trip: id %d, got %#v, want %#v", id, got, m)
			}
			b2, err := hubsync.Encode(id, got)
			if err != nil || !bytes.Equal(b, b2) {
				t.Fatalf("re-encode differs: %v", err)
			}
		})
		seen[m.Type()] = true
	}
	for _, ty := range hubsync.Types() {
		if !seen[ty] {
			t.Errorf("no sample for message type %s", ty)
		}
	}
}

func TestSyncDecodeRejects(t *testing.T) {
	good, err := hubsync.Encode(1, &hubsync.LostSync{Version: 1})
	if err != nil {
		t.Fatal(err)
	}
	frame := func(v int, ty, body string) []byte {
		return []byte(`{"v":` + string(rune('0'+v)) + `,"type":"` + ty + `","id":1,"body":` + body + `}`)
	}
	big := &hubsync.Batch{}
	for i := 0; i < 3; i++ {
		big.Records = append(big.Records, []byte{1})
	}
	bigFrame, err := hubsync.EncodeLimits(1, big, hubsync.Limits{MaxBatch: 3})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		in   []byte
		lim  hubsync.Limits
		want error
	}{
		{"not json", []byte("hello"), hubsync.Limits{}, hubsync.ErrMalformed},
		{"empty", nil, hubsync.Limits{}, hubsync.ErrMalformed},
		{"trailing", append(append([]byte(nil), good...), []byte(" {}")...), hubsync.Limits{}, hubsync.ErrMalformed},
		{"version 2", frame(2, "lost_sync", `{"version":1}`), hubsync.Limits{}, hubsync.ErrVersion},
		{"unknown type", frame(1, "launch", `{}`), hubsync.Limits{}, hubsync.ErrMalformed},
		{"unknown field", frame(1, "lost_sync", `{"version":1,"x":2}`), hubsync.Limits{}, hubsync.ErrMalformed},
		{"unknown frame field", []byte(`{"v":1,"type":"lost_sync","body":{"version":1},"sig":"x"}`), hubsync.Limits{}, hubsync.ErrMalformed},
		{"null body", frame(1, "lost_sync", `null`), hubsync.Limits{}, hubsync.ErrMalformed},
		{"no body", []byte(`{"v":1,"type":"lost_sync"}`), hubsync.Limits{}, hubsync.ErrMalformed},
		{"wrong type", frame(1, "lost_sync", `{"version":"1"}`), hubsync.Limits{}, hubsync.ErrMalformed},
		{"negative", frame(1, "lost_sync", `{"version":-1}`), hubsync.Limits{}, hubsync.ErrMalformed},
		{"too big", bytes.Repeat([]byte(" "), 5000), hubsync.Limits{MaxMessage: 4096}, hubsync.ErrTooLarge},
		{"batch over limit", bigFrame, hubsync.Limits{MaxBatch: 2}, hubsync.ErrTooLarge},
		{"empty batch", frame(1, "batch", `{"records":[]}`), hubsync.Limits{}, hubsync.ErrMalformed},
		{"bad base64", frame(1, "batch", `{"records":["!!"]}`), hubsync.Limits{}, hubsync.ErrMalformed},
		{"short nonce", frame(1, "hello", `{"terminal_id":"370100000001","nonce":"AAAA","signature":"AAAA","lost_version":0}`), hubsync.Limits{}, hubsync.ErrMalformed},
		{"bad terminal", frame(1, "credits_query", `{"card_id":"00"}`), hubsync.Limits{}, hubsync.ErrMalformed},
		{"unknown ack status", frame(1, "acks", `{"results":[{"seq":1,"status":"maybe"}],"last_ack":0}`), hubsync.Limits{}, hubsync.ErrMalformed},
		{"rejected without code", frame(1, "acks", `{"results":[{"seq":1,"status":"rejected"}],"last_ack":0}`), hubsync.Limits{}, hubsync.ErrMalformed},
		{"control char", frame(1, "error", `{"code":"x","reason":"a\u0007b"}`), hubsync.Limits{}, hubsync.ErrMalformed},
		{"bad config key", frame(1, "config", `{"version":1,"values":{"A B":"x"}}`), hubsync.Limits{}, hubsync.ErrMalformed},
		{"lost reset with remove", frame(1, "lost_cards", `{"from":0,"to":1,"reset":true,"remove":["411600D156000005C38275EEFC9B9601"]}`), hubsync.Limits{}, hubsync.ErrMalformed},
		{"lost zero card", frame(1, "lost_cards", `{"from":0,"to":1,"add":["00000000000000000000000000000000"]}`), hubsync.Limits{}, hubsync.ErrMalformed},
		{"lost backwards", frame(1, "lost_cards", `{"from":5,"to":1}`), hubsync.Limits{}, hubsync.ErrMalformed},
		{"load auth bad flag", frame(1, "load_auth", `{"terminal_seq":1,"card_id":"411600D156000005C38275EEFC9B9601","alg_flag":2,"programme":"p","amount":1,"tx_type":2,"balance":0,"online_seq":0,"random":"AQIDBA==","mac1":"AQIDBA==","card_date":"20260101","card_time":"000000"}`), hubsync.Limits{}, hubsync.ErrMalformed},
		{"totals negative", frame(1, "totals", `{"day":"20261130","rev":1,"pay_count":-1,"pay_amount":0,"load_count":0,"load_amount":0,"certify_count":0,"signature":"`+sig64+`"}`), hubsync.Limits{}, hubsync.ErrMalformed},
		{"totals rev 0", frame(1, "totals", `{"day":"20261130","rev":0,"pay_count":0,"pay_amount":0,"load_count":0,"load_amount":0,"certify_count":0,"signature":"`+sig64+`"}`), hubsync.Limits{}, hubsync.ErrMalformed},
		{"totals bad day", frame(1, "totals", `{"day":"2026-11-3","rev":1,"pay_count":0,"pay_amount":0,"load_count":0,"load_amount":0,"certify_count":0,"signature":"`+sig64+`"}`), hubsync.Limits{}, hubsync.ErrMalformed},
		{"totals result status", frame(1, "totals_result", `{"day":"20261130","status":"maybe","match":true}`), hubsync.Limits{}, hubsync.ErrMalformed},
		{"key read 3 randoms", frame(1, "key_read", `{"alg_flag":3,"card_id":"411600D156000005C38275EEFC9B9601","randoms":["AAAAAAAAAAA=","AAAAAAAAAAA=","AAAAAAAAAAA="]}`), hubsync.Limits{}, hubsync.ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, m, err := hubsync.Decode(tt.in, tt.lim)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Decode = %v, %v; want %v", m, err, tt.want)
			}
			if m != nil {
				t.Fatalf("message returned with an error")
			}
		})
	}
}

func TestSyncEncodeRefusesInvalid(t *testing.T) {
	for _, m := range []hubsync.Message{
		&hubsync.Batch{},
		&hubsync.Hello{TerminalID: "12"},
		&hubsync.Error{},
		&hubsync.LoadAuthResult{MAC2: []byte{1}},
		nil,
	} {
		if _, err := hubsync.Encode(1, m); !errors.Is(err, hubsync.ErrMalformed) {
			t.Errorf("Encode(%#v) = %v, want ErrMalformed", m, err)
		}
	}
}

func TestSyncErrorsDoNotQuoteInput(t *testing.T) {
	secret := "SECRETSECRET"
	in := []byte(`{"v":1,"type":"` + secret + `","body":{}}`)
	_, _, err := hubsync.Decode(in, hubsync.Limits{})
	if err == nil {
		t.Fatal("decoded an unknown type")
	}
	// An unknown type is quoted clipped; the body never is.
	in = []byte(`{"v":1,"type":"error","body":{"code":"x","reason":"ok","` + secret + `":1}}`)
	_, _, err = hubsync.Decode(in, hubsync.Limits{})
	if err == nil || strings.Contains(err.Error(), secret) {
		t.Fatalf("error %v quotes the input", err)
	}
}

// sig64 is a well-formed (not a valid) 64-byte signature in base64.
var sig64 = strings.Repeat("A", 84) + "=="

func TestSyncTotalsSignature(t *testing.T) {
	priv, _ := sm.GenerateKey(rand.Reader)
	other, _ := sm.GenerateKey(rand.Reader)
	base := hubsync.Totals{Day: "20261130", Rev: 2, PayCount: 3, PayAmount: 4500, LoadCount: 1, LoadAmount: 10000, CertifyCount: 2}
	signed := base
	if err := hubsync.SignTotals(priv, testTerm, &signed); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		pub  *sm.PublicKey
		term string
		edit func(m *hubsync.Totals)
		want bool
	}{
		{"valid", priv.PublicKey(), testTerm, func(*hubsync.Totals) {}, true},
		{"other key", other.PublicKey(), testTerm, func(*hubsync.Totals) {}, false},
		{"other terminal", priv.PublicKey(), "370100000099", func(*hubsync.Totals) {}, false},
		{"amount changed", priv.PublicKey(), testTerm, func(m *hubsync.Totals) { m.PayAmount++ }, false},
		{"older rev", priv.PublicKey(), testTerm, func(m *hubsync.Totals) { m.Rev = 1 }, false},
		{"other day", priv.PublicKey(), testTerm, func(m *hubsync.Totals) { m.Day = "20261201" }, false},
		{"certify count", priv.PublicKey(), testTerm, func(m *hubsync.Totals) { m.CertifyCount = 0 }, false},
	}
	for _, tt := range tests {
		m := signed
		tt.edit(&m)
		if got := hubsync.VerifyTotals(tt.pub, tt.term, &m); got != tt.want {
			t.Errorf("%s: VerifyTotals = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestSyncHelloSignature(t *testing.T) {
	priv, err := sm.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	other, err := sm.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := hubsync.SignHello(priv, testHub, testTerm, nonce(1))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		pub   *sm.PublicKey
		hub   string
		term  string
		nonce []byte
		want  bool
	}{
		{"valid", priv.PublicKey(), testHub, testTerm, nonce(1), true},
		{"other key", other.PublicKey(), testHub, testTerm, nonce(1), false},
		{"other hub", priv.PublicKey(), "hub-2", testTerm, nonce(1), false},
		{"other terminal", priv.PublicKey(), testHub, "370100000002", nonce(1), false},
		{"other nonce", priv.PublicKey(), testHub, testTerm, nonce(2), false},
		{"bad nonce", priv.PublicKey(), testHub, testTerm, nonce(1)[:5], false},
	}
	for _, tt := range tests {
		if got := hubsync.VerifyHello(tt.pub, tt.hub, tt.term, tt.nonce, sig); got != tt.want {
			t.Errorf("%s: VerifyHello = %v, want %v", tt.name, got, tt.want)
		}
	}
	// The hello bytes never verify as a record and vice versa (magic).
	msg, err := hubsync.HelloBytes(testHub, testTerm, nonce(1))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := record.Decode(msg); !errors.Is(err, record.ErrMagic) {
		t.Errorf("hello bytes decode as a record: %v", err)
	}
	// Enrolment proof.
	e := &hubsync.Enroll{TerminalID: testTerm, PublicKey: priv.PublicKey().Point(), Token: "t1", Nonce: nonce(3)}
	if e.Signature, err = hubsync.SignEnroll(priv, testHub, testTerm, nonce(3), "t1"); err != nil {
		t.Fatal(err)
	}
	if pub, ok := hubsync.VerifyEnroll(testHub, e); !ok || !pub.Equal(priv.PublicKey()) {
		t.Error("valid enrolment refused")
	}
	e.Token = "t2"
	if _, ok := hubsync.VerifyEnroll(testHub, e); ok {
		t.Error("enrolment with another token accepted")
	}
	e.Token, e.PublicKey = "t1", other.PublicKey().Point()
	if _, ok := hubsync.VerifyEnroll(testHub, e); ok {
		t.Error("enrolment with another key accepted")
	}
}

func TestSyncParsePin(t *testing.T) {
	digest := bytes.Repeat([]byte{0xAB}, 32)
	hexPin := strings.Repeat("ab", 32)
	tests := []struct {
		in   string
		want []byte
	}{
		{"sha256/q6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6s=", digest},
		{hexPin, digest},
		{strings.ToUpper(hexPin), digest},
		{"sha256/short", nil},
		{"abcd", nil},
		{"", nil},
	}
	for _, tt := range tests {
		got, err := hubsync.ParsePin(tt.in)
		if tt.want == nil {
			if !errors.Is(err, hubsync.ErrMalformed) {
				t.Errorf("ParsePin(%q) = %x, %v; want ErrMalformed", tt.in, got, err)
			}
			continue
		}
		if err != nil || !bytes.Equal(got, tt.want) {
			t.Errorf("ParsePin(%q) = %x, %v", tt.in, got, err)
		}
	}
}

func TestSyncPrintable(t *testing.T) {
	s := hubsync.Printable("a\x00b\xffc" + strings.Repeat("长", 400))
	e := hubsync.NewError("x", s, false)
	if err := e.Validate(hubsync.Limits{}); err != nil {
		t.Fatalf("Printable output invalid: %v", err)
	}
	if !strings.HasPrefix(s, "a b\uFFFDc") {
		t.Errorf("Printable = %q", s[:10])
	}
}

// FuzzSyncMessage: Decode never panics; whatever it accepts re-encodes
// and decodes to the same message.
func FuzzSyncMessage(f *testing.F) {
	for i, m := range sampleMessages(f) {
		b, err := hubsync.Encode(uint64(i), m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"v":1,"type":"batch","id":3,"body":{"records":["T0NURQ=="]}}`))
	f.Add([]byte(`{"v":1,"type":"lost_cards","body":{"from":0,"to":0,"reset":true}}`))
	lim := hubsync.Limits{MaxMessage: 64 << 10, MaxBatch: 16}
	f.Fuzz(func(t *testing.T, b []byte) {
		id, m, err := hubsync.Decode(b, lim)
		if err != nil {
			if m != nil {
				t.Fatal("message with error")
			}
			if !errors.Is(err, hubsync.ErrMalformed) && !errors.Is(err, hubsync.ErrTooLarge) && !errors.Is(err, hubsync.ErrVersion) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		b2, err := hubsync.EncodeLimits(id, m, lim)
		if err != nil {
			// Re-encoding can only fail on size (JSON escapes differ).
			if !errors.Is(err, hubsync.ErrTooLarge) {
				t.Fatalf("accepted message does not re-encode: %v", err)
			}
			return
		}
		id2, m2, err := hubsync.Decode(b2, lim)
		if err != nil || id2 != id {
			t.Fatalf("re-encoded message does not decode: %v", err)
		}
		j1, _ := json.Marshal(m)
		j2, _ := json.Marshal(m2)
		if !bytes.Equal(j1, j2) {
			t.Fatalf("round trip differs:\n%s\n%s", j1, j2)
		}
	})
}
