package simcard

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/onecard-hub/onecard/apdu"
	"github.com/onecard-hub/onecard/hub/proof"
	"github.com/onecard-hub/onecard/reader/virtual"
	"github.com/onecard-hub/onecard/sm"
)

// TestSSCCommands is the status-word table: each case powers a fresh card,
// runs setup (each must answer 9000) and checks the raw answer to cmd.
func TestSSCCommands(t *testing.T) {
	ssse := selSSSE
	cases := []struct {
		name  string
		gen   int // 0 = both
		setup []string
		cmd   string
		sw    uint16
		data  string // expected data (hex), "" = none; "*N" = N bytes of anything
	}{
		{"select SSSE gen3", 3, nil, ssse + "00", 0x9000, "6F19840F7378312E73682EC9E7BBE1B1A3D5CFA5069F0C03860103"},
		{"select SSSE gen2 T0 withholds", 2, nil, ssse + "00", 0x611B, ""},
		{"select SSSE no FCI", 0, nil, "00A4040C0F7378312E73682EC9E7BBE1B1A3D5CF", 0x9000, ""},
		{"select unknown name", 0, nil, "00A40400047378312E", 0x6A82, ""},
		{"select bad P1", 0, nil, "00A4080002EF05", 0x6A86, ""},
		{"select bad P2", 0, nil, "00A404020F" + ssse[10:], 0x6A86, ""},
		{"select name empty", 0, nil, "00A40400", 0x6700, ""},
		{"select EF05 P1=02", 0, []string{ssse}, "00A4020002EF05", 0x9000, ""},
		{"select EF06 P1=00", 0, []string{ssse}, "00A4000002EF06", 0x9000, ""},
		{"select EF05 at power-on (SSSE is MF)", 0, nil, "00A4020002EF05", 0x9000, ""},
		{"select FID short", 0, nil, "00A4020001EF", 0x6700, ""},
		{"select EF07 absent", 0, []string{ssse}, "00A4020002EF07", 0x6A82, ""},
		{"select DF04", 0, nil, "00A4040C06D15600000503", 0x9000, ""},
		{"select DF05 absent", 0, nil, "00A4040006D15600000504", 0x6A82, ""},
		{"select EF05 inside DF01", 0, []string{"00A4040C06D15600000500"}, "00A4020002EF05", 0x6A82, ""},
		{"read without current EF", 0, []string{ssse}, "00B2010012", 0x6986, ""},
		{"read card ID by tag", 0, []string{ssse, "00A4020002EF05"}, "00B2010012", 0x9000, "*18"},
		{"read version gen3", 3, []string{ssse, "00A4020002EF05"}, "00B2030006", 0x9000, "0304332E3030"},
		{"read version gen2", 2, []string{ssse, "00A4020002EF05"}, "00B2030006", 0x9000, "0304322E3030"},
		{"read issue date by number", 3, []string{ssse, "00A4020002EF05"}, "00B2050406", 0x9000, "050420230601"},
		{"read card number gen3 needs RK", 3, []string{ssse}, "00B2072C0B", 0x6982, ""},
		{"read card number gen2 free", 2, []string{ssse}, "00B2072C0B", 0x9000, "0709413031323334353637"},
		{"read SSN gen3 needs RK", 3, []string{ssse, "00A4020002EF06"}, "00B2080014", 0x6982, ""},
		{"read SSN gen2 free", 2, []string{ssse, "00A4020002EF06"}, "00B2080014", 0x9000, "0812313130313035313938353033303736353137"},
		{"read EF06 record 4 = sex", 2, []string{ssse, "00A4020002EF06"}, "00B2040403", 0x9000, "0A0131"},
		{"read EF06 record 3 = 4E", 2, []string{ssse, "00A4020002EF06"}, "00B2030416", 0x9000, "4E14" + "0000000000000000000000000000000000000000"},
		{"read record 8 absent", 0, []string{ssse, "00A4020002EF05"}, "00B2080400", 0x6A83, ""},
		{"read tag 4E absent in EF05", 0, []string{ssse, "00A4020002EF05"}, "00B24E0016", 0x6A83, ""},
		{"read bad mode", 0, []string{ssse, "00A4020002EF05"}, "00B2010212", 0x6A86, ""},
		{"read record 0", 0, []string{ssse, "00A4020002EF05"}, "00B2000412", 0x6A86, ""},
		{"read unknown SFI", 0, []string{ssse}, "00B2013C00", 0x6A82, ""},
		{"read SFI inside DF01", 0, []string{"00A4040C06D15600000500"}, "00B2012C12", 0x6A82, ""},
		{"read empty log", 0, []string{ssse}, "00B201C417", 0x6A83, ""},
		{"read log by tag", 0, []string{ssse}, "00B201C017", 0x6A86, ""},
		{"read with data", 0, []string{ssse}, "00B2012C0101", 0x6700, ""},
		{"challenge 4", 0, nil, "0084000004", 0x9000, "*4"},
		{"challenge 8", 0, nil, "0084000008", 0x9000, "*8"},
		{"challenge 16", 0, nil, "0084000010", 0x9000, "*16"},
		{"challenge Le=5 T1", 3, nil, "0084000005", 0x6700, ""},
		{"challenge Le=5 T0", 2, nil, "0084000005", 0x6C08, ""},
		{"challenge Le=00 T1", 3, nil, "0084000000", 0x9000, "*8"},
		{"challenge bad P1", 0, nil, "0084010008", 0x6A86, ""},
		{"internal auth SM4", 3, nil, "008800001000112233445566778899AABBCCDDEEFF", 0x9000, "*16"},
		{"internal auth 3DES T0", 2, nil, "00880000080011223344556677", 0x6108, ""},
		{"internal auth partial block", 3, nil, "00880000080011223344556677", 0x6700, ""},
		{"internal auth bad P2", 0, nil, "00880001100011223344556677889900112233445566", 0x6A86, ""},
		{"external auth without challenge", 0, nil, "008200" + "0A10" + "00112233445566778899AABBCCDDEEFF", 0x6984, ""},
		{"external auth unknown key", 0, []string{"0084000008"}, "0082000B100011223344556677889900112233445566", 0x6A88, ""},
		{"external auth bad P1", 0, nil, "0082010A100011223344556677889900112233445566", 0x6A86, ""},
		{"external auth wrong", 3, []string{"0084000008"}, "0082000A100011223344556677889900112233445566", 0x63C2, ""},
		{"external auth wrong length", 3, []string{"0084000008"}, "0082000A080011223344556677", 0x6700, ""},
		{"verify wrong", 0, nil, "0020000003654321", 0x63C2, ""},
		{"verify right", 0, nil, verifyOK, 0x9000, ""},
		{"verify status", 0, nil, "00200000", 0x63C3, ""},
		{"verify status after PIN", 0, []string{verifyOK}, "00200000", 0x9000, ""},
		{"verify bad P2", 0, nil, "0020000103123456", 0x6A88, ""},
		{"verify bad P1", 0, nil, "0020010003123456", 0x6A86, ""},
		{"verify short", 0, nil, "002000000112", 0x6700, ""},
		{"verify not BCD", 0, nil, "00200000031234AB", 0x6A80, ""},
		{"change PIN no separator", 0, nil, "805E0100061234561234AA", 0x6A80, ""},
		{"change PIN bad P1", 0, nil, "805E000007123456FF654321", 0x6A86, ""},
		{"change PIN wrong old", 0, nil, "805E010007111111FF654321", 0x63C2, ""},
		{"change PIN", 0, nil, "805E010007123456FF654321", 0x9000, ""},
		{"purchase needs PIN", 0, nil, "805001020B01000000010000000000010F", 0x6982, ""},
		{"purchase bad key index", 0, []string{verifyOK}, "805001020B02000000010000000000010F", 0x9403, ""},
		{"purchase short", 0, []string{verifyOK}, "805001020A010000000100000000000F", 0x6700, ""},
		{"purchase bad P1", 0, []string{verifyOK}, "805002020B01000000010000000000010F", 0x6A86, ""},
		{"purchase bad P2", 0, []string{verifyOK}, "805001030B01000000010000000000010F", 0x6A86, ""},
		{"purchase too much", 0, []string{verifyOK}, "805001020B0100FFFFFF0000000000010F", 0x9401, ""},
		{"purchase zero", 0, []string{verifyOK}, "805001020B01000000000000000000010F", 0x6A80, ""},
		{"ED purchase empty purse", 0, []string{verifyOK}, "805001010B01000000010000000000010F", 0x9401, ""},
		{"purchase init T1", 3, []string{verifyOK}, "805001020B01000000010000000000010F", 0x9000, "*15"},
		{"EP load needs no PIN", 3, nil, "805000020B010000000100000000000110", 0x9000, "*16"},
		{"ED load needs PIN", 0, nil, "805000010B010000000100000000000110", 0x6982, ""},
		{"load above cap", 0, nil, "805000020B017FFFFFFF00000000000110", 0x6985, ""},
		{"debit without init", 0, nil, "805401000F0000000120240101120000AABBCCDD08", 0x6901, ""},
		{"debit after load init", 3, []string{"805000020B010000000100000000000110"}, "805401000F0000000120240101120000AABBCCDD08", 0x6901, ""},
		{"debit bad MAC1", 3, []string{verifyOK, "805001020B01000000010000000000010F"}, "805401000F0000000120240101120000AABBCCDD08", 0x9302, ""},
		{"debit short", 0, nil, "805401000E00000001202401011200AABBCCDD08", 0x6700, ""},
		{"credit short Le T1", 3, []string{"805000020B010000000100000000000110"}, "805200000B20240101120000AABBCCDD03", 0x6700, ""},
		{"debit short Le T1", 3, []string{verifyOK, "805001020B01000000010000000000010F"}, "805401000F0000000120240101120000AABBCCDD04", 0x6700, ""},
		{"credit without init", 0, nil, "805200000B20240101120000AABBCCDD04", 0x6901, ""},
		{"credit bad MAC2", 3, []string{"805000020B010000000100000000000110"}, "805200000B20240101120000AABBCCDD04", 0x9302, ""},
		{"balance EP", 3, nil, "805C000204", 0x9000, "0001D4C0"},
		{"balance ED needs PIN", 0, nil, "805C000104", 0x6982, ""},
		{"balance ED", 3, []string{verifyOK}, "805C000104", 0x9000, "00000000"},
		{"balance bad P2", 0, nil, "805C000304", 0x6A86, ""},
		{"proof none", 0, nil, "805A0006020000" + "08", 0x9406, ""},
		{"proof bad type", 0, nil, "805A0007020000" + "08", 0x6A86, ""},
		{"proof short", 0, nil, "805A00060100" + "08", 0x6700, ""},
		{"block without challenge", 0, nil, "841E000004AABBCCDD", 0x6984, ""},
		{"block bad MAC", 0, []string{"0084000004"}, "841E000004AABBCCDD", 0x6988, ""},
		{"block bad P2", 0, nil, "841E000204AABBCCDD", 0x6A86, ""},
		{"block short", 0, nil, "841E000003AABBCC", 0x6700, ""},
		{"sign bad P1P2", 3, []string{verifyOK}, "802A9E9B0401020304", 0x6A86, ""},
		{"sign empty", 3, []string{verifyOK}, "802A9E9A", 0x6700, ""},
		{"sign gen2 unknown", 2, nil, "802A9E9A0401020304", 0x6D00, ""},
		{"get data other tag", 3, nil, "00CA5F2000", 0x6A88, ""},
		{"public key", 3, nil, "00CA7F4941", 0x9000, "*65"},
		{"get response with nothing", 0, nil, "00C0000010", 0x6985, ""},
		{"get response bad P1", 0, nil, "00C0010010", 0x6A86, ""},
		{"unknown INS", 0, nil, "00FE000000", 0x6D00, ""},
		{"unknown CLA", 0, nil, "90A4040000", 0x6E00, ""},
		{"INS of another class", 0, nil, "0050010200", 0x6E00, ""},
		{"malformed", 0, nil, "00A404", 0x6700, ""},
		{"Lc longer than data", 0, nil, "00A404000F7378", 0x6700, ""},
		{"extended Lc", 0, nil, "00A404000001007378312E73682EC9E7BBE1B1A3D5CF" + string(bytes.Repeat([]byte("00"), 241)), 0x6700, ""},
	}
	for _, tc := range cases {
		for _, gen := range []int{2, 3} {
			if tc.gen != 0 && tc.gen != gen {
				continue
			}
			t.Run(fmt.Sprintf("gen%d/%s", gen, tc.name), func(t *testing.T) {
				spec := gen2Spec()
				if gen == 3 {
					spec = gen3Spec()
				}
				card := newSSC(t, spec, Options{})
				for _, s := range tc.setup {
					mustOK(t, card, s)
				}
				data, sw := raw(t, card, tc.cmd)
				if sw != tc.sw {
					t.Fatalf("SW %04X, want %04X (data % X)", sw, tc.sw, data)
				}
				switch {
				case len(tc.data) > 0 && tc.data[0] == '*':
					var n int
					fmt.Sscanf(tc.data[1:], "%d", &n)
					if len(data) != n {
						t.Fatalf("%d data bytes, want %d", len(data), n)
					}
				case !equalHex(data, tc.data):
					t.Fatalf("data %s, want %s", hexUp(data), tc.data)
				}
			})
		}
	}
}

