package main

import (
	"context"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/onecard-hub/onecard/apdu"
)

// apduSubcommands are the sub-subcommands of "onecard apdu". Sending APDUs
// to a reader ("onecard apdu --reader R HEX", cmd_apdu_send.go) is the
// form that starts with a flag.
var apduSubcommands = map[string]struct {
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}{
	"decode": {"explain a command or response APDU given in hex", runAPDUDecode},
}

func init() {
	register(command{
		name:    "apdu",
		summary: "explain APDUs (decode) and send them to a card (--reader)",
		run:     runAPDU,
	})
}

func apduUsage(w io.Writer) {
	fmt.Fprintln(w, "usage: onecard apdu <subcommand> [arguments]")
	fmt.Fprintln(w)
	names := make([]string, 0, len(apduSubcommands))
	for n := range apduSubcommands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-8s %s\n", n, apduSubcommands[n].summary)
	}
	fmt.Fprintln(w, "  onecard apdu "+apduSendUsage)
	fmt.Fprintln(w, "           send APDUs to the card in reader R")
}

func runAPDU(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		apduUsage(stderr)
		return usagef("missing subcommand")
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		apduUsage(stderr)
		return flag.ErrHelp
	}
	if strings.HasPrefix(args[0], "-") {
		return runAPDUSend(ctx, args, stdout, stderr)
	}
	sub, ok := apduSubcommands[args[0]]
	if !ok {
		apduUsage(stderr)
		return usagef("unknown subcommand %q", args[0])
	}
	return sub.run(ctx, args[1:], stdout, stderr)
}

func runAPDUDecode(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("apdu decode", "[--command|--response] HEX...", stderr)
	asCommand := fs.Bool("command", false, "read the bytes as a command APDU")
	asResponse := fs.Bool("response", false, "read the bytes as a response APDU (data followed by SW1 SW2)")
	// Accept flags before, between and after the hex arguments.
	var parts []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return err
			}
			return usagef("%v", err)
		}
		args = fs.Args()
		if len(args) == 0 {
			break
		}
		parts = append(parts, args[0])
		args = args[1:]
	}
	if *asCommand && *asResponse {
		return usagef("--command and --response exclude each other")
	}
	if len(parts) == 0 {
		fs.Usage()
		return usagef("missing hex bytes")
	}
	b, err := parseHexArgs(parts)
	if err != nil {
		return usagef("%v", err)
	}
	kind := apdu.KindAuto
	switch {
	case *asCommand:
		kind = apdu.KindCommand
	case *asResponse:
		kind = apdu.KindResponse
	}
	text, err := apdu.Explain(b, kind)
	if err != nil {
		return fmt.Errorf("decode APDU: %w", err)
	}
	_, err = io.WriteString(stdout, text)
	return err
}

// parseHexArgs joins args and decodes them as hex; spaces, tabs and colons
// between digits are ignored.
func parseHexArgs(args []string) ([]byte, error) {
	s := strings.Map(func(r rune) rune {
		switch r {
		case ' ', '\t', '\n', '\r', ':':
			return -1
		}
		return r
	}, strings.Join(args, ""))
	if s == "" {
		return nil, fmt.Errorf("bad hex: no hex digits")
	}
	for i, r := range s {
		if !strings.ContainsRune("0123456789abcdefABCDEF", r) {
			return nil, fmt.Errorf("bad hex: %q at position %d is not a hex digit", r, i)
		}
	}
	if len(s)%2 != 0 {
		return nil, fmt.Errorf("bad hex: odd number of hex digits (%d)", len(s))
	}
	return hex.DecodeString(s)
}
