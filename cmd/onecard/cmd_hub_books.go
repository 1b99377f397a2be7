package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"

	"github.com/onecard-hub/onecard/hub/ledger"
	"github.com/onecard-hub/onecard/hub/store"
	"github.com/onecard-hub/onecard/terminal/record"
)

// The hub's books: programmes, their funding, grants to cards, opening
// balances, and the dead letters an operator resolves.
func init() {
	hubSubcommands["programme"] = hubSubcommand{"list programmes, create one, or fund one (list | create ID --name N --fund F | fund ID --amount FEN --ref R)", runHubProgramme}
	hubSubcommands["grant"] = hubSubcommand{"grant a card credits it may load from a programme (CARD --programme P --amount FEN --ref R)", runHubGrant}
	hubSubcommands["opening"] = hubSubcommand{"book a card's purse balance from before the hub (CARD --fund F --amount FEN --ref R)", runHubOpening}
	hubSubcommands["dead"] = hubSubcommand{"list the records the hub could not post; post one again, or delete a resolved one (list | retry ID | delete ID)", runHubDead}
}

func runHubProgramme(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || (args[0] != "list" && args[0] != "create" && args[0] != "fund") {
		return usagef("usage: onecard hub programme list | create ID --name N --fund F | fund ID --amount FEN --ref R [--source S]")
	}
	verb := args[0]
	fs := newFlagSet("hub programme "+verb, "[ID] [flags]", stderr)
	spec := storeFlag(fs)
	name := fs.String("name", "", "create: the programme's name")
	fund := fs.String("fund", "", "create: the fund its loads credit on cards (e.g. 310)")
	amount := fs.Int64("amount", 0, "fund: amount in fen")
	ref := fs.String("ref", "", "fund: the operator's reference (the same reference again changes nothing)")
	source := fs.String("source", "", "fund: the external source (default treasury)")
	day := fs.String("day", "", "fund: business day YYYYMMDD (default today)")
	asJSON := fs.Bool("json", false, "list: JSON output")
	pos, err := parseInterspersed(fs, args[1:])
	if err != nil {
		return err
	}
	if (verb == "list") != (len(pos) == 0) || len(pos) > 1 {
		return usagef("%s: want %s", verb, map[bool]string{true: "no arguments", false: "one programme ID"}[verb == "list"])
	}
	op, done, err := operator(ctx, *spec)
	if err != nil {
		return err
	}
	defer done()
	switch verb {
	case "list":
		ps, err := op.Programmes(ctx)
		if err != nil {
			return err
		}
		if *asJSON {
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			return enc.Encode(ps)
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tFUND\tNAME")
		for _, p := range ps {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", p.ID, p.Fund, p.Name)
		}
		return tw.Flush()
	case "create":
		if *name == "" {
			return usagef("create: --name is required")
		}
		if err := op.CreateProgramme(ctx, store.Programme{ID: pos[0], Name: *name, Fund: *fund}); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "programme %s created\n", pos[0])
		return nil
	}
	return post(ctx, op, stdout, store.KindFund, ledger.Request{Ref: *ref, Programme: pos[0], Source: *source, Amount: *amount, Day: *day})
}

func runHubGrant(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return runHubCardPosting(ctx, store.KindGrant, args, stdout, stderr)
}

func runHubOpening(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return runHubCardPosting(ctx, store.KindOpening, args, stdout, stderr)
}

// runHubCardPosting is "hub grant" (credits from a programme) and "hub
// opening" (a purse balance from before the hub) for one card.
func runHubCardPosting(ctx context.Context, kind store.Kind, args []string, stdout, stderr io.Writer) error {
	usage := "CARD --programme P --amount FEN --ref R"
	if kind == store.KindOpening {
		usage = "CARD --fund F --amount FEN --ref R [--source S]"
	}
	fs := newFlagSet("hub "+kind.String(), usage, stderr)
	spec := storeFlag(fs)
	var q ledger.Request
	if kind == store.KindGrant {
		fs.StringVar(&q.Programme, "programme", "", "the programme granting the credits")
	} else {
		fs.StringVar(&q.Fund, "fund", "", "the card's fund (purse) the balance belongs to")
		fs.StringVar(&q.Source, "source", "", "the external source (default treasury)")
	}
	fs.Int64Var(&q.Amount, "amount", 0, "amount in fen")
	fs.StringVar(&q.Ref, "ref", "", "the operator's reference (the same reference again changes nothing)")
	fs.StringVar(&q.Day, "day", "", "business day YYYYMMDD (default today)")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if q.Card, err = oneCard(pos); err != nil {
		return err
	}
	op, done, err := operator(ctx, *spec)
	if err != nil {
		return err
	}
	defer done()
	return post(ctx, op, stdout, kind, q)
}

func oneCard(args []string) (record.CardID, error) {
	if len(args) != 1 {
		return record.CardID{}, usagef("one card ID (32 hex digits)")
	}
	card, err := record.ParseCardID(args[0])
	if err != nil {
		return record.CardID{}, usagef("%v", err)
	}
	return card, nil
}

func post(ctx context.Context, op interface {
	Post(context.Context, store.Kind, ledger.Request) (store.Outcome, error)
}, stdout io.Writer, kind store.Kind, q ledger.Request) error {
	if q.Ref == "" {
		return usagef("--ref is required: it makes the posting happen once however often it is sent")
	}
	if q.Amount <= 0 {
		return usagef("--amount must be a positive number of fen")
	}
	out, err := op.Post(ctx, kind, q)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s %s: %s (%s fen)\n", kind, q.Ref, out, strconv.FormatInt(q.Amount, 10))
	return nil
}

func runHubDead(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || (args[0] != "list" && args[0] != "delete" && args[0] != "retry") {
		return usagef("usage: onecard hub dead list | retry ID | delete ID")
	}
	fs := newFlagSet("hub dead "+args[0], "[ID]", stderr)
	spec := storeFlag(fs)
	pos, err := parseInterspersed(fs, args[1:])
	if err != nil {
		return err
	}
	op, done, err := operator(ctx, *spec)
	if err != nil {
		return err
	}
	defer done()
	if args[0] != "list" {
		if len(pos) != 1 {
			return usagef("%s: one dead-letter ID", args[0])
		}
		id, err := strconv.ParseUint(pos[0], 10, 64)
		if err != nil {
			return usagef("%s: dead-letter ID %q is not a number", args[0], pos[0])
		}
		if args[0] == "retry" {
			out, err := op.RetryDeadLetter(ctx, id)
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "dead letter %d: %s; letter deleted\n", id, out)
			return nil
		}
		if err := op.DeleteDeadLetter(ctx, id); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "dead letter %d deleted\n", id)
		return nil
	}
	if len(pos) != 0 {
		return usagef("list: no arguments")
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tRECORD\tKIND\tCARD DAY\tCOUNT\tLAST\tREASON")
	var after uint64
	for {
		ds, err := op.DeadLetters(ctx, after, 500)
		if err != nil {
			return err
		}
		if len(ds) == 0 {
			break
		}
		for _, d := range ds {
			kind, day := "?", "?"
			if r, err := record.Decode(d.Content); err == nil {
				kind, day = r.Kind.String(), r.CardDate
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\t%s\t%s\n", d.ID, d.Key, kind, day, d.Count, d.Last.Format("2006-01-02 15:04:05"), d.Reason)
		}
		after = ds[len(ds)-1].ID
	}
	return tw.Flush()
}
