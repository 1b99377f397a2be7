package server_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/onecard-hub/onecard/hub/server"
	"github.com/onecard-hub/onecard/hub/server/servertest"
	"github.com/onecard-hub/onecard/hub/store"
	hubsync "github.com/onecard-hub/onecard/hub/sync"
	"github.com/onecard-hub/onecard/sm"
	"github.com/onecard-hub/onecard/terminal/journal"
	"github.com/onecard-hub/onecard/terminal/record"
)

// sealed returns the envelope of r (completed with a genuine card's TAC
// unless noTAC) signed with key.
func sealed(t *testing.T, keys *sm.KeySet, key *sm.PrivateKey, r *record.Record, seq uint64) []byte {
	t.Helper()
	r.TerminalSeq = seq
	if r.Kind.Money() && len(r.TAC) == 0 {
		res := servertest.Result(t, keys, r)
		r.TAC, r.MAC2, r.BalanceAfter = res.TAC, res.MAC2, res.BalanceAfter
	}
	env, err := record.Seal(r, key)
	if err != nil {
		t.Fatal(err)
	}
	b, err := env.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func payRec(term string, card, counter int, amount uint32) *record.Record {
	return servertest.Record(record.KindPay, term, servertest.Card(card), uint16(counter), amount)
}

// TestSyncAttacks sends bad records and bad frames to one hub: each is
// refused with its reason code, nothing is posted, and the hub keeps
// serving an honest agent afterwards.
func TestSyncAttacks(t *testing.T) {
	keys := servertest.Keys(t)
	h, st, _ := startHub(t, false, func(o *server.Options) {
		o.MaxMessage, o.MaxBatch, o.HelloTimeout = 64<<10, 8, 500*time.Millisecond
	})
	ctx := context.Background()
	merchant := servertest.MerchantAccount
	balance := func() int64 {
		b, err := st.Balance(ctx, merchant)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	termNo := 100
	nextTerm := func() (string, *sm.PrivateKey) {
		termNo++
		no := fmt.Sprintf("3701000%05d", termNo)
		key := servertest.TerminalKey(t)
		servertest.Register(t, st, no, key.PublicKey())
		return no, key
	}
	session := func(t *testing.T, no string, key *sm.PrivateKey) *servertest.Raw {
		r, err := servertest.DialRaw(h.URL)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close() })
		m, err := r.Hello(no, key)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := m.(*hubsync.Welcome); !ok {
			t.Fatalf("hello answered %#v", m)
		}
		return r
	}

	// Record attacks: the batch is acknowledged with the rejection code.
	recordCases := []struct {
		name string
		// records returns the batch; prior batches (if any) are sent first
		// and must be accepted.
		records func(t *testing.T, no string, key *sm.PrivateKey) (prior [][]byte, batch [][]byte)
		want    []string // per record of batch: reject code, or "duplicate"
		posted  int64    // amount posted by the case (prior included)
	}{
		{
			name: "forged signature",
			records: func(t *testing.T, no string, _ *sm.PrivateKey) ([][]byte, [][]byte) {
				return nil, [][]byte{sealed(t, keys, servertest.TerminalKey(t), payRec(no, 1, 1, 10), 1)}
			},
			want: []string{hubsync.RejectSignature},
		},
		{
			name: "signature reused on another record",
			records: func(t *testing.T, no string, key *sm.PrivateKey) ([][]byte, [][]byte) {
				a := sealed(t, keys, key, payRec(no, 1, 1, 10), 1)
				b := sealed(t, keys, key, payRec(no, 1, 2, 5000), 2)
				// b's record with a's signature (the last 64 bytes).
				forged := append(bytes.Clone(b[:len(b)-64]), a[len(a)-64:]...)
				return nil, [][]byte{forged}
			},
			want: []string{hubsync.RejectSignature},
		},
		{
			name: "replayed batch",
			records: func(t *testing.T, no string, key *sm.PrivateKey) ([][]byte, [][]byte) {
				b := [][]byte{sealed(t, keys, key, payRec(no, 2, 1, 10), 1), sealed(t, keys, key, payRec(no, 2, 2, 20), 2)}
				return b, b
			},
			want:   []string{"duplicate", "duplicate"},
			posted: 30,
		},
		{
			name: "same record re-signed",
			records: func(t *testing.T, no string, key *sm.PrivateKey) ([][]byte, [][]byte) {
				r := payRec(no, 3, 1, 10)
				return [][]byte{sealed(t, keys, key, r, 1)}, [][]byte{sealed(t, keys, key, r, 1)}
			},
			want:   []string{"duplicate"},
			posted: 10,
		},
		{
			name: "same sequence, other content",
			records: func(t *testing.T, no string, key *sm.PrivateKey) ([][]byte, [][]byte) {
				return [][]byte{sealed(t, keys, key, payRec(no, 4, 1, 10), 1)},
					[][]byte{sealed(t, keys, key, payRec(no, 4, 2, 99), 1)}
			},
			want:   []string{hubsync.RejectConflict},
			posted: 10,
		},
		{
			name: "tampered amount",
			records: func(t *testing.T, no string, key *sm.PrivateKey) ([][]byte, [][]byte) {
				r := payRec(no, 5, 1, 10)
				res := servertest.Result(t, keys, r)
				r.TAC, r.MAC2 = res.TAC, res.MAC2
				r.Amount, r.BalanceAfter = 5000, r.BalanceBefore-5000
				return nil, [][]byte{sealed(t, keys, key, r, 1)}
			},
			want: []string{hubsync.RejectTAC},
		},
		{
			name: "record of another terminal",
			records: func(t *testing.T, _ string, key *sm.PrivateKey) ([][]byte, [][]byte) {
				return nil, [][]byte{sealed(t, keys, key, payRec("370100099999", 6, 1, 10), 1)}
			},
			want: []string{hubsync.RejectWrongTerminal},
		},
		{
			name: "card counter reused",
			records: func(t *testing.T, no string, key *sm.PrivateKey) ([][]byte, [][]byte) {
				return [][]byte{sealed(t, keys, key, payRec(no, 7, 1, 10), 1)},
					[][]byte{sealed(t, keys, key, payRec(no, 7, 1, 10), 2)}
			},
			want:   []string{hubsync.RejectCounterReuse},
			posted: 10,
		},
		{
			name: "money without TAC",
			records: func(t *testing.T, no string, key *sm.PrivateKey) ([][]byte, [][]byte) {
				r := payRec(no, 8, 1, 10)
				r.TerminalSeq = 1
				env, err := record.Seal(r, key)
				if err != nil {
					t.Fatal(err)
				}
				b, _ := env.MarshalBinary()
				return nil, [][]byte{b}
			},
			want: []string{hubsync.RejectNoProof},
		},
		{
			name: "undecodable envelope",
			records: func(t *testing.T, no string, key *sm.PrivateKey) ([][]byte, [][]byte) {
				good := sealed(t, keys, key, payRec(no, 9, 1, 10), 1)
				return nil, [][]byte{[]byte("OCTE garbage"), good[:len(good)-1]}
			},
			want: []string{hubsync.RejectMalformed, hubsync.RejectMalformed},
		},
	}
	for _, tc := range recordCases {
		t.Run(tc.name, func(t *testing.T) {
			before := balance()
			deadBefore, _ := st.DeadLetters(ctx, 0, 10000)
			no, key := nextTerm()
			r := session(t, no, key)
			prior, batch := tc.records(t, no, key)
			if prior != nil {
				a, err := r.Batch(1, prior...)
				if err != nil {
					t.Fatal(err)
				}
				for _, res := range a.Results {
					if res.Status != hubsync.AckAccepted {
						t.Fatalf("prior record %+v", res)
					}
				}
			}
			a, err := r.Batch(2, batch...)
			if err != nil {
				t.Fatal(err)
			}
			rejected := 0
			for i, res := range a.Results {
				got := res.Code
				if res.Status == hubsync.AckDuplicate {
					got = "duplicate"
				} else if res.Status != hubsync.AckRejected {
					t.Fatalf("record %d: %+v, want %s", i, res, tc.want[i])
				} else {
					rejected++
					if res.Reason == "" {
						t.Errorf("record %d rejected without a reason", i)
					}
				}
				if got != tc.want[i] {
					t.Fatalf("record %d: %+v, want %s", i, res, tc.want[i])
				}
			}
			if got := balance() - before; got != tc.posted {
				t.Fatalf("posted %d fen, want %d", got, tc.posted)
			}
			dead, _ := st.DeadLetters(ctx, 0, 10000)
			if len(dead)-len(deadBefore) != rejected {
				t.Fatalf("%d new dead letters, want %d", len(dead)-len(deadBefore), rejected)
			}
		})
	}

	// Connection attacks: the hub answers with a fatal error code (or, for
	// HTTP-level refusals, a status) and closes.
	enrolled, _ := func() (string, *sm.PrivateKey) {
		termNo++
		no := fmt.Sprintf("3701000%05d", termNo)
		key := servertest.TerminalKey(t)
		if err := servertest.RegisterState(st, no, key.PublicKey(), store.StateEnrolled); err != nil {
			t.Fatal(err)
		}
		return no, key
	}()
	suspended, suspKey := func() (string, *sm.PrivateKey) {
		termNo++
		no := fmt.Sprintf("3701000%05d", termNo)
		key := servertest.TerminalKey(t)
		if err := servertest.RegisterState(st, no, key.PublicKey(), store.StateSuspended); err != nil {
			t.Fatal(err)
		}
		return no, key
	}()
	active, activeKey := nextTerm()
	helloCases := []struct {
		name string
		term string
		key  *sm.PrivateKey
		want string
	}{
		{"unknown terminal", "370199999999", servertest.TerminalKey(t), hubsync.CodeUnknownTerminal},
		{"suspended terminal", suspended, suspKey, hubsync.CodeSuspended},
		{"pending terminal", enrolled, servertest.TerminalKey(t), hubsync.CodeBadSignature},
		{"hello signed by another key", active, servertest.TerminalKey(t), hubsync.CodeBadSignature},
	}
	for _, tc := range helloCases {
		t.Run(tc.name, func(t *testing.T) {
			r, err := servertest.DialRaw(h.URL)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			m, err := r.Hello(tc.term, tc.key)
			if err != nil {
				t.Fatal(err)
			}
			e, ok := m.(*hubsync.Error)
			if !ok || e.Code != tc.want || !e.Fatal {
				t.Fatalf("hello answered %#v, want %s", m, tc.want)
			}
		})
	}
	t.Run("hello replayed on another connection", func(t *testing.T) {
		r1, err := servertest.DialRaw(h.URL)
		if err != nil {
			t.Fatal(err)
		}
		defer r1.Close()
		sig, _ := hubsync.SignHello(activeKey, r1.Challenge.HubID, active, r1.Challenge.Nonce)
		r2, err := servertest.DialRaw(h.URL)
		if err != nil {
			t.Fatal(err)
		}
		defer r2.Close()
		// The signature over r1's nonce, presented to r2 (with r1's or r2's nonce).
		for _, nonce := range [][]byte{r1.Challenge.Nonce, r2.Challenge.Nonce} {
			r2.Send(1, &hubsync.Hello{TerminalID: active, Nonce: nonce, Signature: sig})
			if code := r2.ReadError(); code != hubsync.CodeBadSignature {
				t.Fatalf("replayed hello: %q", code)
			}
			r2.Close()
			if r2, err = servertest.DialRaw(h.URL); err != nil {
				t.Fatal(err)
			}
		}
	})
	t.Run("pending terminal with its key", func(t *testing.T) {
		// Enrolled with its own key but not approved.
		termNo++
		no := fmt.Sprintf("3701000%05d", termNo)
		key := servertest.TerminalKey(t)
		if err := servertest.RegisterState(st, no, key.PublicKey(), store.StateEnrolled); err != nil {
			t.Fatal(err)
		}
		r, err := servertest.DialRaw(h.URL)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		m, _ := r.Hello(no, key)
		if e, ok := m.(*hubsync.Error); !ok || e.Code != hubsync.CodePending {
			t.Fatalf("hello answered %#v, want pending", m)
		}
	})

	frameCases := []struct {
		name  string
		hello bool // say hello first
		send  func(r *servertest.Raw) error
		want  string
	}{
		{"oversized frame", true, func(r *servertest.Raw) error {
			return r.SendRaw(append([]byte(`{"v":1,"type":"lost_sync","id":1,"body":{"version":1}}`), bytes.Repeat([]byte(" "), 70<<10)...))
		}, "close:1009"},
		{"oversized frame before hello", false, func(r *servertest.Raw) error {
			return r.SendRaw(bytes.Repeat([]byte("x"), 20<<10))
		}, "close:1009"},
		{"batch above the limit", true, func(r *servertest.Raw) error {
			b := &hubsync.Batch{}
			for i := 0; i < 9; i++ {
				b.Records = append(b.Records, []byte("OCTE"))
			}
			return r.Send(5, b)
		}, hubsync.CodeTooLarge},
		{"malformed JSON", true, func(r *servertest.Raw) error { return r.SendRaw([]byte(`{"v":1,"type":"batch"`)) }, hubsync.CodeBadMessage},
		{"unknown field", true, func(r *servertest.Raw) error {
			return r.SendRaw([]byte(`{"v":1,"type":"lost_sync","id":3,"body":{"version":1,"evil":true}}`))
		}, hubsync.CodeBadMessage},
		{"other protocol version", true, func(r *servertest.Raw) error {
			return r.SendRaw([]byte(`{"v":2,"type":"lost_sync","id":3,"body":{"version":1}}`))
		}, hubsync.CodeVersion},
		{"request without frame ID", true, func(r *servertest.Raw) error {
			return r.Send(0, &hubsync.Batch{Records: [][]byte{[]byte("x")}})
		}, hubsync.CodeBadMessage},
		{"hub message from an agent", true, func(r *servertest.Raw) error {
			return r.Send(4, &hubsync.Acks{Results: []hubsync.Ack{}})
		}, hubsync.CodeUnexpected},
		{"batch instead of hello", false, func(r *servertest.Raw) error {
			return r.Send(1, &hubsync.Batch{Records: [][]byte{[]byte("x")}})
		}, hubsync.CodeUnexpected},
		{"no hello", false, func(*servertest.Raw) error { return nil }, hubsync.CodeTimeout},
	}
	for _, tc := range frameCases {
		t.Run(tc.name, func(t *testing.T) {
			before := balance()
			r, err := servertest.DialRaw(h.URL)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			if tc.hello {
				no, key := nextTerm()
				if m, err := r.Hello(no, key); err != nil {
					t.Fatal(err)
				} else if _, ok := m.(*hubsync.Welcome); !ok {
					t.Fatalf("hello answered %#v", m)
				}
			}
			err = tc.send(r)
			switch {
			case err != nil && tc.want == "close:1009" && (errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)):
				// The hub closed the connection as soon as the frame
				// header announced too many bytes, while the rest was
				// still being written: the reset can discard its close
				// frame before we read it. The connection is gone either
				// way, which is what the checks below hold.
			case err != nil:
				t.Fatal(err)
			default:
				if code := r.ReadError(); code != tc.want {
					t.Fatalf("error code %q, want %q", code, tc.want)
				}
			}
			if _, _, err := r.Read(); err == nil {
				t.Fatal("connection still open after a fatal error")
			}
			if balance() != before {
				t.Fatal("something was posted")
			}
		})
	}

	t.Run("HTTP refusals", func(t *testing.T) {
		for _, tc := range []struct {
			name   string
			header http.Header
			proto  []string
			want   int
		}{
			{"browser origin", http.Header{"Origin": {"https://evil.example"}}, []string{hubsync.Subprotocol}, http.StatusForbidden},
			{"no subprotocol", nil, nil, http.StatusBadRequest},
			{"other subprotocol", nil, []string{"chat"}, http.StatusBadRequest},
		} {
			d := websocket.Dialer{Subprotocols: tc.proto, HandshakeTimeout: 5 * time.Second}
			ws, resp, err := d.Dial(h.URL, tc.header)
			if err == nil {
				ws.Close()
				t.Fatalf("%s: connection accepted", tc.name)
			}
			if resp == nil || resp.StatusCode != tc.want {
				t.Fatalf("%s: %v, want HTTP %d", tc.name, err, tc.want)
			}
			resp.Body.Close()
		}
	})

	// The hub still serves an honest agent.
	t.Run("honest agent afterwards", func(t *testing.T) {
		before := balance()
		a := newAgent(t, "370100000002", h)
		servertest.Register(t, st, a.term, a.key.PublicKey())
		servertest.Fill(t, a.j, keys, a.term, 200, 2, 20, 7)
		if err := a.client(t).Sync(ctx); err != nil {
			t.Fatal(err)
		}
		wantStates(t, a.j, journal.Cleared, 20)
		if got := balance() - before; got != 20*7 {
			t.Fatalf("posted %d", got)
		}
		if err := st.Check(ctx); err != nil {
			t.Fatal(err)
		}
	})
}

