package ledger_test

import (
	"context"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/onecard-hub/onecard/hub/ledger"
	"github.com/onecard-hub/onecard/hub/store"
	"github.com/onecard-hub/onecard/hub/store/boltstore"
	"github.com/onecard-hub/onecard/hub/store/pgstore"
	"github.com/onecard-hub/onecard/internal/logbuf"
	"github.com/onecard-hub/onecard/internal/pgtest"
	"github.com/onecard-hub/onecard/internal/safeenv"
	"github.com/onecard-hub/onecard/terminal/record"
)

func TestMain(m *testing.M) {
	safeenv.Ensure()
	pgtest.Main(m)
}

const (
	day   = "20260314"
	termA = "370100000001"
	termB = "370100000002"
	termC = "370100000003"
)

var at = time.Date(2026, 3, 14, 1, 2, 3, 0, time.UTC)

// opener makes a fresh store.
type opener struct {
	name string
	open func(t testing.TB) store.Store
}

var openers = []opener{
	{"bolt", func(t testing.TB) store.Store {
		s, err := boltstore.Open(boltstore.Options{Path: filepath.Join(t.TempDir(), "hub.db"), NoSync: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}},
	{"postgres", func(t testing.TB) store.Store {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		s, err := pgstore.Open(ctx, pgstore.Options{DSN: pgtest.Start(t).CreateDB(t)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}},
}

// logBuffer is a concurrency-safe log sink.
type logBuffer = logbuf.Buffer

// eachStore runs fn against a ledger on every store; it checks the store's
// invariants afterwards.
func eachStore(t *testing.T, fn func(t *testing.T, l *ledger.Ledger, logs *logBuffer)) {
	for _, o := range openers {
		t.Run(o.name, func(t *testing.T) {
			s := o.open(t)
			logs := &logBuffer{}
			l, err := ledger.New(ledger.Options{Store: s, Logger: slog.New(slog.NewTextHandler(logs, nil)),
				Now: func() time.Time { return at }})
			if err != nil {
				t.Fatal(err)
			}
			fn(t, l, logs)
			if err := s.Check(ctx(t)); err != nil {
				t.Fatalf("invariants: %v", err)
			}
		})
	}
}

func ctx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return c
}

func card(n int) record.CardID {
	var c record.CardID
	copy(c[:], "\x41\x16\x00\xd1\x56\x00\x00\x05")
	c[12], c[13], c[14], c[15] = byte(n>>24), byte(n>>16), byte(n>>8), byte(n)
	return c
}

func payRecord(term string, seq uint64, c record.CardID, counter uint16, amount uint32, merchant, fund string) *record.Record {
	return &record.Record{
		Kind: record.KindPay, TerminalID: term, TerminalSeq: seq, CardID: c, CardCounter: counter,
		TxType: record.TxPurchaseED, Fund: fund, Merchant: merchant, Amount: amount,
		BalanceBefore: amount + 1000, BalanceAfter: 1000, CardDate: day, CardTime: "090203", At: at,
		CardRandom: [4]byte{1, 2, 3, 4}, PSAMSeq: uint32(seq), TAC: []byte{0xDE, 0xAD, 0xBE, 0xEF}, Suite: "SM4",
		CardNumber: "C00000001", PersonID: "110000199001010000", HolderName: "张三",
		Attestation: record.Attestation{InternalAuthOK: true, PINVerified: true},
	}
}

func loadRecord(term string, seq uint64, c record.CardID, counter uint16, amount uint32, programme, fund string) *record.Record {
	return &record.Record{
		Kind: record.KindLoad, TerminalID: term, TerminalSeq: seq, CardID: c, CardCounter: counter,
		TxType: record.TxLoadEP, Fund: fund, Merchant: programme, Amount: amount,
		BalanceBefore: 100, BalanceAfter: 100 + amount, CardDate: day, CardTime: "100000", At: at,
		TAC: []byte{1, 2, 3, 4}, MAC2: []byte{5, 6, 7, 8}, Suite: "SM4",
	}
}

func certifyRecord(term string, seq uint64, c record.CardID) *record.Record {
	return &record.Record{
		Kind: record.KindCertify, TerminalID: term, TerminalSeq: seq, CardID: c, Merchant: "PENSION-37",
		CardDate: day, CardTime: "110000", At: at, Suite: "SM4",
		Attestation: record.Attestation{InternalAuthOK: true, PINVerified: true, Challenge: []byte("challenge")},
	}
}

func keyOf(r *record.Record) store.Key { return store.RecordKey(r.TerminalID, r.TerminalSeq) }
