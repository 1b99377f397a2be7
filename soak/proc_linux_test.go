package soak_test

import "syscall"

// childAttr makes a campaign's child process (agent, hub) die with the
// campaign: a test binary killed by a timeout or a signal leaves no agent
// or hub behind.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
