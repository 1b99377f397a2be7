package serial

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bugst "go.bug.st/serial"

	"github.com/onecard-hub/onecard/reader"
	"github.com/onecard-hub/onecard/reader/serial/profile"
	"github.com/onecard-hub/onecard/reader/virtual"
)

var shipped = []string{"crt310.yaml", "crt591.yaml", "ict3q8.yaml"}

// loadProfile parses a shipped profile afresh (tests shorten its timers).
func loadProfile(t testing.TB, name string) *profile.Profile {
	t.Helper()
	p, err := profile.LoadFile(filepath.Join("..", "..", "firmware-profiles", name))
	if err != nil {
		t.Fatal(err)
	}
	// A pty answers in microseconds: short timers keep the failure tests
	// fast without changing what they exercise.
	p.Link.Timers.ACK = time.Second
	p.Link.Timers.InterChar = 300 * time.Millisecond
	p.Link.Timers.Response = 2 * time.Second
	p.Link.Timers.MinGap = 0
	for _, op := range p.Ops {
		for _, c := range op.BySlot {
			if c != nil {
				c.Timeout = 0
			}
		}
		if op.Command != nil {
			op.Command.Timeout = 0
		}
	}
	return p
}

type rig struct {
	p    *profile.Profile
	emu  *Emulator
	pty  *PTY
	r    *Reader
	user *testCard
	sam1 *testCard
	sam2 *testCard
}

// newRig starts an emulator on a pty with a user card (unless noUser) and
// two PSAMs, and opens a Reader on the pty's device path with
// go.bug.st/serial.
func newRig(t *testing.T, name string, noUser bool) *rig {
	t.Helper()
	g := &rig{p: loadProfile(t, name), user: newTestCard(atrT0), sam1: newTestCard(atrT0), sam2: newTestCard(atrT1)}
	cards := map[string]virtual.Card{"psam1": g.sam1, "psam2": g.sam2}
	if !noUser {
		cards["user"] = g.user
	}
	var err error
	if g.emu, err = NewEmulator(g.p, EmulatorOptions{Cards: cards}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if g.pty, err = g.emu.ServePTY(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		if err := g.pty.Close(); err != nil {
			t.Error(err)
		}
	})
	if g.r, err = Open(context.Background(), Options{Port: g.pty.Path, Profile: g.p}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = g.r.Close() })
	return g
}

func (g *rig) slot(t *testing.T, name string) *Slot {
	t.Helper()
	s, err := g.r.Slot(name)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func forEachProfile(t *testing.T, f func(t *testing.T, name string)) {
	for _, name := range shipped {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f(t, name)
		})
	}
}

func TestSerialPowerOnAndAPDU(t *testing.T) {
	forEachProfile(t, func(t *testing.T, name string) {
		g := newRig(t, name, false)
		ctx := ctxT(t)
		user := g.slot(t, "user")
		atr, err := user.Connect(ctx)
		if err != nil {
			t.Fatalf("Connect: %v", err)
		}
		if !bytes.Equal(atr, atrT0) {
			t.Errorf("ATR % X, want % X", atr, atrT0)
		}
		if got := user.Protocol(); got != profile.ProtoT0 {
			t.Errorf("protocol %s, want T0", got)
		}
		resp, err := user.Transmit(ctx, selectSSSE)
		if err != nil {
			t.Fatalf("Transmit SELECT: %v", err)
		}
		if !bytes.Equal(resp, fciSSSE) {
			t.Errorf("SELECT → % X, want % X", resp, fciSSSE)
		}
		if resp, err = user.Transmit(ctx, []byte{0x80, 0xCA, 0x00, 0x00, 0x00}); err != nil || !bytes.Equal(resp, []byte{0x6D, 0x00}) {
			t.Errorf("unknown INS → % X, %v; want 6D00", resp, err)
		}
		// Reset gives the ATR again; Disconnect powers down.
		if atr, err = user.Reset(ctx); err != nil || !bytes.Equal(atr, atrT0) {
			t.Errorf("Reset → % X, %v", atr, err)
		}
		if err := user.Disconnect(); err != nil {
			t.Errorf("Disconnect: %v", err)
		}
		if g.user.isPowered() {
			t.Error("card still powered after Disconnect")
		}
		if _, err := user.Transmit(ctx, selectSSSE); !errors.Is(err, ErrNotConnected) {
			t.Errorf("Transmit after Disconnect: %v, want ErrNotConnected", err)
		}
		if st := g.emu.Stats(); st.NAKsSent != 0 || st.BadFrames != 0 || st.Unanswered != 0 {
			t.Errorf("emulator stats %+v: a clean run needs no NAK and no unknown command", st)
		}
	})
}

