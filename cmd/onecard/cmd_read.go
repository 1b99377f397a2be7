package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"golang.org/x/term"

	"github.com/onecard-hub/onecard/hub/proof"
	"github.com/onecard-hub/onecard/sm"
	"github.com/onecard-hub/onecard/terminal"
	"github.com/onecard-hub/onecard/terminal/journal"
	"github.com/onecard-hub/onecard/terminal/national"
)

const readUsage = `(--reader R [--psam-reader R2] | --sim FILE [--psam FILE]) [--mode M] [--json | --format F]

Reads the identity of the card in reader R (an ID from 'onecard readers' or
part of a reader's name: PC/SC, or serial with --serial) or of the
simulated card FILE (in process; its state is kept beside the file). The card is authenticated (internal
authentication) and, on third-generation cards, authorised to be read
(RKSSSE external authentication) with the PSAM in R2 / FILE, or with the
key service (--mode key-service, keys from --keys). Without either, the
read fails with the reason; --mode public reads only the public fields.

Output formats: text (default), json, national (the iReadCardBas string
of the national reader interface; its return code goes to stderr).`

func init() {
	register(command{
		name:    "read",
		summary: "read a social-security card's identity (authenticated)",
		run: func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
			return runRead(ctx, args, os.Stdin, stdout, stderr)
		},
	})
}

// termFlags are the flags every card command shares: the reader
// selection of readersel.go (--reader, --slot, --psam-reader, --serial,
// --sim, --sim-psam; --psam is an alias of --sim-psam) and the terminal's.
type termFlags struct {
	*readerFlags
	keys        string
	journal     string
	terminalID  string
	terminalKey string
	deviceID    string
	pinStdin    bool
	timeout     time.Duration
}

// psamAlias is --psam FILE, the same as --sim-psam FILE.
type psamAlias struct{ rf *readerFlags }

func (a psamAlias) String() string {
	if a.rf == nil || a.rf.backendFlags == nil {
		return ""
	}
	return a.rf.simPSAM
}

func (a psamAlias) Set(v string) error { a.rf.simPSAM = v; return nil }

func (f *termFlags) register(fs *flag.FlagSet, money bool) {
	f.readerFlags = addReaderFlags(fs)
	fs.Var(psamAlias{f.readerFlags}, "psam", "simulated PSAM `CARDFILE` (same as --sim-psam)")
	fs.StringVar(&f.keys, "keys", "", "issuer key set `FILE` for the in-process key service, authoriser and card verifier (default: the TEST key set, with a warning)")
	fs.StringVar(&f.deviceID, "device-id", "", "terminal device number (终端设备号) for the national output")
	fs.DurationVar(&f.timeout, "timeout", terminal.DefaultTimeout, "bound for one card operation")
	if money {
		fs.StringVar(&f.journal, "journal", "onecard-journal.db", "transaction journal `FILE`")
		fs.StringVar(&f.terminalID, "terminal-id", "", "12-digit terminal number (default: the PSAM's)")
		fs.StringVar(&f.terminalKey, "terminal-key", "", "terminal SM2 private key (PEM `FILE`) signing records (default: the key set's)")
		fs.BoolVar(&f.pinStdin, "pin-stdin", false, "read the PIN from standard input, one per line (never from a flag)")
	} else {
		fs.StringVar(&f.journal, "journal", "", "transaction journal `FILE` (settles the card's interrupted transactions first)")
	}
}

// check validates the terminal flags (a usage error on failure); the
// reader flags are checked when the slots are opened.
func (f *termFlags) check() error {
	switch {
	case f.reader == "" && f.sim == "":
		return usagef("give --reader or --sim")
	case f.terminalID != "" && !digits(f.terminalID, 12):
		return usagef("--terminal-id must be 12 digits")
	}
	return nil
}

