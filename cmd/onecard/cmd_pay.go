package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/onecard-hub/onecard/apdu"
	"github.com/onecard-hub/onecard/terminal"
	"github.com/onecard-hub/onecard/terminal/national"
)

const payUsage = `--amount YUAN [--merchant ID] [--fund CODE] [--purse ep|ed] (--reader R --psam-reader R2 | --sim FILE --psam FILE) [--journal FILE] [--pin-stdin]

Debits a payment from the card (PBOC purchase with the PSAM's MAC1/MAC2):
the PIN is asked on the terminal (or read from standard input with
--pin-stdin, never from a flag), the record is journaled before the debit
and completed with the card's TAC after it, and signed with the terminal
key. A card pulled during the debit leaves the record uncertain; the next
operation on that card settles it.`

func init() {
	register(command{
		name:    "pay",
		summary: "debit a payment from the card (PIN, PSAM, journal)",
		run: func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
			return runPay(ctx, args, os.Stdin, stdout, stderr)
		},
	})
}

// parseYuan parses an amount in yuan with at most two decimals ("12.34",
// "5", "0.01") into fen.
func parseYuan(s string) (uint32, error) {
	whole, frac, dot := strings.Cut(s, ".")
	if whole == "" || (dot && (len(frac) == 0 || len(frac) > 2)) {
		return 0, fmt.Errorf("amount %q: want yuan with at most two decimals, e.g. 12.34", s)
	}
	for len(frac) < 2 {
		frac += "0"
	}
	for _, c := range whole + frac {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("amount %q: want yuan with at most two decimals, e.g. 12.34", s)
		}
	}
	n, err := strconv.ParseUint(whole+frac, 10, 32)
	if err != nil || n == 0 || n > 1<<31-1 {
		return 0, fmt.Errorf("amount %q: want more than 0 and at most 21474836.47 yuan", s)
	}
	return uint32(n), nil
}

func parsePurse(s string) (terminal.Purse, error) {
	switch strings.ToLower(s) {
	case "ep", "":
		return terminal.PurseEP, nil
	case "ed":
		return terminal.PurseED, nil
	}
	return 0, fmt.Errorf("purse %q: want ep or ed", s)
}

// amountAndPurse parses --amount (yuan) and --purse; errors are usage
// errors naming the flag.
func amountAndPurse(amount, purseName string) (uint32, terminal.Purse, error) {
	fen, err := parseYuan(amount)
	if err != nil {
		return 0, 0, usagef("--amount: %v", err)
	}
	purse, err := parsePurse(purseName)
	if err != nil {
		return 0, 0, usagef("--purse: %v", err)
	}
	return fen, purse, nil
}

func runPay(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := newFlagSet("pay", payUsage, stderr)
	var tf termFlags
	tf.register(fs, true)
	amount := fs.String("amount", "", "amount in `yuan` (e.g. 12.34)")
	merchant := fs.String("merchant", "", "merchant (hospital, pharmacy) `ID`")
	fund := fs.String("fund", "", "fund or account `CODE`")
	purseName := fs.String("purse", "ep", "purse: ep (电子钱包) or ed (电子存折)")
	return cardOp(ctx, fs, &tf, args, stdin, stdout, stderr, func() (cardOperation, error) {
		if *amount == "" {
			return nil, usagef("--amount is required")
		}
		fen, purse, err := amountAndPurse(*amount, *purseName)
		if err != nil {
			return nil, err
		}
		req := terminal.PayRequest{Amount: fen, Merchant: *merchant, Fund: *fund, Purse: purse}
		return func(ctx context.Context, s *terminal.Session) (*terminal.Receipt, error) { return s.Pay(ctx, req) }, nil
	})
}

// cardOperation is one terminal operation on an open session.
type cardOperation func(context.Context, *terminal.Session) (*terminal.Receipt, error)

// cardOp runs a money or certification command: it parses fs (no
// positional arguments), checks the terminal flags, lets prepare check
// the command's own flags and build the operation, opens the terminal
// session (readers, PSAM, journal, PIN pad) and runs it, printing the
// receipt (also one that comes with an error) and explaining the error.
func cardOp(ctx context.Context, fs *flag.FlagSet, tf *termFlags, args []string, stdin io.Reader, stdout, stderr io.Writer,
	prepare func() (cardOperation, error)) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usagef("%v", err)
	}
	if fs.NArg() != 0 {
		return usagef("unexpected arguments %q", fs.Args())
	}
	if err := tf.check(); err != nil {
		return err
	}
	do, err := prepare()
	if err != nil {
		return err
	}
	pad, err := pinPad(tf.pinStdin, stdin, stderr)
	if err != nil {
		return err
	}
	st, err := tf.open(ctx, termNeeds{money: true}, pad, stderr)
	if err != nil {
		return err
	}
	defer st.close()
	rc, err := do(ctx, st.sess)
	if rc != nil {
		printReceipt(stdout, rc)
	}
	return explain(err, stderr)
}

// printReceipt writes a receipt (personal fields masked).
func printReceipt(w io.Writer, rc *terminal.Receipt) {
	r := rc.Record().Masked()
	fmt.Fprintf(w, "%s #%d: %s\n", r.Kind, rc.Seq, rc.State)
	fmt.Fprintf(w, "  card        %s\n", r.CardID)
	fmt.Fprintf(w, "  terminal    %s\n", r.TerminalID)
	if r.Kind.Money() {
		fmt.Fprintf(w, "  amount      %s\n", apdu.FormatFen(r.Amount))
		fmt.Fprintf(w, "  balance     %s -> %s\n", apdu.FormatFen(r.BalanceBefore), apdu.FormatFen(r.BalanceAfter))
		fmt.Fprintf(w, "  TAC         %X\n", r.TAC)
	}
	if r.Merchant != "" {
		fmt.Fprintf(w, "  merchant    %s\n", r.Merchant)
	}
	if r.PersonID != "" {
		fmt.Fprintf(w, "  holder      %s %s\n", r.HolderName, r.PersonID)
	}
	if n := len(r.Attestation.CardSignature); n > 0 {
		fmt.Fprintf(w, "  card signed the %d-byte challenge (SM2, verified)\n", len(r.Attestation.Challenge))
	}
	fmt.Fprintf(w, "  signature   %X\n", rc.Envelope.Signature)
}

// explain adds the national code and, for an unsettled transaction, what
// to do, to an operation's error.
func explain(err error, stderr io.Writer) error {
	if err == nil {
		return nil
	}
	res := national.ResultOf(err)
	fmt.Fprintf(stderr, "national code %d: %s\n", res.Code, res.Message)
	if errors.Is(err, terminal.ErrOutcomeUnknown) {
		fmt.Fprintln(stderr, "The card left during the transaction: insert the same card again and run any command on it to settle the transaction.")
	}
	return err
}