func TestSerialPSAMSlots(t *testing.T) {
	forEachProfile(t, func(t *testing.T, name string) {
		g := newRig(t, name, false)
		ctx := ctxT(t)
		p1, p2 := g.slot(t, "psam1"), g.slot(t, "psam2")
		if atr, err := p1.Connect(ctx); err != nil || !bytes.Equal(atr, atrT0) {
			t.Fatalf("psam1 Connect → % X, %v", atr, err)
		}
		if atr, err := p2.Connect(ctx); err != nil || !bytes.Equal(atr, atrT1) {
			t.Fatalf("psam2 Connect → % X, %v", atr, err)
		}
		if got := p2.Protocol(); got != profile.ProtoT1 {
			t.Errorf("psam2 protocol %s, want T1", got)
		}
		// Alternate between the SAMs: readers that select SAMs must
		// switch the selection each time.
		for i := 0; i < 2; i++ {
			resp, err := p1.Transmit(ctx, readTermNo)
			if err != nil || !bytes.Equal(resp, mustHex("010203040506 9000")) {
				t.Errorf("psam1 READ BINARY → % X, %v", resp, err)
			}
			resp, err = p2.Transmit(ctx, getChal)
			if err != nil || len(resp) != 10 {
				t.Errorf("psam2 GET CHALLENGE → % X, %v", resp, err)
			}
		}
		if g.sam1.commands() != 2 || g.sam2.commands() != 2 {
			t.Errorf("psam1 saw %d, psam2 saw %d commands; want 2 each", g.sam1.commands(), g.sam2.commands())
		}
		if g.user.commands() != 0 {
			t.Error("a PSAM command reached the user card")
		}
	})
}

func TestSerialNoCard(t *testing.T) {
	forEachProfile(t, func(t *testing.T, name string) {
		g := newRig(t, name, true)
		ctx := ctxT(t)
		user := g.slot(t, "user")
		if _, err := user.Connect(ctx); !errors.Is(err, reader.ErrNoCard) {
			t.Fatalf("Connect on an empty slot: %v, want ErrNoCard", err)
		}
		if pos, err := g.r.CardStatus(ctx); err != nil || pos.Present() {
			t.Errorf("CardStatus → %s, %v; want absent", pos, err)
		}
		// Insert at run time, then it works.
		if err := g.emu.Insert("user", g.user); err != nil {
			t.Fatal(err)
		}
		if pos, err := g.r.CardStatus(ctx); err != nil || !pos.Present() {
			t.Errorf("CardStatus after insert → %s, %v", pos, err)
		}
		if _, err := user.Connect(ctx); err != nil {
			t.Fatalf("Connect after insert: %v", err)
		}
		// Remove between commands: the next APDU reports the card removed.
		if err := g.emu.Remove("user"); err != nil {
			t.Fatal(err)
		}
		if _, err := user.Transmit(ctx, selectSSSE); !errors.Is(err, reader.ErrCardRemoved) {
			t.Fatalf("Transmit after removal: %v, want ErrCardRemoved", err)
		}
	})
}

