package terminal_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/onecard-hub/onecard/internal/simcard"
	"github.com/onecard-hub/onecard/reader/virtual"
	"github.com/onecard-hub/onecard/sm"
	"github.com/onecard-hub/onecard/terminal"
	"github.com/onecard-hub/onecard/terminal/journal"
)

// Crash tests: the test binary re-executes itself as a child that runs one
// payment or load against a card whose state lives in a file
// (simcard.LoadFile on a temporary copy), with the journal in the same
// directory. The child blocks at a named point — a journal failpoint or
// just before/after an APDU — and says so; the parent kills it with
// SIGKILL, then restarts the terminal (journal.Recover), re-inserts the
// card, settles, and proves from the card's balance and counters and the
// journal that the transaction happened exactly once or not at all.

const childEnv = "ONECARD_TERMINAL_KILL_CHILD"

type childSpec struct {
	Dir    string
	Card   string // card file name in Dir
	Op     string // "pay" or "load"
	Amount uint32
	// Point: "fp:<journal failpoint>", "card:<before|after>:<INS hex>" or
	// "psam:<before|after>:<INS hex>".
	Point string
}

// childMain runs in the child process; its output is the protocol:
// "BLOCKED" when it reached the point (then it waits to be killed), or
// "DONE <error>".
func childMain() int {
	var spec childSpec
	if err := json.Unmarshal([]byte(os.Getenv(childEnv)), &spec); err != nil {
		fmt.Println("ERROR", err)
		return 2
	}
	block := func(point string) {
		if point == spec.Point {
			fmt.Println("BLOCKED")
			_ = os.Stdout.Sync()
			select {}
		}
	}
	card, err := simcard.LoadFile(filepath.Join(spec.Dir, spec.Card))
	if err != nil {
		fmt.Println("ERROR", err)
		return 2
	}
	psam, err := simcard.LoadFile(filepath.Join(spec.Dir, "psam.yaml"))
	if err != nil {
		fmt.Println("ERROR", err)
		return 2
	}
	j, err := journal.Open(filepath.Join(spec.Dir, "journal.db"), &journal.Options{
		Failpoint: func(name string) error { block("fp:" + name); return nil },
	})
	if err != nil {
		fmt.Println("ERROR", err)
		return 2
	}
	ctx := context.Background()
	if _, err := j.Recover(ctx, time.Now()); err != nil {
		fmt.Println("ERROR", err)
		return 2
	}
	ks, err := sm.TestKeySet(keyLabel)
	if err != nil {
		fmt.Println("ERROR", err)
		return 2
	}
	apduHook := func(who string) func(string, []byte) {
		return func(stage string, cmd []byte) {
			if len(cmd) > 1 {
				block(fmt.Sprintf("%s:%s:%02X", who, stage, cmd[1]))
			}
		}
	}
	cardSlot := &faultSlot{Slot: virtual.NewSlot("user", card), hook: apduHook("card")}
	psamSlot := &faultSlot{Slot: virtual.NewSlot("psam", psam), hook: apduHook("psam")}
	sess, err := terminal.New(terminal.Options{
		Card: cardSlot, PSAM: psamSlot, Journal: j, TerminalKey: ks.TerminalKey(),
		PINPad:     terminal.NewStaticPINPad("123456"),
		Authoriser: &terminal.LocalAuthoriser{Keys: ks, Entitled: entitleAll},
	})
	if err != nil {
		fmt.Println("ERROR", err)
		return 2
	}
	switch spec.Op {
	case "pay":
		_, err = sess.Pay(ctx, terminal.PayRequest{Amount: spec.Amount, Merchant: "M"})
	case "load":
		_, err = sess.Load(ctx, terminal.LoadRequest{Amount: spec.Amount, Programme: "P"})
	}
	fmt.Println("DONE", err)
	return 0
}

var payPoints = []string{
	"card:before:50", "card:after:50", "psam:after:70",
	"fp:before-prepare-commit", "fp:after-prepare-commit",
	"card:before:54", "card:after:54",
	"fp:before-carddone-commit", "fp:after-carddone-commit",
	"psam:before:72",
}

var loadPoints = []string{
	"card:after:50",
	"fp:before-prepare-commit", "fp:after-prepare-commit",
	"card:before:52", "card:after:52",
	"fp:before-carddone-commit", "fp:after-carddone-commit",
}

