package kioskapi

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"
)

// Pairing errors.
var (
	// ErrNoCode: no pairing code is active (none issued, expired, used, or
	// revoked after too many wrong attempts). Ask the operator for a new
	// one ('onecard agent pair').
	ErrNoCode = errors.New("no pairing code active")
	// ErrBadCode: the code is wrong.
	ErrBadCode = errors.New("wrong pairing code")
	// ErrPairingFile: the paired-origins file is unreadable or malformed.
	ErrPairingFile = errors.New("paired-origins file")
)

// Defaults of PairingOptions.
const (
	DefaultCodeTTL     = 10 * time.Minute
	DefaultMaxAttempts = 5
	// CodeDigits is the length of a pairing code.
	CodeDigits = 6
)

// PairingOptions configures a Pairing store.
type PairingOptions struct {
	// Path is the JSON file that keeps paired origins (written 0600,
	// atomically). "": pairs live in memory only.
	Path string
	// CodeTTL is how long a code stays valid (default DefaultCodeTTL).
	CodeTTL time.Duration
	// MaxAttempts wrong codes revoke the active code (default
	// DefaultMaxAttempts), so a page cannot guess it.
	MaxAttempts int
	// Now and Rand are the clock and randomness (defaults time.Now and
	// crypto/rand).
	Now  func() time.Time
	Rand io.Reader
}

// Paired is one paired origin.
type Paired struct {
	Origin   string    `json:"origin"`
	PairedAt time.Time `json:"paired_at"`
	// TokenHash is hex SHA-256 of the token; the token itself is never
	// stored.
	TokenHash string `json:"token_sha256"`
}

type pairingFile struct {
	Version int      `json:"version"`
	Pairs   []Paired `json:"pairs"`
}

// Pairing pairs web origins with the agent: the operator gets a one-time
// code (NewCode, shown in the agent's log and by 'onecard agent pair'),
// the page sends it once (Pair) and receives a token bound to its origin,
// which it presents on later connections (Check). Only one code is active
// at a time; MaxAttempts wrong guesses revoke it. Safe for concurrent use.
type Pairing struct {
	opts PairingOptions

	mu       sync.Mutex
	code     string
	expires  time.Time
	attempts int
	pairs    map[string]Paired // by origin
}

