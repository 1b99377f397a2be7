package main

import (
	"context"
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
	return cardOp(ctx, fs, &tf, args, stdin, stdout, stderr, func() (cardOperation, error) {
		if *amount == "" || *programme == "" {
			return nil, usagef("--amount and --programme are required")
		}
		fen, purse, err := amountAndPurse(*amount, *purseName)
		if err != nil {
			return nil, err
		}
		if tf.simPSAM == "" && tf.psamReader == "" && tf.terminalID == "" && len(tf.serial) == 0 {
			return nil, usagef("give a PSAM (--psam-reader, --psam) or --terminal-id")
		}
		req := terminal.LoadRequest{Amount: fen, Programme: *programme, Fund: *fund, Purse: purse}
		return func(ctx context.Context, s *terminal.Session) (*terminal.Receipt, error) { return s.Load(ctx, req) }, nil
	})
}
