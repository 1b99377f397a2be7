//go:build !unix

package safeenv

import (
	"errors"
	"os"
	"os/exec"
)

// reexec runs the program again as a child with the same standard streams
// and exits with its exit code: Windows has no exec(2).
func reexec(exe string, args, env []string) error {
	cmd := exec.Command(exe, args[1:]...)
	cmd.Env = env
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		os.Exit(0)
	case errors.As(err, &ee):
		os.Exit(ee.ExitCode())
	}
	return err
}
