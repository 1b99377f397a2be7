package agent

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/onecard-hub/onecard/agent/kioskapi"
)

// ErrConfig: the configuration is invalid; the message names the field.
var ErrConfig = errors.New("invalid agent configuration")

// Defaults of Config (docs/agent-config.md).
const (
	DefaultListen          = "127.0.0.1:17300"
	DefaultAdmin           = "127.0.0.1:17301"
	DefaultShutdownTimeout = 45 * time.Second
	DefaultOpTimeout       = 30 * time.Second
	DefaultJournalFile     = "journal.db"
	DefaultPairingFile     = "paired-origins.json"
	// AdminOff disables the admin endpoint.
	AdminOff = "off"
)

// Config is the agent's configuration file (YAML). Every field has a safe
// default; LoadConfig fills them in and Validate checks them. Relative
// paths are relative to StateDir (data files) or to the configuration
// file's directory (inputs: keys, card files, profiles).
type Config struct {
	// Listen is the kiosk API address: a loopback IP literal and port
	// (127.0.0.1 or [::1]); anything else is refused. Default
	// DefaultListen.
	Listen string `yaml:"listen"`
	// Admin is the loopback admin endpoint (metrics, status, pairing
	// codes, log level), or "off". Default DefaultAdmin.
	Admin string `yaml:"admin"`
	// StateDir holds the journal, the paired origins and the hub state.
	// Default: the configuration file's directory (the current directory
	// without a file).
	StateDir string `yaml:"state_dir"`
	// ShutdownTimeout bounds the wait for running card operations when
	// the agent stops. Default DefaultShutdownTimeout.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`

	Log      LogConfig      `yaml:"log"`
	Terminal TerminalConfig `yaml:"terminal"`
	Keys     KeysConfig     `yaml:"keys"`
	Journal  JournalConfig  `yaml:"journal"`
	Readers  ReadersConfig  `yaml:"readers"`
	Lanes    []LaneConfig   `yaml:"lanes"`
	Hub      HubConfig      `yaml:"hub"`
	Kiosk    KioskConfig    `yaml:"kiosk"`

	// dir is the configuration file's directory.
	dir string
}

// LogConfig configures logging.
type LogConfig struct {
	// Level: debug, info (default), warn or error. Changeable at run time
	// through the admin endpoint ('onecard agent loglevel').
	Level string `yaml:"level"`
	// Format: text (default) or json.
	Format string `yaml:"format"`
	// File receives the log (appended, created 0600); "" = standard
	// error (journald under systemd). Relative to StateDir. Rotate it
	// with copytruncate.
	File string `yaml:"file"`
}

// TerminalConfig names the terminal.
type TerminalConfig struct {
	// ID is the 12-digit terminal number; "" = the PSAM's. Required with
	// a hub.
	ID string `yaml:"id"`
	// DeviceID is the national interface's 终端设备号 (free text).
	DeviceID string `yaml:"device_id"`
	// Key is the terminal's SM2 private key (PEM) signing records.
	// Default: the key set's terminal key when Keys is set; without
	// either, money operations and certification are unavailable.
	Key string `yaml:"key"`
	// OpTimeout bounds one card operation. Default DefaultOpTimeout.
	OpTimeout time.Duration `yaml:"op_timeout"`
	// ReadMode is the identity read's default: auto (default), psam,
	// key-service or public.
	ReadMode string `yaml:"read_mode"`
}

// KeysConfig is an issuer key set held by the agent itself — for tests,
// demos and labs only; production terminals use a PSAM and the hub.
type KeysConfig struct {
	// File is a key set file (sm.LoadKeySet, mode 0600).
	File string `yaml:"file"`
	// Test derives the deterministic TEST key set with this label
	// (sm.TestKeySet), e.g. "demo" for testdata/cards.
	Test string `yaml:"test"`
	// LocalLoads lets the agent authorise loads itself with the key set
	// (every load is entitled). Never for real money. Default false:
	// loads need the hub.
	LocalLoads bool `yaml:"local_loads"`
}

