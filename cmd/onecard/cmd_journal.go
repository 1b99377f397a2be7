package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/onecard-hub/onecard/terminal/journal"
)

// journalSubcommands are the sub-subcommands of "onecard journal".
var journalSubcommands = map[string]struct {
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}{
	"list":    {"list records (oldest first), optionally by state", runJournalList},
	"show":    {"show one record with its state history", runJournalShow},
	"recover": {"mark interrupted (prepared) records uncertain and list every open record", runJournalRecover},
	"stats":   {"counts per state, sequences, oldest unsent record", runJournalStats},
}

func init() {
	register(command{
		name:    "journal",
		summary: "inspect and recover a terminal transaction journal (list, show, recover, stats)",
		run:     runJournal,
	})
}

func journalUsage(w io.Writer) {
	fmt.Fprintln(w, "usage: onecard journal <subcommand> --journal FILE [--json] [arguments]")
	fmt.Fprintln(w)
	names := make([]string, 0, len(journalSubcommands))
	for n := range journalSubcommands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-8s %s\n", n, journalSubcommands[n].summary)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Card numbers, person IDs and names are always masked; card IDs are shown.")
}

func runJournal(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		journalUsage(stderr)
		return usagef("missing subcommand")
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		journalUsage(stderr)
		return flag.ErrHelp
	}
	sub, ok := journalSubcommands[args[0]]
	if !ok {
		journalUsage(stderr)
		return usagef("unknown subcommand %q", args[0])
	}
	return sub.run(ctx, args[1:], stdout, stderr)
}

// journalFlags are the flags every journal subcommand takes.
type journalFlags struct {
	fs   *flag.FlagSet
	path *string
	json *bool
	wait *time.Duration
}

func newJournalFlags(name, usage string, stderr io.Writer) journalFlags {
	fs := newFlagSet("journal "+name, usage, stderr)
	return journalFlags{
		fs:   fs,
		path: fs.String("journal", "", "journal file (required)"),
		json: fs.Bool("json", false, "print JSON"),
		wait: fs.Duration("wait", journal.DefaultLockTimeout, "how long to wait for a running agent's lock"),
	}
}

