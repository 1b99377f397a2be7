package journal_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/onecard-hub/onecard/terminal/journal"
	"github.com/onecard-hub/onecard/terminal/journal/journaltest"
	"github.com/onecard-hub/onecard/terminal/record"
)

// Child processes: this test binary re-executed with these variables.
const (
	childModeEnv  = "ONECARD_JOURNAL_CHILD" // "crash" or "hold"
	childPathEnv  = "ONECARD_JOURNAL_PATH"
	childPointEnv = "ONECARD_JOURNAL_POINT" // failpoint name#occurrence
)

// step is one operation of the crash script, on the record tagged tag
// (its Merchant field); want is the record's state once the step committed.
type step struct {
	op   string // the failpoint op name
	tag  string
	want journal.State
	run  func(j *journal.Journal, seqs map[string]uint64) error
}

var crashCtx = context.Background()

func prepareStep(tag string, kind record.Kind) step {
	return step{"prepare", tag, journal.Prepared, func(j *journal.Journal, seqs map[string]uint64) error {
		r := journaltest.NewRecord(kind, journaltest.Card(tag[0]), 100)
		r.Merchant = tag
		s, err := j.Prepare(crashCtx, r)
		seqs[tag] = s
		return err
	}}
}

func doneStep(tag string, kind record.Kind) step {
	return step{"carddone", tag, journal.CardDone, func(j *journal.Journal, seqs map[string]uint64) error {
		r := journaltest.NewRecord(kind, journaltest.Card(tag[0]), 100)
		return j.CardDone(crashCtx, seqs[tag], journaltest.DoneResult(r, tag[0]))
	}}
}

// crashScript visits every failpoint op at least once.
var crashScript = []step{
	prepareStep("A", record.KindPay),
	doneStep("A", record.KindPay),
	prepareStep("B", record.KindPay),
	{"failed", "B", journal.Failed, func(j *journal.Journal, s map[string]uint64) error {
		return j.Fail(crashCtx, s["B"], "9401")
	}},
	prepareStep("C", record.KindLoad),
	{"uncertain", "C", journal.Uncertain, func(j *journal.Journal, s map[string]uint64) error {
		return j.MarkUncertain(crashCtx, s["C"], "card removed during CREDIT")
	}},
	{"sent", "A", journal.Sent, func(j *journal.Journal, s map[string]uint64) error {
		return j.MarkSent(crashCtx, []uint64{s["A"]})
	}},
	{"cleared", "A", journal.Cleared, func(j *journal.Journal, s map[string]uint64) error {
		return j.MarkCleared(crashCtx, []uint64{s["A"]})
	}},
	prepareStep("D", record.KindPay),
	doneStep("D", record.KindPay),
	{"dead", "D", journal.Dead, func(j *journal.Journal, s map[string]uint64) error {
		return j.DeadLetter(crashCtx, s["D"], "hub: TAC does not verify")
	}},
	prepareStep("E", record.KindCertify),
	{"recover", "E", journal.Uncertain, func(j *journal.Journal, _ map[string]uint64) error {
		_, err := j.Recover(crashCtx, t0)
		return err
	}},
	{"huback", "", 0, func(j *journal.Journal, s map[string]uint64) error {
		return j.ObserveHubAck(crashCtx, s["D"])
	}},
	{"hubjump", "", 0, func(j *journal.Journal, s map[string]uint64) error {
		err := j.ObserveHubAck(crashCtx, s["E"]+100)
		if errors.Is(err, journal.ErrRestoredFromBackup) {
			return nil
		}
		return fmt.Errorf("no restore detected: %v", err)
	}},
	prepareStep("F", record.KindPay),
	{"prune", "A", 0, func(j *journal.Journal, _ map[string]uint64) error {
		n, err := j.PruneFinal(crashCtx, t0.Add(time.Hour))
		if err == nil && n != 2 {
			err = fmt.Errorf("pruned %d, want 2 (A and B)", n)
		}
		return err
	}},
}

// point names the failpoint of step k: before- or after-, with the
// occurrence count of its op up to k.
func point(k int, when string) string {
	n := 0
	for _, s := range crashScript[:k+1] {
		if s.op == crashScript[k].op {
			n++
		}
	}
	return fmt.Sprintf("%s-%s-commit#%d", when, crashScript[k].op, n)
}

// runChild is the child side (see TestMain).
func runChild(mode string) int {
	path := os.Getenv(childPathEnv)
	switch mode {
	case "hold":
		j, err := journal.Open(path, nil)
		if err != nil {
			fmt.Println("error", err)
			return 1
		}
		fmt.Println("locked")
		time.Sleep(time.Hour)
		j.Close()
		return 0
	case "crash":
		target := os.Getenv(childPointEnv)
		hits := map[string]int{}
		fp := func(name string) error {
			hits[name]++
			if fmt.Sprintf("%s#%d", name, hits[name]) == target {
				fmt.Println("hit", target)
				time.Sleep(time.Hour) // the parent kills us here
			}
			return nil
		}
		j, err := journal.Open(path, &journal.Options{Now: func() time.Time { return t0 }, Failpoint: fp})
		if err != nil {
			fmt.Println("error", err)
			return 1
		}
		seqs := map[string]uint64{}
		for _, s := range crashScript {
			if err := s.run(j, seqs); err != nil {
				fmt.Println("error", err)
				return 1
			}
			if s.op == "prepare" {
				fmt.Println("seq", s.tag, seqs[s.tag])
			}
		}
		fmt.Println("done")
		return 0
	}
	fmt.Println("error unknown mode", mode)
	return 2
}

