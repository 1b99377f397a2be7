package sm

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Names of the issuer master keys in a [KeySet].
const (
	KeyRKSSSE = "RKSSSE" // read control of SSSE (external authentication)
	KeyIRK    = "IRK"    // internal authentication
	KeyDPK    = "DPK"    // purchase (consumption)
	KeyDLK    = "DLK"    // load
	KeyDTK    = "DTK"    // TAC
	KeyPUK    = "PUK"    // PIN unblock
	KeySTK    = "STK"    // per-DF maintenance (block commands, UPDATE MACs)
)

// KeyNames lists every master key name, in file order.
var KeyNames = []string{KeyRKSSSE, KeyIRK, KeyDPK, KeyDLK, KeyDTK, KeyPUK, KeySTK}

// TestKeysWarning marks a key set file holding test keys.
const TestKeysWarning = "TEST KEYS - NOT FOR PRODUCTION"

const (
	keySetFormat  = "onecard-keyset"
	keySetVersion = 1
	testSeed      = "onecard test keyset "
)

// KeySet holds an issuer's master keys (16 bytes each, for SM4 and for
// 3DES) and a terminal SM2 key pair. It prints redacted: fmt, slog and
// String never show key material.
type KeySet struct {
	label string
	test  bool
	sm4   map[string][]byte
	des   map[string][]byte
	sm2   *PrivateKey
}

// GenerateTestKeySet makes a test key set from rand (crypto/rand.Reader
// when nil), marked as test keys when saved.
func GenerateTestKeySet(rand io.Reader) (*KeySet, error) {
	if rand == nil {
		rand = randReader
	}
	k, err := deriveKeySet(rand)
	if err != nil {
		return nil, fmt.Errorf("generate test key set: %w", err)
	}
	return k, nil
}

// TestKeySet returns the deterministic test key set for label: every key
// comes from SM3(("onecard test keyset " + label) ‖ counter) blocks, so
// card files and tests can name keys by label instead of storing them.
// The label must be valid UTF-8 without control characters. The keys are
// public knowledge: never use them in production.
func TestKeySet(label string) (*KeySet, error) {
	if !utf8.ValidString(label) || strings.IndexFunc(label, unicode.IsControl) >= 0 {
		return nil, fmt.Errorf("derive test key set: %w: label must be printable UTF-8", ErrKeySetFormat)
	}
	k, err := deriveKeySet(&sm3Stream{seed: []byte(testSeed + label)})
	if err != nil {
		return nil, fmt.Errorf("derive test key set: %w", err)
	}
	k.label = label
	return k, nil
}

// deriveKeySet reads SM4 keys, then 3DES keys (KeyNames order), then SM2
// scalars until one is in range.
func deriveKeySet(r io.Reader) (*KeySet, error) {
	k := &KeySet{test: true, sm4: map[string][]byte{}, des: map[string][]byte{}}
	for _, m := range []map[string][]byte{k.sm4, k.des} {
		for _, name := range KeyNames {
			b := make([]byte, 16)
			if _, err := io.ReadFull(r, b); err != nil {
				return nil, err
			}
			m[name] = b
		}
	}
	d := make([]byte, 32)
	for range 100 {
		if _, err := io.ReadFull(r, d); err != nil {
			return nil, err
		}
		if p, err := NewPrivateKey(d); err == nil {
			k.sm2 = p
			return k, nil
		}
	}
	return nil, fmt.Errorf("%w: no valid SM2 scalar from the random source", ErrPrivateKey)
}

// sm3Stream is a deterministic byte stream: SM3(seed ‖ be32(i)) for i = 0, 1, ...
type sm3Stream struct {
	seed []byte
	ctr  uint32
	buf  []byte
}

func (s *sm3Stream) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if len(s.buf) == 0 {
			h := NewSM3()
			h.Write(s.seed)
			h.Write(binary.BigEndian.AppendUint32(nil, s.ctr))
			s.ctr++
			s.buf = h.Sum(nil)
		}
		c := copy(p[n:], s.buf)
		s.buf = s.buf[c:]
		n += c
	}
	return n, nil
}

