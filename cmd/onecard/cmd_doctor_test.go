package main

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/onecard-hub/onecard/terminal/journal"
)

// doctorReport is doctor --json.
type doctorReport struct {
	OK     bool `json:"ok"`
	Checks []struct {
		Name, Status, Message, Hint string
	} `json:"checks"`
}

func (r doctorReport) find(t *testing.T, name string) (status, msg, hint string) {
	t.Helper()
	for _, c := range r.Checks {
		if c.Name == name || strings.HasPrefix(c.Name, name) {
			return c.Status, c.Message, c.Hint
		}
	}
	t.Fatalf("no check %q in %+v", name, r.Checks)
	return
}

func doctorJSON(t *testing.T, cfg string) (int, doctorReport, string) {
	t.Helper()
	code, out, errs := rdRun(t, "doctor", "--json", "--timeout", "3s", "--config", cfg)
	var r doctorReport
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("doctor --json output %q (stderr %q): %v", out, errs, err)
	}
	return code, r, errs
}

func writeConfig(t *testing.T, dir, yml string) string {
	t.Helper()
	p := filepath.Join(dir, "agent.yaml")
	if err := os.WriteFile(p, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestDoctorPCSC runs doctor against a real pcscd with a card, then with
// pcscd stopped.
func TestDoctorPCSC(t *testing.T) {
	env := rdPCSC(t, rdCard(t, "ssc-gen3.yaml"))
	dir := t.TempDir()
	cfg := writeConfig(t, dir, "admin: 127.0.0.1:1\nkeys: {test: demo}\n")
	code, r, _ := doctorJSON(t, cfg)
	if code != 0 || !r.OK {
		t.Fatalf("doctor with pcscd: exit %d %+v", code, r)
	}
	if st, msg, _ := r.find(t, "pcscd"); st != "ok" || !strings.Contains(msg, "1 reader") {
		t.Errorf("pcscd check %s %s", st, msg)
	}
	if st, msg, _ := r.find(t, "reader pcsc:"); st != "ok" || !strings.Contains(msg, "ATR 3B") || !strings.Contains(msg, "Virtual PCD") {
		t.Errorf("reader check %s %s", st, msg)
	}
	if st, _, _ := r.find(t, "key set"); st != "warn" {
		t.Errorf("test key set not flagged: %s", st)
	}

	env.Stop(t)
	code, out, _ := rdRun(t, "doctor", "--timeout", "3s", "--config", cfg)
	if code != 1 {
		t.Errorf("doctor without pcscd: exit %d", code)
	}
	if !strings.Contains(out, "error: pcscd: pcscd is not running") || !strings.Contains(out, "hint:  install and start pcscd") ||
		!strings.Contains(out, "systemctl enable --now pcscd") {
		t.Errorf("doctor without pcscd:\n%s", out)
	}
	code, r, _ = doctorJSON(t, cfg)
	if st, _, hint := r.find(t, "pcscd"); code != 1 || r.OK || st != "error" || hint == "" {
		t.Errorf("json without pcscd: exit %d %+v", code, r)
	}
}

func TestDoctorJournal(t *testing.T) {
	dir := t.TempDir()
	cfg := writeConfig(t, dir, "admin: off\nreaders: {pcsc: false}\n")
	_, r, _ := doctorJSON(t, cfg)
	if st, _, _ := r.find(t, "journal"); st != "info" {
		t.Errorf("missing journal: %s", st)
	}
	j, err := journal.Open(filepath.Join(dir, "journal.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	// Held by a writer: reported, not an error.
	_, r, _ = doctorJSON(t, cfg)
	if st, msg, _ := r.find(t, "journal"); st != "info" || !strings.Contains(msg, "held by a running agent") {
		t.Errorf("locked journal: %s %s", st, msg)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	code, r, _ := doctorJSON(t, cfg)
	if st, msg, _ := r.find(t, "journal"); code != 0 || st != "ok" || !strings.Contains(msg, "consistent") {
		t.Errorf("journal: exit %d %s %s", code, st, msg)
	}
	if err := os.WriteFile(filepath.Join(dir, "journal.db"), []byte(strings.Repeat("not a journal", 500)), 0o600); err != nil {
		t.Fatal(err)
	}
	code, r, _ = doctorJSON(t, cfg)
	if st, _, hint := r.find(t, "journal"); code != 1 || st != "error" || !strings.Contains(hint, "do not delete") {
		t.Errorf("corrupt journal: exit %d %s %s", code, st, hint)
	}
}

func TestDoctorHub(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) }))
	defer srv.Close()
	sum := sha256.Sum256(srv.Certificate().RawSubjectPublicKeyInfo)
	pin := "sha256/" + base64.StdEncoding.EncodeToString(sum[:])
	addr := strings.TrimPrefix(srv.URL, "https://")
	for _, tt := range []struct {
		name, pin, certStatus string
	}{
		{"pinned", pin, "ok"},
		{"wrong pin", "sha256/" + base64.StdEncoding.EncodeToString(make([]byte, 32)), "error"},
		{"no pin", "", "error"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := writeConfig(t, dir, fmt.Sprintf("admin: off\nreaders: {pcsc: false}\nterminal: {id: \"330100000001\"}\nhub: {url: \"wss://%s/sync\", pin: %q}\n", addr, tt.pin))
			_, r, _ := doctorJSON(t, cfg)
			if st, _, _ := r.find(t, "hub"); st != "ok" {
				t.Errorf("hub reachability %s", st)
			}
			if st, msg, _ := r.find(t, "hub certificate"); st != tt.certStatus {
				t.Errorf("certificate %s %s, want %s", st, msg, tt.certStatus)
			}
			if st, msg, _ := r.find(t, "clock"); st != "ok" {
				t.Errorf("clock %s %s", st, msg)
			}
		})
	}
	// Unreachable hub.
	srv.Close()
	dir := t.TempDir()
	cfg := writeConfig(t, dir, fmt.Sprintf("admin: off\nreaders: {pcsc: false}\nterminal: {id: \"330100000001\"}\nhub: {url: \"wss://%s/sync\", pin: %q}\n", addr, pin))
	code, r, _ := doctorJSON(t, cfg)
	if st, _, hint := r.find(t, "hub"); code != 1 || st != "error" || hint == "" {
		t.Errorf("unreachable hub: exit %d %s", code, st)
	}
}

func TestDoctorBadConfig(t *testing.T) {
	dir := t.TempDir()
	cfg := writeConfig(t, dir, "listen: 0.0.0.0:17300\nreaders: {pcsc: false}\n")
	code, out, _ := rdRun(t, "doctor", "--config", cfg)
	if code != 1 || !strings.Contains(out, "error: config:") || !strings.Contains(out, "loopback only") {
		t.Errorf("bad config: exit %d\n%s", code, out)
	}
}
