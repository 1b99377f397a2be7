package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/onecard-hub/onecard/hub/store/migrate"
	"github.com/onecard-hub/onecard/hub/store/pgstore"
)

func init() {
	hubSubcommands["migrate"] = struct {
		summary string
		run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
	}{"copy a bbolt store into PostgreSQL (--from bbolt:FILE --to postgres://... [--resume])", runHubMigrate}
}

// runHubMigrate: "onecard hub migrate --from bbolt:FILE --to postgres://DSN
// [--resume]". The bbolt file must not be in use (stop the hub first: its
// lock is held while it runs); the target must be empty unless --resume.
func runHubMigrate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("hub migrate", "--from bbolt:FILE --to postgres://... [--resume] [--batch N]", stderr)
	from := fs.String("from", "", "source store: bbolt:FILE (the hub must be stopped)")
	to := fs.String("to", "", "target store: postgres://... (schema created if missing)")
	resume := fs.Bool("resume", false, "allow a non-empty target: finish an interrupted copy (nothing is copied twice)")
	batch := fs.Int("batch", 500, "postings per batch")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected arguments %q", fs.Args())
	}
	file, ok := strings.CutPrefix(*from, "bbolt:")
	if !ok || file == "" {
		return usagef("--from: want bbolt:FILE")
	}
	if !strings.HasPrefix(*to, "postgres://") && !strings.HasPrefix(*to, "postgresql://") {
		return usagef("--to: want postgres://...")
	}
	if *batch <= 0 || *batch > 10_000 {
		return usagef("--batch: want 1..10000")
	}
	// boltstore.Open would create a missing file: refuse it instead.
	if _, err := os.Stat(file); err != nil {
		return fmt.Errorf("migrate: source: %w", err)
	}
	src, err := openHubStore(ctx, "bbolt:"+file, 2*time.Second)
	if err != nil {
		return fmt.Errorf("migrate: source: %w", err)
	}
	defer src.st.Close()
	dst, err := pgstore.Open(ctx, pgstore.Options{DSN: *to})
	if err != nil {
		return fmt.Errorf("migrate: target: %w", err)
	}
	defer dst.Close()
	st, err := migrate.Copy(ctx, src.st, dst, migrate.Options{
		Resume: *resume, Batch: *batch,
		Progress: func(s migrate.Stats) {
			fmt.Fprintf(stderr, "\rpostings: %d read, %d copied", s.Postings.Source, s.Postings.Copied)
		},
	})
	if st.Postings.Source > 0 {
		fmt.Fprintln(stderr)
	}
	if errors.Is(err, migrate.ErrNotEmpty) {
		return fmt.Errorf("%w: the target holds data; --resume finishes an interrupted copy into it", err)
	}
	if err != nil {
		return err
	}
	for _, l := range []struct {
		what string
		c    migrate.Count
	}{
		{"postings", st.Postings}, {"programmes", st.Programmes}, {"terminals", st.Terminals},
		{"lost cards", st.LostCards}, {"dead letters", st.DeadLetters}, {"totals", st.Totals},
	} {
		fmt.Fprintf(stdout, "%-12s %6d in source, %6d copied, %6d present already\n", l.what, l.c.Source, l.c.Copied, l.c.Source-l.c.Copied)
	}
	fmt.Fprintf(stdout, "lost-card list version %d\n", st.LostVersion)
	fmt.Fprintf(stdout, "verified: ledger invariants, %d days' summaries, %d account balances equal to the source\n", len(st.Days), st.Accounts)
	return nil
}