// JournalConfig configures the transaction journal.
type JournalConfig struct {
	// Path of the journal file. Default StateDir/journal.db.
	Path string `yaml:"path"`
	// PersonalKey is an SM4 key file (created 0600 if missing) sealing
	// card number, person ID and name at rest. "": not sealed.
	PersonalKey string `yaml:"personal_key"`
	// MaxRecords and MaxSizeMB bound the journal (0: journal defaults).
	MaxRecords int `yaml:"max_records"`
	MaxSizeMB  int `yaml:"max_size_mb"`
}

// ReadersConfig selects the reader backends.
type ReadersConfig struct {
	// PCSC enables the PC/SC backend (pcscd, WinSCard). Default true.
	PCSC *bool `yaml:"pcsc"`
	// Serial readers driven by a firmware profile.
	Serial []SerialConfig `yaml:"serial"`
	// Sim adds in-process simulated readers (demos, tests).
	Sim []SimConfig `yaml:"sim"`
	// PSAM selects the PSAM slot for lanes that do not name one (see
	// LaneConfig.PSAM). Default: the psam1 slot of the card's reader.
	PSAM string `yaml:"psam"`
}

// SerialConfig is one serial reader.
type SerialConfig struct {
	Port    string `yaml:"port"`
	Profile string `yaml:"profile"` // embedded profile id or a profile file
	Baud    int    `yaml:"baud"`
	Address int    `yaml:"address"`
	Name    string `yaml:"name"`
}

// SimConfig is one in-process simulated reader "virtual:NAME" with slots
// "virtual:NAME:user" and (with PSAM) "virtual:NAME:psam1".
type SimConfig struct {
	Name string `yaml:"name"`
	Card string `yaml:"card"` // card file (internal/simcard); "" = empty slot
	PSAM string `yaml:"psam"` // PSAM card file; "" = no PSAM slot
}

// LaneConfig binds a user-card slot to a PSAM slot under a name pages can
// use ("reader" parameter). Without lanes, every slot that is not a PSAM
// slot is a lane of its own, named by its slot ID.
type LaneConfig struct {
	Name string `yaml:"name"`
	// Card selects the user-card slot: a slot ID, a reader ID, or a
	// case-insensitive part of a reader or slot name (must be unique).
	Card string `yaml:"card"`
	// PSAM selects the PSAM slot the same way. Default: Readers.PSAM,
	// else the psam1 slot of the card's reader.
	PSAM string `yaml:"psam"`
}

// HubConfig connects the agent to its hub (hub/client).
type HubConfig struct {
	// URL is wss://host:port/sync (or ws:// to loopback). "": no hub
	// (records stay in the journal; loads need local_loads).
	URL string `yaml:"url"`
	// Pin is the hub certificate's SPKI SHA-256 (required for wss).
	Pin string `yaml:"pin"`
	// HubID, when set, must match the hub.
	HubID string `yaml:"hub_id"`
	// State is the client's state file. Default: the journal path +
	// ".hub".
	State string `yaml:"state"`
}

// KioskConfig configures the kiosk API.
type KioskConfig struct {
	// Origins are the web origins allowed without pairing.
	Origins []OriginConfig `yaml:"origins"`
	// Pairing lets other origins pair with a code from the operator.
	// Default true.
	Pairing *bool `yaml:"pairing"`
	// PairingFile keeps paired origins. Default
	// StateDir/paired-origins.json.
	PairingFile string `yaml:"pairing_file"`
	// OwnPage allows the origin of the kiosk page the agent serves
	// itself (http://<listen address>/kiosk/), with masked identities.
	// Default true; false requires listing or pairing it like any page.
	OwnPage *bool `yaml:"own_page"`
	// AllowNoOrigin admits native clients that send no Origin header.
	// Default false.
	AllowNoOrigin bool `yaml:"allow_no_origin"`
	// PINInRequest accepts PINs in request parameters when the lane has
	// no PIN pad. Default true.
	PINInRequest *bool `yaml:"pin_in_request"`
	// Limits (0: kioskapi defaults).
	MaxMessage     int64   `yaml:"max_message"`
	MaxConnections int     `yaml:"max_connections"`
	Rate           float64 `yaml:"rate"`
	Burst          int     `yaml:"burst"`
}

