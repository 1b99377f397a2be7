package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/onecard-hub/onecard/internal/safeenv"
	"github.com/onecard-hub/onecard/sm"
)

// keysSubcommands are the sub-subcommands of "onecard keys".
var keysSubcommands = map[string]struct {
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}{
	"gen":      {"write a TEST issuer key set (SM4 and 3DES masters, terminal SM2 key) to a 0600 file", runKeysGen},
	"selftest": {"check the crypto of this binary against the standards' known-answer vectors", runKeysSelftest},
}

func init() {
	register(command{
		name:    "keys",
		summary: "test issuer key sets and the crypto self-test (gen, selftest)",
		run:     runKeys,
	})
}

func keysUsage(w io.Writer) {
	fmt.Fprintln(w, "usage: onecard keys <subcommand> [arguments]")
	fmt.Fprintln(w)
	names := make([]string, 0, len(keysSubcommands))
	for n := range keysSubcommands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-9s %s\n", n, keysSubcommands[n].summary)
	}
}

func runKeys(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		keysUsage(stderr)
		return usagef("missing subcommand")
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		keysUsage(stderr)
		return flag.ErrHelp
	}
	sub, ok := keysSubcommands[args[0]]
	if !ok {
		keysUsage(stderr)
		return usagef("unknown subcommand %q", args[0])
	}
	return sub.run(ctx, args[1:], stdout, stderr)
}

// defaultKeysFile is where "keys gen" writes without --out.
const defaultKeysFile = "onecard-test-keys.json"

// runKeysGen writes a test key set: random, or derived from --label (the
// same label always gives the same keys, see sm.TestKeySet). It prints the
// path and the terminal SM2 public key, never private material.
func runKeysGen(_ context.Context, args []string, stdout, stderr io.Writer) error {
	flags := newFlagSet("keys gen", "[--out FILE] [--label L] [--force]", stderr)
	out := flags.String("out", defaultKeysFile, "key set file to write (mode 0600)")
	label := flags.String("label", "", "derive the keys deterministically from this label (default: random keys)")
	force := flags.Bool("force", false, "replace an existing file")
	if err := keysParse(flags, args); err != nil {
		return err
	}
	if flags.NArg() != 0 {
		return usagef("keys gen takes no arguments (got %q)", flags.Args())
	}
	if *out == "" {
		return usagef("--out must not be empty")
	}
	labelSet := false
	flags.Visit(func(f *flag.Flag) { labelSet = labelSet || f.Name == "label" })

	if _, err := os.Lstat(*out); err == nil && !*force {
		return fmt.Errorf("write key set: %s exists; use --force to replace it", *out)
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("write key set: %w", err)
	}

	var (
		ks  *sm.KeySet
		err error
	)
	if labelSet {
		ks, err = sm.TestKeySet(*label)
	} else {
		ks, err = sm.GenerateTestKeySet(nil)
	}
	if err != nil {
		return err
	}
	if err := ks.Save(*out); err != nil {
		return err
	}
	path, err := filepath.Abs(*out)
	if err != nil {
		path = *out
	}
	fmt.Fprintf(stdout, "wrote %s to %s (mode 0600)\n", sm.TestKeysWarning, path)
	if labelSet {
		fmt.Fprintf(stdout, "keys derived from label %q (anyone can recompute them)\n", *label)
	} else {
		fmt.Fprintln(stdout, "keys are random")
	}
	fmt.Fprintf(stdout, "terminal SM2 public key: %s\n", ks.TerminalPublicKey())
	return nil
}

// runKeysSelftest runs sm.SelfTests and checks the process environment the
// GM library needs. Any failure makes the command fail.
func runKeysSelftest(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("keys selftest", "", stderr)
	if err := keysParse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return usagef("keys selftest takes no arguments")
	}
	failed := 0
	env := strings.Join(safeenv.Required, " ")
	if safeenv.OK(os.Environ()) {
		fmt.Fprintf(stdout, "ok    environment has %s\n", env)
	} else {
		failed++
		fmt.Fprintf(stdout, "FAIL  environment lacks %s (the binary re-executes itself with them unless ONECARD_SAFEENV_REEXEC is set)\n", env)
	}
	results := sm.SelfTests()
	for _, r := range results {
		if r.Err != nil {
			failed++
			fmt.Fprintf(stdout, "FAIL  %v\n", r.Err)
			continue
		}
		fmt.Fprintf(stdout, "ok    %s\n", r.Name)
	}
	total := len(results) + 1
	fmt.Fprintf(stdout, "selftest: %d passed, %d failed\n", total-failed, failed)
	if failed > 0 {
		return fmt.Errorf("selftest: %d of %d checks failed", failed, total)
	}
	return nil
}

// keysParse parses flags; a bad flag is a usage error (exit 2), -h is
// flag.ErrHelp (exit 0).
func keysParse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usagef("%v", err)
	}
	return nil
}
