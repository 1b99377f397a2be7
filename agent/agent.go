package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/onecard-hub/onecard/agent/kioskapi"
	"github.com/onecard-hub/onecard/agent/logmask"
	firmwareprofiles "github.com/onecard-hub/onecard/firmware-profiles"
	"github.com/onecard-hub/onecard/hub/proof"
	"github.com/onecard-hub/onecard/internal/simcard"
	"github.com/onecard-hub/onecard/reader"
	"github.com/onecard-hub/onecard/reader/pcsc"
	"github.com/onecard-hub/onecard/reader/serial"
	"github.com/onecard-hub/onecard/reader/serial/profile"
	"github.com/onecard-hub/onecard/reader/virtual"
	"github.com/onecard-hub/onecard/sm"
	"github.com/onecard-hub/onecard/terminal"
	"github.com/onecard-hub/onecard/terminal/journal"
	"github.com/onecard-hub/onecard/web"
)

// Options configures New. Config is required; the rest is for the binary
// (Hub, Version) and for tests (Backends, PINPad, LogOutput).
type Options struct {
	// Config is the validated configuration (LoadConfig).
	Config *Config
	// Backends are reader backends added to those the configuration
	// builds (tests add in-process readers; names must differ from
	// "pcsc", "serial" and "virtual").
	Backends []reader.Backend
	// Hub builds the hub client when Config.Hub.URL is set
	// (agent/hublink.New). A hub URL without a factory is an error.
	Hub HubFactory
	// PINPad collects PINs on the terminal (a reader's keypad) when a
	// request carries none. Nil: PINs come in the requests.
	PINPad terminal.PINPad
	// Version is reported by status, hello and the metrics.
	Version string
	// LogOutput receives the log (default os.Stderr); Logger, when set,
	// replaces the configured logger entirely (it should be wrapped with
	// logmask.New).
	LogOutput io.Writer
	Logger    *slog.Logger
}

// Agent is the kiosk agent daemon: the reader manager, one terminal
// session per lane, the journal, the hub client, the kiosk API and the
// admin endpoint. New opens everything and binds the listeners; Run
// serves until its context ends, then shuts down gracefully.
type Agent struct {
	opts  Options
	cfg   *Config
	log   *slog.Logger
	level *slog.LevelVar

	keys     *sm.KeySet
	termKey  *sm.PrivateKey
	readMode terminal.ReadMode
	journal  *journal.Journal
	hub      Hub
	mgr      *reader.Manager
	serial   *serial.Backend
	lanes    *lanes
	kiosk    *kioskapi.Server
	pairing  *kioskapi.Pairing
	m        *telemetry
	started  time.Time

	kioskLn, adminLn net.Listener
	kioskHTTP        *http.Server
	adminHTTP        *http.Server

	closeOnce sync.Once
	ran       bool
	runMu     sync.Mutex
}

// NewLogger returns the agent's logger: a text or JSON handler at level,
// wrapped with logmask so names, ID numbers, PINs and keys never reach w.
func NewLogger(w io.Writer, format string, level *slog.LevelVar) *slog.Logger {
	ho := &slog.HandlerOptions{Level: level}
	var h slog.Handler
	if format == "json" {
		h = slog.NewJSONHandler(w, ho)
	} else {
		h = slog.NewTextHandler(w, ho)
	}
	return slog.New(logmask.New(h))
}

