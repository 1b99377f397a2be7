//go:build !windows

package agent

import "context"

// RunAsService runs run under the Windows service control manager when
// the process was started by it, and reports whether it did. On other
// systems it never does: systemd and friends run the agent as a plain
// process (see dist/onecard-agent.service).
func RunAsService(name string, run func(ctx context.Context) error) (bool, error) {
	return false, nil
}
