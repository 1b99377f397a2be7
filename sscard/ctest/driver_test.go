//go:build linux

package ctest

import (
	"bufio"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/onecard-hub/onecard/agent"
	"github.com/onecard-hub/onecard/internal/pcsctest"
	"github.com/onecard-hub/onecard/internal/simcard"
	"github.com/onecard-hub/onecard/reader/virtual"
	"github.com/onecard-hub/onecard/sm"
	"github.com/onecard-hub/onecard/sscard/bridge"
	"github.com/onecard-hub/onecard/terminal"
	"github.com/onecard-hub/onecard/terminal/national"
)

const (
	cardPIN    = "123456"
	terminalID = "330100000001" // the test PSAM's terminal number
	deviceID   = "HIS-T1"
)

// driver is a running driver.c.
type driver struct {
	t     testing.TB
	in    io.WriteCloser
	cmd   *exec.Cmd
	stop  context.CancelFunc
	lines chan string
}

// startDriver starts driver.c on lib with env. A driver that does not
// answer a command within 30 s fails the test (the library must never
// hang); it is killed at cleanup.
func startDriver(t testing.TB, env ...string) *driver {
	t.Helper()
	lib, drv := buildLinux(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	cmd := exec.CommandContext(ctx, drv, lib)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	d := &driver{t: t, in: in, cmd: cmd, stop: cancel, lines: make(chan string)}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			d.lines <- sc.Text()
		}
		close(d.lines)
	}()
	t.Cleanup(func() {
		_, _ = io.WriteString(in, "quit\n")
		_ = in.Close()
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cancel()
			<-done
		}
		cancel()
	})
	return d
}

// do sends one command and returns the answer line.
func (d *driver) do(line string) string {
	d.t.Helper()
	if _, err := io.WriteString(d.in, line+"\n"); err != nil {
		d.t.Fatalf("driver %q: %v", line, err)
	}
	select {
	case l, ok := <-d.lines:
		if !ok {
			d.t.Fatalf("driver %q: the C program ended", line)
		}
		if l == "overflow" {
			d.t.Fatalf("driver %q: the library wrote past the 1024-byte buffer", line)
		}
		return l
	case <-time.After(30 * time.Second):
		d.t.Fatalf("driver %q: no answer in 30 s (the library hangs)", line)
	}
	return ""
}

// call runs a function command and returns its code and raw (GBK)
// output.
func (d *driver) call(line string) (int, []byte) {
	d.t.Helper()
	f := strings.Fields(d.do(line))
	if len(f) != 3 || f[0] != "rc" {
		d.t.Fatalf("driver %q: answer %q", line, f)
	}
	code, err := strconv.Atoi(f[1])
	if err != nil {
		d.t.Fatal(err)
	}
	return code, unhex(d.t, f[2])
}

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	if s == "-" {
		return nil
	}
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// gbkFields decodes GBK output and splits its '|'-terminated fields.
func gbkFields(t testing.TB, b []byte) []string {
	t.Helper()
	s, err := national.DecodeGBK(b)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(s, "|") {
		t.Fatalf("output %q does not end with '|'", s)
	}
	return strings.Split(s[:len(s)-1], "|")
}

