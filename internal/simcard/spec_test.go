package simcard

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/onecard-hub/onecard/hub/proof"
	"github.com/onecard-hub/onecard/reader/virtual"
	"github.com/onecard-hub/onecard/sm"
)

// ssnValid checks the GB 11643 (ISO 7064 MOD 11-2) check character.
func ssnValid(s string) bool {
	if len(s) != 18 {
		return false
	}
	w := []int{7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2}
	sum := 0
	for i := range 17 {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
		sum += int(s[i]-'0') * w[i]
	}
	return s[17] == "10X98765432"[sum%11]
}

func TestExampleCardFiles(t *testing.T) {
	for _, tc := range []struct {
		file  string
		kind  string
		gen   int
		proto Protocol
	}{
		{"ssc-gen2.yaml", "ssc", 2, T0},
		{"ssc-gen3.yaml", "ssc", 3, T1},
		{"psam.yaml", "psam", 0, T0},
	} {
		t.Run(tc.file, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("..", "..", "testdata", "cards", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			cf, err := ParseCardFile(data)
			if err != nil {
				t.Fatal(err)
			}
			if cf.Kind != tc.kind {
				t.Fatalf("kind %q", cf.Kind)
			}
			c, err := LoadFile(copyCardFile(t, tc.file))
			if err != nil {
				t.Fatal(err)
			}
			atr := c.PowerOn()
			if (atr[1]&0x80 != 0) != (tc.proto == T1) {
				t.Fatalf("ATR % X does not announce %v", atr, tc.proto)
			}
			if cf.SSC == nil {
				return
			}
			s := cf.SSC
			if s.Generation != tc.gen || !ssnValid(s.Holder.SSN) || !strings.HasPrefix(s.CardID, "330100D156000005") {
				t.Fatalf("card file data: gen %d ssn %s id %s", s.Generation, s.Holder.SSN, s.CardID)
			}
			if tc.gen == 3 {
				if _, ext, err := splitName(s.Holder.Name); err != nil || ext[0] == 0 {
					t.Fatal("the third-generation example should exercise the 4E name extension")
				}
			}
		})
	}
	if m, _ := filepath.Glob(filepath.Join("..", "..", "testdata", "cards", "*.state.json")); len(m) != 0 {
		t.Fatalf("state files in testdata: %v", m)
	}
}

