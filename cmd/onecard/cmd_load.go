package main

import (
	"context"
	"errors"
	"flag"
	"io"
	"os"

	"github.com/onecard-hub/onecard/terminal"
)

const loadUsage = `--amount YUAN --programme ID [--fund CODE] [--purse ep|ed] (--reader R | --sim FILE) [--psam-reader R2 | --psam FILE | --terminal-id N] [--journal FILE] [--keys FILE] [--pin-stdin]

Loads a benefit or subsidy onto the card (PBOC load): INITIALIZE FOR LOAD,
the card's MAC1 to the authoriser (here in process, with the --keys key
set: it checks MAC1 and returns MAC2), CREDIT FOR LOAD, the card's TAC.
The record is journaled before the credit and signed. The ED purse needs
the PIN; the EP purse does not.`

func init() {
	register(command{
		name:    "load",
		summary: "load a benefit or subsidy onto the card (authorised, journaled)",
		run: func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
			return runLoad(ctx, args, os.Stdin, stdout, stderr)
		},
	})
}

func runLoad(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := newFlagSet("load", loadUsage, stderr)
	var tf termFlags
	tf.register(fs, true)
	amount := fs.String("amount", "", "amount in `yuan` (e.g. 200)")
	programme := fs.String("programme", "", "benefit or subsidy programme `ID`")
	fund := fs.String("fund", "", "fund `CODE`")
	purseName := fs.String("purse", "ep", "purse: ep or ed")
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
	if *amount == "" || *programme == "" {
		return usagef("--amount and --programme are required")
	}
	fen, err := parseYuan(*amount)
	if err != nil {
		return usagef("--amount: %v", err)
	}
	purse, err := parsePurse(*purseName)
	if err != nil {
		return usagef("--purse: %v", err)
	}
	if tf.simPSAM == "" && tf.psamReader == "" && tf.terminalID == "" && len(tf.serial) == 0 {
		return usagef("give a PSAM (--psam-reader, --psam) or --terminal-id")
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
	rc, err := st.sess.Load(ctx, terminal.LoadRequest{Amount: fen, Programme: *programme, Fund: *fund, Purse: purse})
	if rc != nil {
		printReceipt(stdout, rc)
	}
	return explain(err, stderr)
}