func TestSerialCardPulledMidAPDU(t *testing.T) {
	forEachProfile(t, func(t *testing.T, name string) {
		g := newRig(t, name, false)
		ctx := ctxT(t)
		user := g.slot(t, "user")
		if _, err := user.Connect(ctx); err != nil {
			t.Fatal(err)
		}
		g.user.tear()
		_, err := user.Transmit(ctx, selectSSSE)
		if !errors.Is(err, reader.ErrCardRemoved) {
			t.Fatalf("torn APDU: %v, want ErrCardRemoved", err)
		}
		var de *DeviceError
		if !errors.As(err, &de) && !bytes.Contains([]byte(err.Error()), []byte("reader reports")) {
			t.Errorf("error %q does not carry the device's answer", err)
		}
		if _, err := user.Transmit(ctx, selectSSSE); !errors.Is(err, ErrNotConnected) {
			t.Errorf("Transmit after the pull: %v, want ErrNotConnected", err)
		}
		if _, err := user.Connect(ctx); !errors.Is(err, reader.ErrNoCard) {
			t.Errorf("Connect after the pull: %v, want ErrNoCard", err)
		}
	})
}

func TestSerialLinkFaults(t *testing.T) {
	type tc struct {
		name    string
		faults  Faults
		wantErr error // nil: the exchange must succeed
		check   func(t *testing.T, st EmulatorStats)
	}
	cases := []tc{
		{name: "garbage before the frame", faults: Faults{Garbage: mustHex("FF 13 00 F2 FF FF 02 FF FF 7E")},
			check: func(t *testing.T, st EmulatorStats) {}},
		{name: "bad checksum once", faults: Faults{CorruptResponses: 1},
			check: func(t *testing.T, st EmulatorStats) {
				if st.Resends < 1 {
					t.Errorf("no resend after a bad checksum: %+v", st)
				}
			}},
		{name: "bad checksum always", faults: Faults{CorruptResponses: -1}, wantErr: ErrChecksum},
		{name: "reader NAKs once", faults: Faults{NAKCommands: 1},
			check: func(t *testing.T, st EmulatorStats) {
				if st.NAKsSent != 1 {
					t.Errorf("NAKs sent %d, want 1", st.NAKsSent)
				}
			}},
		{name: "reader NAKs always", faults: Faults{NAKCommands: -1}, wantErr: ErrChecksum},
		{name: "response cut short once", faults: Faults{TruncateResponses: 1},
			check: func(t *testing.T, st EmulatorStats) {
				if st.Resends < 1 {
					t.Errorf("no resend after a short frame: %+v", st)
				}
			}},
		{name: "reader silent", faults: Faults{Silent: true}, wantErr: reader.ErrTimeout},
	}
	forEachProfile(t, func(t *testing.T, name string) {
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				g := newRig(t, name, false)
				ctx := ctxT(t)
				user := g.slot(t, "user")
				if _, err := user.Connect(ctx); err != nil {
					t.Fatal(err)
				}
				g.emu.SetFaults(c.faults)
				if c.faults.Silent {
					g.p.Link.Timers.ACK = 100 * time.Millisecond // 4 tries
				}
				before := g.emu.Stats()
				start := time.Now()
				resp, err := user.Transmit(ctx, selectSSSE)
				elapsed := time.Since(start)
				if c.wantErr != nil {
					if !errors.Is(err, c.wantErr) {
						t.Fatalf("Transmit: %v, want %v", err, c.wantErr)
					}
					// Bounded: a handful of retries at the test timers, far
					// below the 10 s context.
					if elapsed > 5*time.Second {
						t.Errorf("failure took %v", elapsed)
					}
					return
				}
				if err != nil || !bytes.Equal(resp, fciSSSE) {
					t.Fatalf("Transmit → % X, %v", resp, err)
				}
				st := g.emu.Stats()
				st.Resends -= before.Resends
				st.NAKsSent -= before.NAKsSent
				c.check(t, st)
				// The line is clean again.
				g.emu.SetFaults(Faults{})
				if resp, err := user.Transmit(ctx, selectSSSE); err != nil || !bytes.Equal(resp, fciSSSE) {
					t.Errorf("next Transmit → % X, %v", resp, err)
				}
			})
		}
	})
}

