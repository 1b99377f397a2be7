package main

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/onecard-hub/onecard/agent"
	firmwareprofiles "github.com/onecard-hub/onecard/firmware-profiles"
	"github.com/onecard-hub/onecard/internal/simcard"
	"github.com/onecard-hub/onecard/reader"
	"github.com/onecard-hub/onecard/reader/pcsc"
	"github.com/onecard-hub/onecard/reader/serial"
	"github.com/onecard-hub/onecard/reader/serial/profile"
	"github.com/onecard-hub/onecard/sm"
	"github.com/onecard-hub/onecard/terminal/journal"
)

const doctorUsage = `[--config FILE] [--json] [--timeout D]

Checks what a kiosk needs and says what to do about what is wrong: the
smart-card service (pcscd / SCardSvr) and its readers with their ATRs,
serial ports and the reader profiles that answer on them, the simulated
cards, the keys, the journal (opened read-only and checked), the hub's
reachability, certificate pin and clock, and whether the agent runs.
Problems are printed as "error:" lines with a "hint:" line an IT person
can act on; --json gives the same for a support ticket. Exits 1 when a
check failed.`

func init() {
	register(command{
		name:    "doctor",
		summary: "diagnose readers, pcscd, journal, keys and hub connectivity",
		run:     runDoctor,
	})
}

// Check statuses.
const (
	checkOK    = "ok"
	checkInfo  = "info"
	checkWarn  = "warn"
	checkError = "error"
)

// check is one finding.
type check struct {
	Name    string `json:"name"`
	Status  string `json:"status"`
	Message string `json:"message"`
	Hint    string `json:"hint,omitempty"`
	Details any    `json:"details,omitempty"`
}

type doctor struct {
	cfg     *agent.Config
	timeout time.Duration
	checks  []check
}

func (d *doctor) add(c check) { d.checks = append(d.checks, c) }

func runDoctor(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("doctor", doctorUsage, stderr)
	cfgPath := fs.String("config", "", "the agent's configuration `FILE`")
	asJSON := fs.Bool("json", false, "print JSON (for support tickets)")
	timeout := fs.Duration("timeout", 5*time.Second, "bound for each network or reader probe")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usagef("%v", err)
	}
	if fs.NArg() != 0 {
		return usagef("unexpected arguments %q", fs.Args())
	}
	d := &doctor{timeout: *timeout}
	cfg, err := agent.LoadConfig(*cfgPath)
	switch {
	case err != nil:
		d.add(check{Name: "config", Status: checkError, Message: err.Error(),
			Hint: "fix the file (docs/agent-config.md lists every key), then run onecard doctor --config FILE again"})
		cfg = agent.Default()
	case *cfgPath == "":
		d.add(check{Name: "config", Status: checkInfo, Message: "no --config: checking the built-in defaults"})
	default:
		d.add(check{Name: "config", Status: checkOK, Message: "configuration " + *cfgPath + " is valid"})
	}
	d.cfg = cfg
	d.checkPCSC(ctx)
	d.checkSerial(ctx)
	d.checkSim()
	d.checkKeys()
	d.checkJournal()
	d.checkHub(ctx)
	d.checkAgent(ctx)
	d.checkBrowsers()

	failed := 0
	for _, c := range d.checks {
		if c.Status == checkError {
			failed++
		}
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(map[string]any{
			"version": version, "os": runtime.GOOS, "arch": runtime.GOARCH, "time": time.Now().UTC(),
			"ok": failed == 0, "checks": d.checks,
		}); err != nil {
			return err
		}
	} else {
		for _, c := range d.checks {
			fmt.Fprintf(stdout, "%-6s %s: %s\n", c.Status+":", c.Name, c.Message)
			if c.Hint != "" {
				fmt.Fprintf(stdout, "hint:  %s\n", c.Hint)
			}
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d check(s) failed", failed)
	}
	return nil
}

// pcscdHint says how to start the smart-card service on this OS.
func pcscdHint() string {
	switch runtime.GOOS {
	case "windows":
		return "start the Smart Card service: sc config SCardSvr start= auto && sc start SCardSvr (it stops when the last reader is unplugged on some Windows versions)"
	case "linux":
		return "install and start pcscd: sudo apt-get install pcscd libccid && sudo systemctl enable --now pcscd.socket pcscd"
	}
	return "start the PC/SC service (pcscd)"
}

