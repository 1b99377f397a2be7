package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/onecard-hub/onecard/agent"
	"github.com/onecard-hub/onecard/agent/hublink"
)

const agentUsage = `[--config FILE] [flags]
       onecard agent pair|pairs|status [--config FILE | --admin ADDR]
       onecard agent unpair ORIGIN [--config FILE | --admin ADDR]
       onecard agent loglevel [LEVEL] [--config FILE | --admin ADDR]

Runs the kiosk agent: the card readers (PC/SC, serial, simulated), one
terminal session per lane, the journal, the hub client and the kiosk API
(a WebSocket on 127.0.0.1, see docs/kiosk-api.md). The configuration file
is documented in docs/agent-config.md; flags override it. Stops on
SIGINT/SIGTERM (or a Windows service stop) after running card operations
finished.

The other forms talk to a running agent's loopback admin endpoint:
  pair      issue a pairing code for a new web page (valid 10 minutes)
  pairs     list paired origins
  unpair    revoke a paired origin
  loglevel  show or set the log level (debug, info, warn, error)
  status    print the agent's status (JSON)`

func init() {
	register(command{
		name:    "agent",
		summary: "run the kiosk agent (readers, terminal, journal, hub sync, kiosk API)",
		run:     runAgent,
	})
}

// strList is a repeatable string flag.
type strList []string

func (s *strList) String() string     { return strings.Join(*s, ",") }
func (s *strList) Set(v string) error { *s = append(*s, v); return nil }

