package simcard

import (
	"fmt"
	"math/big"

	"github.com/emmansun/gmsm/sm2"

	"github.com/onecard-hub/onecard/sm"
)

var cardKeyNames = sm.KeyNames

// sm2KeyLabel separates the card SM2 key derivation from every other use of
// the IRK master. hub/proof uses the same rule.
const sm2KeyLabel = "onecard card SM2 key v1"

// cardFactor returns the card's one-level diversification factor: the last
// 8 bytes of the 16-byte card ID (卡识别码), the card-specific value.
func cardFactor(cardID []byte) ([]byte, error) {
	if len(cardID) != 16 {
		return nil, fmt.Errorf("card factor: card ID has %d bytes, want 16", len(cardID))
	}
	return append([]byte(nil), cardID[8:]...), nil
}

// diversifyCardKeys derives the card's own keys: every master diversified
// once with the card factor.
func diversifyCardKeys(ks *sm.KeySet, suite sm.Suite, cardID []byte) (map[string][]byte, error) {
	factor, err := cardFactor(cardID)
	if err != nil {
		return nil, err
	}
	out := make(map[string][]byte, len(cardKeyNames))
	for _, name := range cardKeyNames {
		master, err := ks.Master(suite.Alg, name)
		if err != nil {
			return nil, fmt.Errorf("diversify card keys: %w", err)
		}
		k, err := suite.Diversify(master, factor)
		if err != nil {
			return nil, fmt.Errorf("diversify card keys: %w", err)
		}
		out[name] = k
	}
	return out, nil
}

// cardSM2Key derives the third-generation card's SM2 key pair:
// d = 1 + (SM3(label ‖ IRK master (SM4) ‖ card ID) mod (n−2)), so d is in
// [1, n−2] and anyone holding the key set can recompute the public key.
func cardSM2Key(ks *sm.KeySet, cardID []byte) (*sm.PrivateKey, error) {
	master, err := ks.Master(sm.AlgSM4, sm.KeyIRK)
	if err != nil {
		return nil, fmt.Errorf("derive card SM2 key: %w", err)
	}
	h := sm.NewSM3()
	h.Write([]byte(sm2KeyLabel))
	h.Write(master)
	h.Write(cardID)
	d := new(big.Int).SetBytes(h.Sum(nil))
	nm2 := new(big.Int).Sub(sm2.P256().Params().N, big.NewInt(2))
	d.Mod(d, nm2).Add(d, big.NewInt(1))
	priv, err := sm.NewPrivateKey(d.FillBytes(make([]byte, 32)))
	if err != nil {
		return nil, fmt.Errorf("derive card SM2 key: %w", err)
	}
	return priv, nil
}

// signRaw signs msg with SM2 (SM3 with Z over the default user ID) and
// returns the 64-byte r‖s form cards use.
func signRaw(priv *sm.PrivateKey, msg []byte) ([]byte, error) {
	der, err := sm.Sign(priv, msg, nil)
	if err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	raw, err := sm.DERToRaw(der)
	if err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	return raw, nil
}
