package terminal

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/onecard-hub/onecard/apdu"
	"github.com/onecard-hub/onecard/sm"
	"github.com/onecard-hub/onecard/terminal/record"
)

// ssseName is the SSSE DF name "sx1.sh.社会保障" (ssc-card-facts §1.1).
var ssseName = []byte{0x73, 0x78, 0x31, 0x2E, 0x73, 0x68, 0x2E, 0xC9, 0xE7, 0xBB, 0xE1, 0xB1, 0xA3, 0xD5, 0xCF}

// RKSSSE key ID of EXTERNAL AUTHENTICATE.
const keyIDRKSSSE = 0x0A

// cardInfo is what every operation learns first: the application, the
// algorithm and the card ID.
type cardInfo struct {
	atr        []byte
	historical []byte
	algFlag    byte
	gen        int
	suite      sm.Suite
	id         record.CardID
	// Free EF05 fields (read by identity operations only).
	cardType, version, initOrg, issueDate, expiryDate string
}

// factor is the card's one-level diversification factor.
func (c *cardInfo) factor() []byte { return append([]byte(nil), c.id[8:]...) }

// selectSSSE selects the SSSE and returns the algorithm flag of its FCI
// (01 when the card gives none, as drivers do).
func (o *op) selectSSSE(ctx context.Context) (byte, error) {
	fci, err := o.card.run(ctx, "SELECT SSSE", apdu.Command{CLA: 0x00, INS: 0xA4, P1: 0x04, P2: 0x00, Data: ssseName, Ne: 256})
	if err != nil {
		return 0, err
	}
	return algFlagOf(fci), nil
}

// algFlagOf finds 9F0C { 86 01 flag } in an FCI; 01 when absent or
// malformed.
func algFlagOf(fci []byte) byte {
	objs, err := apdu.ParseTLV(fci)
	if err != nil {
		return AlgFlag3DES
	}
	prop, ok := apdu.FindTLV(objs, 0x6F, 0xA5, 0x9F0C)
	if !ok {
		return AlgFlag3DES
	}
	inner, err := apdu.ParseTLV(prop.Value)
	if err != nil {
		return AlgFlag3DES
	}
	f, ok := apdu.FindTLV(inner, 0x86)
	if !ok || len(f.Value) != 1 {
		return AlgFlag3DES
	}
	return f.Value[0]
}

// selectEF selects EF05 or EF06 of the SSSE by FID.
func (o *op) selectEF(ctx context.Context, fid uint16) error {
	_, err := o.card.run(ctx, fmt.Sprintf("SELECT EF%02X", fid&0xFF), apdu.Command{CLA: 0x00, INS: 0xA4, P1: 0x02, P2: 0x00, Data: []byte{byte(fid >> 8), byte(fid)}})
	return err
}

// readTag reads the record whose identifier is tag from the current EF
// (READ RECORD P2 = 00) and returns its value.
func (o *op) readTag(ctx context.Context, tag byte) ([]byte, error) {
	f, ok := apdu.FieldByTag("", tag)
	ne := 256
	if ok {
		ne = f.Len + 2
	}
	data, err := o.card.run(ctx, fmt.Sprintf("READ RECORD %02X", tag), apdu.Command{CLA: 0x00, INS: 0xB2, P1: tag, P2: 0x00, Ne: ne})
	if err != nil {
		return nil, err
	}
	rec, err := apdu.ParseRecord(data)
	if err != nil {
		return nil, fmt.Errorf("card READ RECORD %02X: %w: %w", tag, ErrBadCardData, err)
	}
	if rec.Tag != tag {
		return nil, fmt.Errorf("card READ RECORD %02X: %w: record has tag %02X", tag, ErrBadCardData, rec.Tag)
	}
	return rec.Value, nil
}

// readText reads a record and decodes it per apdu.SSCFields.
func (o *op) readText(ctx context.Context, file string, tag byte) (string, error) {
	v, err := o.readTag(ctx, tag)
	if err != nil {
		return "", err
	}
	f, _ := apdu.FieldByTag(file, tag)
	s, err := f.Decode(v)
	if err != nil {
		return "", fmt.Errorf("decode %s %02X: %w: %w", file, tag, ErrBadCardData, err)
	}
	return s, nil
}