// psamEncrypt asks the PSAM to encrypt data with the card's diversified key
// of the given usage (INIT FOR DESCRYPT + DES CRYPT), as a terminal does.
func psamEncrypt(t testing.TB, psam *PSAM, usage, flag byte, factor, data []byte) []byte {
	t.Helper()
	mustOK(t, psam, selPSAM)
	mustOK(t, psam, fmt.Sprintf("801A%02X%02X08%X", usage, flag, factor))
	return mustOK(t, psam, fmt.Sprintf("80FA0000%02X%X", len(data), data))
}

// TestAuthenticationWithPSAM: the PSAM checks the card's internal
// authentication and makes the RKSSSE external-authentication cryptogram,
// which unlocks EF06 on a third-generation card.
func TestAuthenticationWithPSAM(t *testing.T) {
	for _, spec := range []SSCSpec{gen2Spec(), gen3Spec()} {
		t.Run(fmt.Sprintf("gen%d", spec.Generation), func(t *testing.T) {
			card := newSSC(t, spec, Options{})
			psam := newPSAM(t, Options{})
			flag := algFlagOf(t, card)
			cardID := cardIDOf(t, card)
			bs := card.Suite().Alg.BlockSize()

			// Internal authentication: same answer from card and PSAM.
			in := bytes.Repeat([]byte{0x5A}, bs)
			got := mustOK(t, card, fmt.Sprintf("00880000%02X%X", bs, in))
			if want := psamEncrypt(t, psam, 0x28, flag, cardID[8:], in); !bytes.Equal(got, want) {
				t.Fatalf("internal auth % X, PSAM % X", got, want)
			}

			gen3 := spec.Generation == 3
			if _, sw := run(t, card, "00B2083014"); (sw == 0x6982) != gen3 {
				t.Fatalf("SSN before RKSSSE auth: %04X", sw)
			}
			ch := mustOK(t, card, "0084000008")
			crypt := psamEncrypt(t, psam, 0x27, flag, cardID[8:], padBlock(ch, bs))
			mustOK(t, card, fmt.Sprintf("0082000A%02X%X", len(crypt), crypt))
			// The challenge is used up.
			if _, sw := run(t, card, fmt.Sprintf("0082000A%02X%X", len(crypt), crypt)); sw != 0x6984 {
				t.Fatalf("replayed external auth: %04X, want 6984", sw)
			}
			ssn := mustOK(t, card, "00B2083014")
			if apdu.DecodeAN(ssn[2:]) != spec.Holder.SSN {
				t.Fatalf("SSN %q", ssn[2:])
			}
			n1 := mustOK(t, card, "00B2093020")
			n2 := mustOK(t, card, "00B24E3016")
			name, err := apdu.DecodeGBK(append(n1[2:], n2[2:]...))
			if err != nil || name != spec.Holder.Name {
				t.Fatalf("name %q (%v), want %q", name, err, spec.Holder.Name)
			}
			num := mustOK(t, card, "00B2072C0B")
			if apdu.DecodeAN(num[2:]) != spec.CardNumber {
				t.Fatalf("card number %q", num[2:])
			}
			// A reset forgets the authentication.
			card.PowerOff()
			card.PowerOn()
			if _, sw := run(t, card, "00B2083014"); (sw == 0x6982) != gen3 {
				t.Fatalf("SSN after reset: %04X", sw)
			}
		})
	}
}