func copyCard(t testing.TB, dir, name string) virtual.Card {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "cards", name))
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := simcard.LoadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// expectedIdentity reads a fresh copy of the test card in process
// (terminal.Session over virtual slots, PSAM mode): what the library's
// answers must say about the card.
func expectedIdentity(t testing.TB) *terminal.Identity {
	t.Helper()
	dir := t.TempDir()
	s, err := terminal.New(terminal.Options{
		Card: virtual.NewSlot("expected:user", copyCard(t, dir, "ssc-gen3.yaml")),
		PSAM: virtual.NewSlot("expected:psam1", copyCard(t, dir, "psam.yaml")), DeviceID: deviceID,
	})
	if err != nil {
		t.Fatal(err)
	}
	id, err := s.ReadIdentity(context.Background(), terminal.ReadOptions{Mode: terminal.ModePSAM})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// kiosk is a running agent on pcscd with the test card and PSAM behind
// vpcd.
type kiosk struct {
	a        *agent.Agent
	card     *virtual.VPCD
	cardSlot string
}

func startKiosk(t *testing.T) *kiosk {
	t.Helper()
	pc := pcsctest.Start(t, pcsctest.Options{})
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	k := &kiosk{cardSlot: pc.Slots[0].Name}
	for i, name := range []string{"ssc-gen3.yaml", "psam.yaml"} {
		b := virtual.NewVPCD(virtual.VPCDOptions{Addr: pc.Slots[i].Addr, Card: copyCard(t, dir, name)})
		if i == 0 {
			k.card = b
		}
		wg.Go(func() { _ = b.Run(ctx) })
	}
	for _, s := range pc.Slots[:2] {
		wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
		_, err := pcsctest.WaitCard(wctx, s.Name, true)
		wcancel()
		if err != nil {
			t.Fatal(err)
		}
	}
	yml := fmt.Sprintf(`
listen: 127.0.0.1:0
admin: off
state_dir: %q
log: {level: warn}
terminal: {id: %q, device_id: %q}
keys: {test: demo}
lanes:
  - {name: counter, card: %q, psam: %q}
`, dir, terminalID, deviceID, pc.Slots[0].Name, pc.Slots[1].Name)
	cfg, err := agent.ParseConfig([]byte(yml), dir)
	if err != nil {
		t.Fatal(err)
	}
	a, err := agent.New(agent.Options{Config: cfg, Version: "test", LogOutput: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	k.a = a
	done := make(chan error, 1)
	actx, acancel := context.WithCancel(context.Background())
	go func() { done <- a.Run(actx) }()
	t.Cleanup(func() {
		acancel()
		if err := <-done; err != nil {
			t.Errorf("agent: %v", err)
		}
	})
	// Ready when the agent reads the card through PC/SC.
	b := bridge.New(bridge.Options{Addr: a.KioskAddr(), TokenFile: a.NativeTokenPath()})
	deadline := time.Now().Add(20 * time.Second)
	for r := b.ReadCardBas(ctx, 1); r.Code != 0; r = b.ReadCardBas(ctx, 1) {
		if time.Now().After(deadline) {
			t.Fatalf("the agent never read the card: %+v", r)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return k
}

func (k *kiosk) env() []string {
	return []string{"ONECARD_AGENT=" + k.a.KioskAddr(), "ONECARD_TOKEN_FILE=" + k.a.NativeTokenPath(), "ONECARD_SSCARD_TIMEOUT=20s"}
}

// TestDriverAgainstAgent calls every function of libsscard.so from C
// against a real agent whose card and PSAM sit behind pcscd.
func TestDriverAgainstAgent(t *testing.T) {
	k := startKiosk(t)
	id := expectedIdentity(t)
	wantBasStr, code := national.ReadCardBas(id, nil)
	if code != 0 {
		t.Fatalf("expected identity: code %d", code)
	}
	wantBas, err := national.EncodeGBK(wantBasStr)
	if err != nil {
		t.Fatal(err)
	}
	d := startDriver(t, k.env()...)

	t.Run("iReadCardBas", func(t *testing.T) {
		for iType := 1; iType <= 4; iType++ {
			code, out := d.call(fmt.Sprintf("bas %d", iType))
			if code != 0 || string(out) != string(wantBas) {
				t.Errorf("iReadCardBas(%d) = %d, %X\nwant 0, %X (%s)", iType, code, out, wantBas, wantBasStr)
			}
		}
		if code, _ := d.call("bas 5"); code != bridge.CodeBadParameter {
			t.Errorf("iReadCardBas(5) = %d, want -14", code)
		}
	})

	t.Run("HSM steps", func(t *testing.T) {
		keys, err := sm.TestKeySet("demo")
		if err != nil {
			t.Fatal(err)
		}
		code, out := d.call("step1 3")
		st, err := national.ParseStep1(string(out)) // ASCII only
		if code != 0 || err != nil || st.CardID != id.CardID {
			t.Fatalf("Step1 = %d, %q (%v)", code, out, err)
		}
		key, err := (&terminal.LocalKeyService{Keys: keys}).AuthenticateRead(context.Background(), st)
		if err != nil {
			t.Fatal(err)
		}
		code, out = d.call("step2 " + national.FormatStep2Key(key))
		if code != 0 || string(out) != string(wantBas) {
			t.Errorf("Step2 = %d, %X; want iReadCardBas's %X", code, out, wantBas)
		}
		if code, _ := d.call("step2 " + strings.Repeat("0G", 16) + "||"); code != national.CodeCryptoChar {
			t.Errorf("Step2 with a bad key = %d, want -41", code)
		}
	})

	t.Run("PIN", func(t *testing.T) {
		d.do("pin -")
		if code, _ := d.call("verify 1"); code != bridge.CodeUnsupported {
			t.Errorf("iVerifyPIN without PIN callback or pad = %d, want -13", code)
		}
		d.do("pin cancel")
		if code, _ := d.call("verify 1"); code != bridge.CodePINCancelled {
			t.Errorf("iVerifyPIN, callback cancels = %d, want -31", code)
		}
		d.do("pin " + cardPIN)
		if code, out := d.call("verify 1"); code != 0 {
			t.Errorf("iVerifyPIN = %d, %q", code, out)
		}
		d.do("pin 000000")
		var tries []int
		for range 2 {
			code, out := d.call("verify 1")
			f := gbkFields(t, out)
			if code != national.CodePINWrong || len(f) != 2 || f[0] != national.Message(national.CodePINWrong) {
				t.Fatalf("iVerifyPIN wrong PIN = %d, %q; want -51, 密码错误|N|", code, f)
			}
			n, err := strconv.Atoi(f[1])
			if err != nil {
				t.Fatal(err)
			}
			tries = append(tries, n)
		}
		if tries[0] < 1 || tries[1] != tries[0]-1 {
			t.Errorf("tries left %v: want counting down", tries)
		}
		d.do("pin " + cardPIN) // resets the counter
		if code, _ := d.call("verify 2"); code != 0 {
			t.Errorf("iVerifyPIN after wrong PINs = %d", code)
		}
		d.do("pin " + cardPIN + " 654321")
		if code, out := d.call("change 1"); code != 0 {
			t.Errorf("iChangePIN = %d, %q", code, out)
		}
		d.do("pin 654321")
		if code, _ := d.call("verify 1"); code != 0 {
			t.Errorf("iVerifyPIN with the new PIN = %d", code)
		}
		d.do("pin 654321 " + cardPIN)
		if code, _ := d.call("change 1"); code != 0 {
			t.Errorf("iChangePIN back = %d", code)
		}
	})

	t.Run("iReadCard", func(t *testing.T) {
		d.do("pin " + cardPIN)
		addr := "SSSEEF05|01|03|05|06|07|$SSSEEF06|08|09|0a|0D|$"
		want := strings.Join([]string{"SSSEEF05", id.CardID.String(), id.SpecVersion, id.IssueDate, id.ExpiryDate, id.CardNumber, "$SSSEEF06",
			id.PersonID, id.Name, id.Sex, id.BirthDate, "$"}, "|")
		wantGBK, err := national.EncodeGBK(want)
		if err != nil {
			t.Fatal(err)
		}
		for _, tt := range []struct {
			line string
			code int
			out  []byte
		}{
			{"readcard 1 2 - " + addr, 0, wantGBK},
			{"readcard 3 1 " + id.CardID.String() + "|" + id.CardNumber + "| " + addr, 0, wantGBK},
			{"readcard 1 2 " + strings.Repeat("0", 32) + "| " + addr, bridge.CodeInputMismatch, nil},
			{"readcard 1 2 - DF04EF05|01|$", bridge.CodeUnsupported, nil},
			{"readcard 1 2 - SSSEEF05|01|", bridge.CodeInputInvalid, nil},
			{"readcard 1 3 - " + addr, bridge.CodeBadParameter, nil},
		} {
			code, out := d.call(tt.line)
			if code != tt.code || (tt.out != nil && string(out) != string(tt.out)) {
				t.Errorf("%s = %d, %X; want %d, %X", tt.line, code, out, tt.code, tt.out)
			}
		}
	})

	t.Run("iDoDebit", func(t *testing.T) {
		d.do("pin " + cardPIN)
		card := id.CardID.String() + "|" + id.CardNumber + "|"
		code, out := d.call("debit 1 " + card + " 321|H001|310|")
		f := gbkFields(t, out)
		if code != 0 || len(f) != 9 {
			t.Fatalf("iDoDebit = %d, %q", code, f)
		}
		before, _ := strconv.Atoi(f[4])
		after, _ := strconv.Atoi(f[5])
		if f[0] != id.CardID.String() || f[1] != terminalID || f[3] != "321" || before-after != 321 || len(f[8]) != 8 {
			t.Errorf("iDoDebit output %q", f)
		}
		for _, tt := range []struct {
			line string
			code int
		}{
			{"debit 1 " + strings.Repeat("0", 32) + "| 100|", bridge.CodeInputMismatch},
			{"debit 1 - 0|", bridge.CodeInputInvalid},
			{"debit 1 - 12a|", bridge.CodeInputInvalid},
			{"debit 0 - 100|", bridge.CodeBadParameter},
		} {
			if code, out := d.call(tt.line); code != tt.code {
				t.Errorf("%s = %d, %q; want %d", tt.line, code, out, tt.code)
			}
		}
		// Nothing moved for the refused ones: the next payment starts
		// from the first one's balance after.
		code, out = d.call("debit 2 - 1|")
		if f := gbkFields(t, out); code != 0 || f[4] != strconv.Itoa(after) {
			t.Errorf("second iDoDebit = %d, %q; want balance before %d", code, f, after)
		}
		d.do("pin 000000")
		if code, _ := d.call("debit 1 - 1|"); code != national.CodePINWrong {
			t.Errorf("iDoDebit with a wrong PIN = %d, want -51", code)
		}
		d.do("pin " + cardPIN)
		if code, _ := d.call("verify 1"); code != 0 {
			t.Errorf("iVerifyPIN (reset) = %d", code)
		}
	})

	t.Run("iGetReaderInfo", func(t *testing.T) {
		f := strings.Fields(d.do("info"))
		if len(f) != 4 || f[1] != "0" {
			t.Fatalf("iGetReaderInfo = %q", f)
		}
		if sn := unhex(t, f[2]); len(sn) == 0 {
			t.Errorf("iGetReaderInfo: empty reader serial")
		}
		if term := unhex(t, f[3]); string(term) != terminalID {
			t.Errorf("iGetReaderInfo terminal %q, want %s", term, terminalID)
		}
	})

	t.Run("threads", func(t *testing.T) {
		f := strings.Fields(d.do("threads 6 5 3"))
		if len(f) != 5 || f[1] != "ok=30" || f[2] != "bad=0" || f[3] != "rc=0" || string(unhex(t, f[4])) != string(wantBas) {
			t.Errorf("6 threads × 5 iReadCardBas: %q", f)
		}
	})

	t.Run("no token", func(t *testing.T) {
		log := filepath.Join(t.TempDir(), "sscard.log")
		nd := startDriver(t, "ONECARD_AGENT="+k.a.KioskAddr(), "ONECARD_TOKEN_FILE=/nonexistent/native-token", "ONECARD_SSCARD_LOG="+log)
		if code, _ := nd.call("bas 1"); code != bridge.CodeReaderConnect {
			t.Errorf("iReadCardBas without the token = %d, want -11 (the agent refuses native clients)", code)
		}
		if b, _ := os.ReadFile(log); !strings.Contains(string(b), "HTTP 403") {
			t.Errorf("log %q: want the refusal", b)
		}
	})

	t.Run("no card", func(t *testing.T) {
		k.card.Remove()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := pcsctest.WaitCard(ctx, k.cardSlot, false); err != nil {
			t.Fatal(err)
		}
		for _, line := range []string{"bas 1", "step1 1", "verify 1", "readcard 1 2 - SSSEEF05|01|$", "debit 1 - 1|"} {
			if code, out := d.call(line); code != national.CodeNoCard {
				t.Errorf("%s without a card = %d, %q; want -2", line, code, out)
			}
		}
	})
}

// TestDriverNoAgent: with no agent every function fails with -11 and a
// log line; an agent address that accepts but never answers fails the
// same way once the connect timeout passes (never a hang: the driver
// fails the test after 30 s).
func TestDriverNoAgent(t *testing.T) {
	dir := t.TempDir()
	// A closed port: refused at once.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	_ = l.Close()
	// A listener that never answers the handshake.
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	var conns []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	defer func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	}()
	all := []string{"bas 1", "step1 1", "step2 00|00|", "verify 1", "change 1", "readcard 1 2 - SSSEEF05|01|$", "debit 1 - 1|"}
	for _, tt := range []struct {
		addr  string
		lines []string
	}{
		{closed, all},
		{silent.Addr().String(), all[:2]}, // 2 s each (the connect timeout)
	} {
		addr := tt.addr
		log := filepath.Join(dir, strings.ReplaceAll(addr, ":", "_")+".log")
		d := startDriver(t, "ONECARD_AGENT="+addr, "ONECARD_TOKEN_FILE="+filepath.Join(dir, "none"), "ONECARD_SSCARD_LOG="+log)
		d.do("pin " + cardPIN + " 654321")
		for _, line := range tt.lines {
			code, out := d.call(line)
			if code != bridge.CodeReaderConnect || len(gbkFields(t, out)) != 1 {
				t.Errorf("%s, agent %s: %d, %q; want -11, 读卡器连接错|", line, addr, code, out)
			}
		}
		if f := strings.Fields(d.do("info")); len(f) != 4 || f[1] != "-11" {
			t.Errorf("iGetReaderInfo, agent %s: %q", addr, f)
		}
		b, _ := os.ReadFile(log)
		if n := strings.Count(string(b), "cannot reach the onecard agent"); n != len(tt.lines)+1 {
			t.Errorf("log has %d lines about the agent, want one per call:\n%s", n, b)
		}
	}
}
