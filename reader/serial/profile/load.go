package profile

import (
	"encoding/hex"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// MaxFileSize bounds a profile file; larger input is rejected unread.
const MaxFileSize = 1 << 20

// maxNodes bounds the YAML nodes visited (aliases are expanded on visit),
// so that a small file with nested aliases cannot make loading explode.
const maxNodes = 200000

// LoadFile reads and validates the profile at path. Errors name the file
// by path as given, with the line; see [Parse].
func LoadFile(path string) (*Profile, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("load profile: %w", err)
	}
	if st.Size() > MaxFileSize {
		return nil, ErrorList{{File: path, Msg: fmt.Sprintf("file of %d bytes exceeds %d", st.Size(), MaxFileSize)}}
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load profile: %w", err)
	}
	return Parse(path, data)
}

// Parse decodes and validates one profile. name is used in error messages.
// On any problem it returns a nil Profile and an [ErrorList] holding every
// error found with its line: unknown keys, wrong types, values outside
// their enum or range, references to undeclared slots or operations,
// inconsistent framing, malformed test frames. It never panics.
func Parse(name string, data []byte) (*Profile, error) {
	if len(data) > MaxFileSize {
		return nil, ErrorList{{File: name, Msg: fmt.Sprintf("file of %d bytes exceeds %d", len(data), MaxFileSize)}}
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		line := 0
		msg := err.Error()
		if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
			line, _ = strconv.Atoi(m[1])
			msg = strings.TrimSpace(m[2])
		}
		return nil, ErrorList{{File: name, Line: line, Msg: "invalid YAML: " + strings.TrimPrefix(msg, "yaml: ")}}
	}
	d := &decoder{file: name}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		return nil, ErrorList{{File: name, Line: 1, Msg: "empty document"}}
	}
	p := d.profile(doc.Content[0])
	if len(d.errs) > 0 {
		sort.SliceStable(d.errs, func(i, j int) bool { return d.errs[i].Line < d.errs[j].Line })
		return nil, d.errs
	}
	p.File = name
	return p, nil
}

var yamlLineRE = regexp.MustCompile(`line (\d+):(.*)$`)

// decoder walks a yaml.Node tree, collecting errors instead of stopping at
// the first one.
type decoder struct {
	file  string
	errs  ErrorList
	nodes int
}

func (d *decoder) errf(n *yaml.Node, path, format string, a ...any) {
	line := 0
	if n != nil {
		line = n.Line
	}
	if len(d.errs) < 200 {
		d.errs = append(d.errs, &Error{File: d.file, Line: line, Path: path, Msg: fmt.Sprintf(format, a...)})
	}
}

// resolve follows aliases and counts visits.
func (d *decoder) resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 100; i++ {
		n = n.Alias
	}
	d.nodes++
	if n != nil && n.Kind == yaml.AliasNode {
		return nil
	}
	if d.nodes > maxNodes {
		if d.nodes == maxNodes+1 {
			d.errf(n, "", "document too complex (more than %d nodes after alias expansion)", maxNodes)
		}
		return nil
	}
	return n
}

type field struct {
	key *yaml.Node
	val *yaml.Node
}

// fields checks that n is a mapping with only the allowed keys (no
// duplicates) and that required keys are present. Keys missing from the
// result were absent.
func (d *decoder) fields(n *yaml.Node, path string, allowed []string, required ...string) map[string]field {
	n = d.resolve(n)
	out := map[string]field{}
	if n == nil {
		return out
	}
	if n.Kind != yaml.MappingNode {
		d.errf(n, path, "want a mapping, got %s", kindName(n))
		return out
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		key := k.Value
		if k.Kind != yaml.ScalarNode {
			d.errf(k, path, "keys must be plain names")
			continue
		}
		if !contains(allowed, key) {
			d.errf(k, join(path, key), "unknown key (allowed: %s)", strings.Join(allowed, ", "))
			continue
		}
		if _, dup := out[key]; dup {
			d.errf(k, join(path, key), "duplicate key")
			continue
		}
		out[key] = field{k, v}
	}
	for _, r := range required {
		if _, ok := out[r]; !ok {
			d.errf(n, path, "missing required key %q", r)
		}
	}
	return out
}

// pairs returns the key/value pairs of a mapping with free-form keys.
func (d *decoder) pairs(n *yaml.Node, path string) []field {
	n = d.resolve(n)
	if n == nil {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		d.errf(n, path, "want a mapping, got %s", kindName(n))
		return nil
	}
	var out []field
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := d.resolve(n.Content[i])
		if k == nil {
			continue
		}
		if k.Kind != yaml.ScalarNode {
			d.errf(k, path, "keys must be scalars")
			continue
		}
		if seen[k.Value] {
			d.errf(k, join(path, k.Value), "duplicate key")
			continue
		}
		seen[k.Value] = true
		out = append(out, field{k, n.Content[i+1]})
	}
	return out
}

func (d *decoder) seq(n *yaml.Node, path string) []*yaml.Node {
	n = d.resolve(n)
	if n == nil {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		d.errf(n, path, "want a list, got %s", kindName(n))
		return nil
	}
	return n.Content
}

func (d *decoder) scalar(n *yaml.Node, path string) (*yaml.Node, bool) {
	n = d.resolve(n)
	if n == nil {
		return nil, false
	}
	if n.Kind != yaml.ScalarNode {
		d.errf(n, path, "want a scalar, got %s", kindName(n))
		return nil, false
	}
	return n, true
}

func (d *decoder) str(n *yaml.Node, path string) string {
	s, ok := d.scalar(n, path)
	if !ok {
		return ""
	}
	return s.Value
}

func (d *decoder) strList(n *yaml.Node, path string) []string {
	var out []string
	for i, e := range d.seq(n, path) {
		out = append(out, d.str(e, fmt.Sprintf("%s[%d]", path, i)))
	}
	return out
}

