package journal

import (
	"crypto/cipher"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/emmansun/gmsm/sm4"
	"github.com/onecard-hub/onecard/terminal/record"
)

// sealer seals the personal fields of records with SM4-GCM.
type sealer struct{ aead cipher.AEAD }

func newSealer(key []byte) (*sealer, error) {
	b, err := sm4.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("open journal: %w: personal key", ErrInvalidArgument)
	}
	a, err := cipher.NewGCM(b)
	if err != nil {
		return nil, fmt.Errorf("open journal: SM4-GCM: %w", err)
	}
	return &sealer{aead: a}, nil
}

const aadPrefix = "onecard journal personal v1"

// aad binds a sealed blob to its record: seq and card ID.
func aad(seq uint64, card record.CardID) []byte {
	b := append([]byte(aadPrefix), u64key(seq)...)
	return append(b, card[:]...)
}

// hasPersonal reports whether r has any personal field set.
func hasPersonal(r *record.Record) bool {
	return r.CardNumber != "" || r.PersonID != "" || r.HolderName != ""
}

// seal returns nonce ‖ ciphertext of the three personal fields (each one
// length byte and the bytes).
func (s *sealer) seal(seq uint64, r *record.Record) ([]byte, error) {
	var plain []byte
	for _, f := range []string{r.CardNumber, r.PersonID, r.HolderName} {
		plain = append(plain, byte(len(f)))
		plain = append(plain, f...)
	}
	nonce := make([]byte, s.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("seal personal fields: %w", err)
	}
	return s.aead.Seal(nonce, nonce, plain, aad(seq, r.CardID)), nil
}

// open fills r's personal fields from a sealed blob. Errors: ErrCorrupt.
func (s *sealer) open(seq uint64, r *record.Record, blob []byte) error {
	ns := s.aead.NonceSize()
	if len(blob) < ns+s.aead.Overhead() {
		return fmt.Errorf("%w: record %d: sealed personal fields too short", ErrCorrupt, seq)
	}
	plain, err := s.aead.Open(nil, blob[:ns], blob[ns:], aad(seq, r.CardID))
	if err != nil {
		return fmt.Errorf("%w: record %d: sealed personal fields do not authenticate", ErrCorrupt, seq)
	}
	var f [3]string
	for i := range f {
		if len(plain) < 1 || len(plain) < 1+int(plain[0]) {
			return fmt.Errorf("%w: record %d: sealed personal fields malformed", ErrCorrupt, seq)
		}
		f[i] = string(plain[1 : 1+plain[0]])
		plain = plain[1+plain[0]:]
	}
	if len(plain) != 0 {
		return fmt.Errorf("%w: record %d: sealed personal fields malformed", ErrCorrupt, seq)
	}
	r.CardNumber, r.PersonID, r.HolderName = f[0], f[1], f[2]
	return nil
}

const keyCheckText = "onecard journal key check"

// keyCheck returns a value that authenticates only under the same key.
func (s *sealer) keyCheck() ([]byte, error) {
	nonce := make([]byte, s.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return s.aead.Seal(nonce, nonce, []byte(keyCheckText), []byte("keycheck")), nil
}

func (s *sealer) verifyKeyCheck(b []byte) bool {
	ns := s.aead.NonceSize()
	if len(b) < ns {
		return false
	}
	p, err := s.aead.Open(nil, b[:ns], b[ns:], []byte("keycheck"))
	return err == nil && string(p) == keyCheckText
}

// LoadKey reads a personal-data key file: 32 hex digits and an optional
// newline. On Unix it refuses a file readable or writable by group or
// others (ErrInsecureKeyFile). Errors: also ErrInvalidArgument for a
// malformed file and file errors; the key never appears in an error.
func LoadKey(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("load journal key: %w", err)
	}
	if err := checkKeyMode(fi.Mode()); err != nil {
		return nil, fmt.Errorf("load journal key %s: %w (chmod 600 it)", path, err)
	}
	if fi.Size() > 256 {
		return nil, fmt.Errorf("load journal key %s: %w: file too large", path, ErrInvalidArgument)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load journal key: %w", err)
	}
	key, err := hex.DecodeString(strings.TrimSpace(string(data)))
	if err != nil || len(key) != PersonalKeySize {
		return nil, fmt.Errorf("load journal key %s: %w: want %d hex digits", path, ErrInvalidArgument, 2*PersonalKeySize)
	}
	return key, nil
}

// LoadOrCreateKey returns the key in path, creating the file (mode 0600,
// a fresh random key, written to a temporary file, synced and renamed) when
// it does not exist. Errors: those of LoadKey.
func LoadOrCreateKey(path string) ([]byte, error) {
	key, err := LoadKey(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return key, err
	}
	key = make([]byte, PersonalKeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("create journal key: %w", err)
	}
	if err := writeKeyFile(path, []byte(hex.EncodeToString(key)+"\n")); err != nil {
		return nil, fmt.Errorf("create journal key: %w", err)
	}
	return key, nil
}

func writeKeyFile(path string, data []byte) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), ".journal-key-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err = f.Chmod(0o600); err != nil {
		return err
	}
	if _, err = f.Write(data); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	// Link rather than rename: never replace a key someone created since.
	if err = os.Link(f.Name(), path); err != nil {
		os.Remove(f.Name())
		return err
	}
	return os.Remove(f.Name())
}

// personalBlank returns a copy of r without personal fields.
func personalBlank(r *record.Record) *record.Record {
	c := r.Clone()
	c.CardNumber, c.PersonID, c.HolderName = "", "", ""
	return c
}