// pcscSocket is pcsc-lite's socket on Linux.
const pcscSocket = "/run/pcscd/pcscd.comm"

func (d *doctor) checkPCSC(ctx context.Context) {
	if !*d.cfg.Readers.PCSC {
		d.add(check{Name: "pcscd", Status: checkInfo, Message: "PC/SC disabled in the configuration (readers.pcsc: false)"})
		return
	}
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	rs, err := pcsc.NewBackend(pcsc.Options{}).Readers(ctx)
	if err != nil {
		c := check{Name: "pcscd", Status: checkError, Message: fmt.Sprintf("the smart-card service is not reachable: %v", err), Hint: pcscdHint()}
		if errors.Is(err, reader.ErrServiceDown) {
			c.Message = "pcscd is not running or not reachable"
			if runtime.GOOS == "windows" {
				c.Message = "the Smart Card service (SCardSvr) is not running"
			}
			if runtime.GOOS == "linux" {
				if _, serr := os.Stat(pcscSocket); serr == nil && os.Geteuid() != 0 {
					c.Message = "pcscd runs but refuses this user"
					c.Hint = "allow the service account through polkit: install dist/polkit/50-onecard-pcscd.rules into /etc/polkit-1/rules.d/ (user onecard), then systemctl restart pcscd"
				}
			}
		}
		d.add(c)
		return
	}
	d.add(check{Name: "pcscd", Status: checkOK, Message: fmt.Sprintf("smart-card service reachable, %d reader(s)", len(rs))})
	if len(rs) == 0 {
		d.add(check{Name: "readers", Status: checkWarn, Message: "no PC/SC reader connected",
			Hint: "plug the reader in; on Linux check lsusb and that the CCID driver is installed (apt-get install libccid), then systemctl restart pcscd"})
	}
	for _, r := range rs {
		d.add(readerCheck(r))
	}
}

// readerCheck describes one reader and its slots.
func readerCheck(r reader.ReaderInfo) check {
	var parts []string
	status, hint := checkOK, ""
	for _, s := range r.Slots {
		p := s.ID + ": "
		switch {
		case s.Mute:
			p += "card does not answer"
			status, hint = checkWarn, "re-insert the card the right way round (chip first, facing up); clean the contacts"
		case s.Present:
			p += "card, ATR " + strings.ToUpper(hex.EncodeToString(s.ATR))
		default:
			p += "empty"
		}
		if s.Exclusive {
			p += ", held exclusively by another program"
			status, hint = checkWarn, "another program holds the card: close vendor card tools or browser extensions using the reader (lsof +E "+pcscSocket+" shows PC/SC clients)"
		} else if s.InUse {
			p += ", in use"
		}
		parts = append(parts, p)
	}
	return check{Name: "reader " + r.ID, Status: status, Message: r.Name + " — " + strings.Join(parts, "; "), Hint: hint, Details: r}
}

func (d *doctor) checkSerial(ctx context.Context) {
	ports, err := serial.ListPorts()
	if err != nil {
		d.add(check{Name: "serial ports", Status: checkWarn, Message: err.Error()})
	} else {
		var names []string
		for _, p := range ports {
			n := p.Name
			if p.USB {
				n += fmt.Sprintf(" (USB %s:%s %s)", p.VID, p.PID, p.Product)
			}
			names = append(names, n)
		}
		msg := "none"
		if len(names) > 0 {
			msg = strings.Join(names, ", ")
		}
		d.add(check{Name: "serial ports", Status: checkInfo, Message: msg, Details: ports})
	}
	for _, sc := range d.cfg.Readers.Serial {
		d.checkSerialReader(ctx, sc)
	}
}

