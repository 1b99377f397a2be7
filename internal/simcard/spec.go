package simcard

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/onecard-hub/onecard/reader/virtual"
	"github.com/onecard-hub/onecard/sm"
)

// ErrBadCardFile wraps every validation failure of a card file or spec.
var ErrBadCardFile = errors.New("bad card file")

func badf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrBadCardFile, fmt.Sprintf(format, args...))
}

// KeyRef names the issuer key set a card file uses. Exactly one field is
// set. Keys themselves are never written into a card file.
type KeyRef struct {
	// Test is the label of a deterministic test key set (sm.TestKeySet).
	Test string `yaml:"test,omitempty"`
	// File is the path of a key-set file (sm.LoadKeySet), relative to the
	// card file's directory unless absolute.
	File string `yaml:"file,omitempty"`
}

func (k KeyRef) validate() error {
	if (k.Test == "") == (k.File == "") {
		return badf("keys: set exactly one of test or file")
	}
	return nil
}

// resolve loads the referenced key set; baseDir anchors a relative file.
func (k KeyRef) resolve(baseDir string) (*sm.KeySet, error) {
	if err := k.validate(); err != nil {
		return nil, err
	}
	if k.Test != "" {
		ks, err := sm.TestKeySet(k.Test)
		if err != nil {
			return nil, fmt.Errorf("derive test key set: %w", err)
		}
		return ks, nil
	}
	p := k.File
	if !filepath.IsAbs(p) && baseDir != "" {
		p = filepath.Join(baseDir, p)
	}
	ks, err := sm.LoadKeySet(p)
	if err != nil {
		return nil, fmt.Errorf("load key set: %w", err)
	}
	return ks, nil
}

// Holder is the cardholder data of SSSE/EF06.
type Holder struct {
	SSN        string `yaml:"ssn"`        // 社会保障号码, an ≤ 18
	Name       string `yaml:"name"`       // 姓名, GBK; > 30 bytes spill into 4E (≤ 20)
	Sex        string `yaml:"sex"`        // GB/T 2261.1: 0, 1, 2 or 9
	Nation     string `yaml:"nation"`     // 民族, two digits
	Birthplace string `yaml:"birthplace"` // region code, ≤ 6 digits
	BirthDate  string `yaml:"birth_date"` // YYYYMMDD
}

// Purse is the initial state of the PBOC-style purses.
type Purse struct {
	Balance    uint32 `yaml:"balance"`               // EP (电子钱包) balance in fen
	EDBalance  uint32 `yaml:"ed_balance,omitempty"`  // ED (电子存折) balance in fen
	MaxBalance uint32 `yaml:"max_balance,omitempty"` // cap per purse; 0 = 2^31-1
}

// Torn arms the torn-transaction switch from a card file.
type Torn struct {
	After string `yaml:"after"`           // DEBIT or LOAD
	Times int    `yaml:"times,omitempty"` // how many transactions to tear; 0 = 1
}

// SSCSpec is the personalisation of a virtual social-security card: the
// `kind: ssc` card file.
type SSCSpec struct {
	Kind          string `yaml:"kind"`
	Generation    int    `yaml:"generation"`               // 2 (3DES) or 3 (SM4 + SM2)
	Suite         string `yaml:"suite,omitempty"`          // sm.ParseSuite name; "" = by generation
	Protocol      string `yaml:"protocol,omitempty"`       // T0 (default) or T1
	DelayMS       int    `yaml:"delay_ms,omitempty"`       // sleep before every answer
	ATRHistorical string `yaml:"atr_historical,omitempty"` // 26 hex digits; "" = derived
	CardID        string `yaml:"card_id"`                  // 卡识别码, 32 hex digits
	CardType      string `yaml:"card_type,omitempty"`      // 卡的类别, 1 char; "" = "3"
	SpecVersion   string `yaml:"spec_version,omitempty"`   // "" = "2.00"/"3.00"
	InitOrg       string `yaml:"init_org,omitempty"`       // ≤ 24 digits; "" = region code
	IssueDate     string `yaml:"issue_date"`               // YYYYMMDD
	ExpiryDate    string `yaml:"expiry_date"`              // YYYYMMDD
	CardNumber    string `yaml:"card_number"`              // 卡号, an ≤ 9
	Holder        Holder `yaml:"holder"`
	PIN           string `yaml:"pin"`                   // 4–12 digits
	PINTries      int    `yaml:"pin_tries,omitempty"`   // 1–15; 0 = 3
	AuthTries     int    `yaml:"auth_tries,omitempty"`  // external-auth key tries, 1–15; 0 = 3
	KeyVersion    int    `yaml:"key_version,omitempty"` // purse key version; 0 = 1
	Purse         Purse  `yaml:"purse"`
	Keys          KeyRef `yaml:"keys"`
	Torn          *Torn  `yaml:"torn,omitempty"`
}

