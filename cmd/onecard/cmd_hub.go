package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	berrors "go.etcd.io/bbolt/errors"

	"github.com/onecard-hub/onecard/hub/client"
	"github.com/onecard-hub/onecard/hub/ledger"
	"github.com/onecard-hub/onecard/hub/server"
	"github.com/onecard-hub/onecard/hub/store"
	"github.com/onecard-hub/onecard/hub/store/boltstore"
	"github.com/onecard-hub/onecard/hub/store/pgstore"
	hubsync "github.com/onecard-hub/onecard/hub/sync"
	"github.com/onecard-hub/onecard/sm"
	"github.com/onecard-hub/onecard/terminal/record"
	webadmin "github.com/onecard-hub/onecard/web/admin"
)

// hubStoreEnv gives --store its default.
const hubStoreEnv = "ONECARD_HUB_STORE"

// hubSubcommand is one operator subcommand of "onecard hub".
type hubSubcommand struct {
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

// hubSubcommands are the operator subcommands of "onecard hub"; without
// one, "onecard hub" runs the hub.
var hubSubcommands = map[string]hubSubcommand{
	"terminals": {"list, approve or suspend terminals (list | approve NO | suspend NO)", runHubTerminals},
	"token":     {"mint a one-time enrolment token for a terminal (new --terminal NO)", runHubToken},
	"lost":      {"put a card on the lost-card list or take it off (add CARD | remove CARD)", runHubLost},
	"report":    {"print the clearing report of a day (--day YYYYMMDD [--csv])", runHubReport},
	"holds":     {"list a card's load reservations, or release one (CARD [--release TT-COUNTER])", runHubHolds},
}

func init() {
	register(command{
		name:    "hub",
		summary: "run the clearing hub, or administer it (terminals, token, lost, programme, grant, report, holds, dead, migrate)",
		run:     runHub,
	})
}

func hubUsage(w io.Writer) {
	fmt.Fprintln(w, "usage: onecard hub --store bbolt:FILE|postgres://... --keys FILE [--listen ADDR] [--tls-cert F --tls-key F]")
	fmt.Fprintln(w, "       onecard hub <subcommand> [--store ...] [arguments]")
	fmt.Fprintln(w)
	names := make([]string, 0, len(hubSubcommands))
	for n := range hubSubcommands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, hubSubcommands[n].summary)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "--store defaults to $%s. With a bbolt store the running hub answers the\n", hubStoreEnv)
	fmt.Fprintln(w, "subcommands through its admin socket (FILE.admin); otherwise they open the store.")
}

func runHub(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case "-h", "-help", "--help", "help":
			hubUsage(stderr)
			return flag.ErrHelp
		}
		if sub, ok := hubSubcommands[args[0]]; ok {
			return sub.run(ctx, args[1:], stdout, stderr)
		}
		if !strings.HasPrefix(args[0], "-") {
			hubUsage(stderr)
			return usagef("unknown subcommand %q", args[0])
		}
	}
	return runHubServe(ctx, args, stdout, stderr)
}

// hubStore is an opened store spec.
type hubStore struct {
	st   store.Store
	file string // bbolt file ("" for PostgreSQL)
}

// openHubStore opens "bbolt:FILE" or a postgres:// URL.
func openHubStore(ctx context.Context, spec string, lockWait time.Duration) (*hubStore, error) {
	switch {
	case strings.HasPrefix(spec, "bbolt:"):
		file := strings.TrimPrefix(spec, "bbolt:")
		if file == "" {
			return nil, usagef("--store bbolt: needs a file")
		}
		st, err := boltstore.Open(boltstore.Options{Path: file, Timeout: lockWait})
		if err != nil {
			if errors.Is(err, berrors.ErrTimeout) {
				return nil, fmt.Errorf("store %s is locked by another process (a running hub answers through %s)", file, server.AdminSocket(file))
			}
			return nil, err
		}
		return &hubStore{st: st, file: file}, nil
	case strings.HasPrefix(spec, "postgres://"), strings.HasPrefix(spec, "postgresql://"):
		st, err := pgstore.Open(ctx, pgstore.Options{DSN: spec})
		if err != nil {
			return nil, err
		}
		return &hubStore{st: st}, nil
	case spec == "":
		return nil, usagef("--store is required (or set $%s): bbolt:FILE or postgres://...", hubStoreEnv)
	}
	return nil, usagef("--store %q: want bbolt:FILE or postgres://...", spec)
}

