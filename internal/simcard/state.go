package simcard

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/onecard-hub/onecard/sm"
)

// ErrBadState wraps every failure to decode or accept a state file.
var ErrBadState = errors.New("bad card state file")

const (
	stateFormat = 1
	logSize     = 10 // transaction-log records kept
	logRecLen   = 23 // PBOC transaction-log record
)

// hexBytes marshals as a hex string in JSON.
type hexBytes []byte

func (h hexBytes) MarshalText() ([]byte, error) {
	return []byte(hex.EncodeToString(h)), nil
}

func (h *hexBytes) UnmarshalText(b []byte) error {
	out, err := hex.DecodeString(string(b))
	if err != nil {
		return err
	}
	*h = out
	return nil
}

// LogEntry is one record of the card's transaction log (newest first in
// SSC.Log and in READ RECORD of SFI 18).
type LogEntry struct {
	Seq      uint16   `json:"seq"`      // purse counter the transaction used
	Amount   uint32   `json:"amount"`   // fen
	Type     byte     `json:"type"`     // 01/02 load, 05/06 purchase
	Terminal hexBytes `json:"terminal"` // 6 bytes
	Date     hexBytes `json:"date"`     // 4 bytes BCD YYYYMMDD
	Time     hexBytes `json:"time"`     // 3 bytes BCD hhmmss
}

// bytes encodes the PBOC 23-byte log record: seq(2) ‖ overdraft(3) ‖
// amount(4) ‖ type(1) ‖ terminal(6) ‖ date(4) ‖ time(3).
func (e LogEntry) bytes() []byte {
	b := make([]byte, 0, logRecLen)
	b = append(b, byte(e.Seq>>8), byte(e.Seq), 0, 0, 0)
	b = append(b, be32(e.Amount)...)
	b = append(b, e.Type)
	b = append(b, e.Terminal...)
	b = append(b, e.Date...)
	return append(b, e.Time...)
}

func (e LogEntry) valid() bool {
	return len(e.Terminal) == 6 && len(e.Date) == 4 && len(e.Time) == 3 && validTxType(e.Type)
}

type purseState struct {
	Balance    uint32 `json:"balance"`
	OnlineSeq  uint16 `json:"online_seq"`
	OfflineSeq uint16 `json:"offline_seq"`
}

// proofRec keeps MAC2 and TAC of the last transaction of one type for GET
// TRANSACTION PROOF.
type proofRec struct {
	Type byte     `json:"type"`
	Seq  uint16   `json:"seq"`
	MAC  hexBytes `json:"mac"`
	TAC  hexBytes `json:"tac"`
}

// sscState is everything an SSC keeps across power cycles.
type sscState struct {
	Format    int           `json:"format"`
	CardID    hexBytes      `json:"card_id"`
	PINHash   hexBytes      `json:"pin_hash"`
	PINTries  int           `json:"pin_tries"`
	AuthTries int           `json:"auth_tries"` // RKSSSE (key 0A)
	Blocked   int           `json:"blocked"`    // blockNone/Temp/Perm
	Purses    [2]purseState `json:"purses"`     // ED, EP
	Proofs    []proofRec    `json:"proofs"`
	Log       []LogEntry    `json:"log"`
}

const (
	blockNone = iota
	blockTemp // APPLICATION BLOCK P2=00: 6A81
	blockPerm // APPLICATION BLOCK P2=01: 9303
)

func (s *sscState) clone() sscState {
	c := *s
	c.PINHash = append(hexBytes(nil), s.PINHash...)
	c.Proofs = append([]proofRec(nil), s.Proofs...)
	c.Log = append([]LogEntry(nil), s.Log...)
	return c
}

func pinHash(cardID, pin []byte) []byte {
	h := sm.NewSM3()
	h.Write([]byte("onecard pin v1"))
	h.Write(cardID)
	h.Write(pin)
	return h.Sum(nil)
}

func (s *sscState) check(c *sscConfig) error {
	switch {
	case s.Format != stateFormat:
		return fmt.Errorf("%w: format %d", ErrBadState, s.Format)
	case !bytes.Equal(s.CardID, c.cardID):
		return fmt.Errorf("%w: belongs to another card", ErrBadState)
	case len(s.PINHash) != 32:
		return fmt.Errorf("%w: pin_hash", ErrBadState)
	case s.PINTries < 0 || s.PINTries > c.pinTries:
		return fmt.Errorf("%w: pin_tries", ErrBadState)
	case s.AuthTries < 0 || s.AuthTries > c.authTries:
		return fmt.Errorf("%w: auth_tries", ErrBadState)
	case s.Blocked < blockNone || s.Blocked > blockPerm:
		return fmt.Errorf("%w: blocked", ErrBadState)
	case s.Purses[0].Balance > c.maxBalance || s.Purses[1].Balance > c.maxBalance:
		return fmt.Errorf("%w: balance above the card's cap", ErrBadState)
	case len(s.Proofs) > 4 || len(s.Log) > logSize:
		return fmt.Errorf("%w: too many proofs or log records", ErrBadState)
	}
	for _, p := range s.Proofs {
		if !validTxType(p.Type) || len(p.MAC) != 4 || len(p.TAC) != 4 {
			return fmt.Errorf("%w: proof record", ErrBadState)
		}
	}
	for _, e := range s.Log {
		if !e.valid() {
			return fmt.Errorf("%w: log record", ErrBadState)
		}
	}
	return nil
}

// psamState is everything a PSAM keeps across power cycles.
type psamState struct {
	Format   int      `json:"format"`
	Terminal hexBytes `json:"terminal"`
	NextSeq  uint32   `json:"next_seq"`
}

// readState decodes path into v. It reports false if the file does not
// exist.
func readState(path string, v any) (bool, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read state: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return false, fmt.Errorf("%w: %s: %v", ErrBadState, path, err)
	}
	return true, nil
}

// writeState writes v to path atomically (temporary file in the same
// directory, fsync, rename), mode 0600.
func writeState(path string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode state: %w", err)
	}
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, base+".tmp*")
	if err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err := f.Chmod(0o600); err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	if _, err := f.Write(append(data, '\n')); err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	ok = true
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write state: %w", err)
	}
	return nil
}

func be32(v uint32) []byte { return []byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)} }

func u32(b []byte) uint32 {
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

// validTxType reports whether t is a transaction type the card keeps
// proofs and log records for: 01/02 load (ED/EP), 05/06 purchase.
func validTxType(t byte) bool { return t == 0x01 || t == 0x02 || t == 0x05 || t == 0x06 }