func TestLongNameUsesExtension(t *testing.T) {
	main, ext, err := splitName(gen3Spec().Holder.Name)
	if err != nil {
		t.Fatal(err)
	}
	if len(main) != 30 || len(ext) != 20 || ext[0] == 0 || main[29] != 0 && main[28] == 0 {
		t.Fatalf("main % X ext % X", main, ext)
	}
	// 15 two-byte characters fill tag 09 exactly; the rest spills.
	if _, _, err := splitName(string(bytes.Repeat([]byte("王"), 26))); err == nil {
		t.Fatal("26 characters (52 bytes) accepted")
	}
	m, e, err := splitName("A" + string(bytes.Repeat([]byte("王"), 15)))
	if err != nil || m[0] != 'A' || m[29] != 0 || e[0] == 0 {
		t.Fatalf("odd split: % X | % X (%v)", m, e, err)
	}
}

func TestExternalAuthRetryCounter(t *testing.T) {
	path := copyCardFile(t, "ssc-gen3.yaml")
	c, err := LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	card := c.(*SSC)
	card.PowerOn()
	wrong := "0082000A10" + "00112233445566778899AABBCCDDEEFF"
	for _, want := range []uint16{0x63C2, 0x63C1, 0x63C0, 0x6983} {
		mustOK(t, card, "0084000008")
		if _, sw := run(t, card, wrong); sw != want {
			t.Fatalf("wrong cryptogram: %04X, want %04X", sw, want)
		}
	}
	// Blocked even for the right cryptogram, after a reset and a reload.
	reloaded, err := LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	r := reloaded.(*SSC)
	r.PowerOn()
	if r.AuthTriesLeft() != 0 {
		t.Fatalf("tries after reload: %d", r.AuthTriesLeft())
	}
	psam := newPSAM(t, Options{Keys: mustTestKeys(t, "demo")})
	ch := mustOK(t, r, "0084000008")
	crypt := psamEncrypt(t, psam, 0x27, 0x03, r.CardID()[8:], padBlock(ch, 16))
	if _, sw := run(t, r, "0082000A10"+hexUp(crypt)); sw != 0x6983 {
		t.Fatalf("right cryptogram on blocked key: %04X, want 6983", sw)
	}
}

