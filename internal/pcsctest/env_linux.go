//go:build linux

package pcsctest

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ebfe/scard"
)

// marker is part of every config directory pcsctest creates; a pcscd
// whose command line contains it was started by pcsctest.
const marker = "onecard-pcsctest-"

// Env is a running private pcscd with vpcd readers.
type Env struct {
	// Slots lists the virtual slots, reader by reader.
	Slots []Slot
	// ConfDir is the reader.conf.d directory given to pcscd -c.
	ConfDir string
	// LogPath is pcscd's output (with -a -d when Options.Debug).
	LogPath string

	opts Options
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
}

// Start locks LockPath, starts pcscd with Options.Readers vpcd readers
// and waits until they are listed. Everything is undone by tb.Cleanup.
// It fails the test (never skips) when pcscd is missing, when a foreign
// pcscd runs, or when pcscd does not come up in time.
func Start(tb testing.TB, opts Options) *Env {
	tb.Helper()
	if opts.Readers <= 0 {
		opts.Readers = 1
	}
	if opts.Readers > MaxReaders {
		tb.Fatalf("pcsctest: %d readers requested, at most %d", opts.Readers, MaxReaders)
	}
	if opts.LockTimeout <= 0 {
		opts.LockTimeout = 5 * time.Minute
	}
	if opts.StartTimeout <= 0 {
		opts.StartTimeout = 15 * time.Second
	}
	if _, err := pcscdPath(); err != nil {
		tb.Fatalf("pcsctest: %v (run make deps)", err)
	}
	if _, err := os.Stat(DriverPath); err != nil {
		tb.Fatalf("pcsctest: vpcd driver missing: %v (run make deps: package vsmartcard-vpcd)", err)
	}

	unlock, err := lock(tb.Name(), opts.LockTimeout)
	if err != nil {
		tb.Fatalf("pcsctest: %v", err)
	}
	tb.Cleanup(unlock)

	if err := clearStale(); err != nil {
		tb.Fatalf("pcsctest: %v", err)
	}
	dir, err := os.MkdirTemp("", marker+"*")
	if err != nil {
		tb.Fatalf("pcsctest: %v", err)
	}
	tb.Cleanup(func() { _ = os.RemoveAll(dir) })
	e := &Env{
		Slots:   slotsFor(opts.Readers),
		ConfDir: filepath.Join(dir, "reader.conf.d"),
		LogPath: filepath.Join(dir, "pcscd.log"),
		opts:    opts,
	}
	if err := os.Mkdir(e.ConfDir, 0o755); err != nil {
		tb.Fatalf("pcsctest: %v", err)
	}
	libs, err := driverCopies(dir, opts.Readers)
	if err != nil {
		tb.Fatalf("pcsctest: %v", err)
	}
	if err := os.WriteFile(filepath.Join(e.ConfDir, "vpcd"), []byte(readerConf(libs)), 0o644); err != nil {
		tb.Fatalf("pcsctest: %v", err)
	}
	// Registered after the unlock cleanup, so it runs before it.
	tb.Cleanup(func() {
		e.stop()
		if tb.Failed() {
			tb.Logf("pcsctest: pcscd log %s:\n%s", e.LogPath, e.logTail(64<<10))
		}
	})
	if err := e.start(); err != nil {
		tb.Fatalf("pcsctest: %v\npcscd log:\n%s", err, e.logTail(16<<10))
	}
	return e
}

// Stop stops pcscd (SIGTERM, then SIGKILL) and waits for it to exit; the
// lock stays held. Clients then get scard.ErrNoService. Stopping a
// stopped pcscd does nothing.
func (e *Env) Stop(tb testing.TB) {
	tb.Helper()
	e.stop()
}

// Restart stops pcscd if it runs and starts it again with the same
// configuration, waiting until the readers are listed. Cards connected
// through vpcd lose their connection and have to redial.
func (e *Env) Restart(tb testing.TB) {
	tb.Helper()
	e.stop()
	if err := e.start(); err != nil {
		tb.Fatalf("pcsctest: restart: %v\npcscd log:\n%s", err, e.logTail(16<<10))
	}
}

// PID returns pcscd's process id, or 0 when it is not running.
func (e *Env) PID() int {
	if e.cmd == nil || !e.running() {
		return 0
	}
	return e.cmd.Process.Pid
}

// Log returns pcscd's output so far.
func (e *Env) Log() string { return e.logTail(1 << 30) }

func (e *Env) running() bool {
	if e.done == nil {
		return false
	}
	select {
	case <-e.done:
		return false
	default:
		return true
	}
}

