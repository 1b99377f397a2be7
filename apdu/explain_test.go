package apdu

import (
	"errors"
	"strings"
	"testing"
)

func TestExplain(t *testing.T) {
	tests := []struct {
		name    string
		hex     string
		kind    Kind
		want    []string
		notWant []string
	}{
		{"SELECT SSSE", "00A404000F7378312E73682EC9E7BBE1B1A3D5CF", KindAuto,
			[]string{"command APDU (case 3, short)", "SELECT", "by DF name", "the SSSE application", `"sx1.sh.社会保障"`, "Lc   0F", "Le   absent"}, nil},
		{"SELECT SSSE with Le", "00A404000F7378312E73682EC9E7BBE1B1A3D5CF00", KindAuto,
			[]string{"case 4, short", "SSSE", "Ne 256"}, nil},
		{"63C2", "63C2", KindAuto,
			[]string{"response APDU", "63C2", "verification failed, 2 tries left", "校验失败，还可尝试2次", "PIN", "-25538", "data (none)"}, nil},
		{"VERIFY masks the PIN", "0020000003123456", KindAuto,
			[]string{"VERIFY", "PIN block: ****** (3 bytes)", "global PIN"}, []string{"123456", "12 34 56"}},
		{"VERIFY without data", "00200000", KindAuto, []string{"VERIFY", "case 1", "tries left"}, nil},
		{"CHANGE PIN masks both PINs", "805E010007123456FF654321", KindAuto,
			[]string{"CHANGE PIN", "old PIN FF new PIN", "************** (7 bytes)"}, []string{"123456", "654321"}},
		{"RELOAD PIN", "805E000003123456", KindAuto, []string{"RELOAD PIN"}, []string{"123456"}},
		{"PIN UNBLOCK masked", "8424000114" + strings.Repeat("A5", 20), KindAuto,
			[]string{"PIN UNBLOCK", "(20 bytes)"}, []string{"A5A5A5"}},
		{"CHANGE REFERENCE DATA masked", "0024000005 1122334455", KindAuto,
			[]string{"CHANGE REFERENCE DATA"}, []string{"112233"}},
		{"SELECT EF05", "00A4020002EF05", KindAuto, []string{"SELECT file EF05", "发卡机构数据", "EF under the current DF"}, nil},
		{"SELECT MF", "00A40000023F00", KindAuto, []string{"MF (master file)"}, nil},
		{"SELECT PSAM DF01", "00A4040006D15600000590", KindAuto, []string{"the PSAM application DF01"}, nil},
		{"SELECT DF04", "00A4040006D15600000503", KindAuto, []string{"DF04", "medical insurance"}, nil},
		{"SELECT PSAM SSF33", "00A404000F7378322E73682EC9E7BBE1B1A3D5CF", KindAuto, []string{`"sx2.sh.社会保障"`, "SSF33"}, nil},
		{"SELECT unknown MOHRSS AID", "00A4040006D1560000050A", KindAuto, []string{"RID D156000005", "application 0A"}, nil},
		{"READ RECORD via SFI", "00B2072C0B", KindAuto,
			[]string{"READ RECORD", "record number 7", "SFI 5 (EF05)", "card number (卡号, EF05)", "Ne 11"}, nil},
		{"READ RECORD by identifier", "00B2070010", KindAuto,
			[]string{"record identifier (tag) 07", "first occurrence", "card number", "normally 11 bytes"}, nil},
		{"READ RECORD name extension", "00B24E0016", KindAuto, []string{"name extension (姓名扩展, EF06)"}, nil},
		{"READ BINARY SFI", "00B0880000", KindAuto, []string{"READ BINARY", "short file identifier 8 (EF08)"}, nil},
		{"GET CHALLENGE", "0084000008", KindAuto, []string{"GET CHALLENGE", "case 2, short", "random of 8 bytes"}, nil},
		{"INTERNAL AUTHENTICATE", "0088000010" + strings.Repeat("11", 16), KindAuto, []string{"INTERNAL AUTHENTICATE", "16 bytes"}, nil},
		{"EXTERNAL AUTHENTICATE RKSSSE", "0082000A10" + strings.Repeat("22", 16), KindAuto,
			[]string{"EXTERNAL AUTHENTICATE", "RKSSSE", "key identifier 0A"}, nil},
		{"GET RESPONSE", "00C0000008", KindAuto, []string{"GET RESPONSE", "fetch 8 bytes"}, nil},
		{"INITIALIZE FOR LOAD (§6)", "805000010B0100001000001122334455 10", KindAuto,
			[]string{"INITIALIZE FOR LOAD", "PBOC e-purse", "load (圈存)", "electronic deposit ED", "amount 00001000 = 4096 fen (40.96 yuan)", "terminal number 001122334455", "key index 01"}, nil},
		{"INITIALIZE FOR PURCHASE", "805001020B01000003E8001122334455 0F", KindAuto,
			[]string{"INITIALIZE FOR PURCHASE", "10.00 yuan", "electronic purse EP (电子钱包)"}, nil},
		{"INITIALIZE FOR CAPP PURCHASE", "805003020B01000003E8001122334455 0F", KindAuto,
			[]string{"INITIALIZE FOR CAPP PURCHASE", "复合消费"}, nil},
		{"DEBIT FOR PURCHASE (§6)", "805401000F 00000001 20120229 135100 F15CAB75 08", KindAuto,
			[]string{"DEBIT FOR PURCHASE", "terminal transaction sequence 00000001", "date 20120229", "time 135100", "MAC1 F15CAB75"}, nil},
		{"CREDIT FOR LOAD (§6)", "805200000B 20111221 214822 3A845BF0 04", KindAuto,
			[]string{"CREDIT FOR LOAD", "date 20111221", "MAC2 3A845BF0"}, nil},
		{"GET BALANCE", "805C000204", KindAuto, []string{"GET BALANCE", "electronic purse EP", "balance in fen"}, nil},
		{"GET TRANSACTION PROOF", "805A000602000108", KindAuto, []string{"GET TRANSACTION PROOF", "EP purchase", "transaction sequence 0001"}, nil},
		{"INIT SAM FOR PURCHASE", "807000001C 11223344 0000 00001000 06 20120229 135100 02 00 0000000000000001 08", KindAuto,
			[]string{"INIT SAM FOR PURCHASE", "card random 11223344", "transaction type 06", "date 20120229", "card application serial 0000000000000001"}, []string{"unexpected"}},
		{"CREDIT SAM FOR PURCHASE", "8072000004F15CAB75", KindAuto, []string{"CREDIT SAM FOR PURCHASE", "MAC2 F15CAB75"}, nil},
		{"INIT FOR DESCRYPT", "801A2801080102030405060708", KindAuto,
			[]string{"INIT FOR DESCRYPT", "MAC and encryption key, 1 diversification levels", "1 levels"}, nil},
		{"DES CRYPT", "80FA0000081122334455667788", KindAuto, []string{"DES CRYPT", "encrypt"}, nil},
		{"APPLICATION BLOCK", "841E000004AABBCCDD", KindAuto,
			[]string{"APPLICATION BLOCK", "common in PBOC", "unconfirmed", "secure messaging"}, nil},
		{"vendor PSAM", "BFDE485D18" + strings.Repeat("00", 24), KindAuto, []string{"vendor-specific", "key usage 48"}, nil},
		{"unknown instruction", "00120000", KindAuto, []string{"unknown instruction 12"}, nil},
		{"extended case 2", "00B00000000101", KindAuto, []string{"case 2, extended", "Ne 257", "Le   000101"}, nil},
		{"record response", "0110639900D15600000500BF7C7A48FB4966 9000", KindAuto,
			[]string{"response APDU: SW 9000", "卡识别码", `"639900D15600000500BF7C7A48FB4966"`, "issuing area 639900", "RID D156000005"}, nil},
		{"version response", "0304332E3030 9000", KindAuto, []string{`specification version (规范版本, EF05) = "3.00"`}, nil},
		{"FCI response", fciSSSE + "9000", KindAuto, []string{"6F FCI template", "84 DF name", "sx1.sh.社会保障", "9F0C", "= 860103"}, nil},
		{"sex response", "0A0132 9000", KindAuto, []string{`sex (性别, EF06) = "2"`, "female (女)"}, nil},
		{"6A82", "6A82", KindAuto, []string{"file or application not found", "未找到文件", "-27266"}, nil},
		{"9401", "9401", KindAuto, []string{"insufficient balance", "金额不足", "-37889"}, nil},
		{"6108", "6108", KindAuto, []string{"00C0000008"}, nil},
		{"6C0B", "6C0B", KindAuto, []string{"Le 0B"}, nil},
		{"3-byte response", "AB9000", KindAuto, []string{"response APDU", "data AB (1 bytes)"}, nil},
		{"implausible 2-byte", "1234", KindAuto, []string{"unknown status word", "not a valid ISO 7816-4 status word"}, nil},
		{"ambiguous, unknown INS: response", "AABBCC9000", KindAuto,
			[]string{"response APDU", "also form a valid command APDU"}, nil},
		{"ambiguous, known INS: command", "00B2010C019000", KindAuto,
			[]string{"command APDU", "READ RECORD", "also form a valid response APDU ending in SW 9000"}, nil},
		{"forced response", "0084000008", KindResponse, []string{"response APDU", "SW 0008", "not a valid"}, nil},
		{"forced command", "AABBCC9000", KindCommand, []string{"command APDU (case 2, short)"}, []string{"note:"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Explain(mustHex(t, tt.hex), tt.kind)
			if err != nil {
				t.Fatalf("Explain: %v", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("missing %q in\n%s", w, got)
				}
			}
			for _, w := range tt.notWant {
				if strings.Contains(got, w) {
					t.Errorf("unexpected %q in\n%s", w, got)
				}
			}
		})
	}
}

