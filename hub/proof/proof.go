// Package proof lets the hub check, from the issuer key set alone, what a
// social-security card says about a transaction: the TAC of a purchase or
// a load, the card's load MAC1, and the card's SM2 signature. It also
// computes the load MAC2 with which the hub authorises a load.
//
// It deliberately shares no code with the card simulator
// (internal/simcard): both follow the same written rules, so a mistake in
// one shows up as a mismatch in the other's tests.
//
// Rules (ssc-card-facts §3.3, and the choices documented in
// internal/simcard):
//   - card keys = master diversified once with the card factor, the last
//     8 bytes of the 16-byte card ID (卡识别码);
//   - purchase TAC = Suite.TAC(DTK_card, amount(4) ‖ type(1) ‖
//     terminal(6) ‖ terminal seq(4) ‖ date(4) ‖ time(3));
//   - load TAC = Suite.TAC(DTK_card, new balance(4) ‖ online seq(2) ‖
//     amount(4) ‖ type(1) ‖ terminal(6) ‖ date(4) ‖ time(3)), online seq
//     being the value INITIALIZE FOR LOAD returned (before the card
//     increments it);
//   - load session key = Suite.LoadSessionKey(DLK_card, random, online
//     seq); MAC1 = Suite.MAC(key, balance ‖ amount ‖ type ‖ terminal);
//     MAC2 = Suite.MAC(key, amount ‖ type ‖ terminal ‖ date ‖ time);
//   - card SM2 key: d = 1 + (SM3("onecard card SM2 key v1" ‖ IRK master
//     (SM4) ‖ card ID) mod (n−2)); signatures are SM3-with-Z over the
//     default user ID, raw r‖s.
//
// Every comparison of a MAC or TAC is constant-time. Mismatches return
// errors wrapping ErrTACMismatch, ErrMACMismatch or ErrBadSignature;
// malformed input returns errors wrapping ErrBadRecord.
package proof

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"math/big"

	"github.com/emmansun/gmsm/sm2"

	"github.com/onecard-hub/onecard/sm"
)

var (
	// ErrTACMismatch: the TAC does not match the record; the record was
	// altered or the card did not produce it.
	ErrTACMismatch = errors.New("TAC mismatch")
	// ErrMACMismatch: the card's load MAC1 does not match.
	ErrMACMismatch = errors.New("MAC mismatch")
	// ErrBadSignature: the card's SM2 signature does not verify.
	ErrBadSignature = errors.New("card signature invalid")
	// ErrBadRecord: a field has the wrong size or the key set lacks a key.
	ErrBadRecord = errors.New("bad transaction record")
)

// Verifier recomputes card cryptograms from the issuer key set.
type Verifier struct {
	Keys  *sm.KeySet
	Suite sm.Suite // SuiteSM4 for third-generation cards, Suite3DES for second
}

// Purchase is the part of a purchase record the TAC covers.
type Purchase struct {
	CardID   []byte  // 16 bytes
	Amount   uint32  // fen
	Type     byte    // 05 ED purchase, 06 EP purchase, 09 composite
	Terminal [6]byte // terminal number, BCD
	TermSeq  uint32  // terminal transaction number (from the PSAM)
	Date     [4]byte // YYYYMMDD, BCD
	Time     [3]byte // hhmmss, BCD
}

// Load is the part of a load record the TAC covers.
type Load struct {
	CardID     []byte // 16 bytes
	NewBalance uint32 // balance after the load, fen
	OnlineSeq  uint16 // online counter INITIALIZE FOR LOAD returned
	Amount     uint32
	Type       byte // 01 ED load, 02 EP load
	Terminal   [6]byte
	Date       [4]byte
	Time       [3]byte
}

// LoadAuth is what the hub needs to check a card's INITIALIZE FOR LOAD
// answer and to authorise the load with MAC2.
type LoadAuth struct {
	CardID    []byte  // 16 bytes
	Balance   uint32  // balance INITIALIZE FOR LOAD returned
	OnlineSeq uint16  // online counter INITIALIZE FOR LOAD returned
	Random    [4]byte // pseudo-random INITIALIZE FOR LOAD returned
	Amount    uint32
	Type      byte
	Terminal  [6]byte
	Date      [4]byte // used by MAC2 only
	Time      [3]byte // used by MAC2 only
}