// New opens the journal (recovering interrupted records), loads the keys,
// builds the reader backends, the hub client and the kiosk API, and binds
// the listeners. Errors wrap ErrConfig for bad configuration; file and
// listener errors are returned as they are. Nothing stays open on error.
func New(opts Options) (_ *Agent, err error) {
	if opts.Config == nil {
		return nil, fmt.Errorf("%w: no configuration", ErrConfig)
	}
	cfg := opts.Config
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	a := &Agent{opts: opts, cfg: cfg, level: new(slog.LevelVar), started: time.Now()}
	lvl, _ := ParseLevel(cfg.Log.Level)
	a.level.Set(lvl)
	a.log = opts.Logger
	if a.log == nil {
		w := opts.LogOutput
		if w == nil {
			w = os.Stderr
		}
		a.log = NewLogger(w, cfg.Log.Format, a.level)
	}
	defer func() {
		if err != nil {
			a.cleanup()
		}
	}()
	if a.readMode, err = terminal.ParseReadMode(cfg.Terminal.ReadMode); err != nil {
		return nil, fmt.Errorf("%w: terminal.read_mode: %w", ErrConfig, err)
	}
	if err := a.loadKeys(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.InputPath(cfg.StateDir), 0o700); err != nil {
		return nil, fmt.Errorf("create state directory: %w", err)
	}
	if err := a.openJournal(); err != nil {
		return nil, err
	}
	if cfg.Hub.URL != "" {
		if opts.Hub == nil {
			return nil, fmt.Errorf("%w: hub.url is set but this build has no hub client", ErrConfig)
		}
		if a.termKey == nil {
			return nil, fmt.Errorf("%w: hub.url needs the terminal key (terminal.key)", ErrConfig)
		}
		state := cfg.Hub.State
		if state == "" {
			state = cfg.JournalPath() + ".hub"
		} else {
			state = cfg.StatePath(state)
		}
		a.hub, err = opts.Hub(HubParams{
			Config: cfg.Hub, StatePath: state, TerminalID: cfg.Terminal.ID, Key: a.termKey,
			Journal: a.journal, Agent: "onecard-agent/" + opts.Version, Logger: a.log.With("component", "hub"),
		})
		if err != nil {
			return nil, fmt.Errorf("start hub client: %w", err)
		}
	}
	a.m = newTelemetry(a)
	a.lanes = newLanes(a, cfg.Lanes)
	backends, err := a.backends()
	if err != nil {
		return nil, err
	}
	a.mgr = reader.NewManager(reader.ManagerOptions{
		Backends: backends, Trace: a.trace, Logger: a.log.With("component", "reader"),
	})
	if *cfg.Kiosk.Pairing {
		if a.pairing, err = kioskapi.OpenPairing(kioskapi.PairingOptions{Path: cfg.PairingPath()}); err != nil {
			return nil, err
		}
	}
	if a.kioskLn, err = net.Listen("tcp", cfg.Listen); err != nil {
		return nil, fmt.Errorf("listen for the kiosk API: %w", err)
	}
	if err := a.buildKiosk(); err != nil {
		_ = a.kioskLn.Close()
		return nil, err
	}
	if cfg.Admin != AdminOff {
		if a.adminLn, err = net.Listen("tcp", cfg.Admin); err != nil {
			return nil, fmt.Errorf("listen for the admin endpoint: %w", err)
		}
	}
	return a, nil
}

func (a *Agent) loadKeys() error {
	cfg := a.cfg
	var err error
	switch {
	case cfg.Keys.File != "":
		if a.keys, err = sm.LoadKeySet(cfg.InputPath(cfg.Keys.File)); err != nil {
			return fmt.Errorf("load key set: %w", err)
		}
	case cfg.Keys.Test != "":
		if a.keys, err = sm.TestKeySet(cfg.Keys.Test); err != nil {
			return fmt.Errorf("derive test key set: %w", err)
		}
	}
	if a.keys != nil && a.keys.IsTest() {
		a.log.Warn("the agent holds a TEST key set: never use it for real cards or real money")
	}
	switch {
	case cfg.Terminal.Key != "":
		if a.termKey, err = sm.LoadPrivateKeyPEM(cfg.InputPath(cfg.Terminal.Key)); err != nil {
			return fmt.Errorf("load terminal key: %w", err)
		}
	case a.keys != nil:
		a.termKey = a.keys.TerminalKey()
	}
	return nil
}

func (a *Agent) openJournal() error {
	cfg := a.cfg
	jo := &journal.Options{MaxRecords: cfg.Journal.MaxRecords, MaxSize: int64(cfg.Journal.MaxSizeMB) << 20, Logger: a.log.With("component", "journal")}
	if cfg.Journal.PersonalKey != "" {
		k, err := journal.LoadOrCreateKey(cfg.StatePath(cfg.Journal.PersonalKey))
		if err != nil {
			return fmt.Errorf("load journal personal-data key: %w", err)
		}
		jo.PersonalKey = k
	}
	j, err := journal.Open(cfg.JournalPath(), jo)
	if err != nil {
		return fmt.Errorf("open journal: %w", err)
	}
	a.journal = j
	rec, err := j.Recover(context.Background(), time.Now())
	if err != nil {
		return fmt.Errorf("recover journal: %w", err)
	}
	if len(rec) > 0 {
		a.log.Warn("journal: interrupted transactions are uncertain until their cards come back", "records", len(rec))
	}
	return nil
}

