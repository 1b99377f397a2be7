package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"

	"github.com/onecard-hub/onecard/internal/simcard"
	"github.com/onecard-hub/onecard/reader/virtual"
)

const simUsage = `--card FILE [--vpcd ADDR] [--card2 FILE [--vpcd2 ADDR]] [--control 127.0.0.1:PORT]

Runs simulated cards behind pcscd through vsmartcard's vpcd driver until
interrupted. Card 1 goes into the vpcd slot at --vpcd, card 2 (another card
or a PSAM) into the slot at --vpcd2. Control commands, one per line, on
stdin and on the optional loopback-only TCP --control socket:

  insert [SLOT]          put the card back (SLOT 1 or 2, default 1)
  remove [SLOT]          take the card out
  pull-next [SLOT]       pull the card during its next APDU (not applied)
  torn on|off [SLOT]     card-side torn switch: on = pull right after the
                         next applied DEBIT (SSC; also debit|load)
  status                 show both slots
  help, quit

Every command is answered with one line "ok ..." or "error ...".`

// simSlot is one simulated card behind vpcd.
type simSlot struct {
	n      int
	file   string
	bridge *virtual.VPCD
}

// simControl executes control commands on the slots.
type simControl struct {
	slots []*simSlot
	quit  func()
}

// tornSwitch is the torn switch of simcard's social-security card.
type tornSwitch interface {
	SetTorn(p simcard.TornPoint, times int)
}

func init() {
	register(command{
		name:    "sim",
		summary: "run simulated cards behind pcscd (vpcd) with a control surface",
		run: func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
			return runSim(ctx, args, os.Stdin, stdout, stderr)
		},
	})
}

// runSim is the sim command with its input made explicit for tests.
func runSim(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := newFlagSet("sim", simUsage, stderr)
	vpcd1 := fs.String("vpcd", virtual.DefaultVPCDAddr, "vpcd address of slot 1")
	card1 := fs.String("card", "", "card file (YAML) for slot 1 (required)")
	vpcd2 := fs.String("vpcd2", "127.0.0.1:35964", "vpcd address of slot 2")
	card2 := fs.String("card2", "", "card file for slot 2 (e.g. a PSAM)")
	control := fs.String("control", "", "loopback `address` for the TCP control socket (port 0 = any)")
	debug := fs.Bool("debug", false, "debug logging")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usagef("%v", err)
	}
	if fs.NArg() != 0 {
		return usagef("unexpected arguments %q", fs.Args())
	}
	if *card1 == "" {
		return usagef("--card is required")
	}
	if *control != "" {
		if err := checkLoopback(*control); err != nil {
			return usagef("--control: %v", err)
		}
	}
	level := slog.LevelInfo
	if *debug {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ctl := &simControl{quit: cancel}
	for i, sc := range []struct{ addr, file string }{{*vpcd1, *card1}, {*vpcd2, *card2}} {
		if sc.file == "" {
			continue
		}
		card, err := simcard.LoadFile(sc.file)
		if err != nil {
			return fmt.Errorf("load card %d: %w", i+1, err)
		}
		ctl.slots = append(ctl.slots, &simSlot{n: i + 1, file: sc.file, bridge: virtual.NewVPCD(virtual.VPCDOptions{
			Addr:   sc.addr,
			Card:   card,
			Logger: log.With("slot", i+1),
		})})
	}

	out := &lineWriter{w: stdout}
	var ln net.Listener
	if *control != "" {
		var err error
		if ln, err = net.Listen("tcp", *control); err != nil {
			return fmt.Errorf("listen for control: %w", err)
		}
		defer ln.Close()
		out.line("ok control " + ln.Addr().String())
		log.Info("control socket listening", "addr", ln.Addr().String())
	}

	var wg sync.WaitGroup
	for _, s := range ctl.slots {
		wg.Go(func() { _ = s.bridge.Run(ctx) })
		log.Info("simulated card", "slot", s.n, "vpcd", s.bridge.Addr(), "kind", fmt.Sprintf("%T", s.bridge.Card()))
	}
	if ln != nil {
		wg.Go(func() { ctl.serveTCP(ctx, ln, log) })
	}
	// Reading stdin cannot be interrupted; the goroutine ends with the
	// process (or when stdin closes). EOF does not stop the simulator.
	go func() {
		sc := bufio.NewScanner(stdin)
		for sc.Scan() {
			if reply, ok := ctl.exec(sc.Text()); ok {
				out.line(reply)
			}
		}
	}()
	<-ctx.Done()
	if ln != nil {
		_ = ln.Close()
	}
	wg.Wait()
	log.Info("simulator stopped")
	return nil
}

