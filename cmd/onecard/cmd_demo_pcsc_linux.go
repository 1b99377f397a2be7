//go:build linux

package main

import (
	"context"
	"errors"
	"fmt"
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

	"github.com/onecard-hub/onecard/reader/virtual"
)

// The PC/SC set-up the demo shares with internal/pcsctest: the same lock
// (so the demo and the integration tests take turns with the one pcscd a
// machine can run), the same vpcd driver and ports, and a configuration
// directory whose name carries pcsctest's marker, so a pcscd left behind
// by a killed demo is cleaned up by the next test run.
const (
	demoPCSCLock   = "/tmp/onecard-pcscd.lock"
	demoVPCDDriver = "/usr/lib/pcsc/drivers/serial/libifdvpcd.so"
	demoPCSCRunDir = "/run/pcscd"
	demoVPCDChan   = 0x8C7B // vpcd's first slot: TCP 35963, the second 35964
	demoReaderName = "Virtual PCD"
	demoConfMarker = "onecard-pcsctest-demo-"
)

// demoPCSC is the demo's cards behind pcscd.
type demoPCSC struct {
	unlock  func()
	dir     string          // the demo's pcscd configuration ("" when pcscd was running)
	cmd     *exec.Cmd       // the pcscd the demo started
	done    chan struct{}   // closed when cmd exited
	bridges []*virtual.VPCD // card, PSAM
	stop    context.CancelFunc
	ran     chan struct{}
	started bool
}

// startDemoPCSC puts card and PSAM behind pcscd through vpcd: it takes the
// pcscd lock, uses a running pcscd or starts one (root only) with a vpcd
// reader, connects the cards and waits until pcscd reports both. Errors
// say why pcscd cannot be used (the demo then falls back to in-process
// readers); nothing stays running on error.
func startDemoPCSC(ctx context.Context, card, psam virtual.Card) (_ demoReaders, err error) {
	pcscd, err := findPCSCD()
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(demoVPCDDriver); err != nil {
		return nil, errors.New("the vpcd driver is not installed (Debian package vsmartcard-vpcd; make deps)")
	}
	p := &demoPCSC{}
	defer func() {
		if err != nil {
			p.Close()
		}
	}()
	if p.unlock, err = lockPCSC(ctx); err != nil {
		return nil, err
	}
	if !pcscdRunning() {
		if os.Geteuid() != 0 {
			return nil, errors.New("pcscd is not running and only root may start it (sudo, or start pcscd yourself)")
		}
		if err := p.startPCSCD(pcscd); err != nil {
			return nil, err
		}
	}
	bctx, cancel := context.WithCancel(context.Background())
	p.stop, p.ran = cancel, make(chan struct{})
	for i, c := range []virtual.Card{card, psam} {
		p.bridges = append(p.bridges, virtual.NewVPCD(virtual.VPCDOptions{Addr: fmt.Sprintf("127.0.0.1:%d", demoVPCDChan+i), Card: c}))
	}
	go func() {
		defer close(p.ran)
		done := make(chan struct{}, len(p.bridges))
		for _, b := range p.bridges {
			go func() { _ = b.Run(bctx); done <- struct{}{} }()
		}
		for range p.bridges {
			<-done
		}
	}()
	wctx, wcancel := context.WithTimeout(ctx, 15*time.Second)
	defer wcancel()
	for _, name := range []string{p.CardReader(), p.PSAMReader()} {
		if err := waitCardPresent(wctx, name); err != nil {
			if p.started {
				return nil, fmt.Errorf("pcscd (started by the demo) does not report a card in %q: %w", name, err)
			}
			return nil, fmt.Errorf("the running pcscd does not report a card in %q (is vpcd configured, ports 35963/35964 free?): %w", name, err)
		}
	}
	return p, nil
}

func (p *demoPCSC) CardReader() string { return demoReaderName + " 00 00" }
func (p *demoPCSC) PSAMReader() string { return demoReaderName + " 00 01" }

func (p *demoPCSC) Describe() string {
	if p.started {
		return fmt.Sprintf("pcscd started by the demo (pid %d), stopped at the end", p.cmd.Process.Pid)
	}
	return "the pcscd already running on this machine"
}