func (e *Env) start() error {
	path, err := pcscdPath()
	if err != nil {
		return err
	}
	// vpcd listens on fixed ports inside the kernel's ephemeral range:
	// any outgoing connection of a test running in parallel may hold one
	// of them, and that vpcd slot then never appears. Keep the kernel
	// from handing them out (as root), and wait for the ones in use.
	reservePorts(e.Slots)
	if err := waitPortsFree(e.Slots, e.opts.StartTimeout); err != nil {
		return err
	}
	logf, err := os.OpenFile(e.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	args := []string{"-f", "-c", e.ConfDir}
	if e.opts.Debug {
		args = append(args, "-a", "-d")
	}
	cmd := exec.Command(path, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// pcscd dies with the test binary even when cleanups cannot run
	// (test timeout, os.Exit in a test).
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start pcscd: %w", err)
	}
	e.cmd = cmd
	e.done = make(chan struct{})
	go func(done chan struct{}) {
		_ = cmd.Wait()
		close(done)
	}(e.done)
	return e.waitReady()
}

// waitReady waits until scard lists every slot or pcscd exits.
func (e *Env) waitReady() error {
	deadline := time.Now().Add(e.opts.StartTimeout)
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-e.done:
			return fmt.Errorf("pcscd exited during start-up: %v", e.cmd.ProcessState)
		default:
		}
		names, err := listReaders()
		if err == nil && hasAll(names, e.Slots) {
			return nil
		}
		if err == nil {
			err = fmt.Errorf("readers %q, want all of %q", names, slotNames(e.Slots))
		}
		last = err
		time.Sleep(20 * time.Millisecond)
	}
	e.stop()
	return fmt.Errorf("pcscd not ready after %v: %v", e.opts.StartTimeout, last)
}

func listReaders() ([]string, error) {
	sc, err := scard.EstablishContext()
	if err != nil {
		return nil, err
	}
	defer func() { _ = sc.Release() }()
	return sc.ListReaders()
}

func slotNames(slots []Slot) []string {
	names := make([]string, len(slots))
	for i, s := range slots {
		names[i] = s.Name
	}
	return names
}

// stop terminates pcscd and removes the run files a SIGKILL leaves.
func (e *Env) stop() {
	if !e.running() {
		return
	}
	pid := e.cmd.Process.Pid
	_ = e.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-e.done:
	case <-time.After(3 * time.Second):
		_ = e.cmd.Process.Kill()
		<-e.done
	}
	removeRunFiles(pid)
}

// removeRunFiles deletes /run/pcscd's pid file and socket if they belong
// to pid (pcscd removes them itself on SIGTERM, not on SIGKILL).
func removeRunFiles(pid int) {
	b, err := os.ReadFile(filepath.Join(RunDir, "pcscd.pid"))
	if err != nil {
		return
	}
	if p, err := strconv.Atoi(strings.TrimSpace(string(b))); err != nil || p != pid {
		return
	}
	_ = os.Remove(filepath.Join(RunDir, "pcscd.comm"))
	_ = os.Remove(filepath.Join(RunDir, "pcscd.pid"))
}

func (e *Env) logTail(n int) string {
	b, err := os.ReadFile(e.LogPath)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

func pcscdPath() (string, error) {
	if p, err := exec.LookPath("pcscd"); err == nil {
		return p, nil
	}
	for _, p := range []string{"/usr/sbin/pcscd", "/usr/local/sbin/pcscd"} {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", errors.New("pcscd not installed")
}

// lock takes the exclusive flock on LockPath, polling until timeout.
func lock(who string, timeout time.Duration) (unlock func(), err error) {
	f, err := os.OpenFile(LockPath, os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		return nil, fmt.Errorf("open lock: %w", err)
	}
	deadline := time.Now().Add(timeout)
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", LockPath, err)
		}
		if time.Now().After(deadline) {
			holder, _ := os.ReadFile(LockPath)
			f.Close()
			return nil, fmt.Errorf("waited %v for %s (held by %s); another test binary is using pcscd — rerun, or raise Options.LockTimeout",
				timeout, LockPath, strings.TrimSpace(string(holder)))
		}
		time.Sleep(50 * time.Millisecond)
	}
	_ = f.Truncate(0)
	_, _ = f.WriteAt([]byte(fmt.Sprintf("pid %d (%s) test %s\n", os.Getpid(), filepath.Base(os.Args[0]), who)), 0)
	return func() {
		_ = f.Truncate(0)
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		_ = f.Close()
	}, nil
}