// probeSerial opens port with p and powers the first slot: the reader
// answered when that gives an ATR or says there is no card.
func probeSerial(ctx context.Context, sc agent.SerialConfig, p *profile.Profile, timeout time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	r, err := serial.Open(ctx, serial.Options{Port: sc.Port, Profile: p, Baud: sc.Baud, Address: sc.Address})
	if err != nil {
		return "", err
	}
	defer r.Close()
	slots := r.Slots()
	if len(slots) == 0 {
		return "opened (no slots)", nil
	}
	atr, err := slots[0].Connect(ctx)
	_ = slots[0].Disconnect()
	switch {
	case err == nil:
		return "card in " + slots[0].Name() + ", ATR " + strings.ToUpper(hex.EncodeToString(atr)), nil
	case errors.Is(err, reader.ErrNoCard), errors.Is(err, reader.ErrCardMute):
		return "reader answers, " + slots[0].Name() + " empty", nil
	}
	return "", err
}

func (d *doctor) checkSerialReader(ctx context.Context, sc agent.SerialConfig) {
	name := "serial " + sc.Port
	p, err := loadReaderProfile(sc.Profile)
	if err != nil {
		d.add(check{Name: name, Status: checkError, Message: "profile " + sc.Profile + ": " + err.Error(),
			Hint: "use one of: " + strings.Join(firmwareprofiles.Names(), ", ") + " (onecard profile list)"})
		return
	}
	msg, err := probeSerial(ctx, sc, p, d.timeout)
	if err == nil {
		d.add(check{Name: name, Status: checkOK, Message: fmt.Sprintf("%s %s (%s): %s", p.Vendor, p.Model, p.ID, msg)})
		return
	}
	c := check{Name: name, Status: checkError, Message: fmt.Sprintf("profile %s: %v", p.ID, err)}
	switch {
	case errors.Is(err, reader.ErrReaderBusy):
		c.Hint = "another program holds the port: lsof " + sc.Port + " (vendor tools, ModemManager: systemctl disable --now ModemManager)"
	case errors.Is(err, reader.ErrReaderGone):
		c.Hint = "the port does not exist or fails: check the cable and ls -l /dev/serial/by-id; the onecard user must be in the dialout group"
	default:
		// Maybe another model: try every embedded profile.
		all, _ := firmwareprofiles.All()
		var answers []string
		for _, q := range all {
			if q.ID == p.ID {
				continue
			}
			if _, err := probeSerial(ctx, sc, q, d.timeout); err == nil {
				answers = append(answers, q.ID)
			}
		}
		if len(answers) > 0 {
			c.Hint = "the reader answers profile " + strings.Join(answers, ", ") + ": set profile: " + answers[0] + " for port " + sc.Port
		} else {
			c.Hint = "no profile answers on " + sc.Port + ": check the reader's power, cable and baud rate (onecard profile list shows the models)"
		}
	}
	d.add(c)
}

func (d *doctor) checkSim() {
	for _, s := range d.cfg.Readers.Sim {
		for _, f := range []string{s.Card, s.PSAM} {
			if f == "" {
				continue
			}
			if _, err := simcard.LoadFile(d.cfg.InputPath(f)); err != nil {
				d.add(check{Name: "sim " + s.Name, Status: checkError, Message: err.Error(), Hint: "fix the card file or remove it from readers.sim"})
			} else {
				d.add(check{Name: "sim " + s.Name, Status: checkOK, Message: "simulated card " + f + " loads"})
			}
		}
	}
}

func (d *doctor) checkKeys() {
	cfg := d.cfg
	if cfg.Terminal.Key != "" {
		if _, err := sm.LoadPrivateKeyPEM(cfg.InputPath(cfg.Terminal.Key)); err != nil {
			d.add(check{Name: "terminal key", Status: checkError, Message: err.Error(), Hint: "the terminal key is made at enrolment (onecard keys); it must be readable by the agent's user only (chmod 600)"})
		} else {
			d.add(check{Name: "terminal key", Status: checkOK, Message: "loads"})
		}
	}
	switch {
	case cfg.Keys.File != "":
		ks, err := sm.LoadKeySet(cfg.InputPath(cfg.Keys.File))
		switch {
		case err != nil:
			d.add(check{Name: "key set", Status: checkError, Message: err.Error(), Hint: "chmod 600 the key set file and make sure the agent's user owns it"})
		case ks.IsTest():
			d.add(check{Name: "key set", Status: checkWarn, Message: "TEST key set: never use it for real cards or money"})
		default:
			d.add(check{Name: "key set", Status: checkOK, Message: "loads"})
		}
	case cfg.Keys.Test != "":
		d.add(check{Name: "key set", Status: checkWarn, Message: "TEST key set " + cfg.Keys.Test + " (demos only)"})
	}
	if cfg.Terminal.Key == "" && cfg.Keys.File == "" && cfg.Keys.Test == "" {
		d.add(check{Name: "terminal key", Status: checkWarn, Message: "no terminal key: payments, loads and certification are unavailable",
			Hint: "enrol the terminal and set terminal.key in the configuration"})
	}
}