// operator returns the way to administer the hub of spec: its admin
// socket when a hub runs on that bbolt file, else the store itself.
func operator(ctx context.Context, spec string) (server.Operator, func(), error) {
	if file, ok := strings.CutPrefix(spec, "bbolt:"); ok && file != "" {
		if a, err := server.DialAdmin(server.AdminSocket(file)); err == nil {
			return a, func() {}, nil
		}
	}
	hs, err := openHubStore(ctx, spec, 2*time.Second)
	if err != nil {
		return nil, nil, err
	}
	l, err := ledger.New(ledger.Options{Store: hs.st})
	if err != nil {
		hs.st.Close()
		return nil, nil, err
	}
	return &server.Ops{Store: hs.st, Ledger: l}, func() { hs.st.Close() }, nil
}

func storeFlag(fs *flag.FlagSet) *string {
	return fs.String("store", os.Getenv(hubStoreEnv), "hub store: bbolt:FILE or postgres://... (default $"+hubStoreEnv+")")
}

func runHubServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("hub", "--store S --keys FILE [flags]", stderr)
	storeSpec := storeFlag(fs)
	listen := fs.String("listen", "127.0.0.1:8443", "address to listen on (plain ws only on loopback)")
	keysFile := fs.String("keys", "", "issuer key set file (0600, see 'onecard keys gen')")
	certFile := fs.String("tls-cert", "", "TLS certificate (PEM); agents pin its public key")
	keyFile := fs.String("tls-key", "", "TLS private key (PEM)")
	hubID := fs.String("hub-id", "onecard-hub", "this hub's ID (terminals sign it in their hello)")
	configFile := fs.String("config", "", `JSON file {"version":N,"values":{...}} pushed to agents`)
	maxBatch := fs.Int("max-batch", hubsync.DefaultMaxBatch, "records per batch")
	rate := fs.Float64("rate", server.DefaultRate, "records or requests per second per terminal")
	adminTokenFile := fs.String("admin-token-file", "", "file holding the operator token of the admin page (default: the page answers loopback clients only)")
	verbose := fs.Bool("v", false, "log connections to stderr")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return usagef("unexpected arguments %q", fs.Args())
	}
	if *keysFile == "" {
		return usagef("--keys is required")
	}
	if (*certFile == "") != (*keyFile == "") {
		return usagef("--tls-cert and --tls-key go together")
	}
	host, _, err := net.SplitHostPort(*listen)
	if err != nil {
		return usagef("--listen %q: %v", *listen, err)
	}
	if *certFile == "" && !client.IsLoopback(host) {
		return usagef("plain ws only on a loopback address: give --tls-cert and --tls-key to listen on %s", *listen)
	}
	keys, err := sm.LoadKeySet(*keysFile)
	if err != nil {
		return err
	}
	var cfgVer uint64
	var cfg map[string]string
	if *configFile != "" {
		b, err := os.ReadFile(*configFile)
		if err != nil {
			return err
		}
		var c hubsync.Config
		if err := json.Unmarshal(b, &c); err != nil {
			return fmt.Errorf("config %s: %w", *configFile, err)
		}
		cfgVer, cfg = c.Version, c.Values
		if cfg == nil {
			cfg = map[string]string{}
		}
	}
	hs, err := openHubStore(ctx, *storeSpec, 5*time.Second)
	if err != nil {
		return err
	}
	defer hs.st.Close()
	l, err := ledger.New(ledger.Options{Store: hs.st})
	if err != nil {
		return err
	}
	logger := slog.New(slog.DiscardHandler)
	if *verbose {
		logger = slog.New(slog.NewTextHandler(stderr, nil))
	}
	srv, err := server.New(server.Options{HubID: *hubID, Store: hs.st, Ledger: server.NewLedger(l), Keys: keys,
		MaxBatch: *maxBatch, Rate: *rate, ConfigVersion: cfgVer, Config: cfg, Logger: logger})
	if err != nil {
		return usagef("%v", err)
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	scheme, pin := "ws", ""
	if *certFile != "" {
		cert, err := tls.LoadX509KeyPair(*certFile, *keyFile)
		if err != nil {
			ln.Close()
			return fmt.Errorf("TLS key pair: %w", err)
		}
		if cert.Leaf == nil {
			ln.Close()
			return errors.New("TLS certificate: no leaf")
		}
		pin = hubsync.SPKIPin(cert.Leaf)
		ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
		scheme = "wss"
	}
	mux := http.NewServeMux()
	mux.Handle(hubsync.Path, srv)
	adminToken := ""
	if *adminTokenFile != "" {
		b, err := os.ReadFile(*adminTokenFile)
		if err != nil {
			ln.Close()
			return fmt.Errorf("admin token: %w", err)
		}
		adminToken = strings.TrimSpace(string(b))
	}
	page, err := server.AdminPage(server.AdminPageOptions{Store: hs.st, Ledger: l, Server: srv, Token: adminToken})
	if err != nil {
		ln.Close()
		return usagef("%v", err)
	}
	mux.Handle(webadmin.Prefix, page)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		st := srv.Stats()
		fmt.Fprintf(w, "ok sessions=%d accepted=%d rejected=%d\n", st.Sessions, st.Accepted, st.Rejected)
	})
	hsrv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn)}
	var admin *http.Server
	if hs.file != "" {
		aln, err := server.ListenAdmin(server.AdminSocket(hs.file))
		if err != nil {
			ln.Close()
			return err
		}
		defer os.Remove(server.AdminSocket(hs.file))
		admin = &http.Server{Handler: server.AdminHandler(&server.Ops{Store: hs.st, Ledger: l, Server: srv}), ReadHeaderTimeout: 10 * time.Second}
		go admin.Serve(aln)
	}
	fmt.Fprintf(stdout, "onecard hub %s listening on %s://%s%s\n", *hubID, scheme, ln.Addr(), hubsync.Path)
	httpScheme := map[string]string{"ws": "http", "wss": "https"}[scheme]
	if adminToken != "" {
		fmt.Fprintf(stdout, "admin page: %s://%s%s#token=<the operator token>\n", httpScheme, ln.Addr(), webadmin.Prefix)
	} else {
		fmt.Fprintf(stdout, "admin page (loopback clients only): %s://%s%s\n", httpScheme, ln.Addr(), webadmin.Prefix)
	}
	if pin != "" {
		fmt.Fprintf(stdout, "certificate pin (agents' --pin): %s\n", pin)
	}
	errc := make(chan error, 1)
	go func() { errc <- hsrv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	srv.Close(sctx)
	hsrv.Shutdown(sctx)
	if admin != nil {
		admin.Shutdown(sctx)
	}
	fmt.Fprintln(stdout, "onecard hub stopped")
	return nil
}

