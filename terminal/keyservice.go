package terminal

import (
	"context"
	"fmt"

	"github.com/onecard-hub/onecard/sm"
	"github.com/onecard-hub/onecard/terminal/record"
)

// Algorithm flags of the SSSE FCI (9F0C 03 86 01 flag).
const (
	AlgFlag3DES byte = 0x01 // second generation
	AlgFlagSM4  byte = 0x03 // third generation
)

// Step1 is the first half of a two-step identity read (the national
// interface's iReadCardBas_HSM_Step1): what the key service (an HSM behind
// the hub) needs to authenticate the card and to let the terminal read it.
//
// Randoms[0] ‖ Randoms[1] is the 16-byte internal-authentication input the
// terminal drew (the card answered it; the key service computes the
// expected answer). Randoms[2] ‖ Randoms[3] is the card's 16-byte GET
// CHALLENGE, which the RKSSSE cryptogram must encrypt. (Drivers differ on
// the order of the randoms [U]; this is onecard's, documented in
// terminal/national.)
type Step1 struct {
	Region     string // 发卡地区行政区划代码: the first 6 hex digits of the card ID
	Historical []byte // ATR historical bytes (卡复位信息)
	AlgFlag    byte   // 01 3DES, 03 SM4
	CardID     record.CardID
	Randoms    [4][8]byte
	TerminalID string // 12-digit terminal number; optional
}

// Step2Key is the key service's answer (iReadCardBas_HSM_Step2's pKey
// "RESULT1|RESULT2|"): Result1 the expected internal-authentication answer
// (16 bytes), Result2 the RKSSSE external-authentication cryptogram (16
// bytes; empty for second-generation cards, which need none).
type Step2Key struct {
	Result1 []byte
	Result2 []byte
}

// KeyService authenticates cards for terminals without a (capable) PSAM:
// the hub's key service in production (an HSM), LocalKeyService in tests
// and demos. Errors should wrap ErrKeyService (failures) or
// ErrBadRequest (a Step1 it cannot serve).
type KeyService interface {
	AuthenticateRead(ctx context.Context, s Step1) (Step2Key, error)
}

// LocalKeyService is an in-process KeyService holding the issuer key set:
// card keys are the masters diversified once with the card factor (the
// last 8 bytes of the card ID), as internal/simcard and hub/proof define
// them. For tests and demos; production terminals use the hub's.
type LocalKeyService struct {
	Keys *sm.KeySet
	// SuiteSM4 and Suite3DES are the suites for algorithm flags 03 and
	// 01; zero values mean sm.SuiteSM4 and sm.Suite3DES.
	SuiteSM4, Suite3DES sm.Suite
}

// suiteForFlag returns the suite of an algorithm flag.
func suiteForFlag(flag byte, sm4, des sm.Suite) (sm.Suite, error) {
	switch flag {
	case AlgFlagSM4:
		if sm4 == (sm.Suite{}) {
			return sm.SuiteSM4, nil
		}
		if sm4.Alg != sm.AlgSM4 {
			return sm.Suite{}, fmt.Errorf("%w: suite %s for SM4 cards", ErrBadRequest, sm4)
		}
		return sm4, nil
	case AlgFlag3DES:
		if des == (sm.Suite{}) {
			return sm.Suite3DES, nil
		}
		if des.Alg != sm.Alg3DES {
			return sm.Suite{}, fmt.Errorf("%w: suite %s for 3DES cards", ErrBadRequest, des)
		}
		return des, nil
	}
	return sm.Suite{}, fmt.Errorf("%w: algorithm flag %02X", ErrPSAMNoAlgorithm, flag)
}

// AuthenticateRead computes RESULT1 = E(IRK_card, rnd1‖rnd2) and, for SM4
// cards, RESULT2 = E(RKSSSE_card, rnd3‖rnd4). Errors wrap ErrKeyService.
func (k *LocalKeyService) AuthenticateRead(ctx context.Context, s Step1) (Step2Key, error) {
	if err := ctx.Err(); err != nil {
		return Step2Key{}, fmt.Errorf("authenticate read: %w: %w", ErrKeyService, err)
	}
	if k == nil || k.Keys == nil {
		return Step2Key{}, fmt.Errorf("authenticate read: %w: no key set", ErrKeyService)
	}
	suite, err := suiteForFlag(s.AlgFlag, k.SuiteSM4, k.Suite3DES)
	if err != nil {
		return Step2Key{}, fmt.Errorf("authenticate read: %w: %w", ErrKeyService, err)
	}
	cardKey := func(name string) ([]byte, error) {
		m, err := k.Keys.Master(suite.Alg, name)
		if err != nil {
			return nil, err
		}
		return suite.Diversify(m, s.CardID[8:])
	}
	irk, err := cardKey(sm.KeyIRK)
	if err != nil {
		return Step2Key{}, fmt.Errorf("authenticate read: %w: %w", ErrKeyService, err)
	}
	in := append(append([]byte(nil), s.Randoms[0][:]...), s.Randoms[1][:]...)
	r1, err := suite.Encrypt(irk, in)
	if err != nil {
		return Step2Key{}, fmt.Errorf("authenticate read: %w: %w", ErrKeyService, err)
	}
	out := Step2Key{Result1: r1}
	if s.AlgFlag == AlgFlagSM4 {
		rk, err := cardKey(sm.KeyRKSSSE)
		if err != nil {
			return Step2Key{}, fmt.Errorf("authenticate read: %w: %w", ErrKeyService, err)
		}
		ch := append(append([]byte(nil), s.Randoms[2][:]...), s.Randoms[3][:]...)
		if out.Result2, err = suite.Encrypt(rk, ch); err != nil {
			return Step2Key{}, fmt.Errorf("authenticate read: %w: %w", ErrKeyService, err)
		}
	}
	return out, nil
}