// checkLoopback accepts host:port only for a loopback host: the control
// socket has no authentication.
func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("%q is not a loopback address (the control socket is unauthenticated)", addr)
}

// serveTCP answers control connections until ctx is done.
func (c *simControl) serveTCP(ctx context.Context, ln net.Listener, log *slog.Logger) {
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		conn, err := ln.Accept()
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, net.ErrClosed) {
				log.Warn("control accept failed", "err", err)
			}
			return
		}
		wg.Go(func() {
			stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
			defer stop()
			defer conn.Close()
			w := &lineWriter{w: conn}
			sc := bufio.NewScanner(conn)
			for sc.Scan() {
				if reply, ok := c.exec(sc.Text()); ok {
					if w.line(reply) != nil {
						return
					}
				}
			}
		})
	}
}

// exec runs one control command and returns its answer line; ok is false
// for blank lines, which get no answer.
func (c *simControl) exec(line string) (reply string, ok bool) {
	f := strings.Fields(line)
	if len(f) == 0 {
		return "", false
	}
	cmd, args := strings.ToLower(f[0]), f[1:]
	slotArg := func(i int) (*simSlot, error) {
		n := 1
		if len(args) > i {
			var err error
			if n, err = strconv.Atoi(args[i]); err != nil || n < 1 || n > 2 {
				return nil, fmt.Errorf("bad slot %q (want 1 or 2)", args[i])
			}
		}
		if len(args) > i+1 {
			return nil, fmt.Errorf("too many arguments for %s", cmd)
		}
		for _, s := range c.slots {
			if s.n == n {
				return s, nil
			}
		}
		return nil, fmt.Errorf("slot %d has no card file", n)
	}
	var (
		s   *simSlot
		err error
	)
	switch cmd {
	case "insert", "remove", "pull-next":
		if s, err = slotArg(0); err != nil {
			break
		}
		switch cmd {
		case "insert":
			s.bridge.Insert(nil)
		case "remove":
			s.bridge.Remove()
		default:
			s.bridge.PullDuring(1)
		}
		return fmt.Sprintf("ok %s %d", cmd, s.n), true
	case "torn":
		if len(args) == 0 {
			err = errors.New("usage: torn on|off|debit|load [SLOT]")
			break
		}
		if s, err = slotArg(1); err != nil {
			break
		}
		if err = setTorn(s.bridge.Card(), strings.ToLower(args[0])); err != nil {
			break
		}
		return fmt.Sprintf("ok torn %s %d", strings.ToLower(args[0]), s.n), true
	case "status":
		if len(args) != 0 {
			err = errors.New("status takes no arguments")
			break
		}
		parts := []string{"ok"}
		for _, s := range c.slots {
			st := s.bridge.Status()
			parts = append(parts, fmt.Sprintf("%d:%s,%s,apdus=%d", s.n,
				pick(st.Inserted, "inserted", "removed"), pick(st.Connected, "connected", "disconnected"), st.APDUs))
		}
		return strings.Join(parts, " "), true
	case "help":
		return "ok commands: insert [SLOT] | remove [SLOT] | pull-next [SLOT] | torn on|off|debit|load [SLOT] | status | quit", true
	case "quit", "exit":
		c.quit()
		return "ok bye", true
	default:
		err = fmt.Errorf("unknown command %q (try help)", cmd)
	}
	return "error " + err.Error(), true
}

// setTorn arms or disarms a card's torn switch: simcard's SSC (after
// DEBIT or LOAD) or any virtual.Tearable (after the next command).
func setTorn(card virtual.Card, mode string) error {
	switch tc := card.(type) {
	case tornSwitch:
		switch mode {
		case "on", "debit":
			tc.SetTorn(simcard.TornAfterDebit, 1)
		case "load":
			tc.SetTorn(simcard.TornAfterLoad, 1)
		case "off":
			tc.SetTorn(simcard.TornNone, 0)
		default:
			return fmt.Errorf("torn %q: want on, off, debit or load", mode)
		}
	case virtual.Tearable:
		switch mode {
		case "on":
			tc.SetTorn(true)
		case "off":
			tc.SetTorn(false)
		default:
			return fmt.Errorf("torn %q: this card supports on and off", mode)
		}
	default:
		return fmt.Errorf("card %T has no torn switch", card)
	}
	return nil
}

func pick(b bool, yes, no string) string {
	if b {
		return yes
	}
	return no
}

// lineWriter writes whole lines from several goroutines.
type lineWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lineWriter) line(s string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, err := io.WriteString(l.w, s+"\n")
	return err
}