func digits(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// loadKeys loads --keys or the test key set, warning loudly about the
// latter.
func loadKeys(path string, stderr io.Writer) (*sm.KeySet, error) {
	if path == "" {
		ks, err := sm.TestKeySet("demo")
		if err != nil {
			return nil, fmt.Errorf("derive test key set: %w", err)
		}
		fmt.Fprintln(stderr, "WARNING: no --keys: using the built-in TEST key set \"demo\". Never use it for real cards or real money.")
		return ks, nil
	}
	ks, err := sm.LoadKeySet(path)
	if err != nil {
		return nil, fmt.Errorf("load key set: %w", err)
	}
	if ks.IsTest() {
		fmt.Fprintf(stderr, "WARNING: %s is a TEST key set. Never use it for real cards or real money.\n", path)
	}
	return ks, nil
}

// termNeeds says what a command needs besides the card.
type termNeeds struct {
	keyService bool // in-process key service (read --mode key-service/auto with --keys)
	money      bool // journal, terminal key, authoriser, verifier
}

// setup is an opened terminal.
type setup struct {
	sess    *terminal.Session
	journal *journal.Journal
	closers []func()
}

func (s *setup) close() {
	for i := len(s.closers) - 1; i >= 0; i-- {
		s.closers[i]()
	}
}

func (f *termFlags) open(ctx context.Context, need termNeeds, pad terminal.PINPad, stderr io.Writer) (*setup, error) {
	st := &setup{}
	ok := false
	defer func() {
		if !ok {
			st.close()
		}
	}()
	card, psam, closeSlots, err := f.readerFlags.open(ctx, stderr)
	if err != nil {
		return nil, err
	}
	st.closers = append(st.closers, closeSlots)
	opts := terminal.Options{Card: card, PSAM: psam, TerminalID: f.terminalID, DeviceID: f.deviceID, PINPad: pad, Timeout: f.timeout}
	if need.keyService || need.money {
		ks, err := loadKeys(f.keys, stderr)
		if err != nil {
			return nil, err
		}
		opts.KeyService = &terminal.LocalKeyService{Keys: ks}
		if need.money {
			opts.Authoriser = &terminal.LocalAuthoriser{Keys: ks, Entitled: func(context.Context, terminal.LoadAuthorisation) error { return nil }}
			opts.CardVerifier = proof.Verifier{Keys: ks, Suite: sm.SuiteSM4}
			opts.TerminalKey = ks.TerminalKey()
			if f.terminalKey != "" {
				if opts.TerminalKey, err = sm.LoadPrivateKeyPEM(f.terminalKey); err != nil {
					return nil, fmt.Errorf("load terminal key: %w", err)
				}
			}
		}
	}
	if f.journal != "" {
		j, err := journal.Open(f.journal, nil)
		if err != nil {
			return nil, fmt.Errorf("open journal: %w", err)
		}
		st.journal = j
		st.closers = append(st.closers, func() { _ = j.Close() })
		opts.Journal = j
	}
	if st.sess, err = terminal.New(opts); err != nil {
		return nil, err
	}
	if st.journal != nil {
		if _, err := st.sess.Recover(ctx); err != nil {
			return nil, err
		}
	}
	ok = true
	return st, nil
}

func runRead(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := newFlagSet("read", readUsage, stderr)
	var tf termFlags
	tf.register(fs, false)
	modeName := fs.String("mode", "auto", "authentication: auto, psam, key-service (hsm) or public")
	asJSON := fs.Bool("json", false, "JSON output (same as --format json)")
	format := fs.String("format", "text", "output `format`: text, json or national")
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
	mode, err := terminal.ParseReadMode(*modeName)
	if err != nil {
		return usagef("--mode: %v", err)
	}
	if *asJSON {
		*format = "json"
	}
	if *format != "text" && *format != "json" && *format != "national" {
		return usagef("--format must be text, json or national")
	}
	need := termNeeds{keyService: mode == terminal.ModeKeyService || (mode == terminal.ModeAuto && tf.keys != "")}
	st, err := tf.open(ctx, need, nil, stderr)
	if err != nil {
		return err
	}
	defer st.close()
	id, rerr := st.sess.ReadIdentity(ctx, terminal.ReadOptions{Mode: mode})
	if *format == "national" {
		out, code := national.ReadCardBas(id, rerr)
		fmt.Fprintln(stdout, out)
		if code != 0 {
			fmt.Fprintf(stderr, "national code %d: %s\n", code, national.Message(code))
		}
		if rerr != nil {
			return rerr
		}
		if code != 0 {
			return fmt.Errorf("card not authenticated (national code %d): %w", code, id.Reason)
		}
		return nil
	}
	if rerr != nil {
		return rerr
	}
	if id.Mode == terminal.ModePublic && mode != terminal.ModePublic {
		return fmt.Errorf("card not authenticated, holder data not read: %w "+
			"(insert a PSAM: --psam-reader/--psam; or --mode key-service with --keys; or --mode public for the public fields only)", id.Reason)
	}
	if *format == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(id)
	}
	printIdentity(stdout, id)
	return nil
}

