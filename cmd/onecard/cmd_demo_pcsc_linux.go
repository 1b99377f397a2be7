//go:build linux

package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/onecard-hub/onecard/internal/pcscd"
	"github.com/onecard-hub/onecard/reader/virtual"
)

// demoPCSC is the demo's cards behind pcscd: a private pcscd it starts
// (internal/pcscd: the same lock, vpcd driver and ports as the
// integration tests), or a pcscd already running on the machine.
type demoPCSC struct {
	unlock  func()        // the lock, when the demo uses a running pcscd
	daemon  *pcscd.Daemon // the pcscd the demo started
	bridges []*virtual.VPCD
	stop    context.CancelFunc
	ran     chan struct{}
}

// startDemoPCSC puts card and PSAM behind pcscd through vpcd: it uses a
// running pcscd (taking the pcscd lock) or starts one (root only) with a
// vpcd reader, connects the cards and waits until pcscd reports both.
// Errors say why pcscd cannot be used (the demo then falls back to
// in-process readers); nothing stays running on error.
func startDemoPCSC(ctx context.Context, card, psam virtual.Card) (_ demoReaders, err error) {
	if _, err := pcscd.Find(); err != nil {
		return nil, err
	}
	if _, err := os.Stat(pcscd.DriverPath); err != nil {
		return nil, errors.New("the vpcd driver is not installed (Debian package vsmartcard-vpcd; make deps)")
	}
	p := &demoPCSC{}
	defer func() {
		if err != nil {
			p.Close()
		}
	}()
	// Under the lock (tests take turns with their own pcscd): a pcscd
	// running now is the machine's, and is used; otherwise the demo
	// starts its own (pcscd.Start takes the lock again).
	opts := pcscd.Options{Owner: "onecard demo", LockTimeout: 2 * time.Minute}
	if p.unlock, err = pcscd.Lock(ctx, opts.Owner, opts.LockTimeout); err != nil {
		return nil, err
	}
	if !pcscd.Running() {
		p.unlock()
		p.unlock = nil
		if os.Geteuid() != 0 {
			return nil, errors.New("pcscd is not running and only root may start it (sudo, or start pcscd yourself)")
		}
		if p.daemon, err = pcscd.Start(ctx, opts); err != nil {
			return nil, err
		}
	}
	bctx, cancel := context.WithCancel(context.Background())
	p.stop, p.ran = cancel, make(chan struct{})
	for i, c := range []virtual.Card{card, psam} {
		p.bridges = append(p.bridges, virtual.NewVPCD(virtual.VPCDOptions{Addr: fmt.Sprintf("127.0.0.1:%d", pcscd.FirstChannel+i), Card: c}))
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
		if _, err := pcscd.WaitCard(wctx, name, true); err != nil {
			if p.daemon != nil {
				return nil, fmt.Errorf("pcscd (started by the demo) does not report a card in %q: %w", name, err)
			}
			return nil, fmt.Errorf("the running pcscd does not report a card in %q (is vpcd configured, ports 35963/35964 free?): %w", name, err)
		}
	}
	return p, nil
}

func (p *demoPCSC) CardReader() string { return "Virtual PCD 00 00" }
func (p *demoPCSC) PSAMReader() string { return "Virtual PCD 00 01" }

func (p *demoPCSC) Describe() string {
	if p.daemon != nil {
		return fmt.Sprintf("pcscd started by the demo (pid %d), stopped at the end", p.daemon.PID())
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
	if p.daemon != nil {
		p.daemon.Close()
		p.daemon = nil
	}
	if p.unlock != nil {
		p.unlock()
		p.unlock = nil
	}
}