func TestExternalAuthSuccessResetsCounter(t *testing.T) {
	card := newSSC(t, gen3Spec(), Options{})
	psam := newPSAM(t, Options{})
	mustOK(t, card, "0084000008")
	run(t, card, "0082000A10"+"00112233445566778899AABBCCDDEEFF")
	if card.AuthTriesLeft() != 2 {
		t.Fatalf("tries %d", card.AuthTriesLeft())
	}
	ch := mustOK(t, card, "0084000010")
	crypt := psamEncrypt(t, psam, 0x27, 0x03, card.CardID()[8:], ch)
	mustOK(t, card, "0082000A10"+hexUp(crypt))
	if card.AuthTriesLeft() != 3 {
		t.Fatalf("tries after success %d, want 3", card.AuthTriesLeft())
	}
}

func mustTestKeys(t *testing.T, label string) *sm.KeySet {
	t.Helper()
	ks, err := sm.TestKeySet(label)
	if err != nil {
		t.Fatal(err)
	}
	return ks
}

func TestPINBlockedPersists(t *testing.T) {
	path := copyCardFile(t, "ssc-gen2.yaml")
	c, err := LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	card := c.(*SSC)
	card.PowerOn()
	for _, want := range []uint16{0x63C2, 0x63C1} {
		if _, sw := run(t, card, "0020000003111111"); sw != want {
			t.Fatalf("wrong PIN: %04X, want %04X", sw, want)
		}
	}
	card.PowerOff()
	card.PowerOn()
	if _, sw := run(t, card, "00200000"); sw != 0x63C1 {
		t.Fatalf("tries after power cycle: %04X, want 63C1", sw)
	}
	if _, sw := run(t, card, "0020000003111111"); sw != 0x63C0 {
		t.Fatalf("third wrong PIN: %04X", sw)
	}
	for _, cmd := range []string{verifyOK, "00200000", "805E010007123456FF654321"} {
		if _, sw := run(t, card, cmd); sw != 0x6983 {
			t.Fatalf("%s on blocked PIN: %04X, want 6983", cmd, sw)
		}
	}
	card.PowerOff()
	card.PowerOn()
	if _, sw := run(t, card, verifyOK); sw != 0x6983 {
		t.Fatalf("after power cycle: %04X, want 6983", sw)
	}
	c2, err := LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	c2.PowerOn()
	if _, sw := run(t, c2, verifyOK); sw != 0x6983 || c2.(*SSC).PINTriesLeft() != 0 {
		t.Fatalf("after reload: %04X, tries %d", sw, c2.(*SSC).PINTriesLeft())
	}
}

