package sm

import (
	"crypto/cipher"
	"crypto/des"
	"crypto/subtle"
	"fmt"
	"hash"

	"github.com/emmansun/gmsm/sm3"
	"github.com/emmansun/gmsm/sm4"
)

// Alg is a block cipher used by cards. The zero value is invalid.
type Alg int

const (
	// AlgSM4 is SM4 (GB/T 32907): 16-byte blocks and keys. Third-generation
	// cards.
	AlgSM4 Alg = iota + 1
	// Alg3DES is DES/3DES (8-byte blocks). The key length picks the
	// variant: 8 bytes single DES, 16 bytes two-key 3DES (K1‖K2, EDE with
	// K3 = K1), 24 bytes three-key 3DES. Second-generation cards.
	Alg3DES
)

// BlockSize returns the cipher's block size in bytes (16 for SM4, 8 for
// DES/3DES), or 0 for an invalid Alg.
func (a Alg) BlockSize() int {
	switch a {
	case AlgSM4:
		return 16
	case Alg3DES:
		return 8
	}
	return 0
}

// String returns "sm4", "3des" or "Alg(n)".
func (a Alg) String() string {
	switch a {
	case AlgSM4:
		return "sm4"
	case Alg3DES:
		return "3des"
	}
	return fmt.Sprintf("Alg(%d)", int(a))
}

// newBlock returns the block cipher for key. Errors: ErrAlg, ErrKeySize.
func (a Alg) newBlock(key []byte) (cipher.Block, error) {
	switch a {
	case AlgSM4:
		if len(key) != 16 {
			return nil, fmt.Errorf("%w: SM4 key is %d bytes, want 16", ErrKeySize, len(key))
		}
		return sm4.NewCipher(key)
	case Alg3DES:
		switch len(key) {
		case 8:
			return des.NewCipher(key)
		case 16:
			k := make([]byte, 24)
			copy(k, key)
			copy(k[16:], key[:8])
			return des.NewTripleDESCipher(k)
		case 24:
			return des.NewTripleDESCipher(key)
		}
		return nil, fmt.Errorf("%w: DES/3DES key is %d bytes, want 8, 16 or 24", ErrKeySize, len(key))
	}
	return nil, ErrAlg
}

// Padding selects how data is padded to whole blocks before encryption
// and checked after decryption.
type Padding int

const (
	// NoPadding: data must already be a whole number of blocks.
	NoPadding Padding = iota
	// PKCS7Padding: n bytes of value n (1..block size), always added.
	PKCS7Padding
	// ISO9797M2Padding: 80 then 00 up to a block boundary, always added
	// (ISO/IEC 9797-1 method 2; the padding of every PBOC MAC).
	ISO9797M2Padding
)

func (p Padding) pad(data []byte, bs int) ([]byte, error) {
	switch p {
	case NoPadding:
		if len(data)%bs != 0 {
			return nil, fmt.Errorf("%w: %d bytes is not a multiple of %d", ErrDataLength, len(data), bs)
		}
		return append([]byte(nil), data...), nil
	case PKCS7Padding:
		n := bs - len(data)%bs
		out := make([]byte, len(data)+n)
		copy(out, data)
		for i := len(data); i < len(out); i++ {
			out[i] = byte(n)
		}
		return out, nil
	case ISO9797M2Padding:
		return pad80(data, bs), nil
	}
	return nil, fmt.Errorf("%w: unknown padding %d", ErrPadding, int(p))
}

// unpad checks and strips the padding. For PKCS7 the check runs in time
// independent of the padding value.
func (p Padding) unpad(data []byte, bs int) ([]byte, error) {
	switch p {
	case NoPadding:
		return data, nil
	case PKCS7Padding:
		if len(data) == 0 {
			return nil, ErrPadding
		}
		n := int(data[len(data)-1])
		good := subtle.ConstantTimeLessOrEq(1, n) & subtle.ConstantTimeLessOrEq(n, bs)
		tail := data[len(data)-bs:]
		for i := range bs {
			// Byte i of the last block is padding when bs-i <= n.
			isPad := subtle.ConstantTimeLessOrEq(bs-i, n)
			match := subtle.ConstantTimeByteEq(tail[i], byte(n))
			good &= subtle.ConstantTimeSelect(isPad, match, 1)
		}
		if good != 1 {
			return nil, ErrPadding
		}
		return data[:len(data)-n], nil
	case ISO9797M2Padding:
		for i := len(data) - 1; i >= 0 && i >= len(data)-bs; i-- {
			if data[i] == 0x80 {
				return data[:i], nil
			}
			if data[i] != 0x00 {
				break
			}
		}
		return nil, ErrPadding
	}
	return nil, fmt.Errorf("%w: unknown padding %d", ErrPadding, int(p))
}