// printIdentity writes the identity for the operator (unmasked: the holder
// is at the counter).
func printIdentity(w io.Writer, id *terminal.Identity) {
	rows := []struct{ k, v string }{
		{"mode", id.Mode.String()},
		{"genuine", fmt.Sprint(id.Genuine)},
		{"generation", fmt.Sprint(id.Generation)},
		{"suite", id.Suite},
		{"card ID (卡识别码)", id.CardID.String()},
		{"region", id.Region()},
		{"card type", id.CardType},
		{"version", id.SpecVersion},
		{"issued", id.IssueDate},
		{"expires", id.ExpiryDate},
		{"card number (卡号)", id.CardNumber},
		{"person ID (社会保障号码)", id.PersonID},
		{"name (姓名)", id.Name},
		{"sex", id.Sex},
		{"ethnic group", id.Nation},
		{"birthplace", id.Birthplace},
		{"birth date", id.BirthDate},
		{"terminal", id.TerminalID},
	}
	for _, r := range rows {
		if r.v != "" {
			fmt.Fprintf(w, "%-24s %s\n", r.k+":", r.v)
		}
	}
}

// linePad is a PIN pad reading PINs from lines of a stream (--pin-stdin);
// a new PIN is read twice and compared.
type linePad struct {
	mu sync.Mutex
	r  *bufio.Reader
}

func (p *linePad) line(ctx context.Context) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	b, err := p.r.ReadBytes('\n')
	if len(b) == 0 && err != nil {
		return nil, fmt.Errorf("%w: no PIN on standard input", terminal.ErrPINCancelled)
	}
	n := len(b)
	for n > 0 && (b[n-1] == '\n' || b[n-1] == '\r') {
		n--
	}
	out := append([]byte(nil), b[:n]...)
	clear(b)
	return out, nil
}

func (p *linePad) ReadPIN(ctx context.Context, purpose terminal.PINPurpose) (*terminal.PIN, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return readTwice(purpose, func() ([]byte, error) { return p.line(ctx) })
}

// readTwice reads a PIN (twice for a new PIN) with get.
func readTwice(purpose terminal.PINPurpose, get func() ([]byte, error)) (*terminal.PIN, error) {
	a, err := get()
	if err != nil {
		return nil, err
	}
	defer clear(a)
	if purpose == terminal.PINNew {
		b, err := get()
		if err != nil {
			return nil, err
		}
		defer clear(b)
		if string(a) != string(b) {
			return nil, terminal.ErrPINMismatch
		}
	}
	return terminal.NewPIN(a)
}

// ttyPad prompts on the terminal with echo off.
type ttyPad struct {
	fd     int
	prompt io.Writer
}

func (p *ttyPad) ReadPIN(ctx context.Context, purpose terminal.PINPurpose) (*terminal.PIN, error) {
	n := 0
	return readTwice(purpose, func() ([]byte, error) {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		label := "Enter " + purpose.String()
		if n > 0 {
			label = "Repeat " + purpose.String()
		}
		n++
		fmt.Fprintf(p.prompt, "%s: ", label)
		b, err := term.ReadPassword(p.fd)
		fmt.Fprintln(p.prompt)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", terminal.ErrPINCancelled, err)
		}
		return b, nil
	})
}

// pinPad picks the PIN source: --pin-stdin, or a prompt when stdin is a
// terminal.
func pinPad(pinStdin bool, stdin io.Reader, stderr io.Writer) (terminal.PINPad, error) {
	if pinStdin {
		return &linePad{r: bufio.NewReader(stdin)}, nil
	}
	if f, ok := stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		return &ttyPad{fd: int(f.Fd()), prompt: stderr}, nil
	}
	return noPad{}, nil
}

// noPad is the PIN source when there is no terminal and no --pin-stdin:
// operations that need a PIN fail with a clear reason.
type noPad struct{}

func (noPad) ReadPIN(context.Context, terminal.PINPurpose) (*terminal.PIN, error) {
	return nil, fmt.Errorf("%w: standard input is not a terminal: give the PIN with --pin-stdin", terminal.ErrNoPINPad)
}