// backends builds the configured reader backends plus Options.Backends.
func (a *Agent) backends() ([]reader.Backend, error) {
	cfg := a.cfg
	var bs []reader.Backend
	if *cfg.Readers.PCSC {
		bs = append(bs, pcsc.NewBackend(pcsc.Options{}))
	}
	if len(cfg.Readers.Serial) > 0 {
		var rc []serial.Config
		for _, s := range cfg.Readers.Serial {
			p, err := loadProfile(cfg, s.Profile)
			if err != nil {
				return nil, fmt.Errorf("%w: readers.serial %s: %w", ErrConfig, s.Port, err)
			}
			rc = append(rc, serial.Config{Port: s.Port, Profile: p, Baud: s.Baud, Address: s.Address, Name: s.Name})
		}
		b, err := serial.NewBackend(serial.BackendOptions{Readers: rc, Logger: a.log.With("component", "serial")})
		if err != nil {
			return nil, fmt.Errorf("%w: readers.serial: %w", ErrConfig, err)
		}
		a.serial = b
		bs = append(bs, b)
	}
	if len(cfg.Readers.Sim) > 0 {
		var rs []reader.StaticReader
		for _, s := range cfg.Readers.Sim {
			var card virtual.Card
			if s.Card != "" {
				c, err := simcard.LoadFile(cfg.InputPath(s.Card))
				if err != nil {
					return nil, fmt.Errorf("readers.sim %s: %w", s.Name, err)
				}
				card = c
			}
			slots := []reader.Slot{virtual.NewSlot("virtual:"+s.Name+":user", card)}
			if s.PSAM != "" {
				p, err := simcard.LoadFile(cfg.InputPath(s.PSAM))
				if err != nil {
					return nil, fmt.Errorf("readers.sim %s PSAM: %w", s.Name, err)
				}
				slots = append(slots, virtual.NewSlot("virtual:"+s.Name+":psam1", p))
			}
			rs = append(rs, reader.StaticReader{ID: "virtual:" + s.Name, Name: "simulated reader " + s.Name, Slots: slots})
		}
		bs = append(bs, reader.NewStaticBackend(reader.StaticOptions{Readers: rs}))
	}
	bs = append(bs, a.opts.Backends...)
	return bs, nil
}

// loadProfile loads an embedded firmware profile by id or file name, or a
// profile file relative to the configuration.
func loadProfile(cfg *Config, name string) (*profile.Profile, error) {
	if p, err := firmwareprofiles.Load(name); err == nil {
		return p, nil
	}
	if p, err := firmwareprofiles.Load(name + ".yaml"); err == nil {
		return p, nil
	}
	return profile.LoadFile(cfg.InputPath(name))
}

// sessionOptions are the terminal options every lane shares.
func (a *Agent) sessionOptions() terminal.Options {
	o := terminal.Options{
		Journal: a.journal, TerminalKey: a.termKey, TerminalID: a.cfg.Terminal.ID,
		DeviceID: a.cfg.Terminal.DeviceID, Timeout: a.cfg.Terminal.OpTimeout,
		Logger: a.log.With("component", "terminal"),
	}
	if a.keys != nil {
		o.KeyService = &terminal.LocalKeyService{Keys: a.keys}
		o.CardVerifier = proof.Verifier{Keys: a.keys, Suite: sm.SuiteSM4}
		if a.cfg.Keys.LocalLoads {
			o.Authoriser = &terminal.LocalAuthoriser{Keys: a.keys, Entitled: func(context.Context, terminal.LoadAuthorisation) error { return nil }}
		}
	}
	if a.hub != nil {
		o.KeyService, o.Authoriser, o.LostCards = a.hub, a.hub, a.hub
	}
	return o
}