// pad80 appends 80 and then 00 up to a multiple of bs (always at least one
// byte is added).
func pad80(data []byte, bs int) []byte {
	n := (len(data)/bs + 1) * bs
	out := make([]byte, n)
	copy(out, data)
	out[len(data)] = 0x80
	return out
}

// EncryptECB encrypts data block by block with key after padding it with
// p. Errors: ErrAlg, ErrKeySize, ErrDataLength (NoPadding and a partial
// block).
func EncryptECB(alg Alg, key, data []byte, p Padding) ([]byte, error) {
	b, err := alg.newBlock(key)
	if err != nil {
		return nil, fmt.Errorf("encrypt ECB: %w", err)
	}
	out, err := p.pad(data, b.BlockSize())
	if err != nil {
		return nil, fmt.Errorf("encrypt ECB: %w", err)
	}
	ecb(b, out, true)
	return out, nil
}

// DecryptECB decrypts data block by block with key and strips padding p.
// Errors: ErrAlg, ErrKeySize, ErrDataLength, ErrPadding.
func DecryptECB(alg Alg, key, data []byte, p Padding) ([]byte, error) {
	b, err := alg.newBlock(key)
	if err != nil {
		return nil, fmt.Errorf("decrypt ECB: %w", err)
	}
	bs := b.BlockSize()
	if len(data)%bs != 0 || (p != NoPadding && len(data) == 0) {
		return nil, fmt.Errorf("decrypt ECB: %w: %d bytes", ErrDataLength, len(data))
	}
	out := append([]byte(nil), data...)
	ecb(b, out, false)
	plain, err := p.unpad(out, bs)
	if err != nil {
		return nil, fmt.Errorf("decrypt ECB: %w", err)
	}
	return plain, nil
}

// EncryptCBC encrypts data in CBC mode with key and a full-block iv (nil
// means all zeros) after padding it with p. Errors: ErrAlg, ErrKeySize,
// ErrIVSize, ErrDataLength.
func EncryptCBC(alg Alg, key, iv, data []byte, p Padding) ([]byte, error) {
	b, err := alg.newBlock(key)
	if err != nil {
		return nil, fmt.Errorf("encrypt CBC: %w", err)
	}
	iv, err = fullIV(iv, b.BlockSize(), false)
	if err != nil {
		return nil, fmt.Errorf("encrypt CBC: %w", err)
	}
	out, err := p.pad(data, b.BlockSize())
	if err != nil {
		return nil, fmt.Errorf("encrypt CBC: %w", err)
	}
	cipher.NewCBCEncrypter(b, iv).CryptBlocks(out, out)
	return out, nil
}

// DecryptCBC decrypts CBC-mode data with key and a full-block iv (nil means
// all zeros) and strips padding p. Errors: ErrAlg, ErrKeySize, ErrIVSize,
// ErrDataLength, ErrPadding.
func DecryptCBC(alg Alg, key, iv, data []byte, p Padding) ([]byte, error) {
	b, err := alg.newBlock(key)
	if err != nil {
		return nil, fmt.Errorf("decrypt CBC: %w", err)
	}
	bs := b.BlockSize()
	iv, err = fullIV(iv, bs, false)
	if err != nil {
		return nil, fmt.Errorf("decrypt CBC: %w", err)
	}
	if len(data)%bs != 0 || (p != NoPadding && len(data) == 0) {
		return nil, fmt.Errorf("decrypt CBC: %w: %d bytes", ErrDataLength, len(data))
	}
	out := make([]byte, len(data))
	cipher.NewCBCDecrypter(b, iv).CryptBlocks(out, data)
	plain, err := p.unpad(out, bs)
	if err != nil {
		return nil, fmt.Errorf("decrypt CBC: %w", err)
	}
	return plain, nil
}

// fullIV returns a block-sized copy of iv: nil/empty gives zeros; with
// leftAlign an 8-byte iv for a 16-byte block goes left-aligned into zeros.
func fullIV(iv []byte, bs int, leftAlign bool) ([]byte, error) {
	out := make([]byte, bs)
	switch {
	case len(iv) == 0:
	case len(iv) == bs:
		copy(out, iv)
	case leftAlign && bs == 16 && len(iv) == 8:
		copy(out, iv)
	default:
		return nil, fmt.Errorf("%w: %d bytes for a %d-byte block", ErrIVSize, len(iv), bs)
	}
	return out, nil
}

func ecb(b cipher.Block, buf []byte, encrypt bool) {
	bs := b.BlockSize()
	for i := 0; i < len(buf); i += bs {
		if encrypt {
			b.Encrypt(buf[i:i+bs], buf[i:i+bs])
		} else {
			b.Decrypt(buf[i:i+bs], buf[i:i+bs])
		}
	}
}

// SM3 returns the SM3 hash (GB/T 32905) of data.
func SM3(data []byte) [32]byte { return sm3.Sum(data) }

// NewSM3 returns a streaming SM3 hash.
func NewSM3() hash.Hash { return sm3.New() }