func TestPINSuccessResetsAndChangePersists(t *testing.T) {
	path := copyCardFile(t, "ssc-gen3.yaml")
	c, err := LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	card := c.(*SSC)
	card.PowerOn()
	run(t, card, "0020000003111111")
	mustOK(t, card, verifyOK)
	if card.PINTriesLeft() != 3 {
		t.Fatalf("tries %d", card.PINTriesLeft())
	}
	mustOK(t, card, "805E010007123456FF24680F")
	c2, err := LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	c2.PowerOn()
	if _, sw := run(t, c2, verifyOK); sw != 0x63C2 {
		t.Fatalf("old PIN after change: %04X", sw)
	}
	mustOK(t, c2, "002000000324680F")
}

func TestApplicationBlock(t *testing.T) {
	for _, tc := range []struct {
		p2 byte
		sw uint16
	}{{0x00, 0x6A81}, {0x01, 0x9303}} {
		path := copyCardFile(t, "ssc-gen3.yaml")
		c, err := LoadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		card := c.(*SSC)
		card.PowerOn()
		ks := mustTestKeys(t, "demo")
		master, err := ks.Master(sm.AlgSM4, sm.KeySTK)
		if err != nil {
			t.Fatal(err)
		}
		stk, err := sm.SuiteSM4.Diversify(master, card.CardID()[8:])
		if err != nil {
			t.Fatal(err)
		}
		ch := mustOK(t, card, "0084000004")
		mac, err := sm.SuiteSM4.MAC(stk, padBlock(ch, 16), []byte{0x84, 0x1E, 0x00, tc.p2, 0x04})
		if err != nil {
			t.Fatal(err)
		}
		mustOK(t, card, fmt.Sprintf("841E00%02X04%X", tc.p2, mac))
		c2, err := LoadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		c2.PowerOn()
		if b, perm := c2.(*SSC).Blocked(); !b || perm != (tc.p2 == 1) {
			t.Fatalf("blocked %v permanent %v", b, perm)
		}
		mustOK(t, c2, selSSSE)
		for _, cmd := range []string{"00B2012C12", "0084000008", verifyOK, "805C000204", "841E000004AABBCCDD"} {
			if _, sw := raw(t, c2, cmd); sw != tc.sw {
				t.Fatalf("P2=%02X: %s answers %04X, want %04X", tc.p2, cmd, sw, tc.sw)
			}
		}
	}
}