func runAgent(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		return runAgentAdmin(ctx, args[0], args[1:], stdout, stderr)
	}
	fs := newFlagSet("agent", agentUsage, stderr)
	cfgPath := fs.String("config", "", "configuration `FILE` (YAML; default: built-in defaults)")
	listen := fs.String("listen", "", "kiosk API address (`127.0.0.1:PORT`)")
	admin := fs.String("admin", "", "admin endpoint address (127.0.0.1:PORT or off)")
	stateDir := fs.String("state-dir", "", "`DIR` for the journal, paired origins and hub state")
	journalPath := fs.String("journal", "", "journal `FILE`")
	logLevel := fs.String("log-level", "", "log level: debug, info, warn, error")
	logFormat := fs.String("log-format", "", "log format: text or json")
	logFile := fs.String("log-file", "", "log `FILE` (default standard error)")
	var origins strList
	fs.Var(&origins, "origin", "allow web `ORIGIN` (scheme://host[:port]; repeatable; masked identities)")
	noPCSC := fs.Bool("no-pcsc", false, "do not use PC/SC readers")
	sim := fs.String("sim", "", "add the simulated reader virtual:sim holding card `FILE`")
	simPSAM := fs.String("sim-psam", "", "simulated PSAM `FILE` for the virtual:sim reader")
	testKeys := fs.String("test-keys", "", "hold the TEST key set `LABEL` (demos only; e.g. demo)")
	localLoads := fs.Bool("local-loads", false, "authorise loads with the held key set (demos only)")
	terminalID := fs.String("terminal-id", "", "12-digit terminal number")
	hubURL := fs.String("hub", "", "hub `URL` (wss://host:port/sync)")
	hubPin := fs.String("hub-pin", "", "hub certificate SPKI pin")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usagef("%v", err)
	}
	if fs.NArg() != 0 {
		return usagef("unexpected arguments %q", fs.Args())
	}
	cfg, err := agent.LoadConfig(*cfgPath)
	if err != nil {
		return err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	override := func(name string, dst *string, v string) {
		if set[name] {
			*dst = v
		}
	}
	override("listen", &cfg.Listen, *listen)
	override("admin", &cfg.Admin, *admin)
	override("state-dir", &cfg.StateDir, *stateDir)
	override("journal", &cfg.Journal.Path, *journalPath)
	override("log-level", &cfg.Log.Level, *logLevel)
	override("log-format", &cfg.Log.Format, *logFormat)
	override("log-file", &cfg.Log.File, *logFile)
	override("terminal-id", &cfg.Terminal.ID, *terminalID)
	override("hub", &cfg.Hub.URL, *hubURL)
	override("hub-pin", &cfg.Hub.Pin, *hubPin)
	if set["test-keys"] {
		cfg.Keys.Test, cfg.Keys.File = *testKeys, ""
	}
	if set["local-loads"] {
		cfg.Keys.LocalLoads = *localLoads
	}
	for _, o := range origins {
		cfg.Kiosk.Origins = append(cfg.Kiosk.Origins, agent.OriginConfig{Origin: o})
	}
	if *noPCSC {
		f := false
		cfg.Readers.PCSC = &f
	}
	if *simPSAM != "" && *sim == "" {
		return usagef("--sim-psam needs --sim")
	}
	if *sim != "" {
		cfg.Readers.Sim = append(cfg.Readers.Sim, agent.SimConfig{Name: "sim", Card: absPath(*sim), PSAM: absPath(*simPSAM)})
	}
	if err := cfg.Validate(); err != nil {
		return usagef("%v", err)
	}
	var logOut io.Writer = stderr
	if cfg.Log.File != "" {
		f, err := os.OpenFile(cfg.StatePath(cfg.Log.File), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
		if err != nil {
			return fmt.Errorf("open log file: %w", err)
		}
		defer f.Close()
		logOut = f
	}
	a, err := agent.New(agent.Options{Config: cfg, Hub: hublink.New, Version: version, LogOutput: logOut})
	if err != nil {
		return fmt.Errorf("start agent: %w%s", err, errorHint(err))
	}
	if handled, err := agent.RunAsService("onecard-agent", a.Run); handled {
		return err
	}
	return a.Run(ctx)
}

// absPath makes a command-line path absolute (configuration paths are
// relative to the configuration file, flags to the working directory).
func absPath(p string) string {
	if p == "" {
		return ""
	}
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}

// runAgentAdmin talks to a running agent's admin endpoint.
func runAgentAdmin(ctx context.Context, sub string, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("agent "+sub, agentUsage, stderr)
	cfgPath := fs.String("config", "", "the agent's configuration `FILE` (for the admin address)")
	admin := fs.String("admin", "", "admin endpoint `ADDR` (default: from --config, else "+agent.DefaultAdmin+")")
	// Positional arguments may come before the flags.
	var pos []string
	for len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		pos, args = append(pos, args[0]), args[1:]
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usagef("%v", err)
	}
	pos = append(pos, fs.Args()...)
	addr := *admin
	if addr == "" {
		cfg, err := agent.LoadConfig(*cfgPath)
		if err != nil {
			return err
		}
		addr = cfg.Admin
	}
	if addr == agent.AdminOff {
		return usagef("the agent's admin endpoint is off (admin: off)")
	}
	if err := agent.CheckLoopback(addr); err != nil {
		return usagef("--admin: %v", err)
	}
	var method, path string
	switch sub {
	case "pair":
		method, path = http.MethodPost, "/v1/pair"
	case "pairs":
		method, path = http.MethodGet, "/v1/pairs"
	case "status":
		method, path = http.MethodGet, "/v1/status"
	case "unpair":
		if len(pos) != 1 {
			return usagef("unpair needs one ORIGIN")
		}
		method, path = http.MethodDelete, "/v1/pairs?origin="+url.QueryEscape(pos[0])
		pos = nil
	case "loglevel":
		method, path = http.MethodGet, "/v1/loglevel"
		if len(pos) == 1 {
			method, path = http.MethodPut, "/v1/loglevel?level="+url.QueryEscape(pos[0])
			pos = nil
		}
	default:
		return usagef("unknown agent subcommand %q (pair, pairs, unpair, loglevel, status)", sub)
	}
	if len(pos) > 0 {
		return usagef("unexpected arguments %q", pos)
	}
	body, err := adminRequest(ctx, addr, method, path)
	if err != nil {
		return err
	}
	if sub == "pair" {
		var p struct{ Code, Expires string }
		if err := json.Unmarshal(body, &p); err != nil {
			return fmt.Errorf("agent answered %q: %w", body, err)
		}
		fmt.Fprintf(stdout, "pairing code: %s (valid until %s)\n", p.Code, p.Expires)
		fmt.Fprintln(stdout, "Enter it once on the new page; the page then keeps a token for its origin.")
		return nil
	}
	_, err = stdout.Write(body)
	return err
}

// adminRequest calls the admin endpoint and returns the body of a 200.
func adminRequest(ctx context.Context, addr, method, path string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, "http://"+addr+path, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set(agent.AdminHeader, "1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("reach the agent's admin endpoint at %s: %w (is the agent running? systemctl status onecard-agent)", addr, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("read the agent's answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("agent: HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(body)))
	}
	return body, nil
}