func TestKillMatrix(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	type kcase struct{ file, op, point string }
	var cases []kcase
	for _, f := range cardFiles {
		for _, p := range payPoints {
			cases = append(cases, kcase{f, "pay", p})
		}
		for _, p := range loadPoints {
			cases = append(cases, kcase{f, "load", p})
		}
	}
	if len(cases) >= 40 {
		t.Fatalf("%d child processes: keep it under 40", len(cases))
	}
	var mu sync.Mutex
	outcomes := map[string]int{}
	for _, kc := range cases {
		name := kc.file + "/" + kc.op + "/" + kc.point
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got := killAndCheck(t, exe, kc.file, kc.op, kc.point)
			mu.Lock()
			outcomes[got]++
			mu.Unlock()
		})
	}
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		t.Logf("kill matrix: %d children killed with SIGKILL; outcomes %v", len(cases), outcomes)
	})
}

// killAndCheck runs one crash case and returns "happened" or "not".
func killAndCheck(t *testing.T, exe, file, op, point string) string {
	dir := t.TempDir()
	cardPath := copyCardFile(t, dir, file)
	copyCardFile(t, dir, "psam.yaml")
	spec := readSpec(t, file).SSC
	const amount = 2500
	cs, _ := json.Marshal(childSpec{Dir: dir, Card: file, Op: op, Amount: amount, Point: point})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+string(cs))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "BLOCKED" {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("child did not reach %s: %q %v", point, line, err)
	}
	if err := syscall.Kill(cmd.Process.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	werr := cmd.Wait()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("child not killed by SIGKILL: %v", werr)
	}

	// Restart: reload the card and PSAM from their files, recover the
	// journal, re-insert the card and settle.
	c, err := simcard.LoadFile(cardPath)
	if err != nil {
		t.Fatal(err)
	}
	card := c.(*simcard.SSC)
	p, err := simcard.LoadFile(filepath.Join(dir, "psam.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	j := openJournal(t, filepath.Join(dir, "journal.db"), nil)
	for _, e := range entries(t, j) {
		if e.State == journal.Prepared {
			t.Errorf("record %d still prepared after Recover", e.Seq)
		}
	}
	ks := keys(t)
	sess, err := terminal.New(terminal.Options{
		Card: virtual.NewSlot("user", card), PSAM: virtual.NewSlot("psam", p), Journal: j,
		TerminalKey: ks.TerminalKey(), PINPad: terminal.NewStaticPINPad("123456"),
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sess.Settle(ctxT(t)); err != nil {
		t.Fatalf("settle: %v", err)
	}

	b0 := spec.Purse.Balance
	var did bool
	var counter uint16
	switch op {
	case "pay":
		did = card.Balance() == b0-amount
		counter = card.EP().OfflineSeq
	case "load":
		did = card.Balance() == b0+amount
		counter = card.EP().OnlineSeq
	}
	if !did && card.Balance() != b0 {
		t.Fatalf("balance %d: neither %d (not happened) nor the one payment", card.Balance(), b0)
	}
	if want := uint16(0); did && counter != want+1 || !did && counter != want {
		t.Errorf("card counter %d (happened %v)", counter, did)
	}
	es := entries(t, j)
	var done, failed int
	for _, e := range es {
		switch e.State {
		case journal.CardDone:
			done++
			checkTAC(t, card, e.Record)
			if e.Record.Amount != amount {
				t.Errorf("record amount %d", e.Record.Amount)
			}
		case journal.Failed:
			failed++
		default:
			t.Errorf("record %d left %s after settlement (%s)", e.Seq, e.State, e.Reason)
		}
	}
	switch {
	case did && done != 1:
		t.Errorf("happened on the card but %d card-done records (journal %d entries)", done, len(es))
	case !did && done != 0:
		t.Errorf("did not happen on the card but %d card-done records", done)
	case !did && failed+done == 0 && journalHadPrepare(point, op):
		t.Errorf("journal lost the prepared record")
	}
	// The terminal carries on with this card.
	if _, err := sess.Pay(ctxT(t), terminal.PayRequest{Amount: 1}); err != nil {
		t.Errorf("payment after recovery: %v", err)
	}
	if did {
		return "happened"
	}
	return "not"
}

// journalHadPrepare reports whether the kill point is after Prepare's
// commit, so the journal must hold the record.
func journalHadPrepare(point, op string) bool {
	after := map[string]bool{
		"fp:after-prepare-commit": true, "card:before:54": true, "card:after:54": true,
		"card:before:52": true, "card:after:52": true,
		"fp:before-carddone-commit": true, "fp:after-carddone-commit": true, "psam:before:72": true,
	}
	return after[point]
}