// Master returns a copy of the 16-byte master key name ("RKSSSE", "IRK",
// "DPK", "DLK", "DTK", "PUK", "STK") for alg. Errors: ErrAlg,
// ErrUnknownKey.
func (k *KeySet) Master(alg Alg, name string) ([]byte, error) {
	var m map[string][]byte
	switch alg {
	case AlgSM4:
		m = k.sm4
	case Alg3DES:
		m = k.des
	default:
		return nil, fmt.Errorf("get master key: %w", ErrAlg)
	}
	v, ok := m[name]
	if !ok {
		return nil, fmt.Errorf("get master key %q: %w", name, ErrUnknownKey)
	}
	return append([]byte(nil), v...), nil
}

// TerminalKey returns the terminal SM2 private key.
func (k *KeySet) TerminalKey() *PrivateKey { return k.sm2 }

// TerminalPublicKey returns the terminal SM2 public key.
func (k *KeySet) TerminalPublicKey() *PublicKey { return k.sm2.PublicKey() }

// IsTest reports whether the set holds test keys.
func (k *KeySet) IsTest() bool { return k.test }

// Label returns the label of a set made by TestKeySet (or loaded from a
// file that has one), else "".
func (k *KeySet) Label() string { return k.label }

// String describes the set without key material.
func (k *KeySet) String() string {
	if k == nil {
		return "sm.KeySet(nil)"
	}
	kind := "issuer keys"
	if k.test {
		kind = TestKeysWarning
	}
	return fmt.Sprintf("sm.KeySet(%s, label %q, SM4 and 3DES masters %s, terminal SM2 public %s; keys REDACTED)",
		kind, k.label, strings.Join(KeyNames, "/"), k.sm2.PublicKey())
}

// GoString is String, so %#v redacts too.
func (k *KeySet) GoString() string { return k.String() }

// Format prints String for every verb.
func (k *KeySet) Format(f fmt.State, _ rune) { io.WriteString(f, k.String()) }

// LogValue makes slog print the redacted form.
func (k *KeySet) LogValue() slog.Value { return slog.StringValue(k.String()) }

// keySetFile is the JSON file form (version 1).
type keySetFile struct {
	Warning string            `json:"warning,omitempty"`
	Format  string            `json:"format"`
	Version int               `json:"version"`
	Test    bool              `json:"test"`
	Label   string            `json:"label,omitempty"`
	SM4     map[string]string `json:"sm4"`
	DES     map[string]string `json:"3des"`
	SM2     *sm2File          `json:"sm2_terminal"`
}

type sm2File struct {
	Private string `json:"private"`
	Public  string `json:"public"`
}

func (k *KeySet) marshal() ([]byte, error) {
	f := keySetFile{Format: keySetFormat, Version: keySetVersion, Test: k.test, Label: k.label,
		SM4: map[string]string{}, DES: map[string]string{}}
	if k.test {
		f.Warning = TestKeysWarning
	}
	for _, name := range KeyNames {
		f.SM4[name] = strings.ToUpper(hex.EncodeToString(k.sm4[name]))
		f.DES[name] = strings.ToUpper(hex.EncodeToString(k.des[name]))
	}
	f.SM2 = &sm2File{Private: hex.EncodeToString(k.sm2.scalar()), Public: k.sm2.PublicKey().String()}
	out, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(out, '\n'), nil
}

// Save writes the set as JSON to path with mode 0600, through a temporary
// file in the same directory and a rename; test sets carry
// "warning": "TEST KEYS - NOT FOR PRODUCTION". It replaces an existing file
// only when that file is private already (ErrInsecurePermissions
// otherwise) and regular.
func (k *KeySet) Save(path string) error {
	data, err := k.marshal()
	if err != nil {
		return fmt.Errorf("save key set: %w", err)
	}
	if err := writeSecretFile(path, data); err != nil {
		return fmt.Errorf("save key set: %w", err)
	}
	return nil
}