func TestSerialContextDeadline(t *testing.T) {
	g := newRig(t, "ict3q8.yaml", false)
	user := g.slot(t, "user")
	if _, err := user.Connect(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	g.emu.SetFaults(Faults{Silent: true})
	g.p.Link.Timers.ACK = 5 * time.Second // the context, not the timer, must end it
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := user.Transmit(ctx, selectSSSE)
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, reader.ErrTimeout) {
		t.Fatalf("Transmit past the deadline: %v, want DeadlineExceeded and ErrTimeout", err)
	}
}

func TestSerialPortClosed(t *testing.T) {
	forEachProfile(t, func(t *testing.T, name string) {
		g := newRig(t, name, false)
		ctx := ctxT(t)
		user := g.slot(t, "user")
		if _, err := user.Connect(ctx); err != nil {
			t.Fatal(err)
		}
		if err := g.pty.CloseMaster(); err != nil {
			t.Fatal(err)
		}
		if _, err := user.Transmit(ctx, selectSSSE); !errors.Is(err, reader.ErrReaderGone) {
			t.Fatalf("Transmit on an unplugged port: %v, want ErrReaderGone", err)
		}
		if _, err := g.slot(t, "psam1").Connect(ctx); !errors.Is(err, reader.ErrReaderGone) {
			t.Errorf("next call: %v, want ErrReaderGone", err)
		}
	})
}

