package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/onecard-hub/onecard/apdu"
	firmwareprofiles "github.com/onecard-hub/onecard/firmware-profiles"
	"github.com/onecard-hub/onecard/reader/serial"
	"github.com/onecard-hub/onecard/reader/serial/profile"
	"github.com/onecard-hub/onecard/reader/virtual"
)

const selectSSSEHex = "00A404000F7378312E73682EC9E7BBE1B1A3D5CF"

// rdSerial serves an emulator of profile p with cards on a new pty and
// returns the pty's device path.
func rdSerial(t *testing.T, p *profile.Profile, cards map[string]virtual.Card) string {
	t.Helper()
	emu, err := serial.NewEmulator(p, serial.EmulatorOptions{Cards: cards})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	pt, err := emu.ServePTY(ctx)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		_ = pt.Close()
	})
	return pt.Path
}

func rdCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// swLine is how onecard apdu prints a status word's meaning.
func swLine(sw uint16) string {
	en, zh := apdu.StatusText(sw)
	return fmt.Sprintf("  SW %04X: %s (%s)", sw, en, zh)
}

// Every shipped firmware profile, through its emulator on a pty: onecard
// readers lists the reader with the card's and the PSAM's ATRs, and
// onecard apdu talks to the card (T=0 chaining over the serial link) and
// to the PSAM with status words explained.
func TestReaderSerialProfilesCLI(t *testing.T) {
	for _, file := range firmwareprofiles.Names() {
		t.Run(file, func(t *testing.T) {
			t.Parallel()
			p, err := firmwareprofiles.Load(file)
			if err != nil {
				t.Fatal(err)
			}
			ssc, psam := rdCard(t, "ssc-gen2.yaml"), rdCard(t, "psam.yaml")
			sscATR, psamATR := atrHex(ssc), atrHex(psam)
			port := rdSerial(t, p, map[string]virtual.Card{"user": ssc, "psam1": psam})
			spec := port + ",profile=" + p.ID
			rid := "serial:" + p.ID + "@" + port

			code, out, errOut := rdRun(t, "readers", "--serial", spec)
			if code != 0 {
				t.Fatalf("readers: exit %d: %s", code, errOut)
			}
			for _, want := range []string{
				"serial\t" + rid + "\t" + p.Vendor + " " + p.Model + " on " + port + "\n",
				"  slot 0\t" + rid + ":user\tcard ATR " + sscATR + "\n",
				"  slot 1\t" + rid + ":psam1\tcard ATR " + psamATR + "\n",
				"  slot 2\t" + rid + ":psam2\tempty\n",
			} {
				if !strings.Contains(out, want) {
					t.Errorf("readers output lacks %q:\n%s", want, out)
				}
			}

			code, out, errOut = rdRun(t, "readers", "--json", "--serial", spec)
			if code != 0 {
				t.Fatalf("readers --json: exit %d: %s", code, errOut)
			}
			var got readersJSON
			if err := json.Unmarshal([]byte(out), &got); err != nil {
				t.Fatalf("%v:\n%s", err, out)
			}
			var rj *readerJSON
			for i := range got.Readers {
				if got.Readers[i].Backend == "serial" {
					rj = &got.Readers[i]
				}
			}
			if rj == nil || rj.ID != rid || len(rj.Slots) != len(p.Slots) {
				t.Fatalf("JSON lacks the serial reader %s with %d slots: %s", rid, len(p.Slots), out)
			}
			if s := rj.Slots[0]; s.ID != rid+":user" || s.Name != "user" || !s.Present || s.ATR != sscATR {
				t.Errorf("JSON user slot %+v", s)
			}
			if s := rj.Slots[1]; s.ID != rid+":psam1" || !s.Present || s.ATR != psamATR || s.Index != 1 {
				t.Errorf("JSON psam1 slot %+v", s)
			}

			// The user card: SELECT answered 61xx on T=0 and READ RECORD
			// with Le 00 answered 6Cxx; apdu.Exchange resolved both over
			// the serial link. A missing record gives 6A83.
			code, out, errOut = rdRun(t, "apdu", "--serial", spec, "--reader", rid+":user",
				selectSSSEHex, "00A4020002EF05", "00 B2 01 04 00", "00B2090400")
			if code != 0 {
				t.Fatalf("apdu: exit %d: %s\n%s", code, errOut, out)
			}
			lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
			if len(lines) != 13 || lines[0] != "# "+rid+":user ATR "+spacedHex(sscATR) {
				t.Fatalf("apdu output:\n%s", out)
			}
			if !strings.HasPrefix(lines[2], "< 6F ") || !strings.HasSuffix(lines[2], " 90 00") || lines[3] != swLine(0x9000) {
				t.Errorf("SELECT SSSE:\n%s", strings.Join(lines[1:4], "\n"))
			}
			if !regexp.MustCompile(`^< 01 [0-9A-F]{2}( [0-9A-F]{2})* 90 00$`).MatchString(lines[8]) || lines[9] != swLine(0x9000) {
				t.Errorf("READ RECORD 1:\n%s", strings.Join(lines[7:10], "\n"))
			}
			if lines[11] != "< 6A 83" || lines[12] != swLine(apdu.SWRecordNotFound) {
				t.Errorf("READ RECORD 9:\n%s", strings.Join(lines[10:], "\n"))
			}

			// --raw shows the 61xx the card really sent.
			code, out, errOut = rdRun(t, "apdu", "--serial", spec, "--reader", rid+":user", "--raw", selectSSSEHex)
			if code != 0 || !regexp.MustCompile(`(?m)^< 61 [0-9A-F]{2}\n  SW 61[0-9A-F]{2}: `).MatchString(out) {
				t.Fatalf("--raw: exit %d: %s\n%s", code, errOut, out)
			}

			// The PSAM, chosen by reader and slot number.
			code, out, errOut = rdRun(t, "apdu", "--serial", spec, "--reader", rid, "--slot", "1", "00B0960006")
			if code != 0 {
				t.Fatalf("apdu to the PSAM: exit %d: %s\n%s", code, errOut, out)
			}
			lines = strings.Split(strings.TrimSuffix(out, "\n"), "\n")
			if len(lines) != 4 || lines[0] != "# "+rid+":psam1 ATR "+spacedHex(psamATR) ||
				!regexp.MustCompile(`^< ([0-9A-F]{2} ){6}90 00$`).MatchString(lines[2]) || lines[3] != swLine(0x9000) {
				t.Fatalf("PSAM READ BINARY:\n%s", out)
			}

			// An empty slot.
			code, _, errOut = rdRun(t, "apdu", "--serial", spec, "--reader", rid+":psam2", "00B0960006")
			if code != 1 || !strings.Contains(errOut, "card") {
				t.Fatalf("apdu to an empty PSAM slot: exit %d: %s", code, errOut)
			}
		})
	}
}

