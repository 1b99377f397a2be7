//go:build unix

package journal

import "io/fs"

func checkKeyMode(m fs.FileMode) error {
	if m.Perm()&0o077 != 0 {
		return ErrInsecureKeyFile
	}
	return nil
}
