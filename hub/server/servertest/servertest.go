// Package servertest helps tests of the hub sync protocol: a test issuer
// key set, journals filled with valid signed records (TACs computed with
// hub/proof from the key set), terminals registered in a store, and a
// running hub on loopback (ws or wss with a self-signed certificate whose
// pin the agent uses).
package servertest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/onecard-hub/onecard/apdu"
	"github.com/onecard-hub/onecard/hub/proof"
	"github.com/onecard-hub/onecard/hub/server"
	"github.com/onecard-hub/onecard/hub/store"
	"github.com/onecard-hub/onecard/hub/store/boltstore"
	hubsync "github.com/onecard-hub/onecard/hub/sync"
	"github.com/onecard-hub/onecard/sm"
	"github.com/onecard-hub/onecard/terminal/journal"
	"github.com/onecard-hub/onecard/terminal/record"
)

// KeySetLabel labels the deterministic test issuer key set.
const KeySetLabel = "hub sync tests"

// HubID is the hub ID of test hubs.
const HubID = "hub-test"

// Keys returns the deterministic test issuer key set.
func Keys(t testing.TB) *sm.KeySet {
	t.Helper()
	k, err := sm.TestKeySet(KeySetLabel)
	if err != nil {
		t.Fatalf("test key set: %v", err)
	}
	return k
}

