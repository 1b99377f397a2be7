package simcard

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/onecard-hub/onecard/sm"
)

func TestPSAMCommands(t *testing.T) {
	initPurchase := "807000001C" + "11223344" + "0000" + "00000064" + "06" + "20240101120000" + "01" + "04" + "1122334455667788" + "08"
	cases := []struct {
		name  string
		setup []string
		cmd   string
		sw    uint16
		data  string
	}{
		{"select DF01", nil, selPSAM + "00", 0x9000, "6F088406D15600000590"},
		{"select MF", nil, "00A40000023F00", 0x9000, "*19"},
		{"select DDF1", nil, "00A4000C02DDF1", 0x9000, ""},
		{"select sx1 by name", nil, selSSSE, 0x9000, "*19"},
		{"select sx2 by name", nil, "00A404000F7378322E73682EC9E7BBE1B1A3D5CF", 0x9000, "*19"},
		{"select unknown", nil, "00A4040006D15600000591", 0x6A82, ""},
		{"select bad P1", nil, "00A4010002DDF1", 0x6A86, ""},
		{"read terminal by SFI", nil, "00B0960006", 0x9000, "330100000001"},
		{"read terminal offset", nil, "00B0960303", 0x9000, "000001"},
		{"read terminal after select", []string{"00A40000020016"}, "00B0000006", 0x9000, "330100000001"},
		{"read without EF", nil, "00B0000006", 0x6986, ""},
		{"read other SFI", nil, "00B0970006", 0x6A82, ""},
		{"read past end", nil, "00B0960606", 0x6A86, ""},
		{"init purchase outside DF01", nil, initPurchase, 0x6985, ""},
		{"init purchase", []string{selPSAM}, initPurchase, 0x9000, "*8"},
		{"init purchase two factors", []string{selPSAM}, "8070000024" + initPurchase[10:len(initPurchase)-2] + "8877665544332211" + "08", 0x9000, "*8"},
		{"init purchase short", []string{selPSAM}, "807000001B" + initPurchase[10:len(initPurchase)-4], 0x6700, ""},
		{"init purchase bad alg", []string{selPSAM}, initPurchase[:48] + "07" + initPurchase[50:], 0x9403, ""},
		{"init purchase bad key version", []string{selPSAM}, initPurchase[:46] + "02" + initPurchase[48:], 0x9403, ""},
		{"init purchase bad type", []string{selPSAM}, initPurchase[:30] + "02" + initPurchase[32:], 0x6A80, ""},
		{"init purchase bad P1", []string{selPSAM}, "807001001C" + initPurchase[10:], 0x6A86, ""},
		{"init purchase short Le", []string{selPSAM}, initPurchase[:len(initPurchase)-2] + "04", 0x6700, ""},
		{"credit SAM without session", []string{selPSAM}, "8072000004AABBCCDD", 0x6901, ""},
		{"credit SAM wrong MAC2", []string{selPSAM, initPurchase}, "8072000004AABBCCDD", 0x9302, ""},
		{"credit SAM short", []string{selPSAM}, "8072000003AABBCC", 0x6700, ""},
		{"descrypt outside DF01", nil, "801A2703081122334455667788", 0x6985, ""},
		{"descrypt unknown usage", []string{selPSAM}, "801A2603081122334455667788", 0x6A88, ""},
		{"descrypt unknown alg flag", []string{selPSAM}, "801A2702081122334455667788", 0x6A88, ""},
		{"descrypt level mismatch", []string{selPSAM}, "801A4703081122334455667788", 0x6700, ""},
		{"descrypt ok", []string{selPSAM}, "801A2703081122334455667788", 0x9000, ""},
		{"crypt without key", []string{selPSAM}, "80FA00001000112233445566778899AABBCCDDEEFF", 0x6985, ""},
		{"crypt SM4", []string{selPSAM, "801A2803081122334455667788"}, "80FA00001000112233445566778899AABBCCDDEEFF", 0x9000, "*16"},
		{"crypt partial block", []string{selPSAM, "801A2803081122334455667788"}, "80FA0000080011223344556677", 0x6700, ""},
		{"crypt 3DES", []string{selPSAM, "801A2801081122334455667788"}, "80FA0000080011223344556677", 0x9000, "*8"},
		{"crypt MAC", []string{selPSAM, "801A2101081122334455667788"}, "80FA05000C" + "1122334400000000" + "841E0000", 0x9000, "*4"},
		{"crypt bad P1", []string{selPSAM, "801A2101081122334455667788"}, "80FA0100080011223344556677", 0x6A86, ""},
		{"unknown INS", nil, "80FF000000", 0x6D00, ""},
		{"unknown CLA", nil, "A0A4000000", 0x6E00, ""},
		{"malformed", nil, "80", 0x6700, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := newPSAM(t, Options{})
			p.SetProtocol(T1)
			p.PowerOn()
			for _, s := range tc.setup {
				mustOK(t, p, s)
			}
			data, sw := raw(t, p, tc.cmd)
			if sw != tc.sw {
				t.Fatalf("SW %04X, want %04X", sw, tc.sw)
			}
			if len(tc.data) > 0 && tc.data[0] == '*' {
				var n int
				fmt.Sscanf(tc.data[1:], "%d", &n)
				if len(data) != n {
					t.Fatalf("%d bytes, want %d", len(data), n)
				}
			} else if !equalHex(data, tc.data) {
				t.Fatalf("data %s, want %s", hexUp(data), tc.data)
			}
		})
	}
}

