package sm_test

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/onecard-hub/onecard/sm"
)

// secrets returns every key of k in upper and lower hex.
func secrets(t *testing.T, k *sm.KeySet) []string {
	t.Helper()
	var out []string
	for _, alg := range []sm.Alg{sm.AlgSM4, sm.Alg3DES} {
		for _, name := range sm.KeyNames {
			b, err := k.Master(alg, name)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, hex.EncodeToString(b), strings.ToUpper(hex.EncodeToString(b)))
		}
	}
	der, err := k.TerminalKey().MarshalDER()
	if err != nil {
		t.Fatal(err)
	}
	// The scalar is the 32 bytes after the 04 20 of the inner ECPrivateKey.
	i := bytes.Index(der, []byte{0x04, 0x20})
	d := hex.EncodeToString(der[i+2 : i+34])
	return append(out, d, strings.ToUpper(d))
}

func TestTestKeySetDeterministic(t *testing.T) {
	a, err := sm.TestKeySet("lab")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := sm.TestKeySet("lab")
	c, _ := sm.TestKeySet("lab2")
	if !a.IsTest() || a.Label() != "lab" {
		t.Errorf("IsTest %v Label %q", a.IsTest(), a.Label())
	}
	seen := map[string]bool{}
	for _, alg := range []sm.Alg{sm.AlgSM4, sm.Alg3DES} {
		for _, name := range sm.KeyNames {
			ka, err := a.Master(alg, name)
			if err != nil || len(ka) != 16 {
				t.Fatalf("Master(%v, %s) = %x, %v", alg, name, ka, err)
			}
			kb, _ := b.Master(alg, name)
			kc, _ := c.Master(alg, name)
			if !bytes.Equal(ka, kb) {
				t.Errorf("%v %s differs between two TestKeySet(lab)", alg, name)
			}
			if bytes.Equal(ka, kc) {
				t.Errorf("%v %s equal for labels lab and lab2", alg, name)
			}
			if seen[string(ka)] {
				t.Errorf("%v %s repeats another key", alg, name)
			}
			seen[string(ka)] = true
		}
	}
	if !a.TerminalPublicKey().Equal(b.TerminalPublicKey()) || a.TerminalPublicKey().Equal(c.TerminalPublicKey()) {
		t.Error("terminal key not determined by the label")
	}
	// Pin the derivation: SM4 RKSSSE = first 16 bytes of
	// SM3("onecard test keyset lab" ‖ 00000000).
	h := sm.SM3(append([]byte("onecard test keyset lab"), 0, 0, 0, 0))
	if got, _ := a.Master(sm.AlgSM4, sm.KeyRKSSSE); !bytes.Equal(got, h[:16]) {
		t.Errorf("SM4 RKSSSE = %x, want %x", got, h[:16])
	}
	if _, err := sm.TestKeySet("bad\x00label"); !errors.Is(err, sm.ErrKeySetFormat) {
		t.Errorf("control character in label: %v", err)
	}
}

func TestMasterErrors(t *testing.T) {
	k, _ := sm.TestKeySet("x")
	if _, err := k.Master(sm.AlgSM4, "NOPE"); !errors.Is(err, sm.ErrUnknownKey) {
		t.Errorf("unknown name: %v", err)
	}
	if _, err := k.Master(0, sm.KeyDPK); !errors.Is(err, sm.ErrAlg) {
		t.Errorf("bad alg: %v", err)
	}
	m, _ := k.Master(sm.AlgSM4, sm.KeyDPK)
	m[0] ^= 0xff
	if m2, _ := k.Master(sm.AlgSM4, sm.KeyDPK); bytes.Equal(m, m2) {
		t.Error("Master returned the internal slice, not a copy")
	}
}

func TestKeySetSaveLoad(t *testing.T) {
	k, err := sm.GenerateTestKeySet(nil)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "keys.json")
	if err := k.Save(path); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "windows" && fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %04o, want 0600", fi.Mode().Perm())
	}
	data, _ := os.ReadFile(path)
	var doc map[string]any
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	if doc["warning"] != sm.TestKeysWarning || doc["test"] != true || doc["version"] != float64(1) {
		t.Errorf("file header: warning %v test %v version %v", doc["warning"], doc["test"], doc["version"])
	}
	if !bytes.HasPrefix(data, []byte("{\n  \"warning\": \"TEST KEYS - NOT FOR PRODUCTION\"")) {
		t.Errorf("warning is not the first field:\n%.80s", data)
	}
	got, err := sm.LoadKeySet(path)
	if err != nil {
		t.Fatal(err)
	}
	if !slicesEqual(secrets(t, got), secrets(t, k)) || !got.IsTest() {
		t.Error("loaded key set differs from the saved one")
	}
	// Saving again over our own 0600 file is allowed.
	if err := got.Save(path); err != nil {
		t.Errorf("re-save: %v", err)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("temporary files left: %v", entries)
	}
}