func TestExplainErrors(t *testing.T) {
	tests := []struct {
		hex  string
		kind Kind
		want error
	}{
		{"", KindAuto, ErrNotAPDU},
		{"90", KindAuto, ErrNotAPDU},
		{"FF00000000 1234", KindAuto, ErrNotAPDU},
		{"00A4040005AABB 1234", KindAuto, ErrNotAPDU},
		{"63C2", KindCommand, ErrMalformedCommand},
		{"00A4040005AABB", KindCommand, ErrMalformedCommand},
		{"90", KindResponse, ErrMalformedResponse},
	}
	for _, tt := range tests {
		if s, err := Explain(mustHex(t, tt.hex), tt.kind); !errors.Is(err, tt.want) {
			t.Errorf("Explain(%s, %d) = %q, %v; want %v", tt.hex, tt.kind, s, err, tt.want)
		}
	}
	if _, err := Explain([]byte{0x90, 0x00}, Kind(9)); err == nil {
		t.Error("Explain with an unknown Kind succeeded")
	}
}

func TestExplainResponseWithCommand(t *testing.T) {
	tests := []struct {
		cmd, resp string
		want      []string
	}{
		{"805C000204", "000003E8 9000", []string{"balance 1000 fen (10.00 yuan)"}},
		{"0020000003123456", "63C1", []string{"the PIN was wrong", "1 tries left"}},
		{"0082000A10" + strings.Repeat("22", 16), "63C0", []string{"cryptogram (key) was wrong", "blocked"}},
		{"805000010B0100001000001122334455 10", "00000000 0000 02 00 11223344 2988AE5A 9000",
			[]string{"balance 00000000 = 0 fen", "online sequence 0000", "key version 02", "random 11223344", "MAC1 2988AE5A"}},
		{"805001020B01000003E8001122334455 0F", "000003E8 0001 000000 01 00 11223344 9000",
			[]string{"offline sequence 0001", "pseudo-random 11223344"}},
		{"805401000F0000000120120229135100F15CAB7508", "AABBCCDD 11223344 9000", []string{"TAC AABBCCDD", "MAC2 11223344"}},
		{"0084000008", "0102030405060708 9000", []string{"card random number (8 bytes)"}},
		{"00B2090000", "0908C9E7BBE1B1A3D5CF 9000", []string{`name (姓名, EF06) = "社会保障"`}},
		{"00B2052C00", "0504 20230229 9000", []string{"issue date", "not a calendar date"}},
	}
	for _, tt := range tests {
		c, err := ParseCommand(mustHex(t, tt.cmd))
		if err != nil {
			t.Fatal(err)
		}
		r, _ := ParseResponse(mustHex(t, tt.resp))
		got := ExplainResponse(r, &c)
		for _, w := range tt.want {
			if !strings.Contains(got, w) {
				t.Errorf("%s → %s: missing %q in\n%s", tt.cmd, tt.resp, w, got)
			}
		}
	}
}

