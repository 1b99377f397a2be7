//go:build unix

package sm

import (
	"fmt"
	"io/fs"
	"os"
)

// checkSecretMode refuses a key file that group or others can access.
func checkSecretMode(path string, mode fs.FileMode) error {
	if mode.Perm()&0o077 != 0 {
		return fmt.Errorf("%w: %s has mode %04o; run chmod 600 %s", ErrInsecurePermissions, path, mode.Perm(), path)
	}
	return nil
}

// syncDir makes a rename durable; errors are ignored (some file systems
// cannot sync directories, and the data itself is already synced).
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}