// OriginConfig is an allowed origin: a plain string, or a mapping with
// full_identity for pages that must see unmasked personal data.
type OriginConfig struct {
	Origin       string `yaml:"origin"`
	FullIdentity bool   `yaml:"full_identity"`
}

// UnmarshalYAML accepts "https://host" or {origin: ..., full_identity: ...}.
func (o *OriginConfig) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		o.Origin = n.Value
		return nil
	}
	type plain OriginConfig
	var p plain
	if err := n.Decode(&p); err != nil {
		return err
	}
	*o = OriginConfig(p)
	return nil
}

// ParseConfig decodes YAML strictly (unknown keys are errors), applies the
// defaults with dir as the configuration directory, and validates.
// Errors wrap ErrConfig.
func ParseConfig(data []byte, dir string) (*Config, error) {
	c := &Config{}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	c.dir = dir
	c.applyDefaults()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// LoadConfig reads a configuration file (see ParseConfig). path "" gives
// the defaults, with the current directory as the configuration
// directory.
func LoadConfig(path string) (*Config, error) {
	if path == "" {
		return ParseConfig(nil, ".")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load agent configuration: %w", err)
	}
	c, err := ParseConfig(b, filepath.Dir(path))
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", path, err)
	}
	return c, nil
}

// Default returns the default configuration (configuration directory ".").
func Default() *Config {
	c := &Config{dir: "."}
	c.applyDefaults()
	return c
}

func (c *Config) applyDefaults() {
	if c.dir == "" {
		c.dir = "."
	}
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	if c.Admin == "" {
		c.Admin = DefaultAdmin
	}
	if c.StateDir == "" {
		c.StateDir = c.dir
	}
	if c.ShutdownTimeout <= 0 {
		c.ShutdownTimeout = DefaultShutdownTimeout
	}
	if c.Log.Level == "" {
		c.Log.Level = "info"
	}
	if c.Log.Format == "" {
		c.Log.Format = "text"
	}
	if c.Terminal.OpTimeout <= 0 {
		c.Terminal.OpTimeout = DefaultOpTimeout
	}
	if c.Terminal.ReadMode == "" {
		c.Terminal.ReadMode = "auto"
	}
	if c.Readers.PCSC == nil {
		t := true
		c.Readers.PCSC = &t
	}
	if c.Kiosk.Pairing == nil {
		t := true
		c.Kiosk.Pairing = &t
	}
	if c.Kiosk.PINInRequest == nil {
		t := true
		c.Kiosk.PINInRequest = &t
	}
}

// Dir returns the configuration file's directory.
func (c *Config) Dir() string { return c.dir }

// InputPath resolves an input file (keys, card files, profiles) against
// the configuration directory.
func (c *Config) InputPath(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(c.dir, p)
}

// StatePath resolves a data file against StateDir.
func (c *Config) StatePath(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(c.InputPath(c.StateDir), p)
}

// JournalPath is the journal file.
func (c *Config) JournalPath() string {
	if c.Journal.Path != "" {
		return c.StatePath(c.Journal.Path)
	}
	return c.StatePath(DefaultJournalFile)
}

// PairingPath is the paired-origins file.
func (c *Config) PairingPath() string {
	if c.Kiosk.PairingFile != "" {
		return c.StatePath(c.Kiosk.PairingFile)
	}
	return c.StatePath(DefaultPairingFile)
}