// PSAMSpec is the personalisation of a virtual PSAM: the `kind: psam` card
// file.
type PSAMSpec struct {
	Kind          string `yaml:"kind"`
	Protocol      string `yaml:"protocol,omitempty"`       // T0 (default) or T1
	DelayMS       int    `yaml:"delay_ms,omitempty"`       // sleep before every answer
	ATRHistorical string `yaml:"atr_historical,omitempty"` // hex, ≤ 15 bytes; "" = derived
	Terminal      string `yaml:"terminal"`                 // 12-digit terminal number
	TerminalSeq   uint32 `yaml:"terminal_seq,omitempty"`   // first terminal transaction number; 0 = 1
	KeyVersion    int    `yaml:"key_version,omitempty"`    // purchase key version; 0 = 1
	SuiteSM4      string `yaml:"suite_sm4,omitempty"`      // suite for alg id 04; "" = SM4
	Suite3DES     string `yaml:"suite_3des,omitempty"`     // suite for alg id 00; "" = 3DES
	Keys          KeyRef `yaml:"keys"`
}

// CardFile is a decoded card file: exactly one of SSC and PSAM is set,
// according to Kind.
type CardFile struct {
	Kind string
	SSC  *SSCSpec
	PSAM *PSAMSpec
}

// ParseCardFile decodes and validates a card file (YAML). Unknown fields
// are errors. Errors wrap ErrBadCardFile.
func ParseCardFile(data []byte) (CardFile, error) {
	var head struct {
		Kind string `yaml:"kind"`
	}
	if err := yaml.Unmarshal(data, &head); err != nil {
		return CardFile{}, badf("%v", err)
	}
	strict := func(v any) error {
		dec := yaml.NewDecoder(bytes.NewReader(data))
		dec.KnownFields(true)
		if err := dec.Decode(v); err != nil {
			return badf("%v", err)
		}
		return nil
	}
	switch head.Kind {
	case "ssc":
		var s SSCSpec
		if err := strict(&s); err != nil {
			return CardFile{}, err
		}
		if _, err := s.normalize(); err != nil {
			return CardFile{}, err
		}
		return CardFile{Kind: head.Kind, SSC: &s}, nil
	case "psam":
		var p PSAMSpec
		if err := strict(&p); err != nil {
			return CardFile{}, err
		}
		if _, err := p.normalize(); err != nil {
			return CardFile{}, err
		}
		return CardFile{Kind: head.Kind, PSAM: &p}, nil
	}
	return CardFile{}, badf("kind %q: want ssc or psam", head.Kind)
}

// statePathFor returns FILE.state.json for FILE.yaml (any extension).
func statePathFor(path string) string {
	return strings.TrimSuffix(path, filepath.Ext(path)) + ".state.json"
}

// LoadFile opens a card file (`kind: ssc` or `kind: psam`) and returns the
// card it describes, as a *SSC or a *PSAM. Persistent state lives in
// FILE.state.json beside the card file (FILE without its extension): it is
// read if present and rewritten atomically after every persistent change.
// Errors wrap ErrBadCardFile (bad file), ErrBadState (bad state file) or
// the file system's error.
func LoadFile(path string) (virtual.Card, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read card file: %w", err)
	}
	cf, err := ParseCardFile(data)
	if err != nil {
		return nil, fmt.Errorf("parse card file %s: %w", path, err)
	}
	opts := Options{StatePath: statePathFor(path), BaseDir: filepath.Dir(path)}
	if cf.SSC != nil {
		return NewSSC(*cf.SSC, opts)
	}
	return NewPSAM(*cf.PSAM, opts)
}

func decodeHexN(field, s string, n int) ([]byte, error) {
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil || len(b) != n {
		return nil, badf("%s: want %d bytes of hex", field, n)
	}
	return b, nil
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