func TestSerialInitRecovery(t *testing.T) {
	for _, name := range []string{"crt591.yaml", "ict3q8.yaml"} {
		t.Run(name, func(t *testing.T) {
			p := loadProfile(t, name)
			emu, err := NewEmulator(p, EmulatorOptions{Cards: map[string]virtual.Card{"user": newTestCard(atrT0)}})
			if err != nil {
				t.Fatal(err)
			}
			pt, err := emu.ServePTY(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			defer pt.Close()
			// Without init the reader answers B0; the Reader must
			// initialise it and retry.
			r, err := Open(ctxT(t), Options{Port: pt.Path, Profile: p, SkipInit: true})
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			if pos, err := r.CardStatus(ctxT(t)); err != nil || !pos.Present() {
				t.Fatalf("CardStatus on an uninitialised reader → %s, %v", pos, err)
			}
			// card_status (answered B0), reset_reader, card_status again.
			if st := emu.Stats(); st.Commands != 3 {
				t.Errorf("emulator saw %d commands, want 3", st.Commands)
			}
		})
	}
}

// stalePort is a port on whose line, when the first command has been
// written, the answer to another command arrives first (the late answer
// to the last command of a host killed in the middle of an exchange).
type stalePort struct {
	Port
	stale []byte // ACK and the stale response frame, delivered once
	armed bool
}

func (p *stalePort) Write(b []byte) (int, error) {
	p.armed = true
	return p.Port.Write(b)
}

func (p *stalePort) Read(b []byte) (int, error) {
	if p.armed && len(p.stale) > 0 {
		n := copy(b, p.stale)
		p.stale = p.stale[n:]
		return n, nil
	}
	return p.Port.Read(b)
}

// TestSerialOpenAfterStaleReply: Open's init answered by a reply to a
// command it did not send (a previous host's late answer) initialises
// again and opens the reader.
func TestSerialOpenAfterStaleReply(t *testing.T) {
	p := loadProfile(t, "crt591.yaml")
	emu, err := NewEmulator(p, EmulatorOptions{Cards: map[string]virtual.Card{"user": newTestCard(atrT0)}})
	if err != nil {
		t.Fatal(err)
	}
	pt, err := emu.ServePTY(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer pt.Close()
	// The stale answer: the emulator's reply to card_status, which echoes
	// another command byte than the init's reset.
	steps, err := p.Plan(profile.Call{Op: profile.OpCardStatus}, "")
	if err != nil {
		t.Fatal(err)
	}
	frame, err := p.Framing.Encode(0, emu.handle(steps[len(steps)-1].Text))
	if err != nil {
		t.Fatal(err)
	}
	var sp *stalePort
	open := func(name string, mode *bugst.Mode) (Port, error) {
		port, err := bugst.Open(name, mode)
		if err != nil {
			return nil, err
		}
		sp = &stalePort{Port: port, stale: append([]byte{p.Link.ACK}, frame...)}
		return sp, nil
	}
	r, err := Open(ctxT(t), Options{Port: pt.Path, Profile: p, OpenPort: open})
	if err != nil {
		t.Fatalf("Open with a stale reply on the line: %v", err)
	}
	defer r.Close()
	if len(sp.stale) != 0 {
		t.Fatalf("the stale reply was not read (%d bytes left)", len(sp.stale))
	}
	if pos, err := r.CardStatus(ctxT(t)); err != nil || !pos.Present() {
		t.Fatalf("CardStatus after Open → %s, %v", pos, err)
	}
}

func TestSerialEjectAndVersion(t *testing.T) {
	forEachProfile(t, func(t *testing.T, name string) {
		g := newRig(t, name, false)
		ctx := ctxT(t)
		v, err := g.r.Identify(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if v != "" && v != g.p.Model+" emulator" {
			t.Errorf("version %q", v)
		}
		if err := g.r.Eject(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := g.slot(t, "user").Connect(ctx); !errors.Is(err, reader.ErrNoCard) {
			t.Errorf("Connect after eject: %v, want ErrNoCard", err)
		}
		if _, err := g.r.Do(ctx, profile.Call{Op: profile.OpBeep}); !errors.Is(err, ErrNotSupported) {
			t.Errorf("beep: %v, want ErrNotSupported", err)
		}
	})
}

func TestSerialOpenErrors(t *testing.T) {
	p := loadProfile(t, "crt310.yaml")
	if _, err := Open(ctxT(t), Options{Port: filepath.Join(t.TempDir(), "ttyNONE"), Profile: p}); !errors.Is(err, reader.ErrReaderGone) {
		t.Errorf("Open of a missing port: %v, want ErrReaderGone", err)
	}
	if _, err := Open(ctxT(t), Options{Profile: p}); err == nil {
		t.Error("Open without a port succeeded")
	}
}

// ListPorts enumerates real ports only (no test pty is among them) and
// reports USB IDs in upper case. It opens ttyS* devices on Linux: nothing
// else in this test binary uses them.
func TestSerialListPorts(t *testing.T) {
	pt, err := OpenPTY()
	if err != nil {
		t.Fatal(err)
	}
	defer pt.Close()
	ports, err := ListPorts()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ports {
		if p.Name == "" || p.Name == pt.Path {
			t.Errorf("unexpected port %+v", p)
		}
		if p.USB && (len(p.VID) != 4 || p.VID != strings.ToUpper(p.VID)) {
			t.Errorf("USB port %s: VID %q", p.Name, p.VID)
		}
	}
}

// Close interrupts an exchange that waits for a silent reader.
func TestSerialCloseInterrupts(t *testing.T) {
	g := newRig(t, "crt310.yaml", false)
	user := g.slot(t, "user")
	if _, err := user.Connect(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	g.emu.SetFaults(Faults{Silent: true})
	g.p.Link.Timers.ACK = 10 * time.Second
	done := make(chan error, 1)
	go func() {
		_, err := user.Transmit(context.Background(), selectSSSE)
		done <- err
	}()
	time.Sleep(50 * time.Millisecond)
	if err := g.r.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, reader.ErrReaderGone) {
			t.Errorf("interrupted Transmit: %v, want ErrReaderGone", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not interrupt the exchange")
	}
}
