package serial_test

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/onecard-hub/onecard/apdu"
	firmwareprofiles "github.com/onecard-hub/onecard/firmware-profiles"
	"github.com/onecard-hub/onecard/internal/pcsctest"
	"github.com/onecard-hub/onecard/internal/safeenv"
	"github.com/onecard-hub/onecard/internal/simcard"
	"github.com/onecard-hub/onecard/reader"
	"github.com/onecard-hub/onecard/reader/pcsc"
	"github.com/onecard-hub/onecard/reader/serial"
	"github.com/onecard-hub/onecard/reader/serial/profile"
	"github.com/onecard-hub/onecard/reader/virtual"
	"github.com/onecard-hub/onecard/terminal"
)

// ssseName is the SSSE application's name, "sx1.sh.社会保障" in GBK.
var ssseName = []byte("sx1.sh.\xc9\xe7\xbb\xe1\xb1\xa3\xd5\xcf")

// identityAPDUs is the public-field identity read as an APDU sequence:
// SELECT SSSE, SELECT EF05 and READ RECORD (by tag, P2 00) of tags 01–07,
// then on second-generation cards SELECT EF06 and its tags 08, 09, 4E,
// 0A–0D (third-generation cards guard EF06 and EF05 tag 07 behind
// external authentication: tag 07 answers 6982 there and is still sent).
func identityAPDUs(gen int) []apdu.Command {
	cmds := []apdu.Command{
		{INS: 0xA4, P1: 0x04, Data: ssseName, Ne: 256},
		{INS: 0xA4, P1: 0x02, Data: []byte{0xEF, 0x05}},
	}
	for tag := byte(1); tag <= 7; tag++ {
		cmds = append(cmds, apdu.Command{INS: 0xB2, P1: tag, Ne: 256})
	}
	if gen == 2 {
		cmds = append(cmds, apdu.Command{INS: 0xA4, P1: 0x02, Data: []byte{0xEF, 0x06}})
		for _, tag := range []byte{0x08, 0x09, 0x4E, 0x0A, 0x0B, 0x0C, 0x0D} {
			cmds = append(cmds, apdu.Command{INS: 0xB2, P1: tag, Ne: 256})
		}
	}
	return cmds
}

// exchangeIdentity runs the sequence in one transaction with apdu.Exchange
// (T=0 chaining included) and checks the status words.
func exchangeIdentity(ctx context.Context, s reader.Slot, cmds []apdu.Command) error {
	if _, err := s.Connect(ctx); err != nil {
		return err
	}
	tx, err := reader.Begin(ctx, s)
	if err != nil {
		return err
	}
	defer tx.End()
	for _, c := range cmds {
		r, err := apdu.Exchange(ctx, tx, c)
		if err != nil {
			return err
		}
		if r.SW != apdu.SWOK && r.SW != apdu.SWSecurityStatus {
			return r.Err()
		}
	}
	return tx.End()
}

// wire counts the APDU traffic of one slot through a Traced hook.
type wire struct {
	mu    sync.Mutex
	apdus int
	xs    []exchange // recorded during the first operation only
	rec   bool
}

type exchange struct {
	slot      string
	cmd, resp []byte
}

func (w *wire) hook(slotName string) func(reader.TraceEvent) {
	return func(ev reader.TraceEvent) {
		if ev.Op != "transmit" || ev.Err != nil {
			return
		}
		w.mu.Lock()
		defer w.mu.Unlock()
		w.apdus++
		if w.rec {
			// Redacted bytes keep their length, which is all the wire
			// time needs.
			w.xs = append(w.xs, exchange{slotName, ev.Command, ev.Response})
		}
	}
}

