package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ebfe/scard"

	"github.com/onecard-hub/onecard/internal/pcsctest"
	"github.com/onecard-hub/onecard/internal/simcard"
	"github.com/onecard-hub/onecard/reader/virtual"
)

// copyCard copies testdata/cards/name into dir and returns the copy's
// path (the simulator keeps its state file beside it).
func copyCard(t *testing.T, dir, name string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "testdata", "cards", name))
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestSimUsage(t *testing.T) {
	dir := t.TempDir()
	card := copyCard(t, dir, "ssc-gen2.yaml")
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("kind: banana\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name      string
		args      []string
		wantUsage bool // a usage error (exit 2); otherwise another error
	}{
		{"no card", nil, true},
		{"extra argument", []string{"--card", card, "extra"}, true},
		{"control on all interfaces", []string{"--card", card, "--control", ":0"}, true},
		{"control on a LAN address", []string{"--card", card, "--control", "192.168.1.10:7000"}, true},
		{"control without port", []string{"--card", card, "--control", "127.0.0.1"}, true},
		{"unknown flag", []string{"--card", card, "--bogus"}, true},
		{"missing card file", []string{"--card", filepath.Join(dir, "nope.yaml")}, false},
		{"bad card file", []string{"--card", bad}, false},
		{"bad second card", []string{"--card", card, "--card2", bad}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stderr bytes.Buffer
			err := runSim(context.Background(), tc.args, strings.NewReader(""), io.Discard, &stderr)
			var ue usageError
			if err == nil {
				t.Fatal("runSim succeeded")
			}
			if got := errors.As(err, &ue); got != tc.wantUsage {
				t.Fatalf("err = %v (usage error: %v), want usage error %v", err, got, tc.wantUsage)
			}
		})
	}
}

func TestSimCheckLoopback(t *testing.T) {
	for _, tc := range []struct {
		addr string
		ok   bool
	}{
		{"127.0.0.1:0", true},
		{"127.0.0.2:9000", true},
		{"[::1]:9000", true},
		{"localhost:9000", true},
		{"0.0.0.0:9000", false},
		{"[::]:9000", false},
		{":9000", false},
		{"10.0.0.1:9000", false},
		{"example.com:9000", false},
		{"127.0.0.1", false},
	} {
		if err := checkLoopback(tc.addr); (err == nil) != tc.ok {
			t.Errorf("checkLoopback(%q) = %v, want ok %v", tc.addr, err, tc.ok)
		}
	}
}

func TestSimControlCommands(t *testing.T) {
	dir := t.TempDir()
	ssc, err := simcard.LoadFile(copyCard(t, dir, "ssc-gen2.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	psam, err := simcard.LoadFile(copyCard(t, dir, "psam.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	quit := 0
	ctl := &simControl{quit: func() { quit++ }, slots: []*simSlot{
		{n: 1, bridge: virtual.NewVPCD(virtual.VPCDOptions{Card: ssc})},
		{n: 2, bridge: virtual.NewVPCD(virtual.VPCDOptions{Card: psam})},
	}}
	one := &simControl{quit: func() {}, slots: ctl.slots[:1]}
	for _, tc := range []struct {
		ctl  *simControl
		line string
		want string // exact answer, or prefix ending in "..."
	}{
		{ctl, "status", "ok 1:inserted,disconnected,apdus=0 2:inserted,disconnected,apdus=0"},
		{ctl, "remove", "ok remove 1"},
		{ctl, "remove 2", "ok remove 2"},
		{ctl, "status", "ok 1:removed,disconnected,apdus=0 2:removed,disconnected,apdus=0"},
		{ctl, "  INSERT   1 ", "ok insert 1"},
		{ctl, "status", "ok 1:inserted,disconnected,apdus=0 2:removed,disconnected,apdus=0"},
		{ctl, "pull-next 2", "ok pull-next 2"},
		{ctl, "torn on", "ok torn on 1"},
		{ctl, "torn load 1", "ok torn load 1"},
		{ctl, "torn off 1", "ok torn off 1"},
		{ctl, "torn on 2", "error card *simcard.PSAM has no torn switch"},
		{ctl, "torn sideways", "error torn \"sideways\": want on, off, debit or load"},
		{ctl, "torn", "error usage: torn on|off|debit|load [SLOT]"},
		{ctl, "insert 3", "error bad slot \"3\" (want 1 or 2)"},
		{ctl, "insert x", "error bad slot \"x\" (want 1 or 2)"},
		{ctl, "insert 1 2", "error too many arguments for insert"},
		{one, "remove 2", "error slot 2 has no card file"},
		{ctl, "status now", "error status takes no arguments"},
		{ctl, "eject", "error unknown command \"eject\" (try help)"},
		{ctl, "help", "ok commands: ..."},
		{ctl, "quit", "ok bye"},
	} {
		got, ok := tc.ctl.exec(tc.line)
		if !ok {
			t.Fatalf("%q: no answer", tc.line)
		}
		if p, found := strings.CutSuffix(tc.want, "..."); found && strings.HasPrefix(got, p) {
			continue
		}
		if got != tc.want {
			t.Errorf("%q: got %q, want %q", tc.line, got, tc.want)
		}
	}
	if _, ok := ctl.exec("   "); ok {
		t.Error("blank line answered")
	}
	if quit != 1 {
		t.Errorf("quit called %d times", quit)
	}
}

// lines collects a child's stdout lines.
type lines struct {
	ch chan string
}

func readLines(r io.Reader) *lines {
	l := &lines{ch: make(chan string, 100)}
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			l.ch <- sc.Text()
		}
		close(l.ch)
	}()
	return l
}