func runHubTerminals(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usagef("usage: onecard hub terminals list | approve NO | suspend NO")
	}
	sub := args[0]
	fs := newFlagSet("hub terminals "+sub, "[--store S] [NO]", stderr)
	spec := storeFlag(fs)
	asJSON := fs.Bool("json", false, "list as JSON")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	op, done, err := operator(ctx, *spec)
	if err != nil {
		return err
	}
	defer done()
	switch sub {
	case "list":
		if fs.NArg() != 0 {
			return usagef("list takes no arguments")
		}
		ts, err := op.Terminals(ctx)
		if err != nil {
			return err
		}
		if *asJSON {
			type view struct {
				No, Name, State, Key string
				AckedSeq             uint64
				Updated              time.Time
			}
			out := make([]view, 0, len(ts))
			for _, t := range ts {
				out = append(out, view{t.No, t.Name, t.State.String(), keyFingerprint(t.PublicKey), t.AckedSeq, t.UpdatedAt})
			}
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			return enc.Encode(out)
		}
		tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "TERMINAL\tSTATE\tKEY\tACKED SEQ\tUPDATED\tNAME")
		for _, t := range ts {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", t.No, t.State, keyFingerprint(t.PublicKey), t.AckedSeq,
				t.UpdatedAt.UTC().Format(time.RFC3339), t.Name)
		}
		return tw.Flush()
	case "approve", "suspend":
		if fs.NArg() != 1 {
			return usagef("%s takes one terminal number", sub)
		}
		act := op.Approve
		if sub == "suspend" {
			act = op.Suspend
		}
		t, err := act(ctx, fs.Arg(0))
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "terminal %s: %s\n", t.No, t.State)
		return nil
	}
	return usagef("unknown terminals subcommand %q (list, approve, suspend)", sub)
}