func TestCommandNameAndSensitive(t *testing.T) {
	tests := []struct {
		hex       string
		name      string
		sensitive bool
	}{
		{"00A4020002EF05", "SELECT", false},
		{"0020000003123456", "VERIFY", true},
		{"805E010007123456FF654321", "CHANGE PIN", true},
		{"805E000003123456", "RELOAD PIN", true},
		{"8424000104AABBCCDD", "PIN UNBLOCK", true},
		{"002C000003123456", "RESET RETRY COUNTER", true},
		{"805002020B0100001000001122334455", "INITIALIZE FOR TRANSACTION", false},
		{"805001020B0100001000001122334455", "INITIALIZE FOR PURCHASE", false},
		{"8020000003123456", "VERIFY", true}, // unusual class, still masked
		{"00990000", "INS 99", false},
	}
	for _, tt := range tests {
		c, err := ParseCommand(mustHex(t, tt.hex))
		if err != nil {
			t.Fatal(err)
		}
		if n := CommandName(c); n != tt.name {
			t.Errorf("CommandName(%s) = %q, want %q", tt.hex, n, tt.name)
		}
		if s := Sensitive(c); s != tt.sensitive {
			t.Errorf("Sensitive(%s) = %v", tt.hex, s)
		}
		if tt.sensitive && strings.Contains(ExplainCommand(c), "123456") {
			t.Errorf("ExplainCommand(%s) shows the PIN", tt.hex)
		}
	}
}
