package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/onecard-hub/onecard/terminal/journal"
	"github.com/onecard-hub/onecard/terminal/journal/journaltest"
	"github.com/onecard-hub/onecard/terminal/record"
)

func journalRun(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), append([]string{"journal"}, args...), &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// journalFixture writes a journal with a cleared payment, a failed one, an
// interrupted (prepared) load and a certification, and returns its path
// and the sequences in that order.
func journalFixture(t *testing.T) (string, []uint64) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "journal.db")
	j := journaltest.MustOpenPath(t, path, nil)
	ctx := context.Background()
	var seqs []uint64
	prep := func(r *record.Record) uint64 {
		s, err := j.Prepare(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, s)
		return s
	}
	pay := journaltest.NewRecord(record.KindPay, journaltest.Card(1), 1250)
	s := prep(pay)
	if err := j.CardDone(ctx, s, journaltest.DoneResult(pay, 1)); err != nil {
		t.Fatal(err)
	}
	if err := j.MarkCleared(ctx, []uint64{s}); err != nil {
		t.Fatal(err)
	}
	s = prep(journaltest.NewRecord(record.KindPay, journaltest.Card(2), 99999))
	if err := j.Fail(ctx, s, "SW 9401 insufficient balance"); err != nil {
		t.Fatal(err)
	}
	prep(journaltest.NewRecord(record.KindLoad, journaltest.Card(3), 500))
	cert := journaltest.NewRecord(record.KindCertify, journaltest.Card(4), 0)
	s = prep(cert)
	if err := j.CardDone(ctx, s, journal.CardResult{}); err != nil {
		t.Fatal(err)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	return path, seqs
}

func TestJournalUsage(t *testing.T) {
	path, _ := journalFixture(t)
	for _, tt := range []struct {
		args []string
		code int
	}{
		{nil, 2},
		{[]string{"nope"}, 2},
		{[]string{"help"}, 0},
		{[]string{"list"}, 2},
		{[]string{"list", "-h"}, 0},
		{[]string{"list", "--journal", path, "extra"}, 2},
		{[]string{"list", "--journal", path, "--state", "done"}, 2},
		{[]string{"show", "--journal", path}, 2},
		{[]string{"show", "x1", "--journal", path}, 2},
		{[]string{"show", "1", "2", "--journal", path}, 2},
		{[]string{"stats", "--bogus", "--journal", path}, 2},
		{[]string{"show", "1", "--journal", path}, 1},                                // no such record
		{[]string{"list", "--journal", filepath.Join(t.TempDir(), "missing.db")}, 1}, // missing file
	} {
		code, _, stderr := journalRun(t, tt.args...)
		if code != tt.code {
			t.Errorf("journal %q: exit %d, want %d (stderr %q)", tt.args, code, tt.code, stderr)
		}
	}
}

func TestJournalListMasks(t *testing.T) {
	path, seqs := journalFixture(t)
	code, out, stderr := journalRun(t, "list", "--journal", path)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{strconv.FormatUint(seqs[0], 10), "cleared", "failed", "prepared", "card-done",
		"411600D156000005C38275EEFC9B9601", "*****0001", "12.50", "SW 9401 insufficient balance"} {
		if !strings.Contains(out, want) {
			t.Errorf("list output lacks %q:\n%s", want, out)
		}
	}
	for _, secret := range []string{"C00000001", "110000199001010000", "张三"} {
		if strings.Contains(out, secret) {
			t.Errorf("list output shows %q unmasked", secret)
		}
	}
	code, out, _ = journalRun(t, "list", "--journal", path, "--state", "failed", "--json")
	var views []entryView
	if code != 0 || json.Unmarshal([]byte(out), &views) != nil || len(views) != 1 || views[0].Seq != seqs[1] {
		t.Fatalf("list --state failed --json: exit %d, %q", code, out)
	}
	if views[0].CardNumber != "*****0001" || views[0].PersonID != "110*************00" || views[0].HolderName != "张*" {
		t.Errorf("JSON personal fields not masked: %+v", views[0])
	}
	code, out, _ = journalRun(t, "list", "--journal", path, "--from", strconv.FormatUint(seqs[2], 10), "--limit", "1", "--json")
	if code != 0 || json.Unmarshal([]byte(out), &views) != nil || len(views) != 1 || views[0].Seq != seqs[2] {
		t.Errorf("list --from --limit: %q", out)
	}
}

func TestJournalShow(t *testing.T) {
	path, seqs := journalFixture(t)
	seq := strconv.FormatUint(seqs[0], 10)
	code, out, stderr := journalRun(t, "show", seq, "--journal", path)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{"cleared", "7AC00001", "100.00", "87.50", "prepared", "card-done", "*****0001", "张*"} {
		if !strings.Contains(out, want) {
			t.Errorf("show lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "C00000001") || strings.Contains(out, "张三") {
		t.Errorf("show prints personal data:\n%s", out)
	}
	code, out, _ = journalRun(t, "show", "--journal", path, "--json", seq)
	var v entryView
	if code != 0 || json.Unmarshal([]byte(out), &v) != nil {
		t.Fatalf("show --json: exit %d %q", code, out)
	}
	if v.Seq != seqs[0] || v.TAC != "7AC00001" || len(v.History) != 3 || v.History[2].State != "cleared" {
		t.Errorf("show --json: %+v", v)
	}
}

func TestJournalRecoverAndStats(t *testing.T) {
	path, seqs := journalFixture(t)
	code, out, stderr := journalRun(t, "stats", "--journal", path, "--json")
	var st statsView
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil {
		t.Fatalf("stats: exit %d %q %s", code, out, stderr)
	}
	if st.Records != 4 || st.Counts["prepared"] != 1 || st.Counts["cleared"] != 1 || st.Unsent != 1 || st.HighWater != seqs[3] {
		t.Errorf("stats %+v", st)
	}
	code, out, stderr = journalRun(t, "recover", "--journal", path)
	if code != 0 {
		t.Fatalf("recover: exit %d %s", code, stderr)
	}
	if !strings.Contains(out, "uncertain") || !strings.Contains(out, journal.RecoverReason) {
		t.Errorf("recover output:\n%s", out)
	}
	code, out, _ = journalRun(t, "stats", "--journal", path)
	if code != 0 || !strings.Contains(out, "uncertain") {
		t.Fatalf("stats text: %q", out)
	}
	j, err := journal.Open(path, &journal.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	e, err := j.Get(seqs[2])
	if err != nil || e.State != journal.Uncertain {
		t.Errorf("after recover the interrupted load is %v (%v)", e.State, err)
	}
}

func TestJournalLocked(t *testing.T) {
	path, _ := journalFixture(t)
	j := journaltest.MustOpenPath(t, path, nil)
	defer j.Close()
	code, _, stderr := journalRun(t, "list", "--journal", path, "--wait", "100ms")
	if code != 1 || !strings.Contains(stderr, "locked") {
		t.Errorf("list while the agent runs: exit %d, %q", code, stderr)
	}
	_, err := journal.Open(path, &journal.Options{LockTimeout: 50 * time.Millisecond})
	if !errors.Is(err, journal.ErrLocked) {
		t.Errorf("err %v", err)
	}
}
