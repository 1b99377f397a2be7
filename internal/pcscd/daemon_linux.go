//go:build linux

package pcscd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ebfe/scard"
)

// Daemon is a running private pcscd with vpcd readers, started by Start.
type Daemon struct {
	// Slots lists the virtual slots, reader by reader.
	Slots []Slot
	// Dir is the daemon's temporary directory (configuration, drivers,
	// log), removed by Close.
	Dir string
	// ConfDir is the reader.conf.d directory given to pcscd -c.
	ConfDir string
	// LogPath is pcscd's output (with -a -d when Options.Debug).
	LogPath string

	opts   Options
	path   string
	unlock func()
	cmd    *exec.Cmd
	done   chan struct{} // closed when cmd has exited
}

// Start takes the machine-wide lock (waiting up to Options.LockTimeout),
// kills a pcscd left behind by an earlier Start whose process died,
// writes the vpcd configuration, starts `pcscd -f -c DIR` and waits until
// every slot is listed. Close undoes all of it. Errors: ErrNotInstalled,
// ErrForeign (a pcscd this package did not start is running: it is never
// killed), ErrLocked, and start-up failures (with the log's tail).
func Start(ctx context.Context, opts Options) (_ *Daemon, err error) {
	opts = opts.withDefaults()
	if opts.Readers > MaxReaders {
		return nil, fmt.Errorf("start pcscd: %d readers requested, at most %d", opts.Readers, MaxReaders)
	}
	path, err := Find()
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(DriverPath); err != nil {
		return nil, fmt.Errorf("%w: vpcd driver %s (Debian package vsmartcard-vpcd; make deps)", ErrNotInstalled, DriverPath)
	}
	d := &Daemon{Slots: slotsFor(opts.Readers), opts: opts, path: path}
	defer func() {
		if err != nil {
			d.Close()
		}
	}()
	if d.unlock, err = Lock(ctx, opts.Owner, opts.LockTimeout); err != nil {
		return nil, err
	}
	if err := clearStale(); err != nil {
		return nil, err
	}
	if d.Dir, err = os.MkdirTemp("", Marker+"*"); err != nil {
		return nil, fmt.Errorf("start pcscd: %w", err)
	}
	d.ConfDir, d.LogPath = filepath.Join(d.Dir, "reader.conf.d"), filepath.Join(d.Dir, "pcscd.log")
	if err := os.Mkdir(d.ConfDir, 0o755); err != nil {
		return nil, fmt.Errorf("start pcscd: %w", err)
	}
	libs, err := driverCopies(d.Dir, opts.Readers)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(d.ConfDir, "vpcd"), []byte(readerConf(libs)), 0o644); err != nil {
		return nil, fmt.Errorf("start pcscd: %w", err)
	}
	if err := d.start(); err != nil {
		return nil, fmt.Errorf("%w\npcscd log:\n%s", err, d.LogTail(16<<10))
	}
	return d, nil
}

// Stop stops pcscd (SIGTERM, then SIGKILL after 3 s) and waits for it to
// exit; the lock stays held and Restart starts it again. Clients then get
// scard.ErrNoService. Stopping a stopped pcscd does nothing.
func (d *Daemon) Stop() {
	if !d.running() {
		return
	}
	pid := d.cmd.Process.Pid
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(3 * time.Second):
		_ = d.cmd.Process.Kill()
		<-d.done
	}
	removeRunFiles(pid)
}

// Restart stops pcscd if it runs and starts it again with the same
// configuration, waiting until the readers are listed. Cards connected
// through vpcd lose their connection and have to redial.
func (d *Daemon) Restart() error {
	d.Stop()
	if err := d.start(); err != nil {
		return fmt.Errorf("restart pcscd: %w\npcscd log:\n%s", err, d.LogTail(16<<10))
	}
	return nil
}

// Close stops pcscd, removes Dir and releases the lock. It may be called
// more than once.
func (d *Daemon) Close() {
	d.Stop()
	if d.Dir != "" {
		_ = os.RemoveAll(d.Dir)
		d.Dir = ""
	}
	if d.unlock != nil {
		d.unlock()
		d.unlock = nil
	}
}

// PID returns pcscd's process id, or 0 when it is not running.
func (d *Daemon) PID() int {
	if !d.running() {
		return 0
	}
	return d.cmd.Process.Pid
}

// Log returns pcscd's output so far.
func (d *Daemon) Log() string { return d.LogTail(1 << 30) }