// CardFactor returns the one-level diversification factor of a card: the
// last 8 bytes of its 16-byte card ID.
func CardFactor(cardID []byte) ([]byte, error) {
	if len(cardID) != 16 {
		return nil, fmt.Errorf("card factor: %w: card ID has %d bytes, want 16", ErrBadRecord, len(cardID))
	}
	return append([]byte(nil), cardID[8:]...), nil
}

// cardKey diversifies the named master for the card.
func (v Verifier) cardKey(name string, cardID []byte) ([]byte, error) {
	if v.Keys == nil {
		return nil, fmt.Errorf("%w: no key set", ErrBadRecord)
	}
	f, err := CardFactor(cardID)
	if err != nil {
		return nil, err
	}
	master, err := v.Keys.Master(v.Suite.Alg, name)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadRecord, err)
	}
	k, err := v.Suite.Diversify(master, f)
	if err != nil {
		return nil, fmt.Errorf("diversify %s: %w", name, err)
	}
	return k, nil
}

func be32(x uint32) []byte { return []byte{byte(x >> 24), byte(x >> 16), byte(x >> 8), byte(x)} }

func join(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// PurchaseTAC computes the TAC a genuine card returns for p.
func (v Verifier) PurchaseTAC(p Purchase) ([]byte, error) {
	dtk, err := v.cardKey(sm.KeyDTK, p.CardID)
	if err != nil {
		return nil, fmt.Errorf("compute purchase TAC: %w", err)
	}
	tac, err := v.Suite.TAC(dtk, join(be32(p.Amount), []byte{p.Type}, p.Terminal[:], be32(p.TermSeq), p.Date[:], p.Time[:]))
	if err != nil {
		return nil, fmt.Errorf("compute purchase TAC: %w", err)
	}
	return tac, nil
}

// VerifyPurchaseTAC checks the 4-byte TAC of a purchase record. It returns
// nil, or an error wrapping ErrTACMismatch or ErrBadRecord.
func (v Verifier) VerifyPurchaseTAC(p Purchase, tac []byte) error {
	want, err := v.PurchaseTAC(p)
	if err != nil {
		return fmt.Errorf("verify purchase TAC: %w", err)
	}
	return compare("verify purchase TAC", ErrTACMismatch, tac, want)
}

// LoadTAC computes the TAC a genuine card returns for l.
func (v Verifier) LoadTAC(l Load) ([]byte, error) {
	dtk, err := v.cardKey(sm.KeyDTK, l.CardID)
	if err != nil {
		return nil, fmt.Errorf("compute load TAC: %w", err)
	}
	seq := []byte{byte(l.OnlineSeq >> 8), byte(l.OnlineSeq)}
	tac, err := v.Suite.TAC(dtk, join(be32(l.NewBalance), seq, be32(l.Amount), []byte{l.Type}, l.Terminal[:], l.Date[:], l.Time[:]))
	if err != nil {
		return nil, fmt.Errorf("compute load TAC: %w", err)
	}
	return tac, nil
}

// VerifyLoadTAC checks the 4-byte TAC of a load record. It returns nil, or
// an error wrapping ErrTACMismatch or ErrBadRecord.
func (v Verifier) VerifyLoadTAC(l Load, tac []byte) error {
	want, err := v.LoadTAC(l)
	if err != nil {
		return fmt.Errorf("verify load TAC: %w", err)
	}
	return compare("verify load TAC", ErrTACMismatch, tac, want)
}

func (v Verifier) loadSessionKey(a LoadAuth) ([]byte, error) {
	dlk, err := v.cardKey(sm.KeyDLK, a.CardID)
	if err != nil {
		return nil, err
	}
	seq := []byte{byte(a.OnlineSeq >> 8), byte(a.OnlineSeq)}
	k, err := v.Suite.LoadSessionKey(dlk, a.Random[:], seq)
	if err != nil {
		return nil, fmt.Errorf("load session key: %w", err)
	}
	return k, nil
}

// VerifyLoadMAC1 checks the MAC1 a card returned from INITIALIZE FOR LOAD
// (it proves the card is genuine and the balance and counter real). It
// returns nil, or an error wrapping ErrMACMismatch or ErrBadRecord.
func (v Verifier) VerifyLoadMAC1(a LoadAuth, mac1 []byte) error {
	key, err := v.loadSessionKey(a)
	if err != nil {
		return fmt.Errorf("verify load MAC1: %w", err)
	}
	want, err := v.Suite.MAC(key, nil, join(be32(a.Balance), be32(a.Amount), []byte{a.Type}, a.Terminal[:]))
	if err != nil {
		return fmt.Errorf("verify load MAC1: %w", err)
	}
	return compare("verify load MAC1", ErrMACMismatch, mac1, want)
}

// LoadMAC2 computes the MAC2 that authorises the load described by a; the
// terminal passes it to the card in CREDIT FOR LOAD.
func (v Verifier) LoadMAC2(a LoadAuth) ([]byte, error) {
	key, err := v.loadSessionKey(a)
	if err != nil {
		return nil, fmt.Errorf("compute load MAC2: %w", err)
	}
	mac, err := v.Suite.MAC(key, nil, join(be32(a.Amount), []byte{a.Type}, a.Terminal[:], a.Date[:], a.Time[:]))
	if err != nil {
		return nil, fmt.Errorf("compute load MAC2: %w", err)
	}
	return mac, nil
}

func compare(verb string, sentinel error, got, want []byte) error {
	if len(got) != len(want) {
		return fmt.Errorf("%s: %w: got %d bytes, want %d", verb, ErrBadRecord, len(got), len(want))
	}
	if subtle.ConstantTimeCompare(got, want) != 1 {
		return fmt.Errorf("%s: %w", verb, sentinel)
	}
	return nil
}

// cardSM2Label must match internal/simcard's derivation.
const cardSM2Label = "onecard card SM2 key v1"

// CardPublicKey derives a third-generation card's SM2 public key from the
// key set's SM4 IRK master and the card ID.
func (v Verifier) CardPublicKey(cardID []byte) (*sm.PublicKey, error) {
	if v.Keys == nil || len(cardID) != 16 {
		return nil, fmt.Errorf("derive card public key: %w", ErrBadRecord)
	}
	master, err := v.Keys.Master(sm.AlgSM4, sm.KeyIRK)
	if err != nil {
		return nil, fmt.Errorf("derive card public key: %w: %v", ErrBadRecord, err)
	}
	h := sm.NewSM3()
	h.Write([]byte(cardSM2Label))
	h.Write(master)
	h.Write(cardID)
	d := new(big.Int).SetBytes(h.Sum(nil))
	d.Mod(d, new(big.Int).Sub(sm2.P256().Params().N, big.NewInt(2))).Add(d, big.NewInt(1))
	priv, err := sm.NewPrivateKey(d.FillBytes(make([]byte, 32)))
	if err != nil {
		return nil, fmt.Errorf("derive card public key: %w", err)
	}
	return priv.PublicKey(), nil
}

// VerifyCardSignature checks a card's raw r‖s SM2 signature (64 bytes) of
// msg, made with the default user ID. It returns nil, or an error wrapping
// ErrBadSignature or ErrBadRecord.
func (v Verifier) VerifyCardSignature(cardID, msg, sig []byte) error {
	pub, err := v.CardPublicKey(cardID)
	if err != nil {
		return fmt.Errorf("verify card signature: %w", err)
	}
	if len(sig) != 64 {
		return fmt.Errorf("verify card signature: %w: %d bytes, want 64", ErrBadRecord, len(sig))
	}
	der, err := sm.RawToDER(sig)
	if err != nil {
		return fmt.Errorf("verify card signature: %w", ErrBadSignature)
	}
	if !sm.Verify(pub, msg, der, nil) {
		return fmt.Errorf("verify card signature: %w", ErrBadSignature)
	}
	return nil
}