// startChild re-executes the test binary in the given mode and returns it
// with a reader of its stdout.
func startChild(t *testing.T, mode, path, point string) (*exec.Cmd, *bufio.Scanner) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childModeEnv+"="+mode, childPathEnv+"="+path, childPointEnv+"="+point)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return cmd, bufio.NewScanner(out)
}

// snapshot reopens path, runs Recover and returns tag → state and tag →
// seq of every record, and a Prepare's sequence afterwards.
func snapshot(t *testing.T, path string) (map[string]journal.State, map[string]uint64, uint64) {
	t.Helper()
	j := journaltest.MustOpenPath(t, path, &journal.Options{Now: func() time.Time { return t0 }})
	if _, err := j.Recover(crashCtx, t0); err != nil {
		t.Fatalf("recover: %v", err)
	}
	all, err := j.List(0, 0)
	if err != nil {
		t.Fatal(err)
	}
	st, sq := map[string]journal.State{}, map[string]uint64{}
	for _, e := range all {
		tag := e.Record.Merchant
		if _, dup := st[tag]; dup {
			t.Errorf("record %s journaled twice", tag)
		}
		st[tag], sq[tag] = e.State, e.Seq
	}
	r := journaltest.NewRecord(record.KindPay, journaltest.Card(0xFF), 1)
	r.Merchant = "after"
	next, err := j.Prepare(crashCtx, r)
	if err != nil {
		t.Fatal(err)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	return st, sq, next
}

// model runs the script in-process up to (excluding) step n and returns
// the snapshot a crash there must leave.
func model(t *testing.T, n int) (map[string]journal.State, map[string]uint64) {
	path := filepath.Join(t.TempDir(), "model.db")
	j := journaltest.MustOpenPath(t, path, &journal.Options{Now: func() time.Time { return t0 }})
	seqs := map[string]uint64{}
	for _, s := range crashScript[:n] {
		if err := s.run(j, seqs); err != nil {
			t.Fatalf("model step %s %s: %v", s.op, s.tag, err)
		}
	}
	j.Close()
	st, sq, _ := snapshot(t, path)
	return st, sq
}

// TestJournalCrashAtFailpoints kills (SIGKILL on Unix, i.e. kill -9) a child
// process blocked at each failpoint of the script, reopens the journal and
// checks: the interrupted step took effect exactly when its commit
// happened, nothing else was lost or duplicated, states only moved forward
// (journaltest's invariant check), and the next sequence is above every
// sequence the child issued.
func TestJournalCrashAtFailpoints(t *testing.T) {
	for k, s := range crashScript {
		for _, when := range []string{"before", "after"} {
			name := point(k, when)
			t.Run(strings.ReplaceAll(name, "#", "_"), func(t *testing.T) {
				path := filepath.Join(t.TempDir(), "journal.db")
				cmd, out := startChild(t, "crash", path, name)
				issued := map[string]uint64{}
				hit := false
				for out.Scan() {
					f := strings.Fields(out.Text())
					if len(f) == 3 && f[0] == "seq" {
						issued[f[1]], _ = strconv.ParseUint(f[2], 10, 64)
						continue
					}
					if len(f) == 2 && f[0] == "hit" && f[1] == name {
						hit = true
						break
					}
					t.Fatalf("child: %s", out.Text())
				}
				if !hit {
					t.Fatalf("child never reached %s", name)
				}
				if err := cmd.Process.Kill(); err != nil { // SIGKILL
					t.Fatal(err)
				}
				cmd.Wait()

				done := k
				if when == "after" {
					done = k + 1
				}
				wantSt, wantSeq := model(t, done)
				gotSt, gotSeq, next := snapshot(t, path)
				if !maps.Equal(gotSt, wantSt) || !maps.Equal(gotSeq, wantSeq) {
					t.Fatalf("after the crash:\n states %v\n seqs   %v\nwant\n states %v\n seqs   %v", gotSt, gotSeq, wantSt, wantSeq)
				}
				// The interrupted step itself.
				if s.want != 0 {
					got, ok := gotSt[s.tag]
					want := s.want
					if want == journal.Prepared {
						want = journal.Uncertain // Recover's doing
					}
					if when == "after" && got != want {
						t.Errorf("step %s %s committed but record is %v (present %v)", s.op, s.tag, got, ok)
					}
					// (A rolled-back step leaves the record as it was; when
					// the step's state is Uncertain, Recover gives the same.)
					if when == "before" && ok && got == want && want != journal.Uncertain {
						t.Errorf("step %s %s rolled back but record is %v", s.op, s.tag, got)
					}
				}
				for tag, seq := range issued {
					if next <= seq {
						t.Errorf("after the crash Prepare got %d, not above %s's %d", next, tag, seq)
					}
				}
			})
		}
	}
}

// TestLockedBySecondProcess: a second process's Open fails with ErrLocked
// after LockTimeout instead of hanging, read-only too; once the holder is
// killed the file opens.
func TestJournalLockedBySecondProcess(t *testing.T) {
	path := filepath.Join(t.TempDir(), "journal.db")
	cmd, out := startChild(t, "hold", path, "")
	if !out.Scan() || out.Text() != "locked" {
		t.Fatalf("child: %q %v", out.Text(), out.Err())
	}
	for _, ro := range []bool{false, true} {
		_, err := journal.Open(path, &journal.Options{LockTimeout: 200 * time.Millisecond, ReadOnly: ro})
		if !errors.Is(err, journal.ErrLocked) {
			t.Fatalf("read-only %v: err %v, want ErrLocked", ro, err)
		}
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	j := journaltest.MustOpenPath(t, path, &journal.Options{LockTimeout: 5 * time.Second})
	if _, err := j.Recover(crashCtx, time.Now()); err != nil {
		t.Fatal(err)
	}
}
