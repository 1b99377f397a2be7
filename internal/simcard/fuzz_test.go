package simcard

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/onecard-hub/onecard/hub/proof"
	"github.com/onecard-hub/onecard/reader/virtual"
)

// Fuzz inputs are APDU scripts: a length byte followed by that many APDU
// bytes, repeated; a length byte of 0 power-cycles the card.

func encodeScript(apdus [][]byte) []byte {
	var out []byte
	for _, a := range apdus {
		out = append(out, byte(len(a)))
		out = append(out, a...)
	}
	return out
}

func decodeScript(b []byte, step func(apdu []byte)) {
	for len(b) > 0 {
		n := int(b[0])
		b = b[1:]
		if n > len(b) {
			n = len(b)
		}
		step(b[:n])
		b = b[n:]
	}
}

// recorder remembers every APDU sent to a card.
type recorder struct {
	virtual.Card
	log [][]byte
}

func (r *recorder) Transmit(cmd []byte) ([]byte, error) {
	r.log = append(r.log, append([]byte(nil), cmd...))
	return r.Card.Transmit(cmd)
}

// fuzzCard is the card every fuzz input starts from: fresh, in memory,
// with a deterministic random stream so recorded traces replay exactly.
func fuzzCard(t testing.TB, gen3 bool) *SSC {
	spec := gen2Spec()
	if gen3 {
		spec = gen3Spec()
	}
	return newSSC(t, spec, Options{Rand: detRand(1)})
}

// sscTraces records real sessions (purchase, load, authentication, reads,
// PIN changes) as fuzz seeds.
func sscTraces(t testing.TB) [][]byte {
	var seeds [][]byte
	for _, gen3 := range []bool{false, true} {
		card := fuzzCard(t, gen3)
		rec := &recorder{Card: card}
		psam := newPSAM(t, Options{})
		purchase(t, rec, psam, 250, "20240101", "120000")
		v := proof.Verifier{Keys: keySet(t), Suite: card.Suite()}
		load(t, rec, v, 400, "330100000001", "20240101", "120500")
		mustOK(t, rec, "00A4020002EF05")
		for _, c := range []string{"00B2010012", "00B2030006", "00B2072C0B", "00B201C417", "805C000204",
			"0084000008", "00200000", "805A000602000008"} {
			run(t, rec, c)
		}
		ch := mustOK(t, rec, "0084000008")
		bs := card.Suite().Alg.BlockSize()
		crypt := psamEncrypt(t, psam, 0x27, algFlagOf(t, rec), card.CardID()[8:], padBlock(ch, bs))
		run(t, rec, "0082000A"+hexUp([]byte{byte(len(crypt))})+hexUp(crypt))
		run(t, rec, "00B2083014")
		run(t, rec, "805E010007123456FF654321")
		run(t, rec, "802A9E9A0401020304")
		seeds = append(seeds, encodeScript(rec.log))
	}
	return seeds
}

type sscSnapshot struct {
	ed, ep   PurseStatus
	pinTries int
}

func snap(c *SSC) sscSnapshot {
	return sscSnapshot{ed: c.ED(), ep: c.EP(), pinTries: c.PINTriesLeft()}
}

func FuzzSSC(f *testing.F) {
	for _, s := range sscTraces(f) {
		f.Add(true, s)
		f.Add(false, s)
	}
	f.Add(false, encodeScript([][]byte{{0x00, 0xA4}, {}, {0x00, 0xC0, 0x00, 0x00, 0x00}}))
	f.Fuzz(func(t *testing.T, gen3 bool, script []byte) {
		card := fuzzCard(t, gen3)
		v := proof.Verifier{Keys: keySet(t), Suite: card.Suite()}
		var lastInit []byte // data of the last accepted INITIALIZE
		decodeScript(script, func(cmd []byte) {
			if len(cmd) == 0 {
				card.PowerOff()
				card.PowerOn()
				return
			}
			before := snap(card)
			resp, err := card.Transmit(cmd)
			if err != nil {
				t.Fatalf("transmit % X: %v", cmd, err)
			}
			if len(resp) < 2 || len(resp) > 258 {
				t.Fatalf("response of %d bytes", len(resp))
			}
			sw := uint16(resp[len(resp)-2])<<8 | uint16(resp[len(resp)-1])
			ok := sw == 0x9000 || resp[len(resp)-2] == 0x61
			after := snap(card)
			isCmd := func(cla, ins byte) bool { return len(cmd) >= 4 && cmd[0] == cla && cmd[1] == ins }
			if ok && isCmd(0x80, 0x50) && len(cmd) >= 16 {
				lastInit = append([]byte(nil), cmd[5:16]...)
			}
			for i, pair := range [][2]PurseStatus{{before.ed, after.ed}, {before.ep, after.ep}} {
				b, a := pair[0], pair[1]
				if a.OnlineSeq < b.OnlineSeq || a.OfflineSeq < b.OfflineSeq {
					t.Fatalf("counter went backwards: %+v -> %+v", b, a)
				}
				if a.Balance > defBalCap {
					t.Fatalf("balance %d above cap", a.Balance)
				}
				if a == b {
					continue
				}
				// The purse changed: only a successful DEBIT or CREDIT may do
				// that, by one counter step, with a TAC the hub accepts.
				if !ok || lastInit == nil {
					t.Fatalf("purse %d changed by % X (SW %04X)", i, cmd, sw)
				}
				var tac []byte
				if ok && sw == 0x9000 {
					tac = resp[:4]
				} else {
					// T=0: fetch the withheld answer.
					r, _ := card.Transmit([]byte{0x00, 0xC0, 0x00, 0x00, resp[len(resp)-1]})
					tac = r[:4]
				}
				var term [6]byte
				copy(term[:], lastInit[5:11])
				switch {
				case isCmd(0x80, 0x54) && a.OfflineSeq == b.OfflineSeq+1 && a.Balance < b.Balance:
					p := proof.Purchase{CardID: card.CardID(), Amount: b.Balance - a.Balance, Type: 0x05 + byte(i),
						Terminal: term, TermSeq: u32(cmd[5:9])}
					copy(p.Date[:], cmd[9:13])
					copy(p.Time[:], cmd[13:16])
					if err := v.VerifyPurchaseTAC(p, tac); err != nil {
						t.Fatalf("purchase without a valid TAC: %v", err)
					}
				case isCmd(0x80, 0x52) && a.OnlineSeq == b.OnlineSeq+1 && a.Balance > b.Balance:
					l := proof.Load{CardID: card.CardID(), NewBalance: a.Balance, OnlineSeq: b.OnlineSeq,
						Amount: a.Balance - b.Balance, Type: 0x01 + byte(i), Terminal: term}
					copy(l.Date[:], cmd[5:9])
					copy(l.Time[:], cmd[9:12])
					if err := v.VerifyLoadTAC(l, tac); err != nil {
						t.Fatalf("load without a valid TAC: %v", err)
					}
				default:
					t.Fatalf("purse %d changed by % X: %+v -> %+v", i, cmd, b, a)
				}
			}
			if after.pinTries < 0 || after.pinTries > 3 {
				t.Fatalf("PIN tries %d", after.pinTries)
			}
			if after.pinTries > before.pinTries && !(sw == 0x9000 && (isCmd(0x00, 0x20) || isCmd(0x80, 0x5E))) {
				t.Fatalf("PIN tries rose %d -> %d on % X", before.pinTries, after.pinTries, cmd)
			}
		})
	})
}