func TestParseCardFileErrors(t *testing.T) {
	base, err := os.ReadFile(filepath.Join("..", "..", "testdata", "cards", "ssc-gen3.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	edit := func(old, new string) string {
		if !strings.Contains(string(base), old) {
			t.Fatalf("fixture lacks %q", old)
		}
		return strings.Replace(string(base), old, new, 1)
	}
	cases := map[string]string{
		"no kind":          edit("kind: ssc", "kind: sim"),
		"unknown field":    edit("kind: ssc", "kind: ssc\ncolour: red"),
		"generation 4":     edit("generation: 3", "generation: 4"),
		"suite mismatch":   edit("generation: 3", "generation: 3\nsuite: 3des-pboc"),
		"bad suite":        edit("generation: 3", "generation: 3\nsuite: aes"),
		"bad protocol":     edit("protocol: T1", "protocol: T2"),
		"delay":            edit("protocol: T1", "protocol: T1\ndelay_ms: -1"),
		"short card id":    edit(`"330100D15600000593E4B7026C1AF5D8"`, `"330100D156"`),
		"card id not hex":  edit(`"330100D15600000593E4B7026C1AF5D8"`, `"330100D15600000593E4B7026C1AF5DZ"`),
		"bad date":         edit(`"20230601"`, `"20230230"`),
		"long card number": edit(`"B98765432"`, `"B987654321"`),
		"long version":     edit(`"3.00"`, `"3.000"`),
		"bad init org":     edit(`"330100000000"`, `"33010A"`),
		"long ssn":         edit(`"650102199208154026"`, `"6501021992081540261"`),
		"long name":        edit("阿依古丽·买买提艾力·阿不都热依木江", strings.Repeat("王", 26)),
		"no GBK":           edit("阿依古丽", "아이"),
		"sex":              edit(`sex: "2"`, `sex: "F"`),
		"nation":           edit(`nation: "05"`, `nation: "5"`),
		"birthplace":       edit(`birthplace: "650102"`, `birthplace: "6501020"`),
		"pin letters":      edit(`pin: "123456"`, `pin: "12a456"`),
		"pin short":        edit(`pin: "123456"`, `pin: "123"`),
		"pin tries":        edit("pin_tries: 3", "pin_tries: 16"),
		"auth tries":       edit("auth_tries: 3", "auth_tries: -1"),
		"key version":      edit("pin_tries: 3", "pin_tries: 3\nkey_version: 256"),
		"over cap":         edit("balance: 120000", "balance: 120000\n  max_balance: 100"),
		"two key refs":     edit("test: demo", "test: demo\n  file: keys.json"),
		"no key ref":       edit("test: demo", "{}"),
		"bad torn":         edit("kind: ssc", "kind: ssc\ntorn: {after: SELECT}"),
		"not yaml":         "kind: [",
		"bad atr":          edit("kind: ssc", "kind: ssc\natr_historical: \"0090\""),
	}
	for name, doc := range cases {
		if _, err := ParseCardFile([]byte(doc)); !errors.Is(err, ErrBadCardFile) {
			t.Errorf("%s: err = %v, want ErrBadCardFile", name, err)
		}
	}
	psam := "kind: psam\nterminal: \"33010000001\"\nkeys: {test: x}\n"
	if _, err := ParseCardFile([]byte(psam)); !errors.Is(err, ErrBadCardFile) {
		t.Errorf("11-digit terminal: %v", err)
	}
	if _, err := LoadFile(filepath.Join(t.TempDir(), "missing.yaml")); err == nil {
		t.Error("missing file accepted")
	}
}

func TestSpecRoundTrip(t *testing.T) {
	for _, name := range []string{"ssc-gen2.yaml", "ssc-gen3.yaml", "psam.yaml"} {
		data, err := os.ReadFile(filepath.Join("..", "..", "testdata", "cards", name))
		if err != nil {
			t.Fatal(err)
		}
		roundTrip(t, data)
	}
}

// roundTrip checks that a valid card file re-encodes to an equal spec.
func roundTrip(t testing.TB, data []byte) {
	t.Helper()
	cf, err := ParseCardFile(data)
	if err != nil {
		return
	}
	var v any = cf.SSC
	if cf.PSAM != nil {
		v = cf.PSAM
	}
	out, err := yaml.Marshal(v)
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	cf2, err := ParseCardFile(out)
	if err != nil {
		t.Fatalf("re-parse %s: %v", out, err)
	}
	if !reflect.DeepEqual(cf, cf2) {
		t.Fatalf("round trip changed the spec:\n%+v\n%+v", cf, cf2)
	}
}

func TestStateFiles(t *testing.T) {
	path := copyCardFile(t, "ssc-gen3.yaml")
	c, err := LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	card := c.(*SSC)
	card.PowerOn()
	psam := newPSAM(t, Options{Keys: mustTestKeys(t, "demo")})
	purchase(t, card, psam, 321, "20240101", "101010")
	statePath := strings.TrimSuffix(path, ".yaml") + ".state.json"
	fi, err := os.Stat(statePath)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("state file mode %v", fi.Mode())
	}
	c2, err := LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := c2.(*SSC).EP(); got != card.EP() || got.Balance != 120000-321 {
		t.Fatalf("reloaded purse %+v, want %+v", got, card.EP())
	}
	if len(c2.(*SSC).Log()) != 1 {
		t.Fatal("log not persisted")
	}
	// Corrupt or foreign state files are refused.
	good, _ := os.ReadFile(statePath)
	for name, content := range map[string]string{
		"not json":      "{",
		"unknown field": strings.Replace(string(good), `"format"`, `"colour": 1, "format"`, 1),
		"other card":    strings.Replace(string(good), "93e4b7026c1af5d8", "93e4b7026c1af5d9", 1),
		"tries":         strings.Replace(string(good), `"pin_tries": 3`, `"pin_tries": 9`, 1),
		"format":        strings.Replace(string(good), `"format": 1`, `"format": 2`, 1),
	} {
		if err := os.WriteFile(statePath, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadFile(path); !errors.Is(err, ErrBadState) {
			t.Errorf("%s: err = %v, want ErrBadState", name, err)
		}
	}
}

// TestKeyFileAndTornFromCardFile: a card file referencing a key file
// (relative to itself) and arming the torn switch.
func TestKeyFileAndTornFromCardFile(t *testing.T) {
	dir := t.TempDir()
	ks, err := sm.GenerateTestKeySet(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := ks.Save(filepath.Join(dir, "keys.json")); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join("..", "..", "testdata", "cards", "ssc-gen3.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	doc := strings.Replace(string(data), "test: demo", "file: keys.json", 1) + "torn: {after: DEBIT, times: 2}\n"
	path := filepath.Join(dir, "card.yaml")
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	card := c.(*SSC)
	psam := newPSAM(t, Options{Keys: ks})
	for i := range 3 {
		card.PowerOn()
		debit, _ := startPurchase(t, card, psam, 10, "20240101", "101010")
		b, _ := debit.Bytes()
		_, err := card.Transmit(b)
		if torn := errors.Is(err, virtual.ErrTorn); torn != (i < 2) {
			t.Fatalf("purchase %d: err %v", i, err)
		}
	}
	if card.Balance() != 120000-30 {
		t.Fatalf("balance %d", card.Balance())
	}
	// Keys from another set do not fit this card.
	v := proof.Verifier{Keys: mustTestKeys(t, "demo"), Suite: card.Suite()}
	if _, err := v.CardPublicKey(card.CardID()); err != nil || bytes.Equal(mustPub(t, v, card), card.SM2PublicKey()) {
		t.Fatal("card built from the key file matches the demo test keys")
	}
	// A key file readable by others is refused.
	if err := os.Chmod(filepath.Join(dir, "keys.json"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadFile(path); err == nil {
		t.Fatal("loose key file accepted")
	}
}

func mustPub(t *testing.T, v proof.Verifier, c *SSC) []byte {
	t.Helper()
	p, err := v.CardPublicKey(c.CardID())
	if err != nil {
		t.Fatal(err)
	}
	return p.Bytes()
}