// parse parses flags and positional arguments in any order and returns the
// positional ones.
func (f journalFlags) parse(args []string) ([]string, error) {
	var pos []string
	for {
		if err := f.fs.Parse(args); err != nil {
			if err == flag.ErrHelp {
				return nil, err
			}
			return nil, usagef("%v", err)
		}
		args = f.fs.Args()
		if len(args) == 0 {
			break
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
	if *f.path == "" {
		f.fs.Usage()
		return nil, usagef("--journal FILE is required")
	}
	return pos, nil
}

func (f journalFlags) open(readOnly bool) (*journal.Journal, error) {
	return journal.Open(*f.path, &journal.Options{ReadOnly: readOnly, LockTimeout: *f.wait})
}

func runJournalList(_ context.Context, args []string, stdout, stderr io.Writer) error {
	f := newJournalFlags("list", "--journal FILE [--state S] [--from SEQ] [--limit N] [--json]", stderr)
	state := f.fs.String("state", "", "only records in this state (prepared, card-done, sent, cleared, failed, uncertain, dead)")
	from := f.fs.Uint64("from", 0, "start at this sequence")
	limit := f.fs.Int("limit", 0, "at most this many records (0: all)")
	pos, err := f.parse(args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usagef("unexpected argument %q", pos[0])
	}
	var states []journal.State
	if *state != "" {
		s, err := journal.ParseState(*state)
		if err != nil {
			return usagef("unknown state %q", *state)
		}
		states = append(states, s)
	}
	j, err := f.open(true)
	if err != nil {
		return err
	}
	defer j.Close()
	entries, err := j.List(*from, *limit, states...)
	if err != nil {
		return err
	}
	return printEntries(stdout, entries, *f.json)
}

func runJournalShow(_ context.Context, args []string, stdout, stderr io.Writer) error {
	f := newJournalFlags("show", "SEQ --journal FILE [--json]", stderr)
	pos, err := f.parse(args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("want exactly one sequence number")
	}
	seq, err := strconv.ParseUint(pos[0], 10, 64)
	if err != nil {
		return usagef("bad sequence number %q", pos[0])
	}
	j, err := f.open(true)
	if err != nil {
		return err
	}
	defer j.Close()
	e, err := j.Get(seq)
	if err != nil {
		return err
	}
	v := newEntryView(e)
	if *f.json {
		return writeJSON(stdout, v)
	}
	return v.writeText(stdout)
}

func runJournalRecover(_ context.Context, args []string, stdout, stderr io.Writer) error {
	f := newJournalFlags("recover", "--journal FILE [--json]", stderr)
	pos, err := f.parse(args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usagef("unexpected argument %q", pos[0])
	}
	j, err := f.open(false)
	if err != nil {
		return err
	}
	defer j.Close()
	open, err := j.Recover(context.Background(), time.Now())
	if err != nil {
		return err
	}
	return printEntries(stdout, open, *f.json)
}

func runJournalStats(_ context.Context, args []string, stdout, stderr io.Writer) error {
	f := newJournalFlags("stats", "--journal FILE [--json]", stderr)
	pos, err := f.parse(args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usagef("unexpected argument %q", pos[0])
	}
	j, err := f.open(true)
	if err != nil {
		return err
	}
	defer j.Close()
	st, err := j.Stats()
	if err != nil {
		return err
	}
	counts := map[string]int{}
	for _, s := range journal.States {
		counts[s.String()] = st.Counts[s]
	}
	v := statsView{Records: st.Records, Counts: counts, NextSeq: st.NextSeq, HighWater: st.HighWater,
		HubAck: st.HubAck, Unsent: st.Unsent, DeadLetters: st.DeadLetters, DataBytes: st.DataBytes}
	if !st.OldestUnsent.IsZero() {
		t := st.OldestUnsent
		v.OldestUnsent = &t
		v.OldestUnsentAgeSeconds = int64(st.OldestUnsentAge / time.Second)
	}
	if *f.json {
		return writeJSON(stdout, v)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "records\t%d\n", v.Records)
	for _, s := range journal.States {
		fmt.Fprintf(tw, "  %s\t%d\n", s, counts[s.String()])
	}
	fmt.Fprintf(tw, "next sequence\t%d\n", v.NextSeq)
	fmt.Fprintf(tw, "high-water mark\t%d\n", v.HighWater)
	fmt.Fprintf(tw, "hub acknowledged\t%d\n", v.HubAck)
	fmt.Fprintf(tw, "unsent\t%d\n", v.Unsent)
	if v.OldestUnsent != nil {
		fmt.Fprintf(tw, "oldest unsent\t%s (%s ago)\n", v.OldestUnsent.Format(time.RFC3339), st.OldestUnsentAge.Round(time.Second))
	}
	fmt.Fprintf(tw, "dead letters\t%d\n", v.DeadLetters)
	fmt.Fprintf(tw, "data bytes\t%d\n", v.DataBytes)
	return tw.Flush()
}

type statsView struct {
	Records                int            `json:"records"`
	Counts                 map[string]int `json:"counts"`
	NextSeq                uint64         `json:"next_seq"`
	HighWater              uint64         `json:"high_water"`
	HubAck                 uint64         `json:"hub_ack"`
	Unsent                 int            `json:"unsent"`
	OldestUnsent           *time.Time     `json:"oldest_unsent,omitempty"`
	OldestUnsentAgeSeconds int64          `json:"oldest_unsent_age_s,omitempty"`
	DeadLetters            int            `json:"dead_letters"`
	DataBytes              int64          `json:"data_bytes"`
}

// entryView is the operator's view of an entry: personal fields masked.
type entryView struct {
	Seq            uint64           `json:"seq"`
	State          string           `json:"state"`
	Overdue        bool             `json:"overdue,omitempty"`
	Reason         string           `json:"reason,omitempty"`
	Kind           string           `json:"kind"`
	TerminalID     string           `json:"terminal_id"`
	CardID         string           `json:"card_id"`
	CardNumber     string           `json:"card_number,omitempty"`
	PersonID       string           `json:"person_id,omitempty"`
	HolderName     string           `json:"holder_name,omitempty"`
	Sealed         bool             `json:"personal_sealed,omitempty"`
	CardCounter    uint16           `json:"card_counter"`
	TxType         string           `json:"tx_type"`
	Fund           string           `json:"fund,omitempty"`
	Merchant       string           `json:"merchant,omitempty"`
	Amount         uint32           `json:"amount_fen"`
	BalanceBefore  uint32           `json:"balance_before_fen"`
	BalanceAfter   uint32           `json:"balance_after_fen"`
	CardDate       string           `json:"card_date"`
	CardTime       string           `json:"card_time"`
	At             time.Time        `json:"at"`
	CardRandom     string           `json:"card_random"`
	PSAMSeq        uint32           `json:"psam_seq"`
	TAC            string           `json:"tac,omitempty"`
	MAC2           string           `json:"mac2,omitempty"`
	Suite          string           `json:"suite"`
	InternalAuthOK bool             `json:"internal_auth_ok"`
	PINVerified    bool             `json:"pin_verified"`
	Challenge      string           `json:"challenge,omitempty"`
	CardSignature  string           `json:"card_signature,omitempty"`
	History        []transitionView `json:"history"`
}

type transitionView struct {
	State string    `json:"state"`
	At    time.Time `json:"at"`
}

func newEntryView(e journal.Entry) entryView {
	r := e.Record.Masked()
	v := entryView{
		Seq: e.Seq, State: e.State.String(), Overdue: e.Overdue, Reason: e.Reason,
		Kind: r.Kind.String(), TerminalID: r.TerminalID, CardID: r.CardID.String(),
		CardNumber: r.CardNumber, PersonID: r.PersonID, HolderName: r.HolderName, Sealed: e.Sealed,
		CardCounter: r.CardCounter, TxType: fmt.Sprintf("%02X", uint8(r.TxType)), Fund: r.Fund, Merchant: r.Merchant,
		Amount: r.Amount, BalanceBefore: r.BalanceBefore, BalanceAfter: r.BalanceAfter,
		CardDate: r.CardDate, CardTime: r.CardTime, At: r.At,
		CardRandom: hexUpper(r.CardRandom[:]), PSAMSeq: r.PSAMSeq, TAC: hexUpper(r.TAC), MAC2: hexUpper(r.MAC2),
		Suite: r.Suite, InternalAuthOK: r.Attestation.InternalAuthOK, PINVerified: r.Attestation.PINVerified,
		Challenge: hexUpper(r.Attestation.Challenge), CardSignature: hexUpper(r.Attestation.CardSignature),
	}
	for _, h := range e.History {
		v.History = append(v.History, transitionView{h.To.String(), h.At})
	}
	return v
}

func hexUpper(b []byte) string { return strings.ToUpper(hex.EncodeToString(b)) }

func (v entryView) cardNumber() string {
	switch {
	case v.CardNumber != "":
		return v.CardNumber
	case v.Sealed:
		return "(sealed)"
	}
	return "-"
}

func (v entryView) writeText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	line := func(k, val string) {
		if val != "" {
			fmt.Fprintf(tw, "%s\t%s\n", k, val)
		}
	}
	line("sequence", strconv.FormatUint(v.Seq, 10))
	st := v.State
	if v.Overdue {
		st += " (overdue: offered to the hub)"
	}
	line("state", st)
	line("reason", v.Reason)
	line("kind", v.Kind)
	line("terminal", v.TerminalID)
	line("card ID", v.CardID)
	line("card number", v.cardNumber())
	line("person ID", v.PersonID)
	line("holder", v.HolderName)
	line("card counter", strconv.Itoa(int(v.CardCounter)))
	line("tx type", v.TxType)
	line("fund", v.Fund)
	line("merchant", v.Merchant)
	line("amount", fen(v.Amount))
	line("balance before", fen(v.BalanceBefore))
	if v.TAC != "" {
		line("balance after", fen(v.BalanceAfter))
	}
	line("card date/time", v.CardDate+" "+v.CardTime)
	line("terminal time", v.At.Format(time.RFC3339Nano))
	line("card random", v.CardRandom)
	line("PSAM seq", strconv.FormatUint(uint64(v.PSAMSeq), 10))
	line("TAC", v.TAC)
	line("MAC2", v.MAC2)
	line("suite", v.Suite)
	line("internal auth", strconv.FormatBool(v.InternalAuthOK))
	line("PIN verified", strconv.FormatBool(v.PINVerified))
	line("challenge", v.Challenge)
	line("card signature", v.CardSignature)
	for i, h := range v.History {
		k := ""
		if i == 0 {
			k = "history"
		}
		fmt.Fprintf(tw, "%s\t%s %s\n", k, h.At.Format(time.RFC3339), h.State)
	}
	return tw.Flush()
}

// fen formats an amount in fen as yuan.
func fen(v uint32) string { return fmt.Sprintf("%d.%02d", v/100, v%100) }

func printEntries(w io.Writer, entries []journal.Entry, asJSON bool) error {
	views := make([]entryView, 0, len(entries))
	for _, e := range entries {
		views = append(views, newEntryView(e))
	}
	if asJSON {
		return writeJSON(w, views)
	}
	if len(views) == 0 {
		_, err := fmt.Fprintln(w, "no records")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQ\tSTATE\tKIND\tAMOUNT\tCARD ID\tCARD NO\tPREPARED\tREASON")
	for _, v := range views {
		st := v.State
		if v.Overdue {
			st += "*"
		}
		prepared := ""
		if len(v.History) > 0 {
			prepared = v.History[0].At.Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", v.Seq, st, v.Kind, fen(v.Amount), v.CardID, v.cardNumber(), prepared, v.Reason)
	}
	return tw.Flush()
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
