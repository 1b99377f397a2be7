//go:build !unix

package sm

import "io/fs"

// checkSecretMode accepts every file: Windows protects files with ACLs,
// which Go's mode bits do not describe.
func checkSecretMode(string, fs.FileMode) error { return nil }

func syncDir(string) {}
