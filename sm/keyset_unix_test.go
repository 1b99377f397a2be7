//go:build unix

package sm_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/onecard-hub/onecard/sm"
)

func TestKeySetPermissions(t *testing.T) {
	k, _ := sm.TestKeySet("perm")
	dir := t.TempDir()
	path := filepath.Join(dir, "keys.json")
	if err := k.Save(path); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := sm.LoadKeySet(path)
	if !errors.Is(err, sm.ErrInsecurePermissions) || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("LoadKeySet of a 0644 file: %v; want ErrInsecurePermissions suggesting chmod 600", err)
	}
	if err := k.Save(path); !errors.Is(err, sm.ErrInsecurePermissions) {
		t.Errorf("Save over a 0644 file: %v, want ErrInsecurePermissions", err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o644 {
		t.Error("Save changed the refused file")
	}
	link := filepath.Join(dir, "link.json")
	if err := os.Symlink(path, link); err != nil {
		t.Fatal(err)
	}
	if err := k.Save(link); err == nil {
		t.Error("Save through a symlink succeeded")
	}
}
