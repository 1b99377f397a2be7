package simcard

import (
	"bytes"
	"crypto/subtle"

	"github.com/onecard-hub/onecard/apdu"
	"github.com/onecard-hub/onecard/sm"
)

const (
	keyIDRKSSSE = 0x0A // EXTERNAL AUTHENTICATE P2 for RKSSSE
	maxAuthData = 32   // INTERNAL AUTHENTICATE input limit (two SM4 blocks)
)

// padBlock right-pads b with 00 to a multiple of the block size.
func padBlock(b []byte, bs int) []byte {
	n := (len(b) + bs - 1) / bs * bs
	return append(append([]byte(nil), b...), make([]byte, n-len(b))...)
}

// cmdGetChallenge: 00 84 00 00 Le, Le = 4, 8 or 16.
func (s *SSC) cmdGetChallenge(c apdu.Command) ([]byte, uint16) {
	if c.P1 != 0 || c.P2 != 0 {
		return nil, apdu.SWWrongP1P2
	}
	if len(c.Data) != 0 {
		return nil, apdu.SWWrongLength
	}
	n := c.Ne
	switch {
	case n == 4 || n == 8 || n == 16:
	case s.link.proto == T0:
		return nil, apdu.SWWrongLe(8)
	case n == 0 || n == 256:
		n = 8
	default:
		return nil, apdu.SWWrongLength
	}
	ch, ok := s.random(n)
	if !ok {
		return nil, apdu.SWNoDiagnosis
	}
	s.ses.challenge = ch
	return ch, apdu.SWOK
}

// cmdInternalAuth: 00 88 00 00 Lc <data>: the card encrypts data (1 or 2
// blocks) with its IRK, ECB.
func (s *SSC) cmdInternalAuth(c apdu.Command) ([]byte, uint16) {
	if c.P1 != 0 || c.P2 != 0 {
		return nil, apdu.SWWrongP1P2
	}
	bs := s.cfg.suite.Alg.BlockSize()
	if len(c.Data) == 0 || len(c.Data)%bs != 0 || len(c.Data) > maxAuthData {
		return nil, apdu.SWWrongLength
	}
	out, err := s.cfg.suite.Encrypt(s.keys[sm.KeyIRK], c.Data)
	if err != nil {
		return nil, apdu.SWNoDiagnosis
	}
	return out, apdu.SWOK
}

// cmdExternalAuth: 00 82 00 0A Lc <E(RKSSSE, challenge padded with 00 to
// the block size)>.
func (s *SSC) cmdExternalAuth(c apdu.Command) ([]byte, uint16) {
	if c.P1 != 0 {
		return nil, apdu.SWWrongP1P2
	}
	if c.P2 != keyIDRKSSSE {
		return nil, apdu.SWRefNotFound
	}
	if s.st.AuthTries == 0 {
		return nil, apdu.SWAuthBlocked
	}
	if s.ses.challenge == nil {
		return nil, apdu.SWRefDataInvalid
	}
	want, err := s.cfg.suite.Encrypt(s.keys[sm.KeyRKSSSE], padBlock(s.ses.challenge, s.cfg.suite.Alg.BlockSize()))
	if err != nil {
		return nil, apdu.SWNoDiagnosis
	}
	if len(c.Data) != len(want) {
		return nil, apdu.SWWrongLength
	}
	s.ses.challenge = nil
	old := s.st.clone()
	if subtle.ConstantTimeCompare(c.Data, want) != 1 {
		s.ses.rkOK = false
		s.st.AuthTries--
		if code := s.commit(old); code != apdu.SWOK {
			return nil, code
		}
		return nil, apdu.SWVerifyFailed(s.st.AuthTries)
	}
	if s.st.AuthTries != s.cfg.authTries {
		s.st.AuthTries = s.cfg.authTries
		if code := s.commit(old); code != apdu.SWOK {
			return nil, code
		}
	}
	s.ses.rkOK = true
	return nil, apdu.SWOK
}

// checkPIN compares a PIN block with the stored PIN, counting failures.
func (s *SSC) checkPIN(pin []byte) uint16 {
	old := s.st.clone()
	if subtle.ConstantTimeCompare(pinHash(s.cfg.cardID, pin), s.st.PINHash) != 1 {
		s.ses.pinOK = false
		s.st.PINTries--
		if code := s.commit(old); code != apdu.SWOK {
			return code
		}
		return apdu.SWVerifyFailed(s.st.PINTries)
	}
	if s.st.PINTries != s.cfg.pinTries {
		s.st.PINTries = s.cfg.pinTries
		if code := s.commit(old); code != apdu.SWOK {
			return code
		}
	}
	return apdu.SWOK
}