func (l *lines) next(t *testing.T) string {
	t.Helper()
	select {
	case s, ok := <-l.ch:
		if !ok {
			t.Fatal("simulator closed its output")
		}
		return s
	case <-time.After(10 * time.Second):
		t.Fatal("no answer from the simulator")
		return ""
	}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func waitCard(t *testing.T, name string, present bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := pcsctest.WaitCard(ctx, name, present); err != nil {
		t.Fatal(err)
	}
}

// TestSimEndToEnd builds onecard, runs `onecard sim` with an SSC and a
// PSAM behind a private pcscd and drives it through stdin, the TCP
// control socket and PC/SC.
func TestSimEndToEnd(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("go tool not found: %v", err)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "onecard")
	if out, err := exec.Command(goTool, "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	env := pcsctest.Start(t, pcsctest.Options{})
	user, psam := env.Slots[0], env.Slots[1]

	cmd := exec.Command(bin, "sim",
		"--vpcd", user.Addr, "--card", copyCard(t, dir, "ssc-gen2.yaml"),
		"--vpcd2", psam.Addr, "--card2", copyCard(t, dir, "psam.yaml"),
		"--control", "127.0.0.1:0")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("onecard sim stderr:\n%s", stderr.String())
		}
	})
	out := readLines(stdout)
	stdinCmd := func(line, want string) {
		t.Helper()
		if _, err := io.WriteString(stdin, line+"\n"); err != nil {
			t.Fatal(err)
		}
		if got := out.next(t); got != want {
			t.Fatalf("stdin %q: answer %q, want %q", line, got, want)
		}
	}

	first := out.next(t)
	addr, ok := strings.CutPrefix(first, "ok control ")
	if !ok {
		t.Fatalf("first line %q, want \"ok control ADDR\"", first)
	}
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctlOut := readLines(conn)
	tcpCmd := func(line string) string {
		t.Helper()
		if _, err := io.WriteString(conn, line+"\n"); err != nil {
			t.Fatal(err)
		}
		return ctlOut.next(t)
	}

	// Both cards appear and answer through PC/SC.
	waitCard(t, user.Name, true)
	waitCard(t, psam.Name, true)
	sc, err := scard.EstablishContext()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sc.Release() }()
	selectSSSE := []byte{0x00, 0xA4, 0x04, 0x00, 0x0F, 0x73, 0x78, 0x31, 0x2E, 0x73, 0x68, 0x2E, 0xC9, 0xE7, 0xBB, 0xE1, 0xB1, 0xA3, 0xD5, 0xCF}
	for _, name := range []string{user.Name, psam.Name} {
		c, err := sc.Connect(name, scard.ShareShared, scard.ProtocolAny)
		if err != nil {
			t.Fatalf("connect %s: %v", name, err)
		}
		resp, err := c.Transmit(selectSSSE)
		if err != nil || len(resp) != 2 || resp[0] != 0x61 {
			t.Fatalf("%s: SELECT SSSE = % X, %v; want 61xx", name, resp, err)
		}
		_ = c.Disconnect(scard.LeaveCard)
	}
	status := regexp.MustCompile(`^ok 1:inserted,connected,apdus=[1-9]\d* 2:inserted,connected,apdus=[1-9]\d*$`)
	if got := tcpCmd("status"); !status.MatchString(got) {
		t.Fatalf("status %q does not match %v", got, status)
	}

	// Remove over stdin, insert over TCP.
	stdinCmd("remove 1", "ok remove 1")
	waitCard(t, user.Name, false)
	if got := tcpCmd("insert 1"); got != "ok insert 1" {
		t.Fatalf("insert: %q", got)
	}
	waitCard(t, user.Name, true)

	// Pull the card during the next APDU.
	c, err := sc.Connect(user.Name, scard.ShareShared, scard.ProtocolAny)
	if err != nil {
		t.Fatal(err)
	}
	if got := tcpCmd("pull-next"); got != "ok pull-next 1" {
		t.Fatalf("pull-next: %q", got)
	}
	// pcscd 1.9.9 + vpcd report the dropped exchange as an empty
	// response (see reader/virtual TestPCSCPullMidAPDU).
	if resp, err := c.Transmit(selectSSSE); err != nil || len(resp) != 0 {
		t.Fatalf("Transmit during pull = % X, %v; want empty response", resp, err)
	}
	waitCard(t, user.Name, false)
	if _, err := c.Transmit(selectSSSE); !errors.Is(err, scard.ErrRemovedCard) {
		t.Fatalf("Transmit after pull: %v, want ErrRemovedCard", err)
	}
	if got := tcpCmd("status"); !strings.HasPrefix(got, "ok 1:removed,disconnected,") {
		t.Fatalf("status after pull: %q", got)
	}

	// Ctrl-C stops the simulator cleanly.
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		exited <- err // for the cleanup
		if err != nil {
			t.Fatalf("onecard sim exited with %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("onecard sim did not stop on interrupt")
	}
	waitCard(t, psam.Name, false)
	if strings.Contains(stderr.String(), "王") || strings.Contains(stderr.String(), "123456") {
		t.Fatal("simulator logged holder data")
	}
}
