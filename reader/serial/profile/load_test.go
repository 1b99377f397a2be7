package profile

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func shippedFile(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "..", "firmware-profiles", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// lineOf returns the 1-based line where sub starts in s.
func lineOf(t *testing.T, s, sub string) int {
	t.Helper()
	i := strings.Index(s, sub)
	if i < 0 {
		t.Fatalf("%q not in the file", sub)
	}
	return strings.Count(s[:i], "\n") + 1
}

// Each mutation of a valid profile must be rejected with an error that
// names the file, the exact line and the key path.
func TestProfileLoadErrorsAreLinePrecise(t *testing.T) {
	cases := []struct {
		name      string
		old, new  string
		at        string // text whose line the error must name (in the mutated file)
		path, msg string
	}{
		{"undeclared slot", "    psam*: {cm: 0x4A, pm: 0x31, reply: [status]}", "    psam9: {cm: 0x4A, pm: 0x31, reply: [status]}",
			"psam9: {cm: 0x4A", "ops.power_off.psam9", "unknown slot psam9"},
		{"unknown top-level key", "quirks:\n", "quirk_list: 1\nquirks:\n", "quirk_list", "quirk_list", "unknown key"},
		{"unknown nested key", "  data_bits: 8\n", "  data_bits: 8\n  databits: 8\n", "databits", "transport.databits", "unknown key"},
		{"enum", "parity: none", "parity: mark", "parity: mark", "transport.parity", `"mark" is not one of none, even, odd`},
		{"checksum algo", "algo: xor8", "algo: crc32", "algo: crc32", "framing.checksum.algo", "not one of"},
		{"checksum width", "algo: xor8, from: start, to: end, width: 1", "algo: xor8, from: start, to: end, width: 2", "algo: xor8", "framing.checksum.width", "xor8 is 1 byte(s) wide"},
		{"status letter outcome", `"W": card_mispositioned`, `"W": mispositioned`, `"W": mispositioned`, "status_letters.W", "neither ok"},
		{"error condition", "0x07: power_fault", "0x07: brownout", "0x07: brownout", "errors.0x07", `unknown condition "brownout"`},
		{"binary error code", "0x07: power_fault", "0x107: power_fault", "0x107", "errors.0x107", "1-byte hex code"},
		{"missing op", "  beep: unsupported\n", "", "ops:\n", "ops", "operation beep is missing"},
		{"unknown op", "  beep: unsupported\n", "  beep: unsupported\n  buzz: unsupported\n", "buzz", "ops.buzz", "unknown operation"},
		{"apdu without apdu item", "user: {cm: 0x37, pm: {T0: 0x31, T1: 0x32}, data: [apdu]", "user: {cm: 0x37, pm: {T0: 0x31, T1: 0x32}, data: []",
			"user: {cm: 0x37, pm: {T0: 0x31", "ops.apdu.user.data", "must carry an apdu item"},
		{"rest item not last", "reply: [slot, status, rapdu]}", "reply: [slot, status, {rapdu: rest}, status]}", "reply: [slot, status, {rapdu", "ops.apdu.psam*.reply[2]", "must be the last item"},
		{"slot item on the user slot", "user: {cm: 0x33, pm: 0x31, reply: [status]}", "user: {cm: 0x33, pm: 0x31, data: [slot], reply: [status]}",
			"user: {cm: 0x33, pm: 0x31, data: [slot]", "ops.power_off.user.data[0]", "slot user has no wire code"},
		{"duplicate wire code", "psam2: {kind: sam, wire: 0x31}", "psam2: {kind: sam, wire: 0x30}", "psam2: {kind: sam, wire: 0x30}", "slots.psam2.wire", "already used by psam1"},
		{"byte out of range", "cm: 0x46, pm: 0x31", "cm: 0x46, pm: 0x131", "pm: 0x131", "ops.led_off.pm", "outside 0..255"},
		{"to end without end marker", `  end: "03"`, `  end: none`, "to: end", "framing.checksum.to", "no end marker"},
		{"bad hex", `rx: "02 00 05 31 30 4E 30 30 03 4B"`, `rx: "02 00 05 31 30 4E 30 30 03 4"`, `rx: "02 00 05 31 30 4E 30 30 03 4"`, "tests[2].rx", "bad hex"},
		{"test on an unknown slot", "    slot: psam2\n", "    slot: psam12\n", "slot: psam12", "tests[11].slot", "unknown slot psam12"},
		{"init op unsupported", "init: [reset_reader]", "init: [beep]", "init: [beep]", "init[0]", "unsupported"},
		{"schema", "schema: reader-profile/v1", "schema: reader-profile/v9", "schema:", "schema", "unsupported schema"},
		{"ack equals start byte", "ack: 0x06", "ack: 0x02", "ack: 0x02", "link.ack", "also the frame start byte"},
		{"negative head collides with a cm", "capture: {cm: 0x32, pm: 0x33", "capture: {cm: 0x4E, pm: 0x33", "capture: {cm: 0x4E", "ops.capture", "equals a negative head"},
	}
	base := shippedFile(t, "crt310.yaml")
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if strings.Count(base, c.old) != 1 {
				t.Fatalf("mutation anchor %q occurs %d times", c.old, strings.Count(base, c.old))
			}
			text := strings.Replace(base, c.old, c.new, 1)
			_, err := Parse("crt310.yaml", []byte(text))
			var list ErrorList
			if !errors.As(err, &list) {
				t.Fatalf("Parse: %v, want an ErrorList", err)
			}
			want := fmt.Sprintf("crt310.yaml:%d: %s: ", lineOf(t, text, c.at), c.path)
			for _, e := range list {
				if strings.HasPrefix(e.Error(), want) && strings.Contains(e.Msg, c.msg) {
					return
				}
			}
			t.Errorf("no error %q…%q in:\n%v", want, c.msg, err)
		})
	}
}