func TestT0Transport(t *testing.T) {
	card := newSSC(t, gen2Spec(), Options{})
	atr := card.PowerOn()
	if hexUp(atr[:4]) != "3B6D0000" || len(atr) != 17 {
		t.Fatalf("T=0 ATR % X", atr)
	}
	_, sw := raw(t, card, selSSSE+"00")
	if sw != 0x611B {
		t.Fatalf("SELECT: %04X, want 611B", sw)
	}
	if _, sw := raw(t, card, "00C0000020"); sw != 0x6C1B {
		t.Fatalf("GET RESPONSE too long: %04X, want 6C1B", sw)
	}
	part, sw := raw(t, card, "00C0000010")
	if sw != 0x610B || len(part) != 16 {
		t.Fatalf("partial GET RESPONSE: %d bytes %04X", len(part), sw)
	}
	rest, sw := raw(t, card, "00C000000B")
	if sw != 0x9000 || hexUp(append(part, rest...)) != "6F19840F7378312E73682EC9E7BBE1B1A3D5CFA5069F0C03860101" {
		t.Fatalf("FCI %X %04X", append(part, rest...), sw)
	}
	// Another command drops withheld data.
	raw(t, card, selSSSE)
	raw(t, card, "0084000008")
	if _, sw := raw(t, card, "00C000001B"); sw != 0x6985 {
		t.Fatalf("stale GET RESPONSE: %04X, want 6985", sw)
	}
	for _, tc := range []struct {
		cmd  string
		sw   uint16
		size int
	}{
		{"00B2012C00", 0x6C12, 0},
		{"00B2012C10", 0x6C12, 0},
		{"00B2012C12", 0x9000, 18},
		{"00B2012C", 0x6C12, 0},
		{"0084000000", 0x6C08, 0},
		{"805C000200", 0x6C04, 0},
		{"00B0000000", 0x6D00, 0},
	} {
		data, sw := raw(t, card, tc.cmd)
		if sw != tc.sw || len(data) != tc.size {
			t.Errorf("%s: %d bytes %04X, want %d bytes %04X", tc.cmd, len(data), sw, tc.size, tc.sw)
		}
	}
	// apdu.Exchange resolves both.
	if d := mustOK(t, card, "00B2012C00"); len(d) != 18 {
		t.Fatalf("exchange read: %d bytes", len(d))
	}
}