// TestPSAMCryptography recomputes the PSAM's answers from the key set.
func TestPSAMCryptography(t *testing.T) {
	ks := keySet(t)
	p := newPSAM(t, Options{})
	mustOK(t, p, selPSAM)
	f1, f2 := unhex(t, "1122334455667788"), unhex(t, "8877665544332211")
	for _, tc := range []struct {
		name    string
		factors [][]byte
	}{{"one level", [][]byte{f1}}, {"two levels", [][]byte{f1, f2}}} {
		t.Run(tc.name, func(t *testing.T) {
			seq := p.NextSeq()
			body := "11223344" + "0003" + "00000064" + "06" + "20240101" + "120000" + "01" + "04" + hexUp(bytes.Join(tc.factors, nil))
			out := mustOK(t, p, fmt.Sprintf("80700000%02X%s08", len(body)/2, body))
			master, _ := ks.Master(sm.AlgSM4, sm.KeyDPK)
			dpk, _ := sm.SuiteSM4.Diversify(master, tc.factors...)
			termSeq := out[0:4]
			key, _ := sm.SuiteSM4.PurchaseSessionKey(dpk, unhex(t, "11223344"), unhex(t, "0003"), termSeq[2:4])
			mac1, _ := sm.SuiteSM4.MAC(key, nil, unhex(t, "00000064"+"06"+"330100000001"+"20240101"+"120000"))
			if !bytes.Equal(out[4:8], mac1) || !bytes.Equal(termSeq, be32(seq)) {
				t.Fatalf("PSAM answer % X, want seq %08X MAC1 % X", out, seq, mac1)
			}
			mac2, _ := sm.SuiteSM4.MAC(key, nil, unhex(t, "00000064"))
			mustOK(t, p, "8072000004"+hexUp(mac2))
			if _, sw := run(t, p, "8072000004"+hexUp(mac2)); sw != 0x6901 {
				t.Fatalf("second CREDIT SAM: %04X", sw)
			}
		})
	}
	// DES CRYPT MAC with an initial value, 3DES STK (application block).
	mustOK(t, p, "801A2101"+"08"+hexUp(f1))
	got := mustOK(t, p, "80FA05000D"+"1122334400000000"+"841E000004")
	master, _ := ks.Master(sm.Alg3DES, sm.KeySTK)
	stk, _ := sm.Suite3DES.Diversify(master, f1)
	want, _ := sm.Suite3DES.MAC(stk, unhex(t, "1122334400000000"), unhex(t, "841E000004"))
	if !bytes.Equal(got, want) {
		t.Fatalf("DES CRYPT MAC % X, want % X", got, want)
	}
}

func TestPSAMT0AndPersistence(t *testing.T) {
	path := copyCardFile(t, "psam.yaml")
	c, err := LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	p := c.(*PSAM)
	atr := p.PowerOn()
	if atr[0] != 0x3B || atr[1] != 0x6C {
		t.Fatalf("PSAM ATR % X", atr)
	}
	if p.TerminalNumber() != "330100000001" {
		t.Fatalf("terminal %s", p.TerminalNumber())
	}
	if _, sw := raw(t, p, selPSAM+"00"); sw != 0x610A {
		t.Fatalf("T=0 select: %04X", sw)
	}
	if _, sw := raw(t, p, "00B0960000"); sw != 0x6C06 {
		t.Fatalf("T=0 read Le=00: %04X", sw)
	}
	card := newSSC(t, gen3Spec(), Options{Keys: mustTestKeys(t, "demo")})
	purchase(t, card, p, 5, "20240101", "000001")
	purchase(t, card, p, 5, "20240101", "000002")
	if p.NextSeq() != 3 {
		t.Fatalf("next seq %d", p.NextSeq())
	}
	c2, err := LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if c2.(*PSAM).NextSeq() != 3 {
		t.Fatalf("next seq after reload %d", c2.(*PSAM).NextSeq())
	}
}