// Close stops the bridges and the pcscd the demo started, then releases
// the lock.
func (p *demoPCSC) Close() {
	if p.stop != nil {
		p.stop()
		<-p.ran
		p.stop = nil
	}
	if p.started {
		pid := p.cmd.Process.Pid
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(3 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		removePCSCRunFiles(pid)
		p.started = false
	}
	if p.dir != "" {
		_ = os.RemoveAll(p.dir)
		p.dir = ""
	}
	if p.unlock != nil {
		p.unlock()
		p.unlock = nil
	}
}

func findPCSCD() (string, error) {
	if p, err := exec.LookPath("pcscd"); err == nil {
		return p, nil
	}
	for _, p := range []string{"/usr/sbin/pcscd", "/usr/local/sbin/pcscd"} {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", errors.New("pcscd is not installed (Debian package pcscd; make deps)")
}

// lockPCSC takes internal/pcsctest's machine-wide lock, waiting up to two
// minutes for tests that use pcscd.
func lockPCSC(ctx context.Context) (func(), error) {
	f, err := os.OpenFile(demoPCSCLock, os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		return nil, fmt.Errorf("pcscd lock: %w", err)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			f.Close()
			return nil, fmt.Errorf("pcscd lock %s: %w", demoPCSCLock, err)
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			holder, _ := os.ReadFile(demoPCSCLock)
			f.Close()
			return nil, fmt.Errorf("pcscd is in use by %s (lock %s)", strings.TrimSpace(string(holder)), demoPCSCLock)
		}
		time.Sleep(50 * time.Millisecond)
	}
	_ = f.Truncate(0)
	_, _ = f.WriteAt([]byte(fmt.Sprintf("pid %d (onecard demo)\n", os.Getpid())), 0)
	return func() {
		_ = f.Truncate(0)
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		_ = f.Close()
	}, nil
}

// pcscdRunning reports whether a pcscd answers.
func pcscdRunning() bool {
	c, err := scard.EstablishContext()
	if err != nil {
		return false
	}
	_ = c.Release()
	return true
}

// startPCSCD starts pcscd in the foreground with one vpcd reader and waits
// until it lists the reader's two slots. The process dies with the demo
// (Pdeathsig, from a goroutine locked to its thread).
func (p *demoPCSC) startPCSCD(path string) error {
	dir, err := os.MkdirTemp("", demoConfMarker+"*")
	if err != nil {
		return err
	}
	p.dir = dir
	conf := filepath.Join(dir, "reader.conf.d")
	if err := os.Mkdir(conf, 0o755); err != nil {
		return err
	}
	body := fmt.Sprintf("FRIENDLYNAME \"%s\"\nDEVICENAME   /dev/null:0x%X\nLIBPATH      %s\nCHANNELID    0x%X\n",
		demoReaderName, demoVPCDChan, demoVPCDDriver, demoVPCDChan)
	if err := os.WriteFile(filepath.Join(conf, "vpcd"), []byte(body), 0o644); err != nil {
		return err
	}
	logf, err := os.Create(filepath.Join(dir, "pcscd.log"))
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(path, "-f", "-c", conf)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	started := make(chan error, 1)
	p.done = make(chan struct{})
	go func() {
		runtime.LockOSThread() // Pdeathsig fires when this thread ends
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		_ = cmd.Wait()
		close(p.done)
	}()
	if err := <-started; err != nil {
		return fmt.Errorf("start pcscd: %w", err)
	}
	p.cmd, p.started = cmd, true
	deadline := time.Now().Add(15 * time.Second)
	for {
		select {
		case <-p.done:
			p.started = false
			log, _ := os.ReadFile(filepath.Join(dir, "pcscd.log"))
			return fmt.Errorf("pcscd exited at start: %s", strings.TrimSpace(string(log)))
		default:
		}
		if names, err := listPCSCReaders(); err == nil && slices.Contains(names, p.CardReader()) && slices.Contains(names, p.PSAMReader()) {
			return nil
		}
		if time.Now().After(deadline) {
			return errors.New("pcscd started but does not list the vpcd reader after 15 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func listPCSCReaders() ([]string, error) {
	c, err := scard.EstablishContext()
	if err != nil {
		return nil, err
	}
	defer func() { _ = c.Release() }()
	return c.ListReaders()
}

// waitCardPresent waits until pcscd reports a card in reader name.
func waitCardPresent(ctx context.Context, name string) error {
	c, err := scard.EstablishContext()
	if err != nil {
		return err
	}
	defer func() { _ = c.Release() }()
	rs := []scard.ReaderState{{Reader: name, CurrentState: scard.StateUnaware}}
	for {
		err := c.GetStatusChange(rs, 100*time.Millisecond)
		switch {
		case err == nil:
			if rs[0].EventState&scard.StatePresent != 0 {
				return nil
			}
			rs[0].CurrentState = rs[0].EventState
		case errors.Is(err, scard.ErrTimeout):
		default:
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
}

// removePCSCRunFiles deletes /run/pcscd's pid file and socket when they
// belong to pid (pcscd leaves them behind when killed).
func removePCSCRunFiles(pid int) {
	b, err := os.ReadFile(filepath.Join(demoPCSCRunDir, "pcscd.pid"))
	if err != nil {
		return
	}
	if p, err := strconv.Atoi(strings.TrimSpace(string(b))); err != nil || p != pid {
		return
	}
	_ = os.Remove(filepath.Join(demoPCSCRunDir, "pcscd.comm"))
	_ = os.Remove(filepath.Join(demoPCSCRunDir, "pcscd.pid"))
}