func slicesEqual(a, b []string) bool {
	return strings.Join(a, ",") == strings.Join(b, ",")
}

func TestKeySetRedaction(t *testing.T) {
	k, _ := sm.TestKeySet("redact")
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("keys", "set", k)
	outs := []string{
		fmt.Sprint(k), fmt.Sprintf("%v|%+v|%#v|%s|%x|%q", k, k, k, k, k, k), logged.String(),
		fmt.Sprintf("%v", []any{k}), fmt.Sprintf("%+v", struct{ K *sm.KeySet }{k}),
	}
	for _, out := range outs {
		for _, s := range secrets(t, k) {
			if strings.Contains(out, s) {
				t.Fatalf("key material %s… in %q", s[:6], out)
			}
		}
		if !strings.Contains(out, "REDACTED") {
			t.Errorf("%q not marked redacted", out)
		}
	}
	if !strings.Contains(k.String(), sm.TestKeysWarning) {
		t.Errorf("String() does not say test keys: %s", k)
	}
}

// TestParseKeySetErrors: malformed files are rejected with ErrKeySetFormat
// and the error never quotes key material.
func TestParseKeySetErrors(t *testing.T) {
	k, _ := sm.TestKeySet("errs")
	dir := t.TempDir()
	good := filepath.Join(dir, "good.json")
	if err := k.Save(good); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(good)
	sm4dpk, _ := k.Master(sm.AlgSM4, sm.KeyDPK)
	dpkHex := strings.ToUpper(hex.EncodeToString(sm4dpk))
	edits := []struct {
		name string
		edit func(string) string
	}{
		{"not json", func(string) string { return "nope" }},
		{"empty", func(string) string { return "" }},
		{"trailing data", func(s string) string { return s + "{}" }},
		{"unknown field", func(s string) string { return strings.Replace(s, `"test"`, `"extra": 1, "test"`, 1) }},
		{"wrong format", func(s string) string { return strings.Replace(s, "onecard-keyset", "other", 1) }},
		{"wrong version", func(s string) string { return strings.Replace(s, `"version": 1`, `"version": 2`, 1) }},
		{"warning without test", func(s string) string { return strings.Replace(s, `"test": true`, `"test": false`, 1) }},
		{"test without warning", func(s string) string { return strings.Replace(s, sm.TestKeysWarning, "test keys", 1) }},
		{"short key", func(s string) string { return strings.Replace(s, dpkHex, dpkHex[:30], 1) }},
		{"non-hex key", func(s string) string { return strings.Replace(s, dpkHex, "Z"+dpkHex[1:], 1) }},
		{"key as number", func(s string) string { return strings.Replace(s, `"`+dpkHex+`"`, dpkHex[:5], 1) }},
		{"missing key", func(s string) string { return strings.Replace(s, `"DPK"`, `"XPK"`, 1) }},
		{"public mismatch", func(s string) string {
			var doc map[string]any
			json.Unmarshal([]byte(s), &doc)
			other, _ := sm.TestKeySet("other")
			doc["sm2_terminal"].(map[string]any)["public"] = other.TerminalPublicKey().String()
			b, _ := json.Marshal(doc)
			return string(b)
		}},
	}
	for i, tt := range edits {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, fmt.Sprintf("bad%d.json", i))
			bad := tt.edit(string(data))
			if bad == string(data) {
				t.Fatal("edit changed nothing")
			}
			if err := os.WriteFile(path, []byte(bad), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := sm.LoadKeySet(path)
			if !errors.Is(err, sm.ErrKeySetFormat) {
				t.Fatalf("LoadKeySet = %v, want ErrKeySetFormat", err)
			}
			for _, s := range secrets(t, k) {
				if strings.Contains(err.Error(), s[:8]) {
					t.Errorf("error %q contains key material", err)
				}
			}
		})
	}
	if _, err := sm.LoadKeySet(filepath.Join(dir, "missing.json")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}
