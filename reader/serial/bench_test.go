package serial

import (
	"context"
	"testing"
	"time"

	"github.com/onecard-hub/onecard/reader/serial/profile"
	"github.com/onecard-hub/onecard/reader/virtual"
)

// BenchmarkAPDURoundTrip measures SELECT SSSE → FCI through the whole
// stack (Slot → link layer → go.bug.st/serial → pty → emulator → card)
// for each shipped profile at its default baud. A pty does not enforce the
// baud rate, so ns/op is the software cost; wire-ms/op is what the same
// exchange takes on a real line at the profile's baud and framing (start
// bit, data bits, parity, stop bits per byte; handshake bytes included).
func BenchmarkAPDURoundTrip(b *testing.B) {
	for _, name := range shipped {
		b.Run(name, func(b *testing.B) {
			p := loadProfile(b, name)
			emu, err := NewEmulator(p, EmulatorOptions{Cards: map[string]virtual.Card{"user": newTestCard(atrT0)}})
			if err != nil {
				b.Fatal(err)
			}
			pt, err := emu.ServePTY(context.Background())
			if err != nil {
				b.Fatal(err)
			}
			defer pt.Close()
			ctx := context.Background()
			r, err := Open(ctx, Options{Port: pt.Path, Profile: p})
			if err != nil {
				b.Fatal(err)
			}
			defer r.Close()
			user, _ := r.Slot("user")
			if _, err := user.Connect(ctx); err != nil {
				b.Fatal(err)
			}
			wireBytes := wireBytesPerAPDU(b, p)
			bits := 1 + p.Transport.DataBits + p.Transport.StopBits
			if p.Transport.Parity != "none" {
				bits++
			}
			wire := time.Duration(float64(wireBytes*bits) / float64(p.Transport.Baud) * float64(time.Second))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := user.Transmit(ctx, selectSSSE); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(wireBytes), "wire-bytes/op")
			b.ReportMetric(float64(wire)/float64(time.Millisecond), "wire-ms/op")
		})
	}
}

// wireBytesPerAPDU counts the bytes on the line for one SELECT exchange.
func wireBytesPerAPDU(b *testing.B, p *profile.Profile) int {
	steps, err := p.Plan(profile.Call{Op: profile.OpAPDU, Slot: "user", Protocol: profile.ProtoT0, APDU: selectSSSE}, "")
	if err != nil {
		b.Fatal(err)
	}
	m, err := p.MatchCommand(steps[0].Text, "")
	if err != nil {
		b.Fatal(err)
	}
	resp := p.EncodePositive(m, profile.Reply{Position: profile.PosAtContacts, RAPDU: fciSSSE})
	n := len(steps[0].Text) + len(resp) + 2*p.Framing.Overhead()
	switch p.Link.Style {
	case profile.StyleACKENQ:
		n += 2 // ACK, ENQ
	case profile.StyleACKThenResponse:
		n++ // ACK
		if p.Link.HostAcksResponse {
			n++
		}
	}
	return n
}
