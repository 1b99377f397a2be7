package profile

import (
	"bytes"
	"errors"
	"testing"
)

// fuzzFramings are the framing styles under fuzz: the three shipped
// profiles' and the literal ID-SAM (multi-byte start, length counting the
// checksum) and ZT588-style (ASCII length, ASCII-hex checksum) framings.
func fuzzFramings(t testing.TB) ([]*Framing, []*Profile) {
	var fs []*Framing
	var ps []*Profile
	for _, n := range shippedNames {
		p := shipped(t, n)
		ps = append(ps, p)
		fs = append(fs, &p.Framing)
	}
	return append(fs, &idsamFraming, &zt588Framing), ps
}

// FuzzDecodeFrame feeds arbitrary bytes to the frame decoder of every
// framing style (the first byte picks it) and, for the shipped profiles, to
// the command matcher and the reply parser. Nothing may panic; a decoded
// frame must re-encode to the bytes it came from.
func FuzzDecodeFrame(f *testing.F) {
	framings, profiles := fuzzFramings(f)
	for i, p := range profiles {
		for _, tc := range p.Tests {
			for _, x := range tc.Exchanges {
				f.Add(append([]byte{byte(i)}, x.TX...))
				if x.RX != nil {
					f.Add(append([]byte{byte(i)}, x.RX...))
				}
			}
		}
	}
	f.Add(append([]byte{3}, hexb(f, "AA AA AA 96 69 00 03 20 01 22")...))
	f.Add(append([]byte{4}, []byte("\x020025A\x0345")...))
	f.Add([]byte{0, 0x02, 0xFF, 0xFF})
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) == 0 {
			return
		}
		k := int(in[0]) % len(framings)
		fr := framings[k]
		frame, n, err := fr.Decode(in[1:])
		if err != nil {
			if !errors.Is(err, ErrShortFrame) && !errors.Is(err, ErrBadStart) && !errors.Is(err, ErrBadLength) &&
				!errors.Is(err, ErrBadEnd) && !errors.Is(err, ErrBadChecksum) {
				t.Fatalf("unclassified error %v", err)
			}
			return
		}
		again, err := fr.Encode(frame.Addr, frame.Text)
		if err != nil || !bytes.Equal(again, in[1:1+n]) {
			t.Fatalf("re-encode % X, %v; want % X", again, err, in[1:1+n])
		}
		if k >= len(profiles) {
			return
		}
		p := profiles[k]
		for _, sel := range []string{"", "psam1", "psam2"} {
			if m, err := p.MatchCommand(frame.Text, sel); err == nil {
				_ = p.EncodePositive(m, Reply{ATR: frame.Text, RAPDU: frame.Text, Version: "x"})
				_, _ = p.EncodeFailure(m, CardRemoved, Reply{})
			}
		}
		for _, op := range p.Ops {
			for _, c := range op.commands() {
				for _, s := range append([]*Slot{nil}, p.Slots...) {
					_, _ = p.ParseResponse(c, s, frame.Text)
				}
			}
		}
	})
}

// FuzzLoadProfile feeds arbitrary documents to the loader, seeded with the
// shipped profiles. It must return a profile or an ErrorList with line
// numbers, never panic; an accepted profile must survive its own golden
// tests and planning of every operation.
func FuzzLoadProfile(f *testing.F) {
	for _, n := range shippedNames {
		f.Add([]byte(shippedFile(f, n)))
	}
	f.Add([]byte("schema: reader-profile/v1\n"))
	f.Add([]byte("a: &a [*a]\n"))
	f.Add([]byte("ops: {apdu: {psam*: unsupported}}\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		p, err := Parse("fuzz.yaml", in)
		if err != nil {
			var list ErrorList
			if !errors.As(err, &list) || len(list) == 0 {
				t.Fatalf("error %v is not an ErrorList", err)
			}
			for _, e := range list {
				if e.File != "fuzz.yaml" || e.Msg == "" {
					t.Fatalf("bad error %#v", e)
				}
			}
			return
		}
		_, _ = p.Check()
		for _, op := range OpNames {
			for _, s := range append([]*Slot{{Name: ""}}, p.Slots...) {
				steps, err := p.Plan(Call{Op: op, Slot: s.Name, APDU: []byte{0, 0xA4, 4, 0}, Protocol: ProtoT1}, "")
				if err != nil {
					continue
				}
				for _, st := range steps {
					if _, err := p.Framing.Encode(0, st.Text); err != nil {
						t.Fatalf("%s: planned text does not frame: %v", op, err)
					}
				}
			}
		}
	})
}