func TestProtocolSwitchAndATR(t *testing.T) {
	card := newSSC(t, gen3Spec(), Options{})
	atr := card.PowerOn()
	var x byte
	for _, b := range atr[1:] {
		x ^= b
	}
	if atr[0] != 0x3B || atr[1] != 0xED || x != 0 || len(atr) != 1+1+2+4+13+1 {
		t.Fatalf("T=1 ATR % X (checksum %02X)", atr, x)
	}
	if _, sw := raw(t, card, selSSSE+"00"); sw != 0x9000 {
		t.Fatalf("T=1 SELECT %04X", sw)
	}
	card.SetProtocol(T0)
	if _, sw := raw(t, card, selSSSE+"00"); sw != 0x9000 {
		t.Fatalf("protocol changed before PowerOn: %04X", sw)
	}
	atr = card.PowerOn()
	if hexUp(atr[:2]) != "3B6D" {
		t.Fatalf("ATR after switch % X", atr)
	}
	if _, sw := raw(t, card, selSSSE+"00"); sw != 0x611B {
		t.Fatalf("T=0 SELECT %04X", sw)
	}
	// Historical bytes derived from the card: 0090 4F43 03 8660 230601 + ID tail.
	if hexUp(atr[4:]) != "00904F43038660230601"+hexUp(card.CardID()[13:]) {
		t.Fatalf("historical bytes % X", atr[4:])
	}
}

func TestNotPoweredAndDelay(t *testing.T) {
	card := newSSC(t, gen3Spec(), Options{})
	card.PowerOff()
	if _, err := card.Transmit(unhex(t, selSSSE)); !errors.Is(err, ErrNotPowered) {
		t.Fatalf("unpowered transmit: %v", err)
	}
	card.PowerOn()
	var slept []time.Duration
	card.sleep = func(d time.Duration) { slept = append(slept, d) }
	mustOK(t, card, selSSSE)
	card.SetDelay(5 * time.Millisecond)
	mustOK(t, card, selSSSE)
	mustOK(t, card, "0084000008")
	card.SetDelay(0)
	mustOK(t, card, selSSSE)
	if len(slept) != 2 || slept[0] != 5*time.Millisecond || slept[1] != 5*time.Millisecond {
		t.Fatalf("slept %v, want two 5ms pauses", slept)
	}
}

func TestTornDebit(t *testing.T) {
	path := copyCardFile(t, "ssc-gen3.yaml")
	c, err := LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	card := c.(*SSC)
	card.PowerOn()
	psam := newPSAM(t, Options{Keys: mustTestKeys(t, "demo")})
	card.SetTorn(TornAfterDebit, 1)
	before := card.EP()
	debit, runp := startPurchase(t, card, psam, 700, "20240102", "101010")
	raw, _ := debit.Bytes()
	if _, err := card.Transmit(raw); !errors.Is(err, virtual.ErrTorn) {
		t.Fatalf("torn debit: %v, want ErrTorn", err)
	}
	if after := card.EP(); after.Balance != before.Balance-700 || after.OfflineSeq != before.OfflineSeq+1 {
		t.Fatalf("purse %+v -> %+v", before, after)
	}
	if _, err := card.Transmit(unhex(t, selSSSE)); !errors.Is(err, ErrNotPowered) {
		t.Fatalf("transmit after tear: %v", err)
	}
	// Re-insertion (and even a restart of the simulator).
	c2, err := LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	c2.PowerOn()
	mustOK(t, c2, selSSSE)
	pr := mustOK(t, c2, fmt.Sprintf("805A000602%04X08", runp.offlineSeq))
	mac2, tac := pr[0:4], pr[4:8]
	v := proof.Verifier{Keys: mustTestKeys(t, "demo"), Suite: card.Suite()}
	if err := v.VerifyPurchaseTAC(runp.rec, tac); err != nil {
		t.Fatalf("TAC of torn purchase: %v", err)
	}
	mustOK(t, psam, "8072000004"+hexUp(mac2))
	// The switch fired once; the next purchase completes.
	card.PowerOn()
	purchase(t, card, psam, 1, "20240102", "101011")
	// Proof of a counter never used.
	if _, sw := run(t, c2, fmt.Sprintf("805A000602%04X08", runp.offlineSeq+5)); sw != 0x9406 {
		t.Fatalf("proof for unused counter: %04X", sw)
	}
}