func FuzzPSAM(f *testing.F) {
	card := fuzzCard(f, true)
	rec := &recorder{Card: newPSAM(f, Options{})}
	purchase(f, card, rec, 99, "20240101", "120000")
	mustOK(f, rec, "801A2803081122334455667788")
	mustOK(f, rec, "80FA00001000112233445566778899AABBCCDDEEFF")
	mustOK(f, rec, "801A2101081122334455667788")
	mustOK(f, rec, "80FA05000C1122334400000000841E0000")
	run(f, rec, "00A40000020016")
	run(f, rec, "00B0000000")
	f.Add(encodeScript(rec.log))
	f.Fuzz(func(t *testing.T, script []byte) {
		p := newPSAM(t, Options{})
		decodeScript(script, func(cmd []byte) {
			if len(cmd) == 0 {
				p.PowerOff()
				p.PowerOn()
				return
			}
			before := p.NextSeq()
			resp, err := p.Transmit(cmd)
			if err != nil || len(resp) < 2 || len(resp) > 258 {
				t.Fatalf("transmit % X: % X %v", cmd, resp, err)
			}
			after := p.NextSeq()
			okSW := resp[len(resp)-2] == 0x90 || resp[len(resp)-2] == 0x61
			if after < before || after > before+1 || (after != before && !(okSW && cmd[0] == 0x80 && cmd[1] == 0x70)) {
				t.Fatalf("terminal seq %d -> %d on % X", before, after, cmd)
			}
		})
	})
}

func FuzzLoadSpec(f *testing.F) {
	for _, name := range []string{"ssc-gen2.yaml", "ssc-gen3.yaml", "psam.yaml"} {
		data, err := os.ReadFile(filepath.Join("..", "..", "testdata", "cards", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte("kind: ssc\ngeneration: 2\ntorn: {after: DEBIT, times: 2}\n"))
	f.Add([]byte("kind: psam\nterminal: \"123456789012\"\nkeys: {file: k.json}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cf, err := ParseCardFile(data)
		if err != nil {
			return
		}
		roundTrip(t, data)
		// No sleeping in the fuzzer: delay_ms is checked, then dropped.
		var c virtual.Card
		if cf.SSC != nil {
			cf.SSC.DelayMS = 0
			c, err = NewSSC(*cf.SSC, Options{Keys: keySet(t)})
		} else {
			cf.PSAM.DelayMS = 0
			c, err = NewPSAM(*cf.PSAM, Options{Keys: keySet(t)})
		}
		if err != nil {
			t.Fatalf("valid card file did not build: %v", err)
		}
		atr := c.PowerOn()
		if len(atr) < 4 || atr[0] != 0x3B {
			t.Fatalf("ATR % X", atr)
		}
		for _, cmd := range []string{selSSSE, "00B2012C12", "00B2093000", "00B0960006", "805C000204"} {
			if resp, err := c.Transmit(unhex(t, cmd)); len(resp) < 2 {
				t.Fatalf("%s: % X %v", cmd, resp, err)
			}
		}
	})
}

// TestFuzzSeedsReplay makes sure the recorded seeds reach the deep states
// (a completed purchase and load) when replayed on a fresh card, so the
// fuzzer's balance invariants are exercised.
func TestFuzzSeedsReplay(t *testing.T) {
	for i, s := range sscTraces(t) {
		card := fuzzCard(t, i == 1)
		start := card.EP()
		decodeScript(s, func(cmd []byte) {
			if _, err := card.Transmit(cmd); err != nil {
				t.Fatal(err)
			}
		})
		end := card.EP()
		if end.Balance != start.Balance-250+400 || end.OfflineSeq != 1 || end.OnlineSeq != 1 {
			t.Fatalf("trace %d replayed to %+v from %+v", i, end, start)
		}
	}
}