// LogTail returns the last n bytes of pcscd's output.
func (d *Daemon) LogTail(n int) string {
	b, err := os.ReadFile(d.LogPath)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

func (d *Daemon) running() bool {
	if d.done == nil {
		return false
	}
	select {
	case <-d.done:
		return false
	default:
		return true
	}
}

func (d *Daemon) start() error {
	// vpcd listens on fixed ports inside the kernel's ephemeral range:
	// any outgoing connection of a process running in parallel may hold
	// one of them, and that vpcd slot then never appears. Keep the kernel
	// from handing them out (as root), and wait for the ones in use.
	reservePorts(d.Slots)
	if err := waitPortsFree(d.Slots, d.opts.StartTimeout); err != nil {
		return err
	}
	logf, err := os.OpenFile(d.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	args := []string{"-f", "-c", d.ConfDir}
	if d.opts.Debug {
		args = append(args, "-a", "-d")
	}
	cmd := exec.Command(d.path, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// pcscd dies with this process even when it cannot clean up (a test
	// timeout, os.Exit, SIGKILL). Pdeathsig fires when the forking
	// *thread* ends, so the fork happens on a goroutine that keeps its
	// thread until pcscd has exited.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	started := make(chan error, 1)
	done := make(chan struct{})
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		_ = cmd.Wait()
		close(done)
	}()
	if err := <-started; err != nil {
		return fmt.Errorf("start pcscd: %w", err)
	}
	d.cmd, d.done = cmd, done
	return d.waitReady()
}

// waitReady waits until scard lists every slot or pcscd exits.
func (d *Daemon) waitReady() error {
	deadline := time.Now().Add(d.opts.StartTimeout)
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-d.done:
			return fmt.Errorf("pcscd exited during start-up: %v", d.cmd.ProcessState)
		default:
		}
		names, err := ListReaders()
		if err == nil && hasAll(names, d.Slots) {
			return nil
		}
		if err == nil {
			err = fmt.Errorf("readers %q, want all of %q", names, slotNames(d.Slots))
		}
		last = err
		time.Sleep(20 * time.Millisecond)
	}
	d.Stop()
	return fmt.Errorf("pcscd not ready after %v: %v", d.opts.StartTimeout, last)
}

// ListReaders lists the PC/SC readers of the running pcscd.
func ListReaders() ([]string, error) {
	sc, err := scard.EstablishContext()
	if err != nil {
		return nil, err
	}
	defer func() { _ = sc.Release() }()
	return sc.ListReaders()
}

// Running reports whether a pcscd answers.
func Running() bool {
	sc, err := scard.EstablishContext()
	if err != nil {
		return false
	}
	_ = sc.Release()
	return true
}

// Find returns the pcscd binary's path. Errors: ErrNotInstalled.
func Find() (string, error) {
	if p, err := exec.LookPath("pcscd"); err == nil {
		return p, nil
	}
	for _, p := range []string{"/usr/sbin/pcscd", "/usr/local/sbin/pcscd"} {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("%w: pcscd (Debian package pcscd; make deps)", ErrNotInstalled)
}

// Lock takes the exclusive flock on LockPath, polling until timeout or
// ctx's end, and records owner in the file for whoever waits next.
// Errors: ErrLocked (naming the holder).
func Lock(ctx context.Context, owner string, timeout time.Duration) (unlock func(), err error) {
	f, err := os.OpenFile(LockPath, os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		return nil, fmt.Errorf("open pcscd lock: %w", err)
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
		if time.Now().After(deadline) || ctx.Err() != nil {
			holder, _ := os.ReadFile(LockPath)
			f.Close()
			return nil, fmt.Errorf("%w: waited %v for %s, held by %s", ErrLocked, timeout, LockPath, strings.TrimSpace(string(holder)))
		}
		time.Sleep(50 * time.Millisecond)
	}
	_ = f.Truncate(0)
	_, _ = f.WriteAt([]byte(fmt.Sprintf("pid %d (%s) %s\n", os.Getpid(), filepath.Base(os.Args[0]), owner)), 0)
	return func() {
		_ = f.Truncate(0)
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		_ = f.Close()
	}, nil
}

// clearStale refuses a foreign pcscd and kills one left behind by a
// crashed Start. The caller holds the lock.
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
		if !strings.Contains(cmdline, Marker) {
			return fmt.Errorf("%w (pid %d: %s); only one pcscd can run per machine — stop it (e.g. kill %d) and retry",
				ErrForeign, p, cmdline, p)
		}
		if err := syscall.Kill(p, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			return fmt.Errorf("kill stale pcscd %d: %w", p, err)
		}
		for i := 0; i < 100 && alive(p) && procComm(p) == "pcscd"; i++ {
			time.Sleep(20 * time.Millisecond)
		}
		removeRunFiles(p)
	}
	return nil
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
func slotNames(slots []Slot) []string {
	names := make([]string, len(slots))
	for i, s := range slots {
		names[i] = s.Name
	}
	return names
}