// keyFingerprint shows the first bytes of a terminal key's SM3 hash.
func keyFingerprint(point []byte) string {
	if len(point) == 0 {
		return "-"
	}
	h := sm.NewSM3()
	h.Write(point)
	return fmt.Sprintf("sm3:%X", h.Sum(nil)[:6])
}

func runHubToken(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "new" {
		return usagef("usage: onecard hub token new --terminal NO [--name TEXT] [--replace]")
	}
	fs := newFlagSet("hub token new", "--terminal NO [--name TEXT] [--replace]", stderr)
	spec := storeFlag(fs)
	term := fs.String("terminal", "", "12-digit terminal number the token enrols")
	name := fs.String("name", "", "site name of the terminal")
	replace := fs.Bool("replace", false, "invite an existing terminal again (a replaced kiosk: its old key is dropped)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *term == "" || fs.NArg() != 0 {
		return usagef("--terminal is required")
	}
	op, done, err := operator(ctx, *spec)
	if err != nil {
		return err
	}
	defer done()
	tok, err := op.Invite(ctx, *term, *name, *replace)
	if err != nil {
		if errors.Is(err, store.ErrExists) {
			return fmt.Errorf("%w (use --replace to invite it again)", err)
		}
		return err
	}
	fmt.Fprintln(stdout, tok)
	fmt.Fprintf(stderr, "one-time token for terminal %s; on the kiosk: onecard agent enroll --hub URL --terminal %s --token %s --key-out FILE\n", *term, *term, tok)
	return nil
}

func runHubLost(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || (args[0] != "add" && args[0] != "remove") {
		return usagef("usage: onecard hub lost add CARD | remove CARD")
	}
	fs := newFlagSet("hub lost "+args[0], "CARD", stderr)
	spec := storeFlag(fs)
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("one card ID (32 hex digits)")
	}
	card, err := record.ParseCardID(fs.Arg(0))
	if err != nil {
		return usagef("%v", err)
	}
	op, done, err := operator(ctx, *spec)
	if err != nil {
		return err
	}
	defer done()
	v, err := op.SetLost(ctx, card, args[0] == "add")
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "lost-card list version %d\n", v)
	return nil
}

