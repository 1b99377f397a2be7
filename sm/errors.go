package sm

import "errors"

// Sentinel errors. Functions wrap them with context ("verb noun: %w"); test
// with errors.Is. No error ever contains key material.
var (
	// ErrAlg: the algorithm value is not AlgSM4 or Alg3DES.
	ErrAlg = errors.New("sm: unknown algorithm")
	// ErrKeySize: a key has the wrong length for its algorithm.
	ErrKeySize = errors.New("sm: wrong key size")
	// ErrDataLength: data is not a whole number of blocks, or a fixed-size
	// input (random, sequence number, digest) has the wrong length.
	ErrDataLength = errors.New("sm: wrong data length")
	// ErrIVSize: the initial value is neither empty nor of an accepted size.
	ErrIVSize = errors.New("sm: wrong IV size")
	// ErrPadding: decrypted data does not end in valid padding.
	ErrPadding = errors.New("sm: bad padding")
	// ErrFactor: a diversification factor is missing or not 8 bytes.
	ErrFactor = errors.New("sm: bad diversification factor")
	// ErrSuite: the crypto-suite name or combination of rules is unknown.
	ErrSuite = errors.New("sm: unknown or unsupported crypto suite")
	// ErrUnknownKey: no master key of that name in a key set.
	ErrUnknownKey = errors.New("sm: unknown master key")
	// ErrKeySetFormat: a key set file is malformed.
	ErrKeySetFormat = errors.New("sm: malformed key set")
	// ErrInsecurePermissions: a key file is readable or writable by group
	// or others.
	ErrInsecurePermissions = errors.New("sm: key file permissions too open")
	// ErrSignatureFormat: a signature is not a well-formed DER or 64-byte
	// r‖s SM2 signature with 1 <= r, s < n.
	ErrSignatureFormat = errors.New("sm: malformed SM2 signature")
	// ErrPublicKey: an SM2 public key is malformed or not on the curve.
	ErrPublicKey = errors.New("sm: invalid SM2 public key")
	// ErrPrivateKey: an SM2 private key is malformed or out of range.
	ErrPrivateKey = errors.New("sm: invalid SM2 private key")
	// ErrPEM: the input holds no PEM block of the expected type.
	ErrPEM = errors.New("sm: no suitable PEM block")
	// ErrSelfTest: a known-answer test failed.
	ErrSelfTest = errors.New("sm: self-test failed")
)