// identify selects the SSSE and reads the card ID (EF05 tag 01), plus the
// other free EF05 fields when full is set.
func (o *op) identify(ctx context.Context, full bool) (*cardInfo, error) {
	flag, err := o.selectSSSE(ctx)
	if err != nil {
		return nil, err
	}
	ci := &cardInfo{atr: o.atr, algFlag: flag, gen: 2}
	if flag == AlgFlagSM4 {
		ci.gen = 3
	}
	if ci.historical, err = HistoricalBytes(o.atr); err != nil {
		ci.historical = nil // a strange ATR does not stop the operation
	}
	if ci.suite, err = suiteForFlag(flag, o.s.opts.SuiteSM4, o.s.opts.Suite3DES); err != nil {
		return nil, fmt.Errorf("card algorithm: %w", err)
	}
	if err := o.selectEF(ctx, 0xEF05); err != nil {
		return nil, err
	}
	id, err := o.readTag(ctx, 0x01)
	if err != nil {
		return nil, err
	}
	if len(id) != 16 {
		return nil, fmt.Errorf("card ID: %w: %d bytes, want 16", ErrBadCardData, len(id))
	}
	copy(ci.id[:], id)
	if ci.id.IsZero() {
		return nil, fmt.Errorf("card ID: %w: all zero", ErrBadCardData)
	}
	if !full {
		return ci, nil
	}
	for _, x := range []struct {
		tag byte
		dst *string
	}{{0x02, &ci.cardType}, {0x03, &ci.version}, {0x04, &ci.initOrg}, {0x05, &ci.issueDate}, {0x06, &ci.expiryDate}} {
		if *x.dst, err = o.readText(ctx, "EF05", x.tag); err != nil && !errors.Is(err, apdu.ErrRecordNotFound) {
			return nil, err
		}
	}
	return ci, nil
}

// sameCard checks that the card in the slot is still the one identified
// earlier (ErrWrongCard otherwise).
func sameCard(want, got record.CardID) error {
	if !bytes.Equal(want[:], got[:]) {
		return fmt.Errorf("%w: expected card %s, found %s", ErrWrongCard, want, got)
	}
	return nil
}

// internalAuth sends INTERNAL AUTHENTICATE with a 16-byte input and
// returns the card's 16-byte answer.
func (o *op) internalAuth(ctx context.Context, in []byte) ([]byte, error) {
	out, err := o.card.run(ctx, "INTERNAL AUTHENTICATE", apdu.Command{CLA: 0x00, INS: 0x88, Data: in, Ne: len(in)})
	if err != nil {
		return nil, err
	}
	if len(out) != len(in) {
		return nil, fmt.Errorf("card INTERNAL AUTHENTICATE: %w: %d bytes for %d", ErrBadCardData, len(out), len(in))
	}
	return out, nil
}

// challenge sends GET CHALLENGE for 16 bytes.
func (o *op) challenge(ctx context.Context) ([]byte, error) {
	out, err := o.card.run(ctx, "GET CHALLENGE", apdu.Command{CLA: 0x00, INS: 0x84, Ne: 16})
	if err != nil {
		return nil, err
	}
	if len(out) != 16 {
		return nil, fmt.Errorf("card GET CHALLENGE: %w: %d bytes, want 16", ErrBadCardData, len(out))
	}
	return out, nil
}

// externalAuth sends EXTERNAL AUTHENTICATE with the RKSSSE cryptogram.
func (o *op) externalAuth(ctx context.Context, cryptogram []byte) error {
	_, err := o.card.run(ctx, "EXTERNAL AUTHENTICATE", apdu.Command{CLA: 0x00, INS: 0x82, P1: 0x00, P2: keyIDRKSSSE, Data: cryptogram})
	return err
}

// verifyPIN sends VERIFY with the PIN block and zeroes the block. Errors:
// *PINError for 63Cx / 6983.
func (o *op) verifyPIN(ctx context.Context, pin *PIN) error {
	blk, err := pin.block()
	if err != nil {
		return fmt.Errorf("verify PIN: %w", err)
	}
	defer clear(blk)
	_, err = apdu.Run(ctx, o.card, apdu.Command{CLA: 0x00, INS: 0x20, P1: 0x00, P2: 0x00, Data: blk})
	if err != nil {
		return fmt.Errorf("card VERIFY: %w", pinError(err))
	}
	return nil
}
