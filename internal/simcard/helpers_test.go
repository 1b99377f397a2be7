package simcard

import (
	"bytes"
	"context"
	"encoding/hex"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/onecard-hub/onecard/apdu"
	"github.com/onecard-hub/onecard/reader/virtual"
	"github.com/onecard-hub/onecard/sm"
)

const testLabel = "simcard-tests"

var (
	keysOnce sync.Once
	testKeys *sm.KeySet
	keysErr  error
)

func keySet(t testing.TB) *sm.KeySet {
	t.Helper()
	keysOnce.Do(func() { testKeys, keysErr = sm.TestKeySet(testLabel) })
	if keysErr != nil {
		t.Fatalf("test key set: %v", keysErr)
	}
	return testKeys
}

// detRand is a deterministic random stream.
func detRand(seed uint64) *rand.ChaCha8 {
	var s [32]byte
	s[0] = byte(seed)
	s[1] = byte(seed >> 8)
	return rand.NewChaCha8(s)
}

func gen2Spec() SSCSpec {
	return SSCSpec{
		Kind: "ssc", Generation: 2, Protocol: "T0",
		CardID:    "330100D1560000052A7C19E05B3D8F41",
		IssueDate: "20160315", ExpiryDate: "20260314", CardNumber: "A01234567",
		Holder: Holder{SSN: "110105198503076517", Name: "王小明", Sex: "1", Nation: "01",
			Birthplace: "110105", BirthDate: "19850307"},
		PIN:   "123456",
		Purse: Purse{Balance: 50000},
		Keys:  KeyRef{Test: testLabel},
	}
}

func gen3Spec() SSCSpec {
	return SSCSpec{
		Kind: "ssc", Generation: 3, Protocol: "T1",
		CardID:    "330100D15600000593E4B7026C1AF5D8",
		IssueDate: "20230601", ExpiryDate: "20330531", CardNumber: "B98765432",
		Holder: Holder{SSN: "650102199208154026", Name: "阿依古丽·买买提艾力·阿不都热依木江", Sex: "2",
			Nation: "05", Birthplace: "650102", BirthDate: "19920815"},
		PIN:   "123456",
		Purse: Purse{Balance: 120000},
		Keys:  KeyRef{Test: testLabel},
	}
}

func psamSpec() PSAMSpec {
	return PSAMSpec{Kind: "psam", Terminal: "330100000001", Keys: KeyRef{Test: testLabel}}
}

func newSSC(t testing.TB, spec SSCSpec, opts Options) *SSC {
	t.Helper()
	if opts.Keys == nil {
		opts.Keys = keySet(t)
	}
	c, err := NewSSC(spec, opts)
	if err != nil {
		t.Fatalf("NewSSC: %v", err)
	}
	c.PowerOn()
	return c
}

func newPSAM(t testing.TB, opts Options) *PSAM {
	t.Helper()
	if opts.Keys == nil {
		opts.Keys = keySet(t)
	}
	p, err := NewPSAM(psamSpec(), opts)
	if err != nil {
		t.Fatalf("NewPSAM: %v", err)
	}
	p.PowerOn()
	return p
}

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatalf("bad hex %q: %v", s, err)
	}
	return b
}

// raw sends one APDU without any T=0 handling and returns data and SW.
func raw(t testing.TB, c virtual.Card, cmd string) ([]byte, uint16) {
	t.Helper()
	resp, err := c.Transmit(unhex(t, cmd))
	if err != nil {
		t.Fatalf("transmit %s: %v", cmd, err)
	}
	if len(resp) < 2 {
		t.Fatalf("transmit %s: short response % X", cmd, resp)
	}
	n := len(resp) - 2
	return resp[:n], uint16(resp[n])<<8 | uint16(resp[n+1])
}

// ifd adapts a virtual card to apdu.Transmitter.
type ifd struct{ c virtual.Card }

func (i ifd) Transmit(_ context.Context, cmd []byte) ([]byte, error) { return i.c.Transmit(cmd) }

// run sends cmd through apdu.Exchange (T=0 chaining) and returns data and SW.
func run(t testing.TB, c virtual.Card, cmd string) ([]byte, uint16) {
	t.Helper()
	ac, err := apdu.ParseCommand(unhex(t, cmd))
	if err != nil {
		t.Fatalf("parse %s: %v", cmd, err)
	}
	r, err := apdu.Exchange(context.Background(), ifd{c}, ac)
	if err != nil {
		t.Fatalf("exchange %s: %v", cmd, err)
	}
	return r.Data, r.SW
}

func mustOK(t testing.TB, c virtual.Card, cmd string) []byte {
	t.Helper()
	data, sw := run(t, c, cmd)
	if sw != apdu.SWOK {
		t.Fatalf("%s: SW %04X, want 9000", cmd, sw)
	}
	return data
}

const (
	selSSSE  = "00A404000F7378312E73682EC9E7BBE1B1A3D5CF"
	selPSAM  = "00A4040006D15600000590"
	verifyOK = "0020000003123456"
)

// copyCardFile copies testdata/cards/name into a temp dir (so state files
// never land in testdata) and returns the new path.
func copyCardFile(t *testing.T, name string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "testdata", "cards", name))
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func hexUp(b []byte) string { return strings.ToUpper(hex.EncodeToString(b)) }

func equalHex(b []byte, s string) bool {
	w, err := hex.DecodeString(s)
	return err == nil && bytes.Equal(b, w)
}
