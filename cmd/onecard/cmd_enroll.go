package main

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"

	"github.com/onecard-hub/onecard/hub/client"
	"github.com/onecard-hub/onecard/sm"
)

// "onecard agent enroll" registers this kiosk's terminal key with the hub.
// If another file registers the "agent" command, enroll is added to it;
// otherwise "agent" is registered here with enroll as its only
// subcommand. (Go runs the init functions of a package's files in file
// name order, so cmd_agent.go, if any, has registered by now.)
func init() {
	if prev, ok := commands["agent"]; ok {
		delete(commands, "agent")
		register(command{name: "agent", summary: prev.summary + "; enroll with a hub",
			run: func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
				if len(args) > 0 && args[0] == "enroll" {
					return runAgentEnroll(ctx, args[1:], stdout, stderr)
				}
				return prev.run(ctx, args, stdout, stderr)
			}})
		return
	}
	register(command{name: "agent", summary: "kiosk agent: enroll with a hub", run: runAgentOnlyEnroll})
}

func runAgentOnlyEnroll(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "enroll" {
		return runAgentEnroll(ctx, args[1:], stdout, stderr)
	}
	fmt.Fprintln(stderr, "usage: onecard agent enroll --hub URL --token T --terminal 12DIGITS --key-out FILE [--pin PIN]")
	if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
		return flag.ErrHelp
	}
	return usagef("missing or unknown subcommand")
}

func runAgentEnroll(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fset := newFlagSet("agent enroll", "--hub URL --token T --terminal 12DIGITS --key-out FILE [--pin PIN]", stderr)
	hubURL := fset.String("hub", "", "hub URL: wss://HOST:PORT/sync (or ws:// to a loopback address)")
	token := fset.String("token", "", "one-time enrolment token ('onecard hub token new' on the hub)")
	term := fset.String("terminal", "", "this terminal's 12-digit number")
	keyOut := fset.String("key-out", "", "file for the terminal's SM2 private key (created 0600; an existing one is reused)")
	pin := fset.String("pin", "", "the hub certificate's pin (sha256/BASE64), required for wss")
	hubID := fset.String("hub-id", "", "expected hub ID (optional)")
	if err := fset.Parse(args); err != nil {
		return err
	}
	if *hubURL == "" || *token == "" || *term == "" || *keyOut == "" || fset.NArg() != 0 {
		fset.Usage()
		return usagef("--hub, --token, --terminal and --key-out are required")
	}
	if _, err := client.CheckURL(*hubURL, *pin); err != nil {
		return usagef("%v", err)
	}
	key, err := sm.LoadPrivateKeyPEM(*keyOut)
	switch {
	case err == nil:
		fmt.Fprintf(stderr, "using the existing key in %s\n", *keyOut)
	case errors.Is(err, fs.ErrNotExist):
		if key, err = sm.GenerateKey(rand.Reader); err != nil {
			return err
		}
		if err := sm.SavePrivateKeyPEM(*keyOut, key); err != nil {
			return err
		}
	default:
		return err
	}
	status, err := client.Enroll(ctx, client.EnrollOptions{URL: *hubURL, Pin: *pin, HubID: *hubID, TerminalID: *term,
		Token: *token, Key: key, Agent: "onecard " + version})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "terminal %s enrolled (%s), key %s\n", *term, status, keyFingerprint(key.PublicKey().Point()))
	if status != "active" {
		fmt.Fprintf(stdout, "an operator approves it on the hub: onecard hub terminals approve %s\n", *term)
	}
	return nil
}
