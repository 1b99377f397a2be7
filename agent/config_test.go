package agent

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseConfigDefaults(t *testing.T) {
	c, err := ParseConfig(nil, "/etc/onecard")
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != DefaultListen || c.Admin != DefaultAdmin || !*c.Readers.PCSC || !*c.Kiosk.Pairing ||
		!*c.Kiosk.PINInRequest || c.Kiosk.AllowNoOrigin || c.Keys.LocalLoads || c.ShutdownTimeout != DefaultShutdownTimeout ||
		c.Log.Level != "info" || c.Terminal.OpTimeout != DefaultOpTimeout {
		t.Errorf("defaults = %+v", c)
	}
	if c.JournalPath() != "/etc/onecard/journal.db" || c.PairingPath() != "/etc/onecard/paired-origins.json" {
		t.Errorf("paths %s %s", c.JournalPath(), c.PairingPath())
	}
	c, err = ParseConfig([]byte("state_dir: /var/lib/onecard\nkeys: {file: keys/test.keys}\n"), "/etc/onecard")
	if err != nil {
		t.Fatal(err)
	}
	if c.JournalPath() != "/var/lib/onecard/journal.db" || c.InputPath(c.Keys.File) != "/etc/onecard/keys/test.keys" {
		t.Errorf("paths %s %s", c.JournalPath(), c.InputPath(c.Keys.File))
	}
}

func TestParseConfigFull(t *testing.T) {
	yml := `
listen: "[::1]:18000"
admin: off
shutdown_timeout: 20s
log: {level: debug, format: json}
terminal: {id: "330100000001", device_id: K1, op_timeout: 10s, read_mode: psam}
keys: {test: demo, local_loads: true}
journal: {path: j.db, max_records: 1000}
readers:
  pcsc: false
  serial: [{port: /dev/ttyUSB0, profile: crt310, baud: 38400}]
  sim: [{name: demo, card: cards/ssc-gen3.yaml, psam: cards/psam.yaml}]
  psam: psam1
lanes:
  - {name: counter, card: "virtual:demo:user"}
hub: {url: "wss://hub.example:8443/sync", pin: "sha256/abc"}
kiosk:
  origins:
    - https://kiosk.example
    - {origin: "https://his.example:8443", full_identity: true}
  pairing: false
  allow_no_origin: true
  pin_in_request: false
  max_message: 4096
  max_connections: 2
  rate: 5
  burst: 5
`
	c, err := ParseConfig([]byte(yml), "/cfg")
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != "[::1]:18000" || c.Admin != AdminOff || c.ShutdownTimeout != 20*time.Second || c.Terminal.OpTimeout != 10*time.Second {
		t.Errorf("%+v", c)
	}
	if len(c.Kiosk.Origins) != 2 || c.Kiosk.Origins[0].Origin != "https://kiosk.example" || c.Kiosk.Origins[0].FullIdentity ||
		!c.Kiosk.Origins[1].FullIdentity || *c.Kiosk.Pairing || *c.Kiosk.PINInRequest || *c.Readers.PCSC {
		t.Errorf("kiosk %+v", c.Kiosk)
	}
	if len(c.Readers.Serial) != 1 || c.Readers.Serial[0].Baud != 38400 || len(c.Readers.Sim) != 1 || len(c.Lanes) != 1 {
		t.Errorf("readers %+v lanes %+v", c.Readers, c.Lanes)
	}
}

func TestParseConfigRefuses(t *testing.T) {
	for _, tt := range []struct{ yml, want string }{
		{"listen: 0.0.0.0:17300", "loopback only"},
		{"listen: 192.168.1.5:17300", "loopback only"},
		{"listen: localhost:17300", "loopback only"},
		{"listen: 17300", "want 127.0.0.1:PORT"},
		{"admin: 10.0.0.1:1", "loopback only"},
		{"lisen: 127.0.0.1:1", "field lisen not found"},
		{"log: {level: loud}", "log level"},
		{"log: {format: xml}", "log.format"},
		{"terminal: {id: 123}", "12 digits"},
		{"terminal: {read_mode: magic}", "read_mode"},
		{"keys: {file: a, test: b}", "not both"},
		{"keys: {local_loads: true}", "local_loads needs"},
		{"readers: {serial: [{port: /dev/x}]}", "port and profile"},
		{"readers: {sim: [{name: 'a b'}]}", "name required"},
		{"readers: {sim: [{name: a}, {name: a}]}", "duplicate"},
		{"lanes: [{name: a}]", "name and card"},
		{"lanes: [{name: a, card: x}, {name: a, card: y}]", "duplicate"},
		{"hub: {url: 'wss://h/sync'}", "needs terminal.id"},
		{"kiosk: {origins: ['null']}", "invalid origin"},
		{"kiosk: {origins: ['https://a/b']}", "invalid origin"},
		{"kiosk: {rate: -1}", "negative"},
		{"shutdown_timeout: 1h", "at most"},
		{"listen: [", "yaml"},
	} {
		_, err := ParseConfig([]byte(tt.yml), ".")
		if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want ErrConfig mentioning %q", tt.yml, err, tt.want)
		}
	}
}

func TestLoadConfig(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "agent.yaml")
	if err := os.WriteFile(p, []byte("terminal: {device_id: X}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := LoadConfig(p)
	if err != nil || c.Terminal.DeviceID != "X" || c.Dir() != dir {
		t.Fatalf("LoadConfig: %+v %v", c, err)
	}
	if _, err := LoadConfig(filepath.Join(dir, "missing.yaml")); err == nil {
		t.Error("missing file loaded")
	}
}

func FuzzParseConfig(f *testing.F) {
	for _, s := range []string{"", "listen: 127.0.0.1:1\n", "kiosk: {origins: [https://a.example, {origin: 'http://b', full_identity: true}]}",
		"lanes: [{name: a, card: b, psam: c}]", "readers: {pcsc: false, sim: [{name: s, card: c.yaml}]}"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseConfig(b, ".")
		if err != nil {
			if !errors.Is(err, ErrConfig) {
				t.Fatalf("error not ErrConfig: %v", err)
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("accepted config fails Validate: %v", err)
		}
		if CheckLoopback(c.Listen) != nil {
			t.Fatalf("accepted non-loopback listen %q", c.Listen)
		}
	})
}
