package virtual_test

import (
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/onecard-hub/onecard/internal/logbuf"
	"github.com/onecard-hub/onecard/internal/pcsctest"
	"github.com/onecard-hub/onecard/reader/virtual"
)

// Standard PC/SC tools (opensc-tool, pcsc_scan from Debian's opensc and
// pcsc-tools) talk to the simulated card like to a real one.

// runTool runs a tool (failing the test when it is missing: run make
// deps) and returns its combined output.
func runTool(t *testing.T, ctx context.Context, name string, args ...string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not installed (run make deps): %v", name, err)
	}
	out, err := exec.CommandContext(ctx, path, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %q: %v\n%s", name, args, err, out)
	}
	return string(out)
}

// syncBuffer is a goroutine-safe log of a process's or component's output.
type syncBuffer = logbuf.Buffer

// pcscScanEvent matches one reader block pcsc_scan prints on a change:
//
//	Reader 0: Virtual PCD 00 00
//	  Event number: 2
//	  Card state: Card removed,
var pcscScanEvent = regexp.MustCompile(`Reader \d+: (.+)\n\s+Event number: (\d+)\n\s+Card state: Card (inserted|removed)`)

type scanEvent struct {
	n     int
	state string
}

func scanEvents(out, reader string) []scanEvent {
	var evs []scanEvent
	for _, m := range pcscScanEvent.FindAllStringSubmatch(out, -1) {
		if m[1] != reader {
			continue
		}
		n, _ := strconv.Atoi(m[2])
		evs = append(evs, scanEvent{n, m[3]})
	}
	return evs
}

func TestPCSCTools(t *testing.T) {
	env := pcsctest.Start(t, pcsctest.Options{})
	slot := env.Slots[0]
	card := newUserCard(t)
	atr := atrOf(card)
	b := virtual.NewVPCD(virtual.VPCDOptions{Addr: slot.Addr, Card: card})
	runBridge(t, b)
	waitCard(t, slot.Name, true)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r := strconv.Itoa(slot.Index)

	t.Run("opensc-tool ATR", func(t *testing.T) {
		var want []string
		for _, x := range atr {
			want = append(want, fmt.Sprintf("%02x", x))
		}
		out := runTool(t, ctx, "opensc-tool", "-r", r, "-a")
		if got := strings.TrimSpace(out); got != strings.Join(want, ":") {
			t.Fatalf("opensc-tool -a printed %q, want %q", got, strings.Join(want, ":"))
		}
	})
	t.Run("opensc-tool SELECT SSSE", func(t *testing.T) {
		out := runTool(t, ctx, "opensc-tool", "-r", r, "-s", "00A404000F7378312E73682EC9E7BBE1B1A3D5CF")
		// OpenSC fetches 61xx data with GET RESPONSE itself.
		if !strings.Contains(out, "Received (SW1=0x90, SW2=0x00)") && !strings.Contains(out, "Received (SW1=0x61") {
			t.Fatalf("opensc-tool -s output:\n%s\nwant SW 9000 or 61xx", out)
		}
	})
	t.Run("pcsc_scan sees remove and insert", func(t *testing.T) {
		path, err := exec.LookPath("pcsc_scan")
		if err != nil {
			t.Fatalf("pcsc_scan not installed (run make deps): %v", err)
		}
		var out syncBuffer
		scan := exec.CommandContext(ctx, path, "-n") // -n: no ATR analysis
		scan.Stdout, scan.Stderr = &out, &out
		if err := scan.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() {
			_ = scan.Process.Kill()
			_ = scan.Wait()
			if t.Failed() {
				t.Logf("pcsc_scan output:\n%s", out.String())
			}
		}()
		waitScan := func(n int, state string) {
			t.Helper()
			for ctx.Err() == nil {
				evs := scanEvents(out.String(), slot.Name)
				if len(evs) >= n {
					if evs[n-1].state != state {
						t.Fatalf("pcsc_scan event %d: %+v, want card %s", n, evs[n-1], state)
					}
					if n > 1 && evs[n-1].n <= evs[n-2].n {
						t.Fatalf("pcsc_scan event numbers not increasing: %+v", evs)
					}
					return
				}
				time.Sleep(20 * time.Millisecond)
			}
			t.Fatalf("pcsc_scan did not report card %s (event %d) in time", state, n)
		}
		waitScan(1, "inserted")
		b.Remove()
		waitScan(2, "removed")
		b.Insert(nil)
		waitScan(3, "inserted")
	})
}