func (d *doctor) checkJournal() {
	path := d.cfg.JournalPath()
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		d.add(check{Name: "journal", Status: checkInfo, Message: path + " does not exist yet (the agent creates it)"})
		return
	}
	j, err := journal.Open(path, &journal.Options{ReadOnly: true, LockTimeout: time.Second})
	if errors.Is(err, journal.ErrLocked) {
		d.add(check{Name: "journal", Status: checkInfo, Message: path + " is held by a running agent (checked by the agent itself)",
			Hint: "onecard agent status shows its journal counts"})
		return
	}
	if err != nil {
		d.add(check{Name: "journal", Status: checkError, Message: err.Error(),
			Hint: "stop the agent, copy the file aside for support, and attach onecard doctor --json to the ticket; do not delete it (it holds unsent payments)"})
		return
	}
	defer j.Close()
	if err := j.Check(); err != nil {
		d.add(check{Name: "journal", Status: checkError, Message: "check failed: " + err.Error(),
			Hint: "keep the file; send it with onecard doctor --json to support (records in it may be unsent money)"})
		return
	}
	st, err := j.Stats()
	if err != nil {
		d.add(check{Name: "journal", Status: checkError, Message: err.Error()})
		return
	}
	counts := map[string]int{}
	for _, s := range journal.States {
		counts[s.String()] = st.Counts[s]
	}
	details := map[string]any{"records": counts, "unsent": st.Unsent, "oldestUnsent": st.OldestUnsent, "deadLetters": st.DeadLetters, "hubAck": st.HubAck}
	d.add(check{Name: "journal", Status: checkOK, Message: fmt.Sprintf("%s: consistent, %d records, %d unsent", path, st.Records, st.Unsent), Details: details})
	if st.DeadLetters > 0 {
		d.add(check{Name: "journal dead letters", Status: checkWarn, Message: fmt.Sprintf("%d records rejected by the hub", st.DeadLetters),
			Hint: "onecard journal list --state dead shows them; the hub operator must settle each"})
	}
	if st.Unsent > 0 && st.OldestUnsentAge > 24*time.Hour {
		d.add(check{Name: "journal backlog", Status: checkWarn, Message: fmt.Sprintf("oldest unsent record is %s old", st.OldestUnsentAge.Round(time.Minute)),
			Hint: "the hub has not received records for a day: check the network and the hub check below"})
	}
}

// spkiPin is the hub client's pin form of a certificate.
func spkiPin(c *x509.Certificate) (b64, hexed string) {
	sum := sha256.Sum256(c.RawSubjectPublicKeyInfo)
	return "sha256/" + base64.StdEncoding.EncodeToString(sum[:]), hex.EncodeToString(sum[:])
}

func pinMatches(pin string, c *x509.Certificate) bool {
	b64, hx := spkiPin(c)
	return pin == b64 || strings.EqualFold(pin, hx)
}