// trace observes every slot operation: APDU latency and errors by role,
// and the "writing" progress stage when a money transaction starts.
func (a *Agent) trace(ev reader.TraceEvent) {
	if ev.Op != "transmit" {
		return
	}
	role := "card"
	if _, ok := a.lanes.psams.Load(ev.Slot); ok {
		role = "psam"
	}
	a.m.apdu.Observe(ev.Duration.Seconds(), role)
	if ev.Err != nil {
		a.m.apduErrors.Inc(role)
		return
	}
	// INITIALIZE FOR PURCHASE / LOAD (80 50) answered: the money command
	// follows.
	if role == "card" && len(ev.Command) >= 4 && ev.Command[0] == 0x80 && ev.Command[1] == 0x50 {
		if v, ok := a.lanes.bySlot.Load(ev.Slot); ok {
			v.(*lane).report("writing")
		}
	}
}

// buildKiosk makes the kiosk API server and the HTTP servers.
func (a *Agent) buildKiosk() error {
	cfg := a.cfg
	var rules []kioskapi.OriginRule
	for _, o := range cfg.Kiosk.Origins {
		rules = append(rules, kioskapi.OriginRule{Origin: o.Origin, FullIdentity: o.FullIdentity})
	}
	if cfg.Kiosk.OwnPage == nil || *cfg.Kiosk.OwnPage {
		// The agent's own kiosk page (web/kiosk, served on this
		// listener) comes from an origin only the agent can serve: the
		// loopback address and port it holds. It is allowed with masked
		// identities, like any listed origin.
		rules = append(rules, ownOrigins(a.kioskLn.Addr())...)
	}
	nativeToken, err := writeNativeToken(a.NativeTokenPath()) // national.go
	if err != nil {
		return err
	}
	a.kiosk, err = kioskapi.NewServer(kioskapi.Options{
		Origins: rules, Pairing: a.pairing, AllowNoOrigin: cfg.Kiosk.AllowNoOrigin, NativeToken: nativeToken,
		MaxMessage: cfg.Kiosk.MaxMessage, MaxConns: cfg.Kiosk.MaxConnections,
		Rate: cfg.Kiosk.Rate, Burst: cfg.Kiosk.Burst,
		Methods: a.methods(),
		Hello: func() map[string]any {
			return map[string]any{"version": a.opts.Version, "terminalId": a.cfg.Terminal.ID, "pinPad": a.opts.PINPad != nil}
		},
		Observe: kioskapi.Observer{
			Request:     func(method, outcome string, d time.Duration) { a.m.requests.Inc(method, outcome) },
			Refused:     func(reason string) { a.m.refused.Inc(reason) },
			Connections: func(n int) { a.m.conns.Set(float64(n)) },
			Dropped:     func() { a.m.dropped.Inc() },
		},
		Logger: a.log.With("component", "kiosk"),
	})
	if err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/v1/ws", a.kiosk)
	mux.HandleFunc("/version", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, map[string]any{"agent": "onecard", "version": a.opts.Version, "api": kioskapi.APIVersion})
	})
	mux.Handle(web.KioskPath, web.Kiosk) // the kiosk page (package web/kiosk)
	mux.HandleFunc("/onecard-client.js", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		_, _ = w.Write(web.ClientJS)
	})
	a.kioskHTTP = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, MaxHeaderBytes: 16 << 10,
		ErrorLog: slog.NewLogLogger(a.log.Handler(), slog.LevelDebug)}
	a.adminHTTP = &http.Server{Handler: a.adminHandler(), ReadHeaderTimeout: 10 * time.Second, MaxHeaderBytes: 16 << 10,
		ErrorLog: slog.NewLogLogger(a.log.Handler(), slog.LevelDebug)}
	return nil
}

// KioskAddr is the kiosk API's listening address.
func (a *Agent) KioskAddr() string { return a.kioskLn.Addr().String() }

// AdminAddr is the admin endpoint's address ("" when off).
func (a *Agent) AdminAddr() string {
	if a.adminLn == nil {
		return ""
	}
	return a.adminLn.Addr().String()
}

// SetLevel changes the log level at run time.
func (a *Agent) SetLevel(l slog.Level) {
	a.level.Set(l)
	a.log.Warn("log level changed", "level", l.String()) // at warn, so it shows at every level
}

// NewPairingCode issues a fresh pairing code. Errors: pairing disabled.
func (a *Agent) NewPairingCode() (string, time.Time, error) {
	if a.pairing == nil {
		return "", time.Time{}, errors.New("pairing is disabled (kiosk.pairing: false)")
	}
	code, exp, err := a.pairing.NewCode()
	if err == nil {
		a.log.Info("kiosk pairing code issued: enter it once on the new page", "pairing_code", code, "expires", exp.Format(time.RFC3339))
	}
	return code, exp, err
}