// OpenPairing loads opts.Path (a missing file is an empty store). Errors
// wrap ErrPairingFile.
func OpenPairing(opts PairingOptions) (*Pairing, error) {
	if opts.CodeTTL <= 0 {
		opts.CodeTTL = DefaultCodeTTL
	}
	if opts.MaxAttempts <= 0 {
		opts.MaxAttempts = DefaultMaxAttempts
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Rand == nil {
		opts.Rand = rand.Reader
	}
	p := &Pairing{opts: opts, pairs: map[string]Paired{}}
	if opts.Path == "" {
		return p, nil
	}
	b, err := os.ReadFile(opts.Path)
	if errors.Is(err, os.ErrNotExist) {
		return p, nil
	}
	if err != nil {
		return nil, fmt.Errorf("open %w: %w", ErrPairingFile, err)
	}
	var f pairingFile
	if err := json.Unmarshal(b, &f); err != nil || f.Version != 1 {
		return nil, fmt.Errorf("open %w %s: not a version 1 pairing file", ErrPairingFile, opts.Path)
	}
	for _, pr := range f.Pairs {
		if _, err := NormaliseOrigin(pr.Origin); err != nil || len(pr.TokenHash) != 64 {
			return nil, fmt.Errorf("open %w %s: bad entry for %q", ErrPairingFile, opts.Path, pr.Origin)
		}
		p.pairs[pr.Origin] = pr
	}
	return p, nil
}

// NewCode issues a fresh code (replacing any active one) and returns it
// with its expiry.
func (p *Pairing) NewCode() (string, time.Time, error) {
	n, err := rand.Int(p.opts.Rand, big.NewInt(1_000_000))
	if err != nil {
		return "", time.Time{}, fmt.Errorf("new pairing code: %w", err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.code = fmt.Sprintf("%0*d", CodeDigits, n.Int64())
	p.expires = p.opts.Now().Add(p.opts.CodeTTL)
	p.attempts = 0
	return p.code, p.expires, nil
}

// Pair checks code and pairs origin: it returns a new token (base64url,
// 32 random bytes) that only origin can use, replacing any earlier token
// of origin. The code is consumed. Errors: ErrNoCode, ErrBadCode, and
// ErrPairingFile when the store cannot be written.
func (p *Pairing) Pair(origin, code string) (string, error) {
	o, err := NormaliseOrigin(origin)
	if err != nil {
		return "", fmt.Errorf("pair: %w", err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.code == "" || !p.opts.Now().Before(p.expires) {
		p.code = ""
		return "", fmt.Errorf("pair %s: %w", o, ErrNoCode)
	}
	if subtle.ConstantTimeCompare([]byte(code), []byte(p.code)) != 1 {
		p.attempts++
		if p.attempts >= p.opts.MaxAttempts {
			p.code = ""
			return "", fmt.Errorf("pair %s: %w (code revoked after %d attempts)", o, ErrBadCode, p.attempts)
		}
		return "", fmt.Errorf("pair %s: %w", o, ErrBadCode)
	}
	raw := make([]byte, 32)
	if _, err := io.ReadFull(p.opts.Rand, raw); err != nil {
		return "", fmt.Errorf("pair %s: draw token: %w", o, err)
	}
	tok := base64.RawURLEncoding.EncodeToString(raw)
	sum := sha256.Sum256([]byte(tok))
	old, had := p.pairs[o]
	p.pairs[o] = Paired{Origin: o, PairedAt: p.opts.Now().UTC(), TokenHash: hex.EncodeToString(sum[:])}
	if err := p.saveLocked(); err != nil {
		if had {
			p.pairs[o] = old
		} else {
			delete(p.pairs, o)
		}
		return "", fmt.Errorf("pair %s: %w", o, err)
	}
	p.code = ""
	return tok, nil
}

// Check reports whether token is origin's token (constant time).
func (p *Pairing) Check(origin, token string) bool {
	o, err := NormaliseOrigin(origin)
	if err != nil || token == "" {
		return false
	}
	p.mu.Lock()
	pr, ok := p.pairs[o]
	p.mu.Unlock()
	if !ok {
		return false
	}
	sum := sha256.Sum256([]byte(token))
	want, err := hex.DecodeString(pr.TokenHash)
	return err == nil && subtle.ConstantTimeCompare(sum[:], want) == 1
}

// List returns the paired origins, sorted.
func (p *Pairing) List() []Paired {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]Paired, 0, len(p.pairs))
	for _, pr := range p.pairs {
		out = append(out, pr)
	}
	slices.SortFunc(out, func(a, b Paired) int {
		switch {
		case a.Origin < b.Origin:
			return -1
		case a.Origin > b.Origin:
			return 1
		}
		return 0
	})
	return out
}

// Revoke unpairs origin; it reports whether origin was paired. Errors:
// ErrPairingFile.
func (p *Pairing) Revoke(origin string) (bool, error) {
	o, err := NormaliseOrigin(origin)
	if err != nil {
		return false, fmt.Errorf("revoke: %w", err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	old, ok := p.pairs[o]
	if !ok {
		return false, nil
	}
	delete(p.pairs, o)
	if err := p.saveLocked(); err != nil {
		p.pairs[o] = old
		return false, fmt.Errorf("revoke %s: %w", o, err)
	}
	return true, nil
}

// saveLocked writes the store atomically with mode 0600.
func (p *Pairing) saveLocked() error {
	if p.opts.Path == "" {
		return nil
	}
	f := pairingFile{Version: 1, Pairs: make([]Paired, 0, len(p.pairs))}
	for _, pr := range p.pairs {
		f.Pairs = append(f.Pairs, pr)
	}
	slices.SortFunc(f.Pairs, func(a, b Paired) int {
		if a.Origin < b.Origin {
			return -1
		}
		return 1
	})
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return fmt.Errorf("%w: %w", ErrPairingFile, err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(p.opts.Path), ".pairs-*")
	if err != nil {
		return fmt.Errorf("write %w: %w", ErrPairingFile, err)
	}
	defer func() { _ = os.Remove(tmp.Name()) }()
	if err := tmp.Chmod(0o600); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("write %w: %w", ErrPairingFile, err)
	}
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("write %w: %w", ErrPairingFile, err)
	}
	if err := tmp.Sync(); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("write %w: %w", ErrPairingFile, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %w: %w", ErrPairingFile, err)
	}
	if err := os.Rename(tmp.Name(), p.opts.Path); err != nil {
		return fmt.Errorf("write %w: %w", ErrPairingFile, err)
	}
	return nil
}