func (d *doctor) checkHub(ctx context.Context) {
	h := d.cfg.Hub
	if h.URL == "" {
		d.add(check{Name: "hub", Status: checkInfo, Message: "no hub configured: records stay in the journal"})
		return
	}
	u, err := url.Parse(h.URL)
	if err != nil || (u.Scheme != "wss" && u.Scheme != "ws") || u.Host == "" {
		d.add(check{Name: "hub", Status: checkError, Message: "hub.url " + h.URL + " is not a ws:// or wss:// URL"})
		return
	}
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), map[string]string{"wss": "443", "ws": "80"}[u.Scheme])
	}
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	var cert *x509.Certificate
	tr := &http.Transport{
		DialContext: (&net.Dialer{Timeout: d.timeout}).DialContext,
		TLSClientConfig: &tls.Config{
			// The chain is not what we trust: the configured pin is, and
			// it is compared below.
			InsecureSkipVerify: true, //nolint:gosec
			VerifyConnection: func(cs tls.ConnectionState) error {
				if len(cs.PeerCertificates) > 0 {
					cert = cs.PeerCertificates[0]
				}
				return nil
			},
		},
	}
	defer tr.CloseIdleConnections()
	scheme := map[string]string{"wss": "https", "ws": "http"}[u.Scheme]
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, scheme+"://"+host+"/", nil)
	start := time.Now()
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		d.add(check{Name: "hub", Status: checkError, Message: fmt.Sprintf("cannot reach %s: %v", host, err),
			Hint: "check the network, DNS and firewall from this kiosk to " + host + " (the agent keeps working offline and sends later)"})
		return
	}
	rtt := time.Since(start)
	resp.Body.Close()
	d.add(check{Name: "hub", Status: checkOK, Message: fmt.Sprintf("%s reachable (%s)", host, rtt.Round(time.Millisecond))})
	if u.Scheme == "wss" {
		switch {
		case cert == nil:
			d.add(check{Name: "hub certificate", Status: checkError, Message: "no certificate"})
		case h.Pin == "":
			b64, _ := spkiPin(cert)
			d.add(check{Name: "hub certificate", Status: checkError, Message: "hub.pin is not set", Hint: "ask the hub operator for the pin; this server presents " + b64})
		case !pinMatches(h.Pin, cert):
			b64, _ := spkiPin(cert)
			d.add(check{Name: "hub certificate", Status: checkError, Message: "the hub's certificate does not match hub.pin (it presents " + b64 + ")",
				Hint: "if the hub operator renewed the key, update hub.pin; otherwise something intercepts the connection — do not change the pin"})
		default:
			c := check{Name: "hub certificate", Status: checkOK, Message: fmt.Sprintf("pin matches; %s, valid until %s", cert.Subject.CommonName, cert.NotAfter.Format("2006-01-02"))}
			if time.Until(cert.NotAfter) < 30*24*time.Hour {
				c.Status, c.Hint = checkWarn, "the hub certificate expires soon: tell the hub operator"
			}
			d.add(c)
		}
	}
	if date, err := http.ParseTime(resp.Header.Get("Date")); err == nil {
		skew := time.Since(date) - rtt/2
		c := check{Name: "clock", Status: checkOK, Message: fmt.Sprintf("skew against the hub %s (±1 s)", skew.Round(time.Second))}
		switch abs := max(skew, -skew); {
		case abs > 5*time.Minute:
			c.Status = checkError
			c.Hint = "set the clock: timedatectl set-ntp true (Windows: w32tm /resync); card dates and record times come from it"
		case abs > 30*time.Second:
			c.Status, c.Hint = checkWarn, "the clock drifts: enable NTP (timedatectl set-ntp true)"
		}
		d.add(c)
	} else {
		d.add(check{Name: "clock", Status: checkInfo, Message: "the hub sent no Date header: skew unknown"})
	}
}

func (d *doctor) checkAgent(ctx context.Context) {
	if d.cfg.Admin == agent.AdminOff {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+d.cfg.Admin+"/healthz", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		d.add(check{Name: "agent", Status: checkInfo, Message: "no agent answers on " + d.cfg.Admin,
			Hint: "start it: systemctl enable --now onecard-agent (Windows: sc start onecard-agent)"})
		return
	}
	resp.Body.Close()
	d.add(check{Name: "agent", Status: checkOK, Message: "agent running (admin " + d.cfg.Admin + ", kiosk API ws://" + d.cfg.Listen + "/v1/ws)"})
}

// checkBrowsers reminds of the browser policy loopback access needs.
func (d *doctor) checkBrowsers() {
	var origins []string
	for _, o := range d.cfg.Kiosk.Origins {
		origins = append(origins, o.Origin)
	}
	if len(origins) == 0 {
		return
	}
	d.add(check{Name: "browser", Status: checkInfo,
		Message: "pages allowed: " + strings.Join(origins, ", "),
		Hint:    "Chrome/Edge 142+ ask before public sites reach 127.0.0.1: on managed kiosks set the LocalNetworkAccessAllowedForUrls policy to these origins; iframes need allow=\"loopback-network\""})
}