func runHubHolds(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("hub holds", "CARD [--release TT-COUNTER [--programme P]]", stderr)
	spec := storeFlag(fs)
	release := fs.String("release", "", "release the hold of this transaction type and online counter (e.g. 02-17): the load never happened")
	programme := fs.String("programme", "", "with --release: the programme, when the card has holds in several")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	card, err := oneCard(pos)
	if err != nil {
		return err
	}
	op, done, err := operator(ctx, *spec)
	if err != nil {
		return err
	}
	defer done()
	hs, err := op.Holds(ctx, card)
	if err != nil {
		return err
	}
	if *release == "" {
		if len(hs) == 0 {
			fmt.Fprintln(stdout, "no load reservations hold money")
		}
		for _, h := range hs {
			fmt.Fprintf(stdout, "%-20s %02X-%-6d %12d fen\n", h.Programme, uint8(h.TxType), h.Counter, h.Amount)
		}
		return nil
	}
	var match []ledger.Hold
	for _, h := range hs {
		if fmt.Sprintf("%02X-%d", uint8(h.TxType), h.Counter) == strings.ToUpper(*release) && (*programme == "" || h.Programme == *programme) {
			match = append(match, h)
		}
	}
	switch len(match) {
	case 0:
		return fmt.Errorf("release hold: no hold %s of card %s holds money", *release, card)
	case 1:
	default:
		return usagef("holds %s in %d programmes: name one with --programme", *release, len(match))
	}
	n, err := op.ReleaseHold(ctx, match[0])
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "released %d fen to the card's grant in %s\n", n, match[0].Programme)
	return nil
}

func runHubReport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("hub report", "--day YYYYMMDD [--csv]", stderr)
	spec := storeFlag(fs)
	day := fs.String("day", "", "card transaction day, YYYYMMDD")
	csvOut := fs.Bool("csv", false, "CSV output")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if !store.ValidDay(*day) || fs.NArg() != 0 {
		return usagef("--day YYYYMMDD is required")
	}
	op, done, err := operator(ctx, *spec)
	if err != nil {
		return err
	}
	defer done()
	r, err := op.Report(ctx, *day)
	if err != nil {
		return err
	}
	if *csvOut {
		return r.WriteCSV(stdout)
	}
	return writeReport(stdout, r)
}

// writeReport prints the report for people.
func writeReport(w io.Writer, r *ledger.Report) error {
	fen := func(v int64) string {
		sign := ""
		if v < 0 {
			sign, v = "-", -v
		}
		return fmt.Sprintf("%s%d.%02d", sign, v/100, v%100)
	}
	fmt.Fprintf(w, "Clearing report %s\n\n", r.Day)
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "MERCHANT\tFUND\tCOUNT\tAMOUNT (CNY)\t")
	var n, sum int64
	for _, m := range r.Merchants {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t\n", m.Merchant, m.Fund, m.Count, fen(m.Amount))
		n, sum = n+m.Count, sum+m.Amount
	}
	fmt.Fprintf(tw, "total\t\t%d\t%s\t\n", n, fen(sum))
	tw.Flush()
	if len(r.Programmes) > 0 {
		fmt.Fprintln(w)
		tw = tabwriter.NewWriter(w, 2, 4, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "PROGRAMME\tFUND\tFUNDED\tGRANTED\tLOADED\tLOADS\t")
		for _, p := range r.Programmes {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t\n", p.Programme, p.Fund, fen(p.Funded), fen(p.Granted), fen(p.Loaded), p.Loads)
		}
		tw.Flush()
	}
	if len(r.Terminals) > 0 {
		fmt.Fprintln(w)
		tw = tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "TERMINAL\tPAYS\tPAY AMOUNT\tLOADS\tLOAD AMOUNT\tCERTIFY\tSUBMITTED TOTALS")
		for _, t := range r.Terminals {
			sub := "none"
			if t.Submitted != nil {
				sub = "match"
				if !t.Match {
					sub = "MISMATCH"
				}
			}
			p := t.Posted
			fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%s\t%d\t%s\n", t.TerminalNo, p.PayCount, fen(p.PayAmount), p.LoadCount, fen(p.LoadAmount), p.CertifyCount, sub)
		}
		tw.Flush()
	}
	fmt.Fprintf(w, "\n%d discrepancies\n", len(r.Discrepancies))
	for _, d := range r.Discrepancies {
		keys := make([]string, 0, len(d.Records))
		for _, k := range d.Records {
			keys = append(keys, k.String())
		}
		fmt.Fprintf(w, "  %s terminal=%s card=%s %s [%s]\n", d.Kind, d.TerminalNo, d.CardID, d.Detail, strings.Join(keys, " "))
	}
	return nil
}