// Run serves until ctx ends or a listener fails, then shuts down: new
// requests are refused, running card operations finish (bounded by
// Config.ShutdownTimeout), the hub client stops, readers and the journal
// close. It returns nil after a requested stop. Run may be called once.
func (a *Agent) Run(ctx context.Context) error {
	a.runMu.Lock()
	if a.ran {
		a.runMu.Unlock()
		return errors.New("agent: Run called twice")
	}
	a.ran = true
	a.runMu.Unlock()

	bg, stopBG := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := a.mgr.Run(bg); err != nil {
			a.log.Error("reader manager stopped", "err", err)
		}
	})
	sub := a.mgr.Subscribe()
	wg.Go(func() { a.events(sub) })
	if a.hub != nil {
		wg.Go(func() {
			if err := a.hub.Run(bg); err != nil && bg.Err() == nil {
				a.log.Error("hub client stopped", "err", err)
			}
		})
	}
	serveErr := make(chan error, 2)
	go func() { serveErr <- a.kioskHTTP.Serve(a.kioskLn) }()
	if a.adminLn != nil {
		go func() { serveErr <- a.adminHTTP.Serve(a.adminLn) }()
	}
	a.log.Info("agent started", "version", a.opts.Version, "kiosk", "ws://"+a.KioskAddr()+"/v1/ws",
		"admin", a.AdminAddr(), "journal", a.journal.Path(), "hub", a.cfg.Hub.URL != "")
	if a.pairing != nil {
		if _, _, err := a.NewPairingCode(); err != nil {
			a.log.Error("pairing code", "err", err)
		}
	}

	var runErr error
	select {
	case <-ctx.Done():
		a.log.Info("agent stopping: waiting for running card operations", "limit", a.cfg.ShutdownTimeout)
	case err := <-serveErr:
		runErr = fmt.Errorf("serve: %w", err)
		a.log.Error("listener failed; stopping", "err", err)
	}
	drain, cancel := context.WithTimeout(context.Background(), a.cfg.ShutdownTimeout)
	if err := a.kiosk.Shutdown(drain); err != nil {
		a.log.Error("card operations still running at the shutdown limit", "err", err)
	}
	cancel()
	short, cancel2 := context.WithTimeout(context.Background(), 2*time.Second)
	_ = a.kioskHTTP.Shutdown(short)
	_ = a.adminHTTP.Shutdown(short)
	cancel2()
	stopBG()
	_ = a.mgr.Close()
	wg.Wait()
	a.cleanup()
	a.log.Info("agent stopped")
	return runErr
}

// Close releases what New opened when Run is never called.
func (a *Agent) Close() error {
	a.cleanup()
	return nil
}

func (a *Agent) cleanup() {
	a.closeOnce.Do(func() {
		if a.kioskLn != nil {
			_ = a.kioskLn.Close()
		}
		if a.adminLn != nil {
			_ = a.adminLn.Close()
		}
		if a.mgr != nil {
			_ = a.mgr.Close()
		}
		if a.lanes != nil {
			a.lanes.closeAll()
		}
		if a.serial != nil {
			_ = a.serial.Close()
		}
		if a.hub != nil {
			if err := a.hub.Close(); err != nil {
				a.log.Error("close hub client", "err", err)
			}
		}
		if a.journal != nil {
			if err := a.journal.Close(); err != nil {
				a.log.Error("close journal", "err", err)
			}
		}
	})
}

// ownOrigins returns the origins of pages the agent itself serves on addr:
// http://IP:PORT and, for a 127.0.0.1 listener, http://localhost:PORT.
func ownOrigins(addr net.Addr) []kioskapi.OriginRule {
	ta, ok := addr.(*net.TCPAddr)
	if !ok {
		return nil
	}
	port := strconv.Itoa(ta.Port)
	rules := []kioskapi.OriginRule{{Origin: "http://" + net.JoinHostPort(ta.IP.String(), port)}}
	if ta.IP.Equal(net.IPv4(127, 0, 0, 1)) {
		rules = append(rules, kioskapi.OriginRule{Origin: "http://localhost:" + port})
	}
	return rules
}