// The selection itself: slots and PSAM by convention for serial and
// simulated readers, and the usage errors.
func TestReaderSelection(t *testing.T) {
	p, err := firmwareprofiles.Load("crt591.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	sscFile, psamFile := copyCard(t, dir, "ssc-gen3.yaml"), copyCard(t, dir, "psam.yaml")
	port := rdSerial(t, p, map[string]virtual.Card{"user": rdCard(t, "ssc-gen3.yaml"), "psam1": rdCard(t, "psam.yaml")})
	emptyPort := rdSerial(t, p, map[string]virtual.Card{"user": rdCard(t, "ssc-gen3.yaml")})
	rid := "serial:" + p.ID + "@" + port
	erid := "serial:" + p.ID + "@" + emptyPort

	for _, tc := range []struct {
		name       string
		args       []string
		user       string // "" when open must fail
		psam       string // "" for none
		wantUsage  bool
		wantErr    string
		wantStderr string // warnings about backends that failed
	}{
		{name: "serial user slot, PSAM by convention", args: []string{"--serial", port + ",profile=crt591.yaml", "--reader", rid + ":user"},
			user: rid + ":user", psam: rid + ":psam1"},
		{name: "serial by reader and slot", args: []string{"--serial", port + ",profile=" + p.ID + ",baud=9600,addr=0", "--reader", "CRT-591", "--slot", "0"},
			user: rid + ":user", psam: rid + ":psam1"},
		{name: "profile from a file", args: []string{"--serial", port + ",profile=" + filepath.Join("..", "..", "firmware-profiles", "crt591.yaml"), "--reader", rid + ":user"},
			user: rid + ":user", psam: rid + ":psam1"},
		{name: "no PSAM in psam1", args: []string{"--serial", emptyPort + ",profile=crt591", "--reader", erid + ":user"},
			user: erid + ":user"},
		{name: "explicit PSAM reader", args: []string{"--serial", emptyPort + ",profile=crt591", "--serial", port + ",profile=crt591",
			"--reader", erid + ":user", "--psam-reader", rid + ":psam1"}, user: erid + ":user", psam: rid + ":psam1"},
		{name: "sim", args: []string{"--sim", sscFile, "--sim-psam", psamFile}, user: "virtual:sim:user", psam: "virtual:sim:psam1"},
		{name: "sim without PSAM", args: []string{"--sim", sscFile}, user: "virtual:sim:user"},
		{name: "sim by --reader", args: []string{"--sim", sscFile, "--sim-psam", psamFile, "--reader", "virtual:sim", "--slot", "0"},
			user: "virtual:sim:user", psam: "virtual:sim:psam1"},
		{name: "nothing", args: nil, wantUsage: true, wantErr: "missing --reader"},
		{name: "sim-psam alone", args: []string{"--reader", "x", "--sim-psam", psamFile}, wantUsage: true, wantErr: "--sim-psam needs --sim"},
		{name: "several slots", args: []string{"--serial", port + ",profile=crt591", "--reader", rid}, wantErr: "matches several slots"},
		{name: "missing port", args: []string{"--serial", port + ",profile=crt591", "--serial", dir + "/ttyNONE,profile=crt591", "--reader", "ttyNONE"},
			wantErr: "no reader matches", wantStderr: "ttyNONE: no such file or directory: reader gone"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := newFlagSet("test", "", &strings.Builder{})
			rf := addReaderFlags(fs)
			if err := fs.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			var stderr strings.Builder
			user, psam, closer, err := rf.open(rdCtx(t), &stderr)
			if tc.user == "" {
				var ue usageError
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || errors.As(err, &ue) != tc.wantUsage {
					t.Fatalf("open → %v, want an error with %q (usage error: %v)", err, tc.wantErr, tc.wantUsage)
				}
				if !strings.Contains(stderr.String(), tc.wantStderr) {
					t.Errorf("stderr %q lacks %q", stderr.String(), tc.wantStderr)
				}
				return
			}
			if err != nil {
				t.Fatalf("open: %v (stderr %s)", err, stderr.String())
			}
			defer closer()
			if user.ID() != tc.user {
				t.Errorf("user slot %s, want %s", user.ID(), tc.user)
			}
			switch {
			case tc.psam == "" && psam != nil:
				t.Errorf("PSAM slot %s, want none", psam.ID())
			case tc.psam != "" && (psam == nil || psam.ID() != tc.psam):
				t.Errorf("PSAM slot %v, want %s", psam, tc.psam)
			}
			// The slots work.
			if _, err := user.Connect(rdCtx(t)); err != nil {
				t.Fatalf("Connect user: %v", err)
			}
			if r, err := apdu.Exchange(rdCtx(t), user, apdu.Command{CLA: 0, INS: 0xA4, P1: 4, Data: []byte("sx1.sh.\xc9\xe7\xbb\xe1\xb1\xa3\xd5\xcf"), Ne: 256}); err != nil || r.SW != apdu.SWOK {
				t.Errorf("SELECT SSSE → %04X, %v", r.SW, err)
			}
			if psam != nil {
				if _, err := psam.Connect(rdCtx(t)); err != nil {
					t.Fatalf("Connect PSAM: %v", err)
				}
			}
		})
	}
}

