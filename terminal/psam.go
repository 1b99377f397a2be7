package terminal

import (
	"context"
	"errors"
	"fmt"

	"github.com/onecard-hub/onecard/apdu"
)

// PSAM commands (ssc-card-facts §3.4, internal/simcard's documented
// choices).
var psamAID = []byte{0xD1, 0x56, 0x00, 0x00, 0x05, 0x90}

// INIT FOR DESCRYPT key usages: levels<<5 | key type; one level = the card
// factor.
const (
	usageRKSSSE = 0x27 // encryption: RKSSSE external-authentication cryptogram
	usageIRK    = 0x28 // checking the card's internal authentication
)

// psamOps is the PSAM side of one operation.
type psamOps struct {
	l *link
}

// selectApp selects the PSAM's DF01 application.
func (p psamOps) selectApp(ctx context.Context) error {
	_, err := p.l.run(ctx, "SELECT DF01", apdu.Command{CLA: 0x00, INS: 0xA4, P1: 0x04, P2: 0x00, Data: psamAID, Ne: 256})
	return err
}

// terminalID reads EF16: the 12-digit terminal number (6 bytes BCD).
func (p psamOps) terminalID(ctx context.Context) (string, error) {
	b, err := p.l.run(ctx, "READ BINARY EF16", apdu.Command{CLA: 0x00, INS: 0xB0, P1: 0x96, P2: 0x00, Ne: 6})
	if err != nil {
		return "", err
	}
	if len(b) != 6 {
		return "", fmt.Errorf("PSAM EF16: %w: %d bytes, want 6", ErrBadCardData, len(b))
	}
	id := apdu.DecodeCN(b)
	if !isDigits(id, 12) {
		return "", fmt.Errorf("PSAM EF16: %w: terminal number is not 12 digits", ErrBadCardData)
	}
	return id, nil
}

// encrypt loads the master for usage diversified by the card factor (INIT
// FOR DESCRYPT) and encrypts data with it (DES CRYPT, ECB). A missing key
// maps to ErrPSAMNoAlgorithm (IRK: the first key an identity read needs)
// or ErrPSAMNoRKSSSE.
func (p psamOps) encrypt(ctx context.Context, usage, algFlag byte, factor, data []byte) ([]byte, error) {
	_, err := p.l.run(ctx, "INIT FOR DESCRYPT", apdu.Command{CLA: 0x80, INS: 0x1A, P1: usage, P2: algFlag, Data: factor})
	if err != nil {
		if errors.Is(err, apdu.ErrRefNotFound) || errors.Is(err, apdu.ErrKeyIndex) {
			if usage == usageRKSSSE {
				return nil, fmt.Errorf("%w: %w", ErrPSAMNoRKSSSE, err)
			}
			return nil, fmt.Errorf("%w: %w", ErrPSAMNoAlgorithm, err)
		}
		return nil, err
	}
	out, err := p.l.run(ctx, "DES CRYPT", apdu.Command{CLA: 0x80, INS: 0xFA, P1: 0x00, P2: 0x00, Data: data, Ne: len(data)})
	if err != nil {
		return nil, err
	}
	if len(out) != len(data) {
		return nil, fmt.Errorf("PSAM DES CRYPT: %w: %d bytes for %d", ErrBadCardData, len(out), len(data))
	}
	return out, nil
}

// purchaseInit is INIT SAM FOR PURCHASE's input.
type purchaseInit struct {
	rnd      []byte // card pseudo-random (4)
	cardSeq  uint16 // card offline counter
	amount   uint32
	txType   byte
	date     []byte // BCD YYYYMMDD (4)
	time     []byte // BCD hhmmss (3)
	keyVer   byte
	algID    byte
	cardFact []byte // card factor (8)
}

// initPurchase sends INIT SAM FOR PURCHASE and returns the terminal
// transaction number and MAC1.
func (p psamOps) initPurchase(ctx context.Context, in purchaseInit) (termSeq uint32, mac1 []byte, err error) {
	d := make([]byte, 0, 0x1C)
	d = append(d, in.rnd...)
	d = append(d, byte(in.cardSeq>>8), byte(in.cardSeq))
	d = append(d, apdu.EncodeAmount(in.amount)...)
	d = append(d, in.txType)
	d = append(d, in.date...)
	d = append(d, in.time...)
	d = append(d, in.keyVer, in.algID)
	d = append(d, in.cardFact...)
	if len(d) != 0x1C {
		return 0, nil, fmt.Errorf("INIT SAM FOR PURCHASE: %w: input of %d bytes", ErrBadRequest, len(d))
	}
	out, err := p.l.run(ctx, "INIT SAM FOR PURCHASE", apdu.Command{CLA: 0x80, INS: 0x70, Data: d, Ne: 8})
	if err != nil {
		if errors.Is(err, apdu.ErrKeyIndex) {
			return 0, nil, fmt.Errorf("%w: %w", ErrPSAMNoAlgorithm, err)
		}
		return 0, nil, err
	}
	if len(out) != 8 {
		return 0, nil, fmt.Errorf("PSAM INIT SAM FOR PURCHASE: %w: %d bytes, want 8", ErrBadCardData, len(out))
	}
	return be32(out[:4]), out[4:8], nil
}

// checkMAC2 sends CREDIT SAM FOR PURCHASE: the PSAM checks the card's MAC2
// (9302 → ErrMAC2Invalid).
func (p psamOps) checkMAC2(ctx context.Context, mac2 []byte) error {
	_, err := p.l.run(ctx, "CREDIT SAM FOR PURCHASE", apdu.Command{CLA: 0x80, INS: 0x72, Data: mac2})
	if errors.Is(err, apdu.ErrMACInvalid) {
		return fmt.Errorf("%w: %w", ErrMAC2Invalid, err)
	}
	return err
}

func be32(b []byte) uint32 {
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

func be16(b []byte) uint16 { return uint16(b[0])<<8 | uint16(b[1]) }

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
