package main

import (
	"regexp"
	"strings"
	"testing"
)

func TestAPDUSendCommand(t *testing.T) {
	ssc, psam := rdCard(t, "ssc-gen2.yaml"), rdCard(t, "psam.yaml")
	atr := atrHex(psam)
	rdPCSC(t, ssc, psam)
	const selectSSSE = "00A404000F7378312E73682EC9E7BBE1B1A3D5CF"

	t.Run("T=0 chaining", func(t *testing.T) {
		code, out, errOut := rdRun(t, "apdu", "--reader", "Virtual PCD 00 00", selectSSSE, "00A4020002EF05", "00 B2 01 04 00")
		if code != 0 {
			t.Fatalf("exit %d: %s\n%s", code, errOut, out)
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 10 || !strings.HasPrefix(lines[0], "# pcsc:Virtual PCD 00 00 ATR 3B") {
			t.Fatalf("output:\n%s", out)
		}
		// SELECT answered 61xx; Exchange fetched the FCI.
		if lines[1] != "> 00 A4 04 00 0F 73 78 31 2E 73 68 2E C9 E7 BB E1 B1 A3 D5 CF" ||
			!strings.HasPrefix(lines[2], "< 6F ") || !strings.HasSuffix(lines[2], " 90 00") ||
			!strings.HasPrefix(lines[3], "  SW 9000: ") {
			t.Fatalf("SELECT lines:\n%s", strings.Join(lines[1:4], "\n"))
		}
		// READ RECORD with Le 00 answered 6Cxx; Exchange resent it.
		if lines[7] != "> 00 B2 01 04 00" || !regexp.MustCompile(`^< 01 [0-9A-F]{2}( [0-9A-F]{2})* 90 00$`).MatchString(lines[8]) {
			t.Fatalf("READ RECORD lines:\n%s", strings.Join(lines[7:], "\n"))
		}
	})

	t.Run("raw shows 61xx", func(t *testing.T) {
		code, out, errOut := rdRun(t, "apdu", "--reader", "pcsc:Virtual PCD 00 00", "--raw", selectSSSE)
		if code != 0 || !regexp.MustCompile(`(?m)^< 61 [0-9A-F]{2}\n  SW 61[0-9A-F]{2}: `).MatchString(out) {
			t.Fatalf("exit %d: %s\n%s", code, errOut, out)
		}
	})

	t.Run("slot by reader and number, PIN masked, trace", func(t *testing.T) {
		code, out, errOut := rdRun(t, "apdu", "--reader", "virtual pcd", "--slot", "1", "--trace",
			selectSSSE, "0020000003123456")
		if code != 0 {
			t.Fatalf("exit %d: %s\n%s", code, errOut, out)
		}
		if !strings.HasPrefix(out, "# pcsc:Virtual PCD 00 01 ATR "+spacedHex(atr)+"\n") {
			t.Fatalf("not the PSAM slot:\n%s", out)
		}
		if !strings.Contains(out, "> 00 20 00 00 03 ** ** **\n") {
			t.Fatalf("VERIFY not masked:\n%s", out)
		}
		for _, s := range []string{out, errOut} {
			if strings.Contains(s, "12 34 56") || strings.Contains(s, "123456") {
				t.Fatalf("PIN printed:\n%s", s)
			}
		}
		for _, want := range []string{"trace: pcsc:Virtual PCD 00 01 connect", "trace: pcsc:Virtual PCD 00 01 begin",
			"transmit 00 C0 00 00", "transmit 00 20 00 00 03 ** ** ** ->", "trace: pcsc:Virtual PCD 00 01 end"} {
			if !strings.Contains(errOut, want) {
				t.Errorf("trace lacks %q:\n%s", want, errOut)
			}
		}
	})

	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"empty reader", []string{"--reader", "", selectSSSE}, 2, "missing --reader"},
		{"no APDU", []string{"--reader", "x"}, 2, "missing APDU"},
		{"bad hex", []string{"--reader", "x", "00A4G0"}, 2, "not a hex digit"},
		{"short APDU", []string{"--reader", "x", "00 A4 04"}, 2, "at least 4"},
		{"unknown reader", []string{"--reader", "no such reader", selectSSSE}, 1, `no reader matches "no such reader"`},
		{"ambiguous", []string{"--reader", "Virtual", selectSSSE}, 1, "matches several slots (pcsc:Virtual PCD 00 00, pcsc:Virtual PCD 00 01)"},
		{"slot out of range", []string{"--reader", "Virtual", "--slot", "2", selectSSSE}, 1, "has no slot 2"},
		{"malformed for Exchange", []string{"--reader", "Virtual PCD 00 00", "00A4040005AABB"}, 1, "--raw"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := rdRun(t, append([]string{"apdu"}, tc.args...)...)
			if code != tc.code || !strings.Contains(errOut, tc.want) {
				t.Fatalf("exit %d (want %d), stderr %q lacks %q; stdout %q", code, tc.code, errOut, tc.want, out)
			}
		})
	}
}

func spacedHex(s string) string {
	var parts []string
	for i := 0; i+1 < len(s); i += 2 {
		parts = append(parts, s[i:i+2])
	}
	return strings.Join(parts, " ")
}
