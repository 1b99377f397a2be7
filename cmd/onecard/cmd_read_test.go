package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/onecard-hub/onecard/internal/simcard"
	"github.com/onecard-hub/onecard/terminal/national"
)

// termCards copies the shipped card files into a temporary directory.
func termCards(t *testing.T) (dir string) {
	t.Helper()
	dir = t.TempDir()
	for _, n := range []string{"ssc-gen2.yaml", "ssc-gen3.yaml", "psam.yaml"} {
		data, err := os.ReadFile(filepath.Join("..", "..", "testdata", "cards", n))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, n), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func cardSpec(t *testing.T, dir, name string) *simcard.SSCSpec {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	cf, err := simcard.ParseCardFile(data)
	if err != nil {
		t.Fatal(err)
	}
	return cf.SSC
}

// cardState reloads a card file (with its state) and returns the card.
func cardState(t *testing.T, path string) *simcard.SSC {
	t.Helper()
	c, err := simcard.LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return c.(*simcard.SSC)
}

func runCmd(t *testing.T, f func(context.Context, []string, io.Reader, *bytes.Buffer, *bytes.Buffer) error, stdin string, args ...string) (string, string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := f(ctx, args, strings.NewReader(stdin), &out, &errb)
	return out.String(), errb.String(), err
}

func readCmd(ctx context.Context, args []string, stdin io.Reader, out, errb *bytes.Buffer) error {
	return runRead(ctx, args, stdin, out, errb)
}

func TestReadCommand(t *testing.T) {
	dir := termCards(t)
	gen2, gen3, psam := filepath.Join(dir, "ssc-gen2.yaml"), filepath.Join(dir, "ssc-gen3.yaml"), filepath.Join(dir, "psam.yaml")
	s3 := cardSpec(t, dir, "ssc-gen3.yaml")
	s2 := cardSpec(t, dir, "ssc-gen2.yaml")

	t.Run("text", func(t *testing.T) {
		out, _, err := runCmd(t, readCmd, "", "--sim", gen3, "--psam", psam)
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{s3.Holder.Name, s3.Holder.SSN, s3.CardNumber, strings.ToUpper(s3.CardID), "mode:", "psam"} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
	})
	t.Run("json", func(t *testing.T) {
		out, _, err := runCmd(t, readCmd, "", "--sim", gen2, "--psam", psam, "--json")
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(out), &m); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		if m["person_id"] != s2.Holder.SSN || m["name"] != s2.Holder.Name || m["generation"] != 2.0 || m["genuine"] != true {
			t.Errorf("JSON %v", m)
		}
	})
	t.Run("national", func(t *testing.T) {
		out, _, err := runCmd(t, readCmd, "", "--sim", gen3, "--psam", psam, "--format", "national", "--device-id", "K1")
		if err != nil {
			t.Fatal(err)
		}
		b, err := national.ParseBasic(strings.TrimSpace(out))
		if err != nil {
			t.Fatal(err)
		}
		if b.PersonID != s3.Holder.SSN || b.Name != s3.Holder.Name || b.TerminalID != "330100000001" || b.DeviceID != "K1" {
			t.Errorf("national %q", out)
		}
	})
	t.Run("gen3-without-psam-fails", func(t *testing.T) {
		_, _, err := runCmd(t, readCmd, "", "--sim", gen3)
		if err == nil || !strings.Contains(err.Error(), "not authenticated") || !strings.Contains(err.Error(), "--psam") {
			t.Fatalf("err %v", err)
		}
		out, errOut, err := runCmd(t, readCmd, "", "--sim", gen3, "--format", "national")
		if err == nil || !strings.Contains(errOut, "-2201") {
			t.Errorf("national without PSAM: %v %q", err, errOut)
		}
		if b, perr := national.ParseBasic(strings.TrimSpace(out)); perr != nil || b.PersonID != "" || b.CardID != strings.ToUpper(s3.CardID) {
			t.Errorf("degraded national output %q: %v", out, perr)
		}
	})
	t.Run("public", func(t *testing.T) {
		out, _, err := runCmd(t, readCmd, "", "--sim", gen3, "--mode", "public")
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(out, s3.Holder.SSN) || !strings.Contains(out, s3.IssueDate) {
			t.Errorf("public read:\n%s", out)
		}
	})
	t.Run("key-service", func(t *testing.T) {
		out, errOut, err := runCmd(t, readCmd, "", "--sim", gen3, "--mode", "key-service")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(errOut, "TEST key set") || !strings.Contains(out, s3.Holder.SSN) || !strings.Contains(out, "key-service") {
			t.Errorf("stdout %s\nstderr %s", out, errOut)
		}
	})
	t.Run("journal-settles", func(t *testing.T) {
		jp := filepath.Join(t.TempDir(), "j.db")
		if _, _, err := runCmd(t, readCmd, "", "--sim", gen2, "--psam", psam, "--journal", jp); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(jp); err != nil {
			t.Errorf("journal not created: %v", err)
		}
	})
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"no card", nil},
		{"psam without sim", []string{"--reader", "X", "--psam", psam}},
		{"bad mode", []string{"--sim", gen3, "--mode", "magic"}},
		{"bad format", []string{"--sim", gen3, "--format", "xml"}},
		{"extra", []string{"--sim", gen3, "extra"}},
		{"pin flag does not exist", []string{"--sim", gen3, "--pin", "123456"}},
	} {
		t.Run("usage/"+tc.name, func(t *testing.T) {
			_, _, err := runCmd(t, readCmd, "", tc.args...)
			var ue usageError
			if !errors.As(err, &ue) {
				t.Errorf("err %v, want a usage error", err)
			}
		})
	}
	t.Run("missing-file", func(t *testing.T) {
		if _, _, err := runCmd(t, readCmd, "", "--sim", filepath.Join(dir, "none.yaml")); err == nil {
			t.Errorf("missing card file accepted")
		}
	})
}