// ParseLevel parses debug, info, warn or error.
func ParseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("%w: log level %q (want debug, info, warn or error)", ErrConfig, s)
	}
	return l, nil
}

// CheckLoopback checks a listen address: a loopback IP literal (127.0.0.0/8
// or ::1) and a port. Host names ("localhost") and other addresses are
// refused: the agent never listens on a network a browser's neighbours
// can reach.
func CheckLoopback(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || port == "" {
		return fmt.Errorf("%w: address %q: want 127.0.0.1:PORT", ErrConfig, addr)
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("%w: address %q: the agent listens on loopback only (127.0.0.1 or [::1])", ErrConfig, addr)
	}
	return nil
}

// Validate checks the configuration. Errors wrap ErrConfig.
func (c *Config) Validate() error {
	var errs []error
	add := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if err := CheckLoopback(c.Listen); err != nil {
		add("listen: %w", err)
	}
	if c.Admin != AdminOff {
		if err := CheckLoopback(c.Admin); err != nil {
			add("admin: %w", err)
		}
	}
	if _, err := ParseLevel(c.Log.Level); err != nil {
		add("log.level: %w", err)
	}
	if c.Log.Format != "text" && c.Log.Format != "json" {
		add("log.format %q: want text or json", c.Log.Format)
	}
	if id := c.Terminal.ID; id != "" && !allDigits(id, 12) {
		add("terminal.id %q: want 12 digits", id)
	}
	switch strings.ToLower(c.Terminal.ReadMode) {
	case "auto", "psam", "key-service", "hsm", "public":
	default:
		add("terminal.read_mode %q: want auto, psam, key-service or public", c.Terminal.ReadMode)
	}
	if c.Keys.File != "" && c.Keys.Test != "" {
		add("keys: give file or test, not both")
	}
	if c.Keys.LocalLoads && c.Keys.File == "" && c.Keys.Test == "" {
		add("keys.local_loads needs keys.file or keys.test")
	}
	if c.Journal.MaxRecords < 0 || c.Journal.MaxSizeMB < 0 {
		add("journal limits must not be negative")
	}
	for i, s := range c.Readers.Serial {
		if s.Port == "" || s.Profile == "" {
			add("readers.serial[%d]: port and profile are required", i)
		}
	}
	seen := map[string]bool{}
	for i, s := range c.Readers.Sim {
		if s.Name == "" || strings.ContainsAny(s.Name, ": ") {
			add("readers.sim[%d]: name required, without ':' or spaces", i)
		}
		if seen["sim:"+s.Name] {
			add("readers.sim[%d]: duplicate name %q", i, s.Name)
		}
		seen["sim:"+s.Name] = true
	}
	for i, l := range c.Lanes {
		if l.Name == "" || l.Card == "" {
			add("lanes[%d]: name and card are required", i)
		}
		if seen["lane:"+l.Name] {
			add("lanes[%d]: duplicate name %q", i, l.Name)
		}
		seen["lane:"+l.Name] = true
	}
	if c.Hub.URL != "" && c.Terminal.ID == "" {
		add("hub.url needs terminal.id (the number the terminal was enrolled as)")
	}
	for i, o := range c.Kiosk.Origins {
		if _, err := kioskapi.NormaliseOrigin(o.Origin); err != nil {
			add("kiosk.origins[%d]: %w", i, err)
		}
	}
	if c.Kiosk.MaxMessage < 0 || c.Kiosk.MaxConnections < 0 || c.Kiosk.Rate < 0 || c.Kiosk.Burst < 0 {
		add("kiosk limits must not be negative")
	}
	if c.ShutdownTimeout > 10*time.Minute {
		add("shutdown_timeout %s: at most 10m", c.ShutdownTimeout)
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %w", ErrConfig, errors.Join(errs...))
	}
	return nil
}

func allDigits(s string, n int) bool {
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