func TestProfileLoadInvalidYAML(t *testing.T) {
	_, err := Parse("x.yaml", []byte("schema: reader-profile/v1\nid: [unclosed\n"))
	if err == nil || !strings.HasPrefix(err.Error(), "x.yaml:") || !strings.Contains(err.Error(), "invalid YAML") {
		t.Errorf("Parse: %v", err)
	}
	for _, in := range []string{"", "just a string", "- a\n- list\n"} {
		if _, err := Parse("x.yaml", []byte(in)); err == nil {
			t.Errorf("Parse(%q) succeeded", in)
		}
	}
}

// Billion-laughs style aliases are cut off, not expanded.
func TestProfileLoadAliasBomb(t *testing.T) {
	var b strings.Builder
	b.WriteString("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n")
	for i := 1; i < 9; i++ {
		fmt.Fprintf(&b, "a%d: &a%d [*a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d]\n", i, i, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1)
	}
	b.WriteString("notes: *a8\n")
	_, err := Parse("bomb.yaml", []byte(b.String()))
	if err == nil {
		t.Fatal("alias bomb accepted")
	}
}

// A golden frame that does not match what the engine produces is reported
// with the test's line and the exchange's line.
func TestProfileCheckReportsMismatchByLine(t *testing.T) {
	base := shippedFile(t, "crt310.yaml")
	for _, c := range []struct{ old, new, msg string }{
		{`tx: "02 00 02 31 30 03 02"`, `tx: "02 00 02 31 31 03 03"`, "tx: encoded 02 00 02 31 30 03 02"},
		{`rx: "02 00 05 31 30 4B 30 30 03 4E"`, `rx: "02 00 05 31 30 4B 30 30 03 4F"`, "checksum"},
		{`rx: "02 00 05 31 30 4B 30 30 03 4E"`, `rx: "02 00 05 31 30 4A 30 30 03 4F"`, "position inside, want at_contacts"},
	} {
		text := strings.Replace(base, c.old, c.new, 1)
		p, err := Parse("crt310.yaml", []byte(text))
		if err != nil {
			t.Fatal(err)
		}
		_, err = p.Check()
		var list ErrorList
		if !errors.As(err, &list) || len(list) != 1 {
			t.Fatalf("Check: %v, want one error", err)
		}
		want := fmt.Sprintf("crt310.yaml:%d: tests[1]: line %d:", lineOf(t, text, `  - name: "status, worked frame`), lineOf(t, text, c.new))
		if !strings.HasPrefix(list[0].Error(), want) || !strings.Contains(list[0].Error(), c.msg) {
			t.Errorf("Check error %q, want prefix %q and %q", list[0], want, c.msg)
		}
	}
}

func TestProfileShippedProfilesCheck(t *testing.T) {
	for _, name := range []string{"crt310.yaml", "crt591.yaml", "ict3q8.yaml"} {
		p, err := Parse(name, []byte(shippedFile(t, name)))
		if err != nil {
			t.Fatal(err)
		}
		n, err := p.Check()
		if err != nil {
			t.Errorf("%s: %v", name, err)
		}
		if n == 0 {
			t.Errorf("%s: no golden frames", name)
		}
	}
}