func TestTornLoad(t *testing.T) {
	card := newSSC(t, gen2Spec(), Options{})
	v := verifierFor(t, card)
	card.SetTorn(TornAfterLoad, 1)
	credit, lr := startLoad(t, card, v, 0x02, 300, "330100000009", "20240103", "090000")
	raw, _ := credit.Bytes()
	if _, err := card.Transmit(raw); !errors.Is(err, virtual.ErrTorn) {
		t.Fatalf("torn credit: %v", err)
	}
	card.PowerOn()
	pr := mustOK(t, card, fmt.Sprintf("805A000202%04X08", lr.auth.OnlineSeq))
	if err := v.VerifyLoadTAC(lr.rec, pr[4:8]); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(pr[0:4], credit.Data[7:11]) {
		t.Fatalf("proof MAC2 % X, sent % X", pr[0:4], credit.Data[7:11])
	}
	if card.Balance() != 50300 {
		t.Fatalf("balance %d", card.Balance())
	}
}

func TestTransactionLog(t *testing.T) {
	card := newSSC(t, gen3Spec(), Options{})
	psam := newPSAM(t, Options{})
	v := verifierFor(t, card)
	purchase(t, card, psam, 10, "20240105", "120000")
	for i := range 11 {
		load(t, card, v, uint32(i+1), "330100000002", "20240105", "120100")
	}
	log := card.Log()
	if len(log) != 10 || log[0].Amount != 11 || log[0].Type != 0x02 || log[9].Amount != 2 {
		t.Fatalf("log %+v", log)
	}
	mustOK(t, card, selSSSE)
	rec := mustOK(t, card, "00B201C417")
	if hexUp(rec) != "000A000000"+"0000000B"+"02"+"330100000002"+"20240105"+"120100" {
		t.Fatalf("log record 1 %s", hexUp(rec))
	}
	if _, sw := run(t, card, "00B20BC417"); sw != 0x6A83 {
		t.Fatalf("record 11: %04X", sw)
	}
}

func TestCounterMax(t *testing.T) {
	card := newSSC(t, gen3Spec(), Options{})
	card.st.Purses[1].OnlineSeq = 0xFFFF
	card.st.Purses[1].OfflineSeq = 0xFFFF
	mustOK(t, card, verifyOK)
	if _, sw := run(t, card, "805000020B010000000100000000000110"); sw != 0x9402 {
		t.Fatalf("load at max counter: %04X", sw)
	}
	if _, sw := run(t, card, "805001020B01000000010000000000010F"); sw != 0x9402 {
		t.Fatalf("purchase at max counter: %04X", sw)
	}
}

// TestStateWriteFailure: a change the card cannot persist is not applied.
func TestStateWriteFailure(t *testing.T) {
	card := newSSC(t, gen3Spec(), Options{StatePath: "/nonexistent-onecard-dir/card.state.json"})
	if _, sw := run(t, card, "0020000003111111"); sw != 0x6581 {
		t.Fatalf("wrong PIN with unwritable state: %04X, want 6581", sw)
	}
	if card.PINTriesLeft() != 3 {
		t.Fatalf("tries %d after failed write", card.PINTriesLeft())
	}
}

func TestConcurrentUse(t *testing.T) {
	card := newSSC(t, gen3Spec(), Options{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 200 {
			card.PowerOff()
			card.PowerOn()
		}
	}()
	for range 200 {
		resp, err := card.Transmit(unhex(t, "00B2012C12"))
		if err == nil && len(resp) < 2 {
			t.Fatal("short response")
		}
		_ = card.Balance()
	}
	<-done
}