// wireTime is the time the recorded exchanges take on a real line at the
// profile's default baud rate: every frame and handshake byte at start
// bit + data bits + parity + stop bits. Reader and card processing time
// and the profile's minimum gap are not included.
func wireTime(b *testing.B, p *profile.Profile, xs []exchange, protos map[string]profile.Protocol) time.Duration {
	n := 0
	for _, x := range xs {
		steps, err := p.Plan(profile.Call{Op: profile.OpAPDU, Slot: x.slot, Protocol: protos[x.slot], APDU: x.cmd}, x.slot)
		if err != nil {
			b.Fatal(err)
		}
		st := steps[len(steps)-1]
		m, err := p.MatchCommand(st.Text, x.slot)
		if err != nil {
			b.Fatal(err)
		}
		resp := p.EncodePositive(m, profile.Reply{Position: profile.PosAtContacts, RAPDU: x.resp})
		n += len(st.Text) + len(resp) + 2*p.Framing.Overhead()
		switch p.Link.Style {
		case profile.StyleACKENQ:
			n += 2 // ACK, ENQ
		case profile.StyleACKThenResponse:
			n++ // ACK
			if p.Link.HostAcksResponse {
				n++
			}
		}
	}
	bits := 1 + p.Transport.DataBits + p.Transport.StopBits
	if p.Transport.Parity != "none" {
		bits++
	}
	return time.Duration(float64(n*bits) / float64(p.Transport.Baud) * float64(time.Second))
}

// benchCard loads a copy of a shipped card file.
func benchCard(b *testing.B, name string) virtual.Card {
	b.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "testdata", "cards", name))
	if err != nil {
		b.Fatal(err)
	}
	path := filepath.Join(b.TempDir(), name)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		b.Fatal(err)
	}
	c, err := simcard.LoadFile(path)
	if err != nil {
		b.Fatal(err)
	}
	return c
}

// transport is one way to reach the simulated cards.
type transport struct {
	name string
	// setup, when set, runs once before the cases.
	setup func(b *testing.B)
	// open returns the user-card and PSAM slots for the card pair of case
	// i and, for serial transports, the profile and a function giving the
	// slots' card protocols.
	open func(b *testing.B, i int, user, psam virtual.Card) (u, p reader.Slot, prof *profile.Profile, protos func() map[string]profile.Protocol)
}