func (d *decoder) enum(n *yaml.Node, path string, allowed ...string) string {
	s, ok := d.scalar(n, path)
	if !ok {
		return ""
	}
	if !contains(allowed, s.Value) {
		d.errf(s, path, "%q is not one of %s", s.Value, strings.Join(allowed, ", "))
		return ""
	}
	return s.Value
}

func (d *decoder) integer(n *yaml.Node, path string, min, max int) int {
	s, ok := d.scalar(n, path)
	if !ok {
		return 0
	}
	v, err := strconv.ParseInt(strings.ReplaceAll(s.Value, "_", ""), 0, 64)
	if err != nil || s.Tag == "!!str" {
		d.errf(s, path, "want an integer, got %q", s.Value)
		return 0
	}
	if v < int64(min) || v > int64(max) {
		d.errf(s, path, "%d outside %d..%d", v, min, max)
		return 0
	}
	return int(v)
}

func (d *decoder) boolean(n *yaml.Node, path string) bool {
	s, ok := d.scalar(n, path)
	if !ok {
		return false
	}
	switch s.Value {
	case "true":
		return true
	case "false":
		return false
	}
	d.errf(s, path, "want true or false, got %q", s.Value)
	return false
}

// byteVal reads a byte: an integer 0..255 (0x.. allowed) or a
// one-character string such as 'Y'.
func (d *decoder) byteVal(n *yaml.Node, path string) (byte, bool) {
	s, ok := d.scalar(n, path)
	if !ok {
		return 0, false
	}
	return d.byteScalar(s, path)
}

func (d *decoder) byteScalar(s *yaml.Node, path string) (byte, bool) {
	if s.Tag != "!!str" || s.Style&(yaml.SingleQuotedStyle|yaml.DoubleQuotedStyle) == 0 {
		if v, err := strconv.ParseInt(s.Value, 0, 64); err == nil {
			if v < 0 || v > 255 {
				d.errf(s, path, "byte %d outside 0..255", v)
				return 0, false
			}
			return byte(v), true
		}
	}
	if len(s.Value) == 1 {
		return s.Value[0], true
	}
	d.errf(s, path, "want a byte (0x00..0xFF or a one-character string), got %q", s.Value)
	return 0, false
}

// hexBytes reads bytes written as hex, spaces allowed: "02 00 02 31 30".
func (d *decoder) hexBytes(n *yaml.Node, path string) ([]byte, bool) {
	s, ok := d.scalar(n, path)
	if !ok {
		return nil, false
	}
	b, err := ParseHex(s.Value)
	if err != nil {
		d.errf(s, path, "%v", err)
		return nil, false
	}
	return b, true
}

// ParseHex decodes hex digits, ignoring spaces, colons and newlines
// ("02 00 02 31 30 03 02").
func ParseHex(s string) ([]byte, error) {
	clean := strings.Map(func(r rune) rune {
		switch r {
		case ' ', '\t', '\n', '\r', ':':
			return -1
		}
		return r
	}, s)
	b, err := hex.DecodeString(clean)
	if err != nil {
		return nil, fmt.Errorf("bad hex %q: want pairs of hex digits", s)
	}
	return b, nil
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return fmt.Sprintf("%q", n.Value)
	}
	return "something else"
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func contains(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}

var idRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,63}$`)
var slotRE = regexp.MustCompile(`^(user|psam[1-9][0-9]?)$`)
var usbIDRE = regexp.MustCompile(`^[0-9A-Fa-f]{4}$`)

func (d *decoder) profile(root *yaml.Node) *Profile {
	p := &Profile{Ops: map[OpName]*Op{}, StatusLetters: map[byte]Outcome{}}
	f := d.fields(root, "", []string{"schema", "id", "vendor", "model", "aliases", "status", "sources", "notes",
		"match", "transport", "framing", "link", "messages", "status_letters", "errors", "slots", "init", "ops",
		"quirks", "tests"},
		"schema", "id", "vendor", "model", "status", "transport", "framing", "link", "messages", "slots", "ops", "quirks")
	if v, ok := f["schema"]; ok {
		if p.Schema = d.str(v.val, "schema"); p.Schema != "" && p.Schema != SchemaVersion {
			d.errf(v.val, "schema", "unsupported schema %q (want %s)", p.Schema, SchemaVersion)
		}
	}
	if v, ok := f["id"]; ok {
		if p.ID = d.str(v.val, "id"); p.ID != "" && !idRE.MatchString(p.ID) {
			d.errf(v.val, "id", "%q: use lower-case letters, digits and '-'", p.ID)
		}
	}
	if v, ok := f["vendor"]; ok {
		p.Vendor = d.str(v.val, "vendor")
	}
	if v, ok := f["model"]; ok {
		p.Model = d.str(v.val, "model")
	}
	if v, ok := f["aliases"]; ok {
		p.Aliases = d.strList(v.val, "aliases")
	}
	if v, ok := f["status"]; ok {
		p.Status = d.enum(v.val, "status", "draft", "verified")
	}
	if v, ok := f["sources"]; ok {
		p.Sources = d.strList(v.val, "sources")
	}
	if v, ok := f["notes"]; ok {
		p.Notes = d.strList(v.val, "notes")
	}
	if p.Status == "verified" && len(p.Sources) == 0 {
		d.errf(root, "status", "a verified profile must list its hardware transcripts in sources")
	}
	if v, ok := f["transport"]; ok {
		p.Transport = d.transport(v.val)
	}
	if v, ok := f["framing"]; ok {
		p.Framing = d.framing(v.val)
	}
	if v, ok := f["link"]; ok {
		p.Link = d.link(v.val, &p.Framing)
	}
	if v, ok := f["quirks"]; ok {
		p.Quirks = d.quirks(v.val)
	}
	if v, ok := f["messages"]; ok {
		p.Messages = d.messages(v.val)
	}
	if v, ok := f["status_letters"]; ok {
		for _, pr := range d.pairs(v.val, "status_letters") {
			path := "status_letters." + pr.key.Value
			b, ok := d.byteScalar(pr.key, path)
			o := d.str(pr.val, path)
			if ok && o != "" {
				if Outcome(o).OK() || knownCondition(o) {
					p.StatusLetters[b] = Outcome(o)
				} else {
					d.errf(pr.val, path, "%q is neither ok, ok_t0, ok_t1 nor a canonical condition", o)
				}
			}
		}
	}
	if v, ok := f["errors"]; ok {
		p.Errors = d.errorCodes(v.val, p.Messages.Negative.Code)
	}
	if v, ok := f["slots"]; ok {
		p.Slots = d.slots(v.val)
	}
	if v, ok := f["ops"]; ok {
		d.ops(v.key, v.val, p)
	}
	if v, ok := f["init"]; ok {
		for i, e := range d.seq(v.val, "init") {
			path := fmt.Sprintf("init[%d]", i)
			name := d.str(e, path)
			if name == "" {
				continue
			}
			op := OpName(name)
			switch {
			case !knownOp(name):
				d.errf(e, path, "unknown operation %q", name)
			case op.PerSlot():
				d.errf(e, path, "%s is a per-slot operation and cannot be an init step", name)
			case p.Op(op, "") == nil:
				d.errf(e, path, "operation %s is unsupported by this profile", name)
			default:
				p.Init = append(p.Init, op)
			}
		}
	}
	if p.Quirks.RequiresInit && len(p.Init) == 0 {
		d.errf(root, "init", "quirks.requires_init is true but init lists no operation")
	}
	if p.Quirks.PresenceCheck == "card_status" {
		c := p.Op(OpCardStatus, "")
		if c == nil || (!hasItem(c.Reply, ItemPosition) && !hasItem(p.Messages.Positive.Status, ItemPosition)) {
			d.errf(root, "quirks.presence_check", "card_status must be supported and report a position")
		}
	}
	if v, ok := f["match"]; ok {
		p.Match = d.match(v.val, p)
	}
	d.crossChecks(root, p)
	if v, ok := f["tests"]; ok {
		p.Tests = d.tests(v.val, p)
	}
	return p
}

func (d *decoder) transport(n *yaml.Node) Transport {
	t := Transport{DataBits: 8, Parity: "none", StopBits: 1, Flow: "none", ReadySignal: "none", BaudStrategy: "fixed"}
	f := d.fields(n, "transport", []string{"baud", "baud_options", "baud_strategy", "data_bits", "parity", "stop_bits", "flow", "ready_signal"}, "baud")
	if v, ok := f["baud"]; ok {
		t.Baud = d.integer(v.val, "transport.baud", 50, 4000000)
	}
	if v, ok := f["baud_options"]; ok {
		for i, e := range d.seq(v.val, "transport.baud_options") {
			t.BaudOptions = append(t.BaudOptions, d.integer(e, fmt.Sprintf("transport.baud_options[%d]", i), 50, 4000000))
		}
		if t.Baud != 0 && len(t.BaudOptions) > 0 && !containsInt(t.BaudOptions, t.Baud) {
			d.errf(v.val, "transport.baud_options", "does not include the default baud %d", t.Baud)
		}
	}
	if v, ok := f["baud_strategy"]; ok {
		t.BaudStrategy = d.enum(v.val, "transport.baud_strategy", "fixed", "autodetect_on_init", "host_probe")
	}
	if v, ok := f["data_bits"]; ok {
		t.DataBits = d.integer(v.val, "transport.data_bits", 5, 8)
	}
	if v, ok := f["parity"]; ok {
		t.Parity = d.enum(v.val, "transport.parity", "none", "even", "odd")
	}
	if v, ok := f["stop_bits"]; ok {
		t.StopBits = d.integer(v.val, "transport.stop_bits", 1, 2)
	}
	if v, ok := f["flow"]; ok {
		t.Flow = d.enum(v.val, "transport.flow", "none", "rtscts")
	}
	if v, ok := f["ready_signal"]; ok {
		t.ReadySignal = d.enum(v.val, "transport.ready_signal", "none", "dsr", "cts")
	}
	return t
}

func containsInt(list []int, v int) bool {
	for _, e := range list {
		if e == v {
			return true
		}
	}
	return false
}

func (d *decoder) framing(n *yaml.Node) Framing {
	fr := Framing{MaxFrame: 1024}
	f := d.fields(n, "framing", []string{"start", "address", "length", "end", "checksum", "max_frame"}, "start", "length", "checksum")
	if v, ok := f["start"]; ok {
		if b, ok := d.hexBytes(v.val, "framing.start"); ok {
			if len(b) < 1 || len(b) > 8 {
				d.errf(v.val, "framing.start", "want 1..8 bytes, got %d", len(b))
			}
			fr.Start = b
		}
	}
	if v, ok := f["address"]; ok {
		if s := d.resolve(v.val); s != nil && s.Kind == yaml.ScalarNode && s.Value == "none" {
			// no address byte
		} else {
			a := &AddressSpec{Max: 255}
			af := d.fields(v.val, "framing.address", []string{"default", "min", "max"})
			if x, ok := af["min"]; ok {
				a.Min = d.integer(x.val, "framing.address.min", 0, 255)
			}
			if x, ok := af["max"]; ok {
				a.Max = d.integer(x.val, "framing.address.max", 0, 255)
			}
			if x, ok := af["default"]; ok {
				a.Default = d.integer(x.val, "framing.address.default", 0, 255)
			}
			if a.Min > a.Max || a.Default < a.Min || a.Default > a.Max {
				d.errf(v.val, "framing.address", "want min <= default <= max")
			}
			fr.Address = a
		}
	}
	if v, ok := f["length"]; ok {
		lf := d.fields(v.val, "framing.length", []string{"width", "order", "encoding", "counts"}, "width", "encoding")
		fr.Length = LengthSpec{Order: "big", Counts: "text"}
		if x, ok := lf["encoding"]; ok {
			fr.Length.Encoding = d.enum(x.val, "framing.length.encoding", "binary", "ascii-dec")
		}
		if x, ok := lf["width"]; ok {
			max := 3
			if fr.Length.Encoding == "ascii-dec" {
				max = 5
			}
			fr.Length.Width = d.integer(x.val, "framing.length.width", 1, max)
		}
		if x, ok := lf["order"]; ok {
			fr.Length.Order = d.enum(x.val, "framing.length.order", "big", "little")
		}
		if x, ok := lf["counts"]; ok {
			fr.Length.Counts = d.enum(x.val, "framing.length.counts", "text", "text_checksum", "text_end_checksum")
		}
	}
	if v, ok := f["end"]; ok {
		if s := d.resolve(v.val); s != nil && s.Kind == yaml.ScalarNode && (s.Value == "none" || s.Value == "") {
			fr.End = nil
		} else if b, ok := d.hexBytes(v.val, "framing.end"); ok {
			if len(b) > 4 {
				d.errf(v.val, "framing.end", "want 0..4 bytes, got %d", len(b))
			}
			fr.End = b
		}
	}
	if v, ok := f["checksum"]; ok {
		cf := d.fields(v.val, "framing.checksum", []string{"algo", "from", "to", "width", "order", "encoding"}, "algo")
		c := ChecksumSpec{From: "start", To: "text", Order: "big", Encoding: "binary"}
		if x, ok := cf["algo"]; ok {
			c.Algo = d.enum(x.val, "framing.checksum.algo", "none", "xor8", "sum8", "crc16-xmodem", "crc16-ccitt-false")
			c.Width = checksumWidth[c.Algo]
		}
		if x, ok := cf["width"]; ok {
			w := d.integer(x.val, "framing.checksum.width", 0, 2)
			if c.Algo != "" && w != c.Width {
				d.errf(x.val, "framing.checksum.width", "%s is %d byte(s) wide, not %d", c.Algo, c.Width, w)
			}
		}
		if x, ok := cf["from"]; ok {
			c.From = d.enum(x.val, "framing.checksum.from", "start", "address", "length", "text")
			if c.From == "address" && fr.Address == nil {
				d.errf(x.val, "framing.checksum.from", "the framing has no address byte")
			}
		}
		if x, ok := cf["to"]; ok {
			c.To = d.enum(x.val, "framing.checksum.to", "text", "end")
			if c.To == "end" && len(fr.End) == 0 {
				d.errf(x.val, "framing.checksum.to", "the framing has no end marker")
			}
		}
		if x, ok := cf["order"]; ok {
			c.Order = d.enum(x.val, "framing.checksum.order", "big", "little")
		}
		if x, ok := cf["encoding"]; ok {
			c.Encoding = d.enum(x.val, "framing.checksum.encoding", "binary", "ascii-hex")
		}
		fr.Checksum = c
	}
	if v, ok := f["max_frame"]; ok {
		fr.MaxFrame = d.integer(v.val, "framing.max_frame", 8, 70000)
	}
	if fr.MaxFrame > 0 && fr.Length.Width > 0 && len(fr.Start) > 0 && fr.MaxText() < 16 {
		d.errf(n, "framing.max_frame", "leaves room for only %d text bytes", fr.MaxText())
	}
	return fr
}

func (d *decoder) link(n *yaml.Node, fr *Framing) Link {
	l := Link{ACK: 0x06, NAK: 0x15, ENQ: 0x05, MaxGarbage: 256,
		Timers:  Timers{ACK: 300 * time.Millisecond, InterChar: 250 * time.Millisecond, Response: 5 * time.Second},
		Retries: Retries{OnNAK: 3, OnACKTimeout: 3}}
	f := d.fields(n, "link", []string{"style", "ack", "nak", "enq", "cancel", "host_acks_response", "timers_ms", "retries", "max_garbage"}, "style")
	if v, ok := f["style"]; ok {
		l.Style = LinkStyle(d.enum(v.val, "link.style", string(StyleACKENQ), string(StyleACKThenResponse), string(StylePlain)))
	}
	for _, k := range []struct {
		key string
		dst *byte
	}{{"ack", &l.ACK}, {"nak", &l.NAK}, {"enq", &l.ENQ}} {
		if v, ok := f[k.key]; ok {
			if b, ok := d.byteVal(v.val, "link."+k.key); ok {
				*k.dst = b
				if len(fr.Start) > 0 && b == fr.Start[0] {
					d.errf(v.val, "link."+k.key, "0x%02X is also the frame start byte", b)
				}
			}
		}
	}
	if l.ACK == l.NAK || l.ACK == l.ENQ || l.NAK == l.ENQ {
		d.errf(n, "link", "ack, nak and enq must differ")
	}
	if v, ok := f["cancel"]; ok {
		l.Cancel, _ = d.hexBytes(v.val, "link.cancel")
	}
	if v, ok := f["host_acks_response"]; ok {
		l.HostAcksResponse = d.boolean(v.val, "link.host_acks_response")
		if l.HostAcksResponse && l.Style != StyleACKThenResponse {
			d.errf(v.val, "link.host_acks_response", "only the ack_then_response style has a host ACK")
		}
	}
	if v, ok := f["timers_ms"]; ok {
		tf := d.fields(v.val, "link.timers_ms", []string{"ack", "inter_char", "min_gap", "response"})
		for _, k := range []struct {
			key string
			dst *time.Duration
			min int
		}{{"ack", &l.Timers.ACK, 1}, {"inter_char", &l.Timers.InterChar, 1}, {"min_gap", &l.Timers.MinGap, 0}, {"response", &l.Timers.Response, 1}} {
			if x, ok := tf[k.key]; ok {
				*k.dst = time.Duration(d.integer(x.val, "link.timers_ms."+k.key, k.min, 600000)) * time.Millisecond
			}
		}
	}
	if v, ok := f["retries"]; ok {
		rf := d.fields(v.val, "link.retries", []string{"on_nak", "on_ack_timeout"})
		if x, ok := rf["on_nak"]; ok {
			l.Retries.OnNAK = d.integer(x.val, "link.retries.on_nak", 0, 10)
		}
		if x, ok := rf["on_ack_timeout"]; ok {
			l.Retries.OnACKTimeout = d.integer(x.val, "link.retries.on_ack_timeout", 0, 10)
		}
	}
	if v, ok := f["max_garbage"]; ok {
		l.MaxGarbage = d.integer(v.val, "link.max_garbage", 0, 65536)
	}
	return l
}

func (d *decoder) quirks(n *yaml.Node) Quirks {
	q := Quirks{GetResponse: "host", APDULengthPrefix: "none", MaxAPDU: 261, PresenceCheck: "none"}
	f := d.fields(n, "quirks", []string{"get_response", "apdu_length_prefix", "max_apdu", "requires_init", "presence_check"})
	if v, ok := f["get_response"]; ok {
		q.GetResponse = d.enum(v.val, "quirks.get_response", "host", "reader")
	}
	if v, ok := f["apdu_length_prefix"]; ok {
		q.APDULengthPrefix = d.enum(v.val, "quirks.apdu_length_prefix", "u16be", "none")
	}
	if v, ok := f["max_apdu"]; ok {
		q.MaxAPDU = d.integer(v.val, "quirks.max_apdu", 4, 65544)
	}
	if v, ok := f["requires_init"]; ok {
		q.RequiresInit = d.boolean(v.val, "quirks.requires_init")
	}
	if v, ok := f["presence_check"]; ok {
		q.PresenceCheck = d.enum(v.val, "quirks.presence_check", "none", "card_status")
	}
	return q
}

func (d *decoder) messages(n *yaml.Node) Messages {
	var m Messages
	f := d.fields(n, "messages", []string{"command_head", "positive", "negative"}, "positive", "negative")
	if v, ok := f["command_head"]; ok {
		m.CommandHead, _ = d.hexBytes(v.val, "messages.command_head")
	}
	if v, ok := f["positive"]; ok {
		pf := d.fields(v.val, "messages.positive", []string{"head", "echo", "status"})
		m.Positive.Echo = []EchoField{EchoCM, EchoPM}
		if x, ok := pf["head"]; ok {
			m.Positive.Head, _ = d.hexBytes(x.val, "messages.positive.head")
		}
		if x, ok := pf["echo"]; ok {
			m.Positive.Echo = d.echo(x.val, "messages.positive.echo")
		}
		if x, ok := pf["status"]; ok {
			m.Positive.Status = d.layout(x.val, "messages.positive.status", "status", layoutCtx{})
		}
	}
	if v, ok := f["negative"]; ok {
		nf := d.fields(v.val, "messages.negative", []string{"heads", "echo", "code"}, "heads", "code")
		m.Negative.Echo = []EchoField{EchoCM, EchoPM}
		if x, ok := nf["heads"]; ok {
			for i, h := range d.seq(x.val, "messages.negative.heads") {
				path := fmt.Sprintf("messages.negative.heads[%d]", i)
				if b, ok := d.hexBytes(h, path); ok {
					if len(b) == 0 {
						d.errf(h, path, "a negative head cannot be empty")
						continue
					}
					m.Negative.Heads = append(m.Negative.Heads, b)
				}
			}
			if len(m.Negative.Heads) == 0 {
				d.errf(x.val, "messages.negative.heads", "list at least one head")
			}
		}
		if x, ok := nf["echo"]; ok {
			m.Negative.Echo = d.echo(x.val, "messages.negative.echo")
		}
		if x, ok := nf["code"]; ok {
			cf := d.fields(x.val, "messages.negative.code", []string{"width", "encoding"}, "width", "encoding")
			if y, ok := cf["width"]; ok {
				m.Negative.Code.Width = d.integer(y.val, "messages.negative.code.width", 1, 2)
			}
			if y, ok := cf["encoding"]; ok {
				m.Negative.Code.Encoding = d.enum(y.val, "messages.negative.code.encoding", "binary", "ascii")
			}
		}
	}
	for _, h := range m.Negative.Heads {
		if len(m.Positive.Head) > 0 && len(h) == len(m.Positive.Head) && string(h) == string(m.Positive.Head) {
			d.errf(n, "messages", "positive and negative heads are both % X", h)
		}
	}
	return m
}

func (d *decoder) echo(n *yaml.Node, path string) []EchoField {
	var out []EchoField
	for i, e := range d.seq(n, path) {
		s := d.enum(e, fmt.Sprintf("%s[%d]", path, i), "cm", "pm")
		if s != "" {
			out = append(out, EchoField(s))
		}
	}
	switch {
	case len(out) == 0, len(out) == 1 && out[0] == EchoCM, len(out) == 2 && out[0] == EchoCM && out[1] == EchoPM:
	default:
		d.errf(n, path, "want [], [cm] or [cm, pm]")
	}
	return out
}

func (d *decoder) errorCodes(n *yaml.Node, code CodeSpec) []ErrorCode {
	var out []ErrorCode
	for _, pr := range d.pairs(n, "errors") {
		path := "errors." + pr.key.Value
		var key string
		switch code.Encoding {
		case "ascii":
			key = pr.key.Value
			if len(key) != code.Width {
				d.errf(pr.key, path, "an ASCII code here is %d characters", code.Width)
				continue
			}
		case "binary":
			v := pr.key.Value
			if strings.HasPrefix(v, "0x") || strings.HasPrefix(v, "0X") {
				x, err := strconv.ParseUint(v[2:], 16, 16)
				if err != nil || x >= 1<<(8*code.Width) {
					d.errf(pr.key, path, "want a %d-byte hex code", code.Width)
					continue
				}
				key = fmt.Sprintf("%0*X", 2*code.Width, x)
			} else {
				b, err := hex.DecodeString(v)
				if err != nil || len(b) != code.Width {
					d.errf(pr.key, path, "want a %d-byte hex code such as 0x04", code.Width)
					continue
				}
				key = strings.ToUpper(v)
			}
		default:
			continue // messages.negative.code is invalid; reported there
		}
		c := d.str(pr.val, path)
		if c == "" {
			continue
		}
		if !knownCondition(c) {
			d.errf(pr.val, path, "unknown condition %q", c)
			continue
		}
		for _, e := range out {
			if e.Code == key {
				d.errf(pr.key, path, "code %s listed twice", key)
			}
		}
		out = append(out, ErrorCode{Code: key, Condition: Condition(c)})
	}
	return out
}

func (d *decoder) slots(n *yaml.Node) []*Slot {
	var out []*Slot
	wires := map[byte]string{}
	for _, pr := range d.pairs(n, "slots") {
		name := pr.key.Value
		path := "slots." + name
		if !slotRE.MatchString(name) {
			d.errf(pr.key, path, "slot names are user or psam1..psam99")
			continue
		}
		s := &Slot{Name: name}
		f := d.fields(pr.val, path, []string{"kind", "wire"}, "kind")
		if v, ok := f["kind"]; ok {
			s.Kind = d.enum(v.val, path+".kind", "contact", "sam")
			if want := map[bool]string{true: "contact", false: "sam"}[name == "user"]; s.Kind != "" && s.Kind != want {
				d.errf(v.val, path+".kind", "slot %s must be of kind %s", name, want)
			}
		}
		if v, ok := f["wire"]; ok {
			s.Wire, s.HasWire = d.byteVal(v.val, path+".wire")
			if other, dup := wires[s.Wire]; dup && s.HasWire {
				d.errf(v.val, path+".wire", "wire code 0x%02X already used by %s", s.Wire, other)
			}
			wires[s.Wire] = name
		} else if s.Kind == "sam" {
			d.errf(pr.val, path, "a sam slot needs its wire code")
		}
		out = append(out, s)
	}
	if len(out) == 0 {
		d.errf(n, "slots", "declare at least the user slot")
	}
	return out
}

// layoutCtx says what a layout may contain.
type layoutCtx struct {
	op       OpName
	slot     *Slot
	prefix   string // quirks.apdu_length_prefix
	isData   bool
	noStatus bool // status letters table empty
}

var dataItems = []string{"const", "slot", "apdu"}
var replyItems = []string{"const", "slot", "status", "position", "protocol", "atr", "rapdu", "version"}

func (d *decoder) layout(n *yaml.Node, path, what string, ctx layoutCtx) []Item {
	allowed := replyItems
	if ctx.isData {
		allowed = dataItems
	}
	var out []Item
	elems := d.seq(n, path)
	for i, e := range elems {
		ip := fmt.Sprintf("%s[%d]", path, i)
		e = d.resolve(e)
		if e == nil {
			continue
		}
		var it Item
		it.Line = e.Line
		var key string
		var arg *yaml.Node
		switch e.Kind {
		case yaml.ScalarNode:
			key = e.Value
		case yaml.MappingNode:
			if len(e.Content) != 2 {
				d.errf(e, ip, "an item is a name or a one-key mapping")
				continue
			}
			key, arg = e.Content[0].Value, e.Content[1]
		default:
			d.errf(e, ip, "an item is a name or a one-key mapping")
			continue
		}
		if !contains(allowed, key) {
			d.errf(e, ip, "%q is not allowed in a %s layout (allowed: %s)", key, what, strings.Join(allowed, ", "))
			continue
		}
		it.Kind = ItemKind(key)
		switch it.Kind {
		case ItemConst:
			if arg == nil {
				d.errf(e, ip, "const needs its bytes: {const: \"30\"}")
				continue
			}
			b, ok := d.hexBytes(arg, ip+".const")
			if ok && len(b) == 0 {
				d.errf(arg, ip+".const", "const needs at least one byte")
			}
			it.Const = b
		case ItemSlot, ItemStatus:
			if arg != nil {
				d.errf(e, ip, "%s takes no argument", key)
			}
			if it.Kind == ItemSlot && ctx.slot != nil && !ctx.slot.HasWire {
				d.errf(e, ip, "slot %s has no wire code", ctx.slot.Name)
			}
			if it.Kind == ItemStatus && ctx.noStatus {
				d.errf(e, ip, "status needs a status_letters table")
			}
		case ItemAPDU, ItemRAPDU, ItemATR, ItemVersion:
			it.Form = "rest"
			if (it.Kind == ItemAPDU || it.Kind == ItemRAPDU) && ctx.prefix == "u16be" {
				it.Form = "u16be"
			}
			if arg != nil {
				it.Form = d.enum(arg, ip+"."+key, "u16be", "rest")
			}
			if it.Kind == ItemVersion && it.Form != "rest" {
				d.errf(e, ip, "version is always the rest of the data")
			}
			if it.Kind == ItemAPDU && ctx.op != OpAPDU || it.Kind == ItemRAPDU && ctx.op != OpAPDU {
				d.errf(e, ip, "%s belongs to the apdu operation only", key)
			}
			if it.Kind == ItemATR && ctx.op != OpPowerOn && ctx.op != OpWarmReset {
				d.errf(e, ip, "atr belongs to power_on and warm_reset only")
			}
		case ItemPosition:
			it.Positions = map[byte]Position{}
			for _, pr := range d.pairs(arg, ip+".position") {
				b, ok := d.byteScalar(pr.key, ip+".position")
				v := d.enum(pr.val, ip+".position."+pr.key.Value, string(PosAbsent), string(PosAtGate), string(PosInside), string(PosAtContacts), string(PosUnknown))
				if ok && v != "" {
					it.Positions[b] = Position(v)
				}
			}
			if len(it.Positions) == 0 {
				d.errf(e, ip, "position needs a byte → position map")
			}
		case ItemProtocol:
			it.Protocols = map[byte]Protocol{}
			for _, pr := range d.pairs(arg, ip+".protocol") {
				b, ok := d.byteScalar(pr.key, ip+".protocol")
				v := d.enum(pr.val, ip+".protocol."+pr.key.Value, string(ProtoT0), string(ProtoT1))
				if ok && v != "" {
					it.Protocols[b] = Protocol(v)
				}
			}
			if len(it.Protocols) == 0 {
				d.errf(e, ip, "protocol needs a byte → T0/T1 map")
			}
		}
		if it.Form == "rest" && i != len(elems)-1 {
			d.errf(e, ip, "%s takes the rest of the data and must be the last item", key)
		}
		for _, prev := range out {
			if prev.Kind == it.Kind && it.Kind != ItemConst {
				d.errf(e, ip, "%s appears twice", key)
			}
		}
		out = append(out, it)
	}
	return out
}

func hasItem(items []Item, k ItemKind) bool {
	for _, it := range items {
		if it.Kind == k {
			return true
		}
	}
	return false
}

func (d *decoder) ops(key, n *yaml.Node, p *Profile) {
	for _, pr := range d.pairs(n, "ops") {
		name := pr.key.Value
		path := "ops." + name
		if !knownOp(name) {
			d.errf(pr.key, path, "unknown operation (known: %s)", opList())
			continue
		}
		op := &Op{Name: OpName(name), Line: pr.key.Line}
		p.Ops[op.Name] = op
		v := d.resolve(pr.val)
		if v == nil {
			continue
		}
		if v.Kind == yaml.ScalarNode {
			if v.Value != "unsupported" {
				d.errf(v, path, "want a command or \"unsupported\", got %q", v.Value)
			}
			op.Unsupported = true
			continue
		}
		if !op.Name.PerSlot() {
			op.Command = d.command(v, path, p, op.Name, nil)
			continue
		}
		op.BySlot = map[string]*Command{}
		var wildcard *yaml.Node
		for _, sp := range d.pairs(v, path) {
			sname := sp.key.Value
			spath := path + "." + sname
			if sname == "psam*" {
				wildcard = sp.val
				continue
			}
			s := p.Slot(sname)
			if s == nil {
				d.errf(sp.key, spath, "unknown slot %s", sname)
				continue
			}
			op.BySlot[sname] = d.slotCommand(sp.val, spath, p, op.Name, s)
		}
		if wildcard != nil {
			n := 0
			for _, s := range p.Slots {
				if s.Kind != "sam" {
					continue
				}
				n++
				if _, done := op.BySlot[s.Name]; !done {
					op.BySlot[s.Name] = d.slotCommand(wildcard, path+".psam*", p, op.Name, s)
				}
			}
			if n == 0 {
				d.errf(wildcard, path+".psam*", "no sam slot is declared")
			}
		}
	}
	for _, o := range OpNames {
		if _, ok := p.Ops[o]; !ok {
			d.errf(key, "ops", "operation %s is missing (write \"%s: unsupported\" if the reader lacks it)", o, o)
		}
	}
	for _, o := range []OpName{OpPowerOn, OpAPDU, OpPowerOff} {
		op := p.Ops[o]
		if op == nil || op.Unsupported {
			continue
		}
		for _, s := range p.Slots {
			if _, ok := op.BySlot[s.Name]; !ok {
				d.errf(n, "ops."+string(o), "slot %s has no entry (write \"%s: unsupported\" if it cannot)", s.Name, s.Name)
			}
		}
	}
}

func opList() string {
	s := make([]string, len(OpNames))
	for i, o := range OpNames {
		s[i] = string(o)
	}
	return strings.Join(s, ", ")
}

// slotCommand parses a per-slot entry; nil means unsupported on that slot.
func (d *decoder) slotCommand(n *yaml.Node, path string, p *Profile, op OpName, s *Slot) *Command {
	if v := d.resolve(n); v != nil && v.Kind == yaml.ScalarNode {
		if v.Value != "unsupported" {
			d.errf(v, path, "want a command or \"unsupported\", got %q", v.Value)
		}
		return nil
	}
	return d.command(n, path, p, op, s)
}

func (d *decoder) command(n *yaml.Node, path string, p *Profile, op OpName, s *Slot) *Command {
	allowed := []string{"cm", "pm", "data", "reply", "timeout_ms", "before", "select", "protocol_from"}
	f := d.fields(n, path, allowed, "cm", "pm")
	c := &Command{Line: d.lineOf(n)}
	if v, ok := f["cm"]; ok {
		c.CM, _ = d.byteVal(v.val, path+".cm")
	}
	if v, ok := f["pm"]; ok {
		if pv := d.resolve(v.val); pv != nil && pv.Kind == yaml.MappingNode {
			if op != OpAPDU {
				d.errf(pv, path+".pm", "only apdu commands may choose pm by protocol")
			}
			c.PMByProtocol = map[Protocol]byte{}
			for _, pr := range d.pairs(pv, path+".pm") {
				proto := d.enum(pr.key, path+".pm", string(ProtoT0), string(ProtoT1), string(ProtoAuto))
				b, ok := d.byteVal(pr.val, path+".pm."+pr.key.Value)
				if proto != "" && ok {
					c.PMByProtocol[Protocol(proto)] = b
				}
			}
		} else {
			c.PM, _ = d.byteVal(v.val, path+".pm")
		}
	}
	ctx := layoutCtx{op: op, slot: s, prefix: p.Quirks.APDULengthPrefix, noStatus: len(p.StatusLetters) == 0}
	if v, ok := f["data"]; ok {
		dctx := ctx
		dctx.isData = true
		c.Data = d.layout(v.val, path+".data", "data", dctx)
	}
	if v, ok := f["reply"]; ok {
		c.Reply = d.layout(v.val, path+".reply", "reply", ctx)
	}
	if v, ok := f["timeout_ms"]; ok {
		c.Timeout = time.Duration(d.integer(v.val, path+".timeout_ms", 1, 600000)) * time.Millisecond
	}
	if v, ok := f["select"]; ok {
		c.Select = d.boolean(v.val, path+".select")
		if c.Select && (s == nil || !s.HasWire) {
			d.errf(v.val, path+".select", "select needs a slot with a wire code")
		}
	}
	if v, ok := f["protocol_from"]; ok {
		c.ProtocolFrom = d.enum(v.val, path+".protocol_from", "status", "atr")
		if op != OpPowerOn && op != OpWarmReset {
			d.errf(v.val, path+".protocol_from", "only power_on and warm_reset learn the protocol")
		}
		if c.ProtocolFrom == "status" && !hasItem(c.Reply, ItemStatus) {
			d.errf(v.val, path+".protocol_from", "the reply has no status item")
		}
	} else if op == OpPowerOn || op == OpWarmReset {
		c.ProtocolFrom = "atr"
	}
	if v, ok := f["before"]; ok {
		for i, b := range d.seq(v.val, path+".before") {
			bp := fmt.Sprintf("%s.before[%d]", path, i)
			bc := d.command(b, bp, p, "", s)
			if len(bc.Before) > 0 || bc.Select {
				d.errf(b, bp, "a before step cannot have its own before/select")
			}
			c.Before = append(c.Before, bc)
		}
	}
	if op == "" {
		return c
	}
	// What each canonical op needs.
	switch op {
	case OpAPDU:
		if !hasItem(c.Data, ItemAPDU) {
			d.errf(n, path+".data", "the apdu command must carry an apdu item")
		}
		if !hasItem(c.Reply, ItemRAPDU) {
			d.errf(n, path+".reply", "the apdu reply must carry an rapdu item")
		}
	case OpPowerOn, OpWarmReset:
		if !hasItem(c.Reply, ItemATR) {
			d.errf(n, path+".reply", "the %s reply must carry an atr item", op)
		}
	case OpSelectSAM:
		if !hasItem(c.Data, ItemSlot) {
			d.errf(n, path+".data", "select_sam must carry a slot item")
		}
	}
	// A SAM command without a slot byte or a selection addresses every SAM
	// (CRT-310 SIM power off); that only makes sense for power_off.
	if op.PerSlot() && op != OpPowerOff && s != nil && s.Kind == "sam" && !c.Select && !hasItem(c.Data, ItemSlot) {
		var others int
		for _, o := range p.Slots {
			if o.Kind == "sam" {
				others++
			}
		}
		if others > 1 {
			d.errf(n, path, "with several SAM slots a SAM command needs a slot data item or select: true")
		}
	}
	return c
}

func (d *decoder) lineOf(n *yaml.Node) int {
	if n == nil {
		return 0
	}
	return n.Line
}

func (d *decoder) match(n *yaml.Node, p *Profile) MatchSpec {
	var m MatchSpec
	f := d.fields(n, "match", []string{"usb", "probe"})
	if v, ok := f["usb"]; ok {
		for i, e := range d.seq(v.val, "match.usb") {
			path := fmt.Sprintf("match.usb[%d]", i)
			uf := d.fields(e, path, []string{"vid", "pid"}, "vid", "pid")
			var id USBID
			for _, k := range []struct {
				key string
				dst *string
			}{{"vid", &id.VID}, {"pid", &id.PID}} {
				if x, ok := uf[k.key]; ok {
					s := d.str(x.val, path+"."+k.key)
					if !usbIDRE.MatchString(s) {
						d.errf(x.val, path+"."+k.key, "want 4 hex digits as a quoted string, got %q", s)
					}
					*k.dst = strings.ToUpper(s)
				}
			}
			m.USB = append(m.USB, id)
		}
	}
	if v, ok := f["probe"]; ok {
		pf := d.fields(v.val, "match.probe", []string{"op", "contains"}, "op")
		if x, ok := pf["op"]; ok {
			m.ProbeOp = OpName(d.enum(x.val, "match.probe.op", string(OpIdentify), string(OpResetReader), string(OpCardStatus)))
			if m.ProbeOp != "" && p.Op(m.ProbeOp, "") == nil {
				d.errf(x.val, "match.probe.op", "operation %s is unsupported by this profile", m.ProbeOp)
			}
		}
		if x, ok := pf["contains"]; ok {
			m.ProbeContains = d.str(x.val, "match.probe.contains")
		}
	}
	return m
}

// crossChecks are the rules that involve several sections.
func (d *decoder) crossChecks(root *yaml.Node, p *Profile) {
	if p.Messages.Negative.Code.Width == 0 {
		return
	}
	// Without a positive head, a positive reply starts with the echoed CM:
	// no command may use a CM equal to a negative head.
	if len(p.Messages.Positive.Head) == 0 && len(p.Messages.Positive.Echo) > 0 {
		for _, op := range p.Ops {
			for _, c := range op.commands() {
				for _, h := range p.Messages.Negative.Heads {
					if c.CM == h[0] {
						d.errf(&yaml.Node{Line: c.Line}, "ops."+string(op.Name), "cm 0x%02X equals a negative head and positive replies have no head", c.CM)
					}
				}
			}
		}
	}
	if len(p.Messages.Positive.Echo) == 0 && len(p.Messages.Positive.Head) == 0 {
		d.errf(root, "messages.positive", "positive replies need a head or an echo to be told apart")
	}
	if p.Ops[OpSelectSAM] != nil && p.Ops[OpSelectSAM].Unsupported {
		for _, op := range p.Ops {
			for _, c := range op.commands() {
				if c.Select {
					d.errf(&yaml.Node{Line: c.Line}, "ops."+string(op.Name), "select: true but select_sam is unsupported")
				}
			}
		}
	}
}

// commands lists every command of an op, before steps included.
func (o *Op) commands() []*Command {
	var top []*Command
	if o.Command != nil {
		top = append(top, o.Command)
	}
	names := make([]string, 0, len(o.BySlot))
	for n := range o.BySlot {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if c := o.BySlot[n]; c != nil {
			top = append(top, c)
		}
	}
	var out []*Command
	for _, c := range top {
		out = append(out, c.Before...)
		out = append(out, c)
	}
	return out
}