// TestReadersBadSerialFlag: a malformed --serial value is a usage error
// naming what is wrong.
func TestReadersBadSerialFlag(t *testing.T) {
	for _, tc := range []struct{ value, want string }{
		{",profile=crt310", "missing port"},
		{"/dev/ttyUSB0", "missing profile=ID"},
		{"/dev/ttyUSB0,profile=nosuch", "not embedded"},
		{"/dev/ttyUSB0,profile=crt310,baud=fast", "baud=fast"},
		{"/dev/ttyUSB0,profile=crt310,addr=300", "addr=300"},
		{"/dev/ttyUSB0,profile=crt310,speed=1", `unknown key "speed"`},
		{"/dev/ttyUSB0,crt310", "key=value"},
	} {
		t.Run(tc.value, func(t *testing.T) {
			code, _, errOut := rdRun(t, "readers", "--serial", tc.value)
			if code != 2 || !strings.Contains(errOut, tc.want) {
				t.Fatalf("exit %d, stderr %q lacks %q", code, errOut, tc.want)
			}
		})
	}
}

// PC/SC through pcscd and vpcd: the PSAM needs --psam-reader, and one
// listing shows PC/SC, serial and simulated readers together.
func TestReaderSelectionPCSC(t *testing.T) {
	ssc, psam := rdCard(t, "ssc-gen2.yaml"), rdCard(t, "psam.yaml")
	psamATR := atrHex(psam)
	rdPCSC(t, ssc, psam)
	p, err := firmwareprofiles.Load("ict3q8.yaml")
	if err != nil {
		t.Fatal(err)
	}
	port := rdSerial(t, p, map[string]virtual.Card{"user": rdCard(t, "ssc-gen3.yaml")})
	sim := copyCard(t, t.TempDir(), "ssc-gen3.yaml")

	for _, tc := range []struct {
		name       string
		args       []string
		user, psam string
	}{
		{"no PSAM convention for PC/SC", []string{"--reader", "Virtual PCD 00 00"}, "pcsc:Virtual PCD 00 00", ""},
		{"--psam-reader", []string{"--reader", "Virtual PCD 00 00", "--psam-reader", "pcsc:Virtual PCD 00 01"}, "pcsc:Virtual PCD 00 00", "pcsc:Virtual PCD 00 01"},
		{"serial card, PC/SC PSAM", []string{"--serial", port + ",profile=ict3q8", "--reader", "ICT3Q8", "--slot", "0", "--psam-reader", "Virtual PCD 00 01"},
			"serial:" + p.ID + "@" + port + ":user", "pcsc:Virtual PCD 00 01"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := newFlagSet("test", "", &strings.Builder{})
			rf := addReaderFlags(fs)
			if err := fs.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			var stderr strings.Builder
			user, ps, closer, err := rf.open(rdCtx(t), &stderr)
			if err != nil {
				t.Fatalf("open: %v", err)
			}
			defer closer()
			if stderr.Len() > 0 {
				t.Errorf("warnings: %s", stderr.String())
			}
			if user.ID() != tc.user || (ps == nil) != (tc.psam == "") || ps != nil && ps.ID() != tc.psam {
				t.Fatalf("slots %v and %v, want %s and %q", user, ps, tc.user, tc.psam)
			}
			if ps != nil {
				atr, err := ps.Connect(rdCtx(t))
				if err != nil || fmt.Sprintf("%X", atr) != psamATR {
					t.Errorf("PSAM Connect → %X, %v; want %s", atr, err, psamATR)
				}
			}
		})
	}

	code, out, errOut := rdRun(t, "readers", "--serial", port+",profile=ict3q8", "--sim", sim)
	if code != 0 || errOut != "" {
		t.Fatalf("readers: exit %d: %s", code, errOut)
	}
	for _, want := range []string{"pcsc\tpcsc:Virtual PCD 00\t", "serial\tserial:" + p.ID + "@" + port + "\t", "virtual\tvirtual:sim\t"} {
		if !strings.Contains(out, want) {
			t.Errorf("readers output lacks %q:\n%s", want, out)
		}
	}
}