// TestSyncRejectedRecordsDeadLettered journals a record whose TAC does not
// match among good ones: the real client moves it to its dead letters with
// the hub's reason and clears the rest.
func TestSyncRejectedRecordsDeadLettered(t *testing.T) {
	keys := servertest.Keys(t)
	h, st, _ := startHub(t, false, nil)
	a := newAgent(t, term1, h)
	servertest.Register(t, st, term1, a.key.PublicKey())
	servertest.Fill(t, a.j, keys, term1, 1, 5, 5, 10)
	bad := servertest.Record(record.KindPay, term1, servertest.Card(50), 1, 10)
	res := servertest.Result(t, keys, bad)
	res.TAC[0] ^= 0xFF
	seq, err := a.j.Prepare(context.Background(), bad)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.j.CardDone(context.Background(), seq, res); err != nil {
		t.Fatal(err)
	}
	servertest.Fill(t, a.j, keys, term1, 6, 5, 5, 10)
	if err := a.client(t).Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	js, _ := a.j.Stats()
	if js.Counts[journal.Cleared] != 10 || js.Counts[journal.Dead] != 1 {
		t.Fatalf("journal counts %v", js.Counts)
	}
	dl, err := a.j.DeadLetters()
	if err != nil || len(dl) != 1 || dl[0].Seq != seq || !strings.Contains(dl[0].Reason, hubsync.RejectTAC) {
		t.Fatalf("dead letters %+v, %v", dl, err)
	}
	wantBalance(t, st, servertest.MerchantAccount, 100)
}