// cmdVerify: 00 20 00 00 Lc <BCD PIN>; without data it reports the tries
// left as 63Cx.
func (s *SSC) cmdVerify(c apdu.Command) ([]byte, uint16) {
	if c.P1 != 0 {
		return nil, apdu.SWWrongP1P2
	}
	if c.P2 != 0 {
		return nil, apdu.SWRefNotFound
	}
	if s.st.PINTries == 0 {
		return nil, apdu.SWAuthBlocked
	}
	if len(c.Data) == 0 {
		if s.ses.pinOK {
			return nil, apdu.SWOK
		}
		return nil, apdu.SWVerifyFailed(s.st.PINTries)
	}
	if len(c.Data) < 2 || len(c.Data) > 6 {
		return nil, apdu.SWWrongLength
	}
	if !validPIN(c.Data) {
		return nil, apdu.SWWrongData
	}
	code := s.checkPIN(c.Data)
	s.ses.pinOK = code == apdu.SWOK
	return nil, code
}

// cmdChangePIN: 80 5E 01 00 Lc <old> FF <new>.
func (s *SSC) cmdChangePIN(c apdu.Command) ([]byte, uint16) {
	if c.P1 != 0x01 || c.P2 != 0x00 {
		return nil, apdu.SWWrongP1P2
	}
	if s.st.PINTries == 0 {
		return nil, apdu.SWAuthBlocked
	}
	i := bytes.IndexByte(c.Data, 0xFF)
	if i < 0 || !validPIN(c.Data[:i]) || !validPIN(c.Data[i+1:]) {
		return nil, apdu.SWWrongData
	}
	if code := s.checkPIN(c.Data[:i]); code != apdu.SWOK {
		return nil, code
	}
	old := s.st.clone()
	s.st.PINHash = pinHash(s.cfg.cardID, c.Data[i+1:])
	return nil, s.commit(old)
}

// cmdAppBlock: 84 1E 00 P2 04 <MAC>. P2 00 blocks temporarily (6A81
// afterwards), 01 permanently (9303). MAC = Suite.MAC(STK, IV = last
// challenge padded with 00 to a block, 84 1E 00 P2 04).
func (s *SSC) cmdAppBlock(c apdu.Command) ([]byte, uint16) {
	if c.P1 != 0 || c.P2 > 1 {
		return nil, apdu.SWWrongP1P2
	}
	if len(c.Data) != 4 {
		return nil, apdu.SWWrongLength
	}
	if s.ses.challenge == nil {
		return nil, apdu.SWRefDataInvalid
	}
	bs := s.cfg.suite.Alg.BlockSize()
	iv := padBlock(s.ses.challenge, bs)[:bs]
	s.ses.challenge = nil
	want, err := s.cfg.suite.MAC(s.keys[sm.KeySTK], iv, []byte{c.CLA, c.INS, c.P1, c.P2, 0x04})
	if err != nil {
		return nil, apdu.SWNoDiagnosis
	}
	if !sm.VerifyMAC(c.Data, want) {
		return nil, apdu.SWSMDataIncorrect
	}
	old := s.st.clone()
	s.st.Blocked = blockTemp + int(c.P2)
	s.ses.tx = nil
	return nil, s.commit(old)
}

// cmdSign: 80 2A 9E 9A Lc <message> [Le 40]: SM2 signature (SM3 with Z,
// default user ID) of the message as raw r‖s. Needs the PIN.
func (s *SSC) cmdSign(c apdu.Command) ([]byte, uint16) {
	if c.P1 != 0x9E || c.P2 != 0x9A {
		return nil, apdu.SWWrongP1P2
	}
	if len(c.Data) == 0 {
		return nil, apdu.SWWrongLength
	}
	if !s.ses.pinOK {
		return nil, apdu.SWSecurityStatus
	}
	sig, err := signRaw(s.sm2, c.Data)
	if err != nil {
		return nil, apdu.SWNoDiagnosis
	}
	return sig, apdu.SWOK
}

// cmdGetData: 00|80 CA 7F 49 Le: the card's SM2 public key 04‖X‖Y.
func (s *SSC) cmdGetData(c apdu.Command) ([]byte, uint16) {
	if len(c.Data) != 0 {
		return nil, apdu.SWWrongLength
	}
	if c.P1 != 0x7F || c.P2 != 0x49 {
		return nil, apdu.SWRefNotFound
	}
	return s.sm2.PublicKey().Bytes(), apdu.SWOK
}