// clearStale refuses a foreign pcscd and kills one left behind by a
// crashed pcsctest run. The caller holds the lock.
func clearStale() error {
	pids := pcscdProcesses()
	if b, err := os.ReadFile(filepath.Join(RunDir, "pcscd.pid")); err == nil {
		if p, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && !slices.Contains(pids, p) {
			if alive(p) && procComm(p) == "pcscd" {
				pids = append(pids, p)
			}
		}
	}
	for _, p := range pids {
		cmdline := procCmdline(p)
		if !strings.Contains(cmdline, marker) {
			return fmt.Errorf("a pcscd not started by pcsctest is running (pid %d: %s); only one pcscd can run per machine — stop it (e.g. kill %d) and rerun the tests",
				p, cmdline, p)
		}
		if err := syscall.Kill(p, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			return fmt.Errorf("kill stale pcsctest pcscd %d: %w", p, err)
		}
		for i := 0; i < 100 && alive(p) && procComm(p) == "pcscd"; i++ {
			time.Sleep(20 * time.Millisecond)
		}
		removeRunFiles(p)
	}
	return nil
}

// pcscdProcesses lists live (non-zombie) processes named pcscd.
func pcscdProcesses() []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, ent := range ents {
		p, err := strconv.Atoi(ent.Name())
		if err != nil || procComm(p) != "pcscd" || zombie(p) {
			continue
		}
		pids = append(pids, p)
	}
	return pids
}

func procComm(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	return strings.TrimSpace(string(b))
}

func procCmdline(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return strings.TrimSpace(string(bytes.ReplaceAll(b, []byte{0}, []byte{' '})))
}

func zombie(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	// Format: pid (comm) state ...; comm may contain spaces.
	i := bytes.LastIndexByte(b, ')')
	return i < 0 || i+2 >= len(b) || b[i+2] == 'Z' || b[i+2] == 'X'
}

func alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return (err == nil || errors.Is(err, syscall.EPERM)) && !zombie(pid)
}

// driverCopies returns the driver library path for each of n readers:
// DriverPath for the first, and a private copy in dir/drivers for every
// other one (see readerConf).
func driverCopies(dir string, n int) ([]string, error) {
	libs := []string{DriverPath}
	if n <= 1 {
		return libs[:n], nil
	}
	src, err := os.ReadFile(DriverPath)
	if err != nil {
		return nil, fmt.Errorf("copy vpcd driver: %w (run make deps)", err)
	}
	ddir := filepath.Join(dir, "drivers")
	if err := os.Mkdir(ddir, 0o755); err != nil {
		return nil, fmt.Errorf("copy vpcd driver: %w", err)
	}
	for i := 1; i < n; i++ {
		p := filepath.Join(ddir, fmt.Sprintf("libifdvpcd-%d.so", i))
		if err := os.WriteFile(p, src, 0o755); err != nil {
			return nil, fmt.Errorf("copy vpcd driver: %w", err)
		}
		libs = append(libs, p)
	}
	return libs, nil
}

// reservedPortsFile lists ports the kernel never hands out as ephemeral
// ports (ip_local_reserved_ports).
const reservedPortsFile = "/proc/sys/net/ipv4/ip_local_reserved_ports"

// reservePorts adds the vpcd ports of slots to the kernel's reserved
// ephemeral ports when it can (root, writable /proc): a best effort that
// changes a machine-wide setting for the test machine's benefit, and only
// ever adds. Without it, waitPortsFree still guards the start.
func reservePorts(slots []Slot) {
	if len(slots) == 0 || os.Geteuid() != 0 {
		return
	}
	b, err := os.ReadFile(reservedPortsFile)
	if err != nil {
		return
	}
	cur := strings.TrimSpace(string(b))
	lo, hi := slots[0].Port, slots[len(slots)-1].Port
	if portsReserved(cur, lo, hi) {
		return
	}
	want := fmt.Sprintf("%d-%d", lo, hi)
	if cur != "" {
		want = cur + "," + want
	}
	_ = os.WriteFile(reservedPortsFile, []byte(want), 0o644)
}

// portsReserved reports whether the reserved-ports list (e.g.
// "35963-35999,40000") covers every port from lo to hi.
func portsReserved(list string, lo, hi int) bool {
	for p := lo; p <= hi; p++ {
		covered := false
		for _, item := range strings.Split(list, ",") {
			a, b, isRange := strings.Cut(strings.TrimSpace(item), "-")
			from, err1 := strconv.Atoi(a)
			to := from
			var err2 error
			if isRange {
				to, err2 = strconv.Atoi(b)
			}
			if err1 == nil && err2 == nil && from <= p && p <= to {
				covered = true
				break
			}
		}
		if !covered {
			return false
		}
	}
	return true
}

// waitPortsFree waits until no socket holds a vpcd port of slots, so
// vpcd can bind them all.
func waitPortsFree(slots []Slot, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for _, s := range slots {
		for {
			ln, err := net.Listen("tcp", fmt.Sprintf("0.0.0.0:%d", s.Port))
			if err == nil {
				_ = ln.Close()
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("vpcd port %d stays in use: %w", s.Port, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return nil
}