// TerminalKey returns a fresh SM2 key.
func TerminalKey(t testing.TB) *sm.PrivateKey {
	t.Helper()
	k, err := sm.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// Card returns test card n (a valid card ID).
func Card(n int) record.CardID {
	c, _ := record.ParseCardID("411600D156000005C38275EEFC9B0000")
	c[14], c[15] = byte(n>>8), byte(n)
	return c
}

// At is the card date and time of records made here.
var At = time.Date(2026, 3, 14, 9, 2, 3, 0, time.UTC)

// Record returns a valid record of terminal term: a purchase of amount fen
// (kind pay, ED purse, from a 1,000,000-fen balance) or a load (EP purse)
// on card with the card counter given, programme/merchant "P2026", fund
// "310", suite SM4. It has no TAC yet: see Complete.
func Record(kind record.Kind, term string, card record.CardID, counter uint16, amount uint32) *record.Record {
	r := &record.Record{
		Kind: kind, TerminalID: term, CardID: card, CardCounter: counter,
		CardNumber: "C00000001", PersonID: "110000199001010000", HolderName: "张三",
		Fund: "310", Merchant: "P2026",
		CardDate: At.Format("20060102"), CardTime: At.Format("150405"), At: At,
		CardRandom: [4]byte{1, 2, 3, 4}, Suite: "SM4",
		Attestation: record.Attestation{InternalAuthOK: true, PINVerified: true},
	}
	switch kind {
	case record.KindPay:
		r.TxType, r.Amount, r.BalanceBefore, r.PSAMSeq = record.TxPurchaseED, amount, 1_000_000, uint32(counter)+1
	case record.KindLoad:
		r.TxType, r.Amount, r.BalanceBefore = record.TxLoadEP, amount, 1000
	case record.KindCertify:
		r.TxType = record.TxNone
	}
	return r
}

// Result returns the card's answer for r as a genuine card would give it:
// the balance after and the TAC computed from the issuer keys (money), or
// nothing (certify).
func Result(t testing.TB, keys *sm.KeySet, r *record.Record) journal.CardResult {
	t.Helper()
	tac, after, err := TAC(keys, r)
	if err != nil {
		t.Fatalf("compute TAC: %v", err)
	}
	if tac == nil {
		return journal.CardResult{}
	}
	return journal.CardResult{TAC: tac, MAC2: []byte{0x3A, 0xC2, 0, 1}, BalanceAfter: after}
}

// TAC computes a genuine card's TAC for r (nil for certify) and the
// balance after.
func TAC(keys *sm.KeySet, r *record.Record) ([]byte, uint32, error) {
	if !r.Kind.Money() {
		return nil, 0, nil
	}
	suite, err := sm.ParseSuite(r.Suite)
	if err != nil {
		return nil, 0, err
	}
	term, _ := apdu.EncodeCN(r.TerminalID, 6)
	date, _ := apdu.EncodeCN(r.CardDate, 4)
	tm, _ := apdu.EncodeCN(r.CardTime, 3)
	v := proof.Verifier{Keys: keys, Suite: suite}
	if r.Kind == record.KindPay {
		p := proof.Purchase{CardID: r.CardID[:], Amount: r.Amount, Type: byte(r.TxType), TermSeq: r.PSAMSeq}
		copy(p.Terminal[:], term)
		copy(p.Date[:], date)
		copy(p.Time[:], tm)
		tac, err := v.PurchaseTAC(p)
		return tac, r.BalanceBefore - r.Amount, err
	}
	after := r.BalanceBefore + r.Amount
	l := proof.Load{CardID: r.CardID[:], NewBalance: after, OnlineSeq: r.CardCounter, Amount: r.Amount, Type: byte(r.TxType)}
	copy(l.Terminal[:], term)
	copy(l.Date[:], date)
	copy(l.Time[:], tm)
	tac, err := v.LoadTAC(l)
	return tac, after, err
}

// Journal journals r (Prepare, then CardDone with a genuine card's
// answer) and returns its sequence.
func Journal(t testing.TB, j *journal.Journal, keys *sm.KeySet, r *record.Record) uint64 {
	t.Helper()
	ctx := context.Background()
	res := Result(t, keys, r)
	seq, err := j.Prepare(ctx, r)
	if err != nil {
		t.Fatalf("prepare: %v", err)
	}
	if err := j.CardDone(ctx, seq, res); err != nil {
		t.Fatalf("card done: %v", err)
	}
	return seq
}

// Fill journals n purchases of amount fen by terminal term, on the cards
// firstCard, firstCard+1, ... (cards of them, in turn, each card's counter
// increasing by one from 1), and returns their sequences.
func Fill(t testing.TB, j *journal.Journal, keys *sm.KeySet, term string, firstCard, cards, n int, amount uint32) []uint64 {
	t.Helper()
	seqs := make([]uint64, 0, n)
	for i := 0; i < n; i++ {
		r := Record(record.KindPay, term, Card(firstCard+i%cards), uint16(i/cards+1), amount)
		seqs = append(seqs, Journal(t, j, keys, r))
	}
	return seqs
}

// OpenStore opens a bbolt store in dir (NoSync unless sync is true) and
// closes it when the test ends.
func OpenStore(t testing.TB, path string, sync bool) *boltstore.Store {
	t.Helper()
	if path == "" {
		path = filepath.Join(t.TempDir(), "hub.db")
	}
	s, err := boltstore.Open(boltstore.Options{Path: path, NoSync: !sync})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// Register invites, enrols and approves terminal no with pub in st.
func Register(t testing.TB, st store.Store, no string, pub *sm.PublicKey) {
	t.Helper()
	if err := RegisterState(st, no, pub, store.StateActive); err != nil {
		t.Fatal(err)
	}
}

// RegisterState registers terminal no with pub and brings it to state
// (enrolled, active or suspended).
func RegisterState(st store.Store, no string, pub *sm.PublicKey, state store.TerminalState) error {
	ctx := context.Background()
	token := []byte("token-" + no + "-0123456789")
	t, err := store.NewTerminal(no, "test "+no, token)
	if err != nil {
		return err
	}
	if err := st.CreateTerminal(ctx, t); err != nil {
		return err
	}
	_, err = st.UpdateTerminal(ctx, no, func(t *store.Terminal) error {
		if err := t.Enrol(token, pub.Point()); err != nil {
			return err
		}
		switch state {
		case store.StateActive:
			return t.Approve()
		case store.StateSuspended:
			return t.Suspend()
		}
		return nil
	})
	return err
}

// Hub is a test hub on a loopback listener.
type Hub struct {
	Server *server.Server
	HTTP   *httptest.Server
	URL    string // ws://127.0.0.1:port/sync or wss://...
	Pin    string // the certificate pin (wss only)
}

// Start runs a hub with opts on 127.0.0.1 (TLS with a fresh self-signed
// certificate when tlsOn), stopped when the test ends. Zero HubID and Keys
// in opts get HubID and Keys(t).
func Start(t testing.TB, opts server.Options, tlsOn bool) *Hub {
	t.Helper()
	if opts.HubID == "" {
		opts.HubID = HubID
	}
	if opts.Keys == nil {
		opts.Keys = Keys(t)
	}
	srv, err := server.New(opts)
	if err != nil {
		t.Fatalf("new hub: %v", err)
	}
	mux := http.NewServeMux()
	mux.Handle(hubsync.Path, srv)
	h := &Hub{Server: srv}
	if tlsOn {
		cert, pin := SelfSigned(t)
		h.HTTP = httptest.NewUnstartedServer(mux)
		h.HTTP.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		h.HTTP.StartTLS()
		h.Pin = pin
		h.URL = "wss://" + h.HTTP.Listener.Addr().String() + hubsync.Path
	} else {
		h.HTTP = httptest.NewServer(mux)
		h.URL = "ws://" + h.HTTP.Listener.Addr().String() + hubsync.Path
	}
	t.Cleanup(func() { h.Stop() })
	return h
}

// Stop closes the hub's sessions and listener.
func (h *Hub) Stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	h.Server.Close(ctx)
	h.HTTP.CloseClientConnections()
	h.HTTP.Close()
}

// Addr returns the hub's host:port.
func (h *Hub) Addr() string {
	return strings.TrimPrefix(strings.TrimPrefix(h.HTTP.URL, "https://"), "http://")
}

// SelfSigned returns a fresh self-signed ECDSA certificate for 127.0.0.1
// and its pin (hubsync.SPKIPin).
func SelfSigned(t testing.TB) (tls.Certificate, string) {
	t.Helper()
	cert, pin, err := NewSelfSigned([]string{"127.0.0.1", "::1"}, []string{"localhost"})
	if err != nil {
		t.Fatal(err)
	}
	return cert, pin
}

// NewSelfSigned makes a self-signed ECDSA P-256 certificate for the
// addresses and names, valid for a day, and returns it with its pin.
func NewSelfSigned(ips, names []string) (tls.Certificate, string, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, "", err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return tls.Certificate{}, "", err
	}
	tpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "onecard test hub"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     names,
	}
	for _, ip := range ips {
		if a := net.ParseIP(ip); a != nil {
			tpl.IPAddresses = append(tpl.IPAddresses, a)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, "", fmt.Errorf("self-signed certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, "", err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, hubsync.SPKIPin(leaf), nil
}