// BenchmarkIdentityRead measures a card-identity read end to end through
// each transport — in process (the baseline), PC/SC (pcscd + vpcd) and
// every shipped serial profile through its emulator on a pty with the
// profile's real timers — for:
//
//   - exchange: the public-field APDU sequence (identityAPDUs) with
//     apdu.Exchange, on a second-generation card (EF05 and EF06) and a
//     third-generation one (EF05 only);
//   - terminal-public: terminal.Session.ReadIdentity(ModePublic);
//   - terminal-psam: terminal.Session.ReadIdentity(ModePSAM), the
//     authenticated read with the PSAM in the same reader (psam1 slot on
//     serial readers, the reader's second slot on PC/SC).
//
// It reports apdus/op (all slots, GET RESPONSE and Le retries included),
// ns/op, x-inproc (ns/op over the in-process run of the same case, when
// that ran first) and, for serial transports, wire-ms/op: the bytes of
// one operation on a real line at the profile's default baud rate (a pty
// does not enforce baud rates).
func BenchmarkIdentityRead(b *testing.B) {
	if !safeenv.OK(os.Environ()) {
		b.Fatalf("run with %v in the environment (the Makefile sets them)", safeenv.Required)
	}
	type benchCase struct {
		card, reader string
		gen          int
	}
	cases := []benchCase{{"ssc-gen2.yaml", "exchange", 2}, {"ssc-gen3.yaml", "exchange", 3},
		{"ssc-gen3.yaml", "terminal-public", 3}, {"ssc-gen3.yaml", "terminal-psam", 3}}
	transports := []transport{{name: "inproc", open: func(b *testing.B, _ int, user, psam virtual.Card) (reader.Slot, reader.Slot, *profile.Profile, func() map[string]profile.Protocol) {
		return virtual.NewSlot("user", user), virtual.NewSlot("psam1", psam), nil, nil
	}}}
	var env *pcsctest.Env
	transports = append(transports, transport{name: "pcsc", setup: func(b *testing.B) {
		env = pcsctest.Start(b, pcsctest.Options{Readers: len(cases)}) // a reader per case: its slots 00 (card) and 01 (PSAM)
	}, open: func(b *testing.B, i int, user, psam virtual.Card) (reader.Slot, reader.Slot, *profile.Profile, func() map[string]profile.Protocol) {
		i *= 2
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		b.Cleanup(func() { cancel(); wg.Wait() })
		for k, c := range []virtual.Card{user, psam} {
			v := virtual.NewVPCD(virtual.VPCDOptions{Addr: env.Slots[i+k].Addr, Card: c})
			wg.Go(func() { _ = v.Run(ctx) })
			wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
			_, err := pcsctest.WaitCard(wctx, env.Slots[i+k].Name, true)
			wcancel()
			if err != nil {
				b.Fatal(err)
			}
		}
		return pcsc.NewSlot(env.Slots[i].Name, pcsc.Options{}), pcsc.NewSlot(env.Slots[i+1].Name, pcsc.Options{}), nil, nil
	}})
	for _, file := range firmwareprofiles.Names() {
		transports = append(transports, transport{name: "serial-" + file[:len(file)-len(".yaml")], open: func(b *testing.B, _ int, user, psam virtual.Card) (reader.Slot, reader.Slot, *profile.Profile, func() map[string]profile.Protocol) {
			p, err := firmwareprofiles.Load(file)
			if err != nil {
				b.Fatal(err)
			}
			emu, err := serial.NewEmulator(p, serial.EmulatorOptions{Cards: map[string]virtual.Card{"user": user, "psam1": psam}})
			if err != nil {
				b.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			pt, err := emu.ServePTY(ctx)
			if err != nil {
				cancel()
				b.Fatal(err)
			}
			r, err := serial.Open(ctx, serial.Options{Port: pt.Path, Profile: p})
			if err != nil {
				cancel()
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = r.Close(); cancel(); _ = pt.Close() })
			u, _ := r.Slot("user")
			s, _ := r.Slot("psam1")
			protos := func() map[string]profile.Protocol {
				return map[string]profile.Protocol{"user": u.Protocol(), "psam1": s.Protocol()}
			}
			return u, s, p, protos
		}})
	}

	baseline := map[string]float64{} // case name → in-process ns/op

	for _, tr := range transports {
		b.Run(tr.name, func(b *testing.B) {
			if tr.setup != nil {
				tr.setup(b)
			}
			for i, cs := range cases {
				name := cs.card[:len(cs.card)-len(".yaml")] + "/" + cs.reader
				b.Run(name, func(b *testing.B) {
					user, psam := benchCard(b, cs.card), benchCard(b, "psam.yaml")
					us, ps, prof, protos := tr.open(b, i, user, psam)
					w := &wire{}
					userSlot := reader.Traced(us, w.hook("user"))
					psamSlot := reader.Traced(ps, w.hook("psam1"))
					ctx := context.Background()
					var run func() error
					switch cs.reader {
					case "exchange":
						cmds := identityAPDUs(cs.gen)
						run = func() error { return exchangeIdentity(ctx, userSlot, cmds) }
					default:
						opts := terminal.Options{Card: userSlot}
						mode := terminal.ModePublic
						if cs.reader == "terminal-psam" {
							opts.PSAM, mode = psamSlot, terminal.ModePSAM
						}
						sess, err := terminal.New(opts)
						if err != nil {
							b.Fatal(err)
						}
						run = func() error {
							id, err := sess.ReadIdentity(ctx, terminal.ReadOptions{Mode: mode})
							if err == nil && id.Mode != mode {
								b.Fatalf("read in mode %v, want %v", id.Mode, mode)
							}
							return err
						}
					}
					// A warm-up operation (the terminal reads the PSAM's
					// terminal number once), then a recorded one, both
					// outside the timing.
					if err := run(); err != nil {
						b.Fatal(err)
					}
					w.apdus, w.rec = 0, true
					if err := run(); err != nil {
						b.Fatal(err)
					}
					w.rec = false
					perOp := w.apdus
					recorded := w.xs
					w.apdus = 0
					b.ResetTimer()
					for b.Loop() {
						if err := run(); err != nil {
							b.Fatal(err)
						}
					}
					b.StopTimer()
					if w.apdus != perOp*b.N {
						b.Errorf("%d APDUs in %d operations, the first took %d", w.apdus, b.N, perOp)
					}
					nsPerOp := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
					b.ReportMetric(float64(perOp), "apdus/op")
					if tr.name == "inproc" {
						baseline[name] = nsPerOp
					} else if base := baseline[name]; base > 0 {
						b.ReportMetric(nsPerOp/base, "x-inproc")
					}
					if prof != nil {
						b.ReportMetric(float64(wireTime(b, prof, recorded, protos()))/float64(time.Millisecond), "wire-ms/op")
					}
					_ = userSlot.Disconnect()
					_ = psamSlot.Disconnect()
				})
			}
		})
	}
}