// LoadKeySet reads a key set file written by Save. On Unix it refuses a
// file that group or others can access (ErrInsecurePermissions; the error
// says to chmod 600). Errors: also ErrKeySetFormat, ErrPrivateKey and
// file errors.
func LoadKeySet(path string) (*KeySet, error) {
	data, err := readSecretFile(path)
	if err != nil {
		return nil, fmt.Errorf("load key set: %w", err)
	}
	k, err := parseKeySet(data)
	if err != nil {
		return nil, fmt.Errorf("load key set %s: %w", path, err)
	}
	return k, nil
}

// parseKeySet decodes the file form strictly. Error texts name fields,
// never values.
func parseKeySet(data []byte) (*KeySet, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var f keySetFile
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("%w: %s", ErrKeySetFormat, describeJSONError(err))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: data after the JSON object", ErrKeySetFormat)
	}
	if f.Format != keySetFormat {
		return nil, fmt.Errorf("%w: format is not %q", ErrKeySetFormat, keySetFormat)
	}
	if f.Version != keySetVersion {
		return nil, fmt.Errorf("%w: unsupported version %d", ErrKeySetFormat, f.Version)
	}
	if f.Test != (f.Warning == TestKeysWarning) || (!f.Test && f.Warning != "") {
		return nil, fmt.Errorf("%w: \"test\" and \"warning\" disagree", ErrKeySetFormat)
	}
	k := &KeySet{label: f.Label, test: f.Test}
	var err error
	if k.sm4, err = decodeMasters("sm4", f.SM4); err != nil {
		return nil, err
	}
	if k.des, err = decodeMasters("3des", f.DES); err != nil {
		return nil, err
	}
	if f.SM2 == nil {
		return nil, fmt.Errorf("%w: sm2_terminal missing", ErrKeySetFormat)
	}
	d, err := hex.DecodeString(f.SM2.Private)
	if err != nil || len(d) != 32 {
		return nil, fmt.Errorf("%w: sm2_terminal.private is not 64 hex digits", ErrKeySetFormat)
	}
	if k.sm2, err = NewPrivateKey(d); err != nil {
		return nil, fmt.Errorf("%w: sm2_terminal.private: %w", ErrKeySetFormat, err)
	}
	pub, err := hex.DecodeString(f.SM2.Public)
	if err != nil || !bytes.Equal(pub, k.sm2.PublicKey().Bytes()) {
		return nil, fmt.Errorf("%w: sm2_terminal.public does not match the private key", ErrKeySetFormat)
	}
	return k, nil
}

func decodeMasters(alg string, m map[string]string) (map[string][]byte, error) {
	out := make(map[string][]byte, len(KeyNames))
	for _, name := range KeyNames {
		v, ok := m[name]
		if !ok {
			return nil, fmt.Errorf("%w: %s.%s missing", ErrKeySetFormat, alg, name)
		}
		b, err := hex.DecodeString(v)
		if err != nil || len(b) != 16 {
			return nil, fmt.Errorf("%w: %s.%s is not 32 hex digits", ErrKeySetFormat, alg, name)
		}
		out[name] = b
	}
	if len(m) != len(KeyNames) {
		return nil, fmt.Errorf("%w: %s has keys other than %s", ErrKeySetFormat, alg, strings.Join(KeyNames, ", "))
	}
	return out, nil
}

// describeJSONError keeps the position and field of a JSON error but not
// the offending value, which could be key material.
func describeJSONError(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("JSON syntax error at byte %d", se.Offset)
	case errors.As(err, &te):
		return fmt.Sprintf("field %q has the wrong JSON type (want %v)", te.Field, te.Type)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "truncated JSON"
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return err.Error() // names a field (a key of the object), not a value
	}
	return "invalid JSON"
}
