package apdu

import (
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Kind says how Explain reads its input.
type Kind int

const (
	// KindAuto decides by the rule documented on Explain.
	KindAuto Kind = iota
	// KindCommand reads the input as a command APDU.
	KindCommand
	// KindResponse reads the input as a response APDU.
	KindResponse
)

// ErrNotAPDU is wrapped by Explain when the input is neither a command
// nor a response APDU.
var ErrNotAPDU = errors.New("not an APDU")

// Explain decodes b as a command or response APDU and returns a
// multi-line, human-readable explanation in English with Chinese terms.
// PIN material (VERIFY, CHANGE/RELOAD PIN, RESET RETRY COUNTER, PIN
// UNBLOCK) is never shown, only its length.
//
// With KindAuto the rule is:
//   - fewer than 2 bytes: error;
//   - 2 or 3 bytes: a response (a command needs a 4-byte header);
//   - 4 or more: a command if ParseCommand accepts it and its header is
//     plausible (CLA not FF and not the reserved 20–3F, INS not 6x/9x);
//     a response if its last two bytes are a plausible status word (SW1
//     61–6F or 90–9F). When both hold, a known instruction makes it a
//     command, else a known status word makes it a response, else a
//     command; the explanation then mentions the other reading.
//
// KindCommand and KindResponse force the reading and return the parse
// error (ErrMalformedCommand, ErrMalformedResponse) when it fails. Errors
// from KindAuto wrap ErrNotAPDU.
func Explain(b []byte, kind Kind) (string, error) {
	switch kind {
	case KindCommand:
		c, err := ParseCommand(b)
		if err != nil {
			return "", err
		}
		return ExplainCommand(c), nil
	case KindResponse:
		r, err := ParseResponse(b)
		if err != nil {
			return "", err
		}
		return ExplainResponse(r, nil), nil
	case KindAuto:
	default:
		return "", fmt.Errorf("explain APDU: unknown kind %d", int(kind))
	}
	if len(b) < 2 {
		return "", fmt.Errorf("explain APDU: %w: %d bytes (a response needs 2, a command 4)", ErrNotAPDU, len(b))
	}
	r, _ := ParseResponse(b) // cannot fail: len(b) >= 2
	if len(b) < 4 {
		return ExplainResponse(r, nil), nil
	}
	c, cerr := ParseCommand(b)
	isCmd := cerr == nil && plausibleHeader(b[0], b[1])
	isResp := PlausibleSW(r.SW)
	switch {
	case isCmd && isResp:
		if _, known := lookupINS(c); !known && knownSW(r.SW) {
			return ExplainResponse(r, nil) + "note: these bytes also form a valid command APDU (" + c.caseString() + "); decode them as a command to see it\n", nil
		}
		return ExplainCommand(c) + fmt.Sprintf("note: these bytes also form a valid response APDU ending in SW %04X; decode them as a response to see it\n", r.SW), nil
	case isCmd:
		return ExplainCommand(c), nil
	case isResp:
		return ExplainResponse(r, nil), nil
	}
	why := "header not plausible"
	if cerr != nil {
		why = cerr.Error()
	}
	return "", fmt.Errorf("explain APDU: %w: not a command (%s) and %02X is not a status byte SW1", ErrNotAPDU, why, r.SW1())
}

// plausibleHeader rejects class bytes ISO 7816-4 reserves (FF, 20–3F) and
// instruction bytes 6x/9x, which T=0 uses for procedure and status bytes.
func plausibleHeader(cla, ins byte) bool {
	if cla == 0xFF || (cla >= 0x20 && cla <= 0x3F) {
		return false
	}
	return ins>>4 != 0x6 && ins>>4 != 0x9
}

func knownSW(sw uint16) bool {
	if _, ok := swTexts[sw]; ok {
		return true
	}
	switch sw >> 8 {
	case 0x61, 0x6C:
		return true
	}
	return sw&0xFFF0 == 0x63C0
}

func (c Command) caseString() string {
	form := "short"
	if c.Extended() {
		form = "extended"
	}
	if c.Case() == 1 {
		return "case 1"
	}
	return fmt.Sprintf("case %d, %s", c.Case(), form)
}

// Sensitive reports whether c's data field carries PIN material that must
// not be logged or displayed (VERIFY, CHANGE REFERENCE DATA, RESET RETRY
// COUNTER, PBOC CHANGE/RELOAD PIN and PIN UNBLOCK).
func Sensitive(c Command) bool {
	d, _ := lookupINS(c)
	return d.secret
}

// CommandName returns the name of c's instruction as used on SSC cards and
// PSAMs, e.g. "SELECT", "INITIALIZE FOR PURCHASE", or "INS xx" when
// unknown.
func CommandName(c Command) string {
	d, ok := lookupINS(c)
	if !ok {
		return fmt.Sprintf("INS %02X", c.INS)
	}
	return d.nameOf(c)
}

// cmdText collects the explanation of one command.
type cmdText struct {
	summary string   // what the command does, after the name
	p1, p2  string   // meaning of P1, P2
	data    []string // lines explaining the data field
	le      string   // meaning of Le
}

type insDef struct {
	name    string
	names   map[byte]string // name by P1, when P1 selects the operation
	note    string          // provenance caveat
	secret  bool            // data carries PIN material
	explain func(c Command, x *cmdText)
}

func (d insDef) nameOf(c Command) string {
	if n, ok := d.names[c.P1]; ok {
		return n
	}
	return d.name
}

type insKey struct {
	proprietary bool
	ins         byte
}

func lookupINS(c Command) (insDef, bool) {
	prop := c.CLA&0x80 != 0
	if d, ok := insTable[insKey{prop, c.INS}]; ok {
		return d, true
	}
	if d, ok := insTable[insKey{!prop, c.INS}]; ok {
		d.note = strings.TrimSpace(d.note + " (unusual class byte for this instruction)")
		return d, true
	}
	return insDef{}, false
}

var insTable map[insKey]insDef

func init() {
	// Built in init because the explain functions refer to the table.
	insTable = map[insKey]insDef{
		{false, 0xA4}: {name: "SELECT", explain: explainSelect},
		{false, 0xB0}: {name: "READ BINARY", explain: explainReadBinary},
		{false, 0xB2}: {name: "READ RECORD", explain: explainReadRecord},
		{false, 0xD6}: {name: "UPDATE BINARY", explain: explainUpdateBinary},
		{false, 0xDC}: {name: "UPDATE RECORD", explain: explainUpdateRecord},
		{false, 0xE2}: {name: "APPEND RECORD", explain: explainUpdateRecord},
		{false, 0x84}: {name: "GET CHALLENGE", explain: explainGetChallenge},
		{false, 0x88}: {name: "INTERNAL AUTHENTICATE", explain: explainInternalAuth},
		{false, 0x82}: {name: "EXTERNAL AUTHENTICATE", explain: explainExternalAuth},
		{false, 0x20}: {name: "VERIFY", secret: true, explain: explainVerify},
		{false, 0x24}: {name: "CHANGE REFERENCE DATA", secret: true, explain: explainPINChange},
		{false, 0x2C}: {name: "RESET RETRY COUNTER", secret: true, explain: explainPINChange},
		{false, 0xC0}: {name: "GET RESPONSE", explain: explainGetResponse},
		{false, 0xCA}: {name: "GET DATA", explain: explainGetData},
		{false, 0x70}: {name: "MANAGE CHANNEL", explain: explainManageChannel},

		{true, 0x50}: {name: "INITIALIZE FOR TRANSACTION", names: map[byte]string{
			0x00: "INITIALIZE FOR LOAD", 0x01: "INITIALIZE FOR PURCHASE", 0x03: "INITIALIZE FOR CAPP PURCHASE",
		}, note: "PBOC e-purse", explain: explainInitialize},
		{true, 0x54}: {name: "DEBIT FOR PURCHASE", note: "PBOC e-purse", explain: explainDebit},
		{true, 0x52}: {name: "CREDIT FOR LOAD", note: "PBOC e-purse", explain: explainCreditLoad},
		{true, 0x5C}: {name: "GET BALANCE", note: "PBOC e-purse", explain: explainGetBalance},
		{true, 0x5A}: {name: "GET TRANSACTION PROOF", note: "PBOC e-purse", explain: explainGetProof},
		{true, 0x5E}: {name: "CHANGE/RELOAD PIN", names: map[byte]string{0x00: "RELOAD PIN", 0x01: "CHANGE PIN"},
			note: "PBOC", secret: true, explain: explainPINChange},
		{true, 0x24}: {name: "PIN UNBLOCK", note: "PBOC; issued with an HSM-computed cryptogram on SSC cards", secret: true, explain: explainPINUnblock},
		{true, 0x70}: {name: "INIT SAM FOR PURCHASE", note: "PSAM", explain: explainInitSAM},
		{true, 0x72}: {name: "CREDIT SAM FOR PURCHASE", note: "PSAM", explain: explainCreditSAM},
		{true, 0x1A}: {name: "INIT FOR DESCRYPT", note: "PSAM", explain: explainInitDescrypt},
		{true, 0xFA}: {name: "DES CRYPT", note: "PSAM", explain: explainDESCrypt},
		{true, 0x1E}: {name: "APPLICATION BLOCK", note: "common in PBOC; its bytes on SSC cards are unconfirmed", explain: explainAppBlock},
		{true, 0x18}: {name: "APPLICATION UNBLOCK", note: "common in PBOC; its bytes on SSC cards are unconfirmed", explain: explainMACOnly},
		{true, 0x16}: {name: "CARD BLOCK", note: "common in PBOC; its bytes on SSC cards are unconfirmed", explain: explainMACOnly},
		{true, 0xA8}: {name: "GET PROCESSING OPTIONS", note: "EMV/PBOC debit-credit", explain: nil},
		{true, 0xAE}: {name: "GENERATE AC", note: "EMV/PBOC debit-credit", explain: nil},
		{true, 0xCA}: {name: "GET DATA", note: "proprietary class", explain: explainGetData},
		{true, 0xDE}: {name: "PSAM KEY OPERATION", note: "vendor-specific (seen as BF DE); layout unconfirmed", explain: explainVendorKey},
	}
}

// ExplainCommand explains a command APDU: case and form, CLA, INS with the
// instruction's name, P1, P2, Lc and data (decoded where the instruction is
// known; PIN data masked), and Le/Ne.
func ExplainCommand(c Command) string {
	d, known := lookupINS(c)
	var x cmdText
	if known && d.explain != nil {
		d.explain(c, &x)
	}
	name := fmt.Sprintf("unknown instruction %02X", c.INS)
	if known {
		name = d.nameOf(c)
	}
	var sb strings.Builder
	head := name
	if x.summary != "" {
		head += " " + x.summary
	}
	fmt.Fprintf(&sb, "command APDU (%s): %s\n", c.caseString(), head)
	line := func(label, hexs, text string) {
		if text == "" {
			fmt.Fprintf(&sb, "  %-4s %s\n", label, hexs)
			return
		}
		fmt.Fprintf(&sb, "  %-4s %-4s %s\n", label, hexs, text)
	}
	line("CLA", fmt.Sprintf("%02X", c.CLA), claText(c.CLA))
	insText := name
	if known && d.note != "" {
		insText += " [" + d.note + "]"
	}
	line("INS", fmt.Sprintf("%02X", c.INS), insText)
	line("P1", fmt.Sprintf("%02X", c.P1), x.p1)
	line("P2", fmt.Sprintf("%02X", c.P2), x.p2)
	if len(c.Data) > 0 {
		if c.Extended() {
			line("Lc", fmt.Sprintf("00%04X", len(c.Data)), fmt.Sprintf("%d data bytes", len(c.Data)))
		} else {
			line("Lc", fmt.Sprintf("%02X", len(c.Data)), fmt.Sprintf("%d data bytes", len(c.Data)))
		}
		if known && d.secret {
			sb.WriteString("  data (PIN material masked)\n")
		} else {
			fmt.Fprintf(&sb, "  data %X\n", c.Data)
		}
		for _, l := range x.data {
			fmt.Fprintf(&sb, "       %s\n", l)
		}
	} else {
		sb.WriteString("  Lc   absent (no data)\n")
	}
	switch {
	case c.Ne == 0:
		sb.WriteString("  Le   absent (no response data expected)\n")
	default:
		le := fmt.Sprintf("%02X", byte(c.Ne))
		if c.Extended() {
			le = fmt.Sprintf("%04X", uint16(c.Ne))
			if len(c.Data) == 0 {
				le = "00" + le
			}
		}
		text := fmt.Sprintf("Ne %d: up to %d response bytes expected", c.Ne, c.Ne)
		if x.le != "" {
			text += "; " + x.le
		}
		line("Le", le, text)
	}
	return sb.String()
}

func claText(cla byte) string {
	switch {
	case cla == 0xFF:
		return "invalid class (FF is reserved for PPS)"
	case cla&0xE0 == 0x00:
		s := "interindustry"
		if cla&0x10 != 0 {
			s += ", command chaining (not the last command)"
		}
		switch cla & 0x0C {
		case 0x00:
			s += ", no secure messaging"
		case 0x04:
			s += ", proprietary secure messaging (MAC appended to the data)"
		case 0x08:
			s += ", secure messaging, header not authenticated"
		case 0x0C:
			s += ", secure messaging, header authenticated"
		}
		return s + fmt.Sprintf(", logical channel %d", cla&0x03)
	case cla&0xC0 == 0x40:
		s := "interindustry (further)"
		if cla&0x10 != 0 {
			s += ", command chaining (not the last command)"
		}
		if cla&0x20 != 0 {
			s += ", secure messaging, header not authenticated"
		} else {
			s += ", no secure messaging"
		}
		return s + fmt.Sprintf(", logical channel %d", 4+int(cla&0x0F))
	case cla&0xE0 == 0x20:
		return "reserved class (20–3F)"
	case cla == 0x80:
		return "proprietary (PBOC/SSC), no secure messaging"
	case cla == 0x84:
		return "proprietary (PBOC/SSC) with secure messaging (MAC appended to the data)"
	}
	return "proprietary"
}

// --- instruction explainers ---

// Known SELECT targets.
var knownFIDs = map[uint16]string{
	0x3F00: "MF (master file)",
	0xEF05: "card/issuer data (发卡机构数据) in SSSE",
	0xEF06: "holder basic information (持卡人基本信息) in SSSE",
	0xEF07: "fingerprint (指纹) in SSSE",
	0xEF08: "photo (照片) in SSSE",
	0xDDF1: "PSAM SSF33 environment",
	0xDF01: "public application information",
	0xDF02: "employment / unemployment",
	0xDF03: "social insurance 1",
	0xDF04: "social insurance 2 (medical insurance)",
}

var knownAIDs = []struct {
	aid   string // upper-case hex
	short string // for the summary line
	long  string
}{
	{"7378312E73682EC9E7BBE1B1A3D5CF", "the SSSE application", "the SSSE application (社会保障系统环境) of the social-security card; also the PSAM's DES environment"},
	{"7378322E73682EC9E7BBE1B1A3D5CF", "the PSAM SSF33 environment", "the PSAM's SSF33 environment (社会保障系统环境, second algorithm)"},
	{"D15600000590", "the PSAM application DF01", "the PSAM application DF01"},
	{"D15600000500", "DF01 (public information)", "DF01: public application information (公共应用)"},
	{"D15600000501", "DF02 (employment)", "DF02: employment / unemployment (就业)"},
	{"D15600000502", "DF03 (social insurance 1)", "DF03: social insurance 1 (社会保险一)"},
	{"D15600000503", "DF04 (medical insurance)", "DF04: social insurance 2, medical insurance (社会保险二)"},
	{"D15600000504", "DF05 (personnel)", "DF05: personnel / talent (人事人才); DF number unconfirmed"},
	{"A000000333010101", "the PBOC debit application", "PBOC debit (UnionPay) bank application"},
	{"A000000333010102", "the PBOC credit application", "PBOC credit (UnionPay) bank application"},
	{"315041592E5359532E4444463031", "the PSE", "the payment system environment 1PAY.SYS.DDF01"},
	{"325041592E5359532E4444463031", "the PPSE", "the proximity payment system environment 2PAY.SYS.DDF01"},
}

// dfNameText decodes a DF name: a known AID, text when the name is
// printable GBK, the MOHRSS RID otherwise.
func dfNameText(name []byte) (desc string, summary string) {
	h := strings.ToUpper(hex.EncodeToString(name))
	text, terr := DecodeGBK(name)
	printable := terr == nil && text != "" && utf8.RuneCountInString(text) >= 3
	quoted := ""
	if printable {
		quoted = fmt.Sprintf("%q ", text)
	}
	for _, k := range knownAIDs {
		if h == k.aid {
			return "DF name " + quoted + "= " + k.long, strings.TrimSpace(k.short + " " + quoted)
		}
	}
	switch {
	case strings.HasPrefix(h, "D156000005"):
		return "DF name " + h + ": MOHRSS (人社部) RID D156000005, application " + h[10:], "a social-security application " + h
	case printable:
		return "DF name " + quoted + "(GBK/ASCII text)", "DF name " + strings.TrimSpace(quoted)
	}
	return "DF name (AID) " + h, "AID " + h
}

func explainSelect(c Command, x *cmdText) {
	switch c.P1 {
	case 0x00:
		x.p1 = "select MF, DF or EF by file identifier"
	case 0x01:
		x.p1 = "select child DF by file identifier"
	case 0x02:
		x.p1 = "select EF under the current DF by file identifier"
	case 0x03:
		x.p1 = "select parent DF"
	case 0x04:
		x.p1 = "select by DF name (AID)"
	case 0x08:
		x.p1 = "select by path from the MF"
	case 0x09:
		x.p1 = "select by path from the current DF"
	default:
		x.p1 = "unknown selection method"
	}
	occ := [...]string{"first or only occurrence", "last occurrence", "next occurrence", "previous occurrence"}[c.P2&0x03]
	ret := [...]string{"return FCI", "return FCP", "return FMD", "no response data"}[(c.P2>>2)&0x03]
	x.p2 = occ + ", " + ret
	if c.P2&0xF0 != 0 {
		x.p2 += " (high bits set: proprietary)"
	}
	switch {
	case c.P1 == 0x04 && len(c.Data) > 0:
		desc, sum := dfNameText(c.Data)
		x.data = append(x.data, desc)
		x.summary = "by DF name: " + sum
	case (c.P1 <= 0x02) && len(c.Data) == 2:
		fid := uint16(c.Data[0])<<8 | uint16(c.Data[1])
		what, ok := knownFIDs[fid]
		if !ok {
			what = fmt.Sprintf("file %04X", fid)
		}
		x.data = append(x.data, fmt.Sprintf("file identifier %04X: %s", fid, what))
		x.summary = fmt.Sprintf("file %04X", fid)
	case (c.P1 == 0x08 || c.P1 == 0x09) && len(c.Data)%2 == 0:
		var parts []string
		for i := 0; i+1 < len(c.Data); i += 2 {
			parts = append(parts, fmt.Sprintf("%02X%02X", c.Data[i], c.Data[i+1]))
		}
		x.data = append(x.data, "path "+strings.Join(parts, "/"))
		x.summary = "path " + strings.Join(parts, "/")
	case c.P1 == 0x00 && len(c.Data) == 0:
		x.summary = "MF"
	}
}

func explainReadBinary(c Command, x *cmdText) {
	if c.P1&0x80 != 0 {
		x.p1 = fmt.Sprintf("short file identifier %d%s", c.P1&0x1F, sfiName(c.P1&0x1F))
		x.p2 = fmt.Sprintf("offset %d", c.P2)
		x.summary = fmt.Sprintf("from SFI %d at offset %d", c.P1&0x1F, c.P2)
		return
	}
	off := int(c.P1&0x7F)<<8 | int(c.P2)
	x.p1 = "current EF, offset high bits"
	x.p2 = fmt.Sprintf("offset %d", off)
	x.summary = fmt.Sprintf("from the current EF at offset %d", off)
}

func sfiName(sfi byte) string {
	switch sfi {
	case 5:
		return " (EF05)"
	case 6:
		return " (EF06)"
	case 7:
		return " (EF07)"
	case 8:
		return " (EF08)"
	}
	return ""
}

func explainReadRecord(c Command, x *cmdText) {
	sfi := c.P2 >> 3
	file := "the current EF"
	fileName := ""
	if sfi != 0 {
		file = fmt.Sprintf("SFI %d%s", sfi, sfiName(sfi))
		fileName = strings.Trim(sfiName(sfi), " ()")
	}
	var f Field
	var known bool
	switch c.P2 & 0x07 {
	case 0x04:
		x.p1 = fmt.Sprintf("record number %d", c.P1)
		// In EF05 the record number equals the tag.
		if fileName == "EF05" {
			f, known = FieldByTag("EF05", c.P1)
		}
	case 0x00, 0x01, 0x02, 0x03:
		occ := [...]string{"first", "last", "next", "previous"}[c.P2&0x03]
		x.p1 = fmt.Sprintf("record identifier (tag) %02X, %s occurrence", c.P1, occ)
		f, known = FieldByTag(fileName, c.P1)
	case 0x05:
		x.p1 = fmt.Sprintf("all records from number %d to the last", c.P1)
	case 0x06:
		x.p1 = fmt.Sprintf("all records from the last to number %d", c.P1)
	default:
		x.p1 = "reserved record reference"
	}
	x.p2 = fmt.Sprintf("%s, reference mode %d", file, c.P2&0x07)
	x.summary = "from " + file
	if known {
		x.p1 += fmt.Sprintf(": %s (%s, %s)", f.Name, f.NameZH, f.File)
		x.summary = fmt.Sprintf("%s (%s) from %s", f.Name, f.NameZH, f.File)
		if c.Ne != 0 && c.Ne != f.Len+2 {
			x.le = fmt.Sprintf("the %s record is normally %d bytes (tag, length, %d value bytes)", f.Name, f.Len+2, f.Len)
		}
	}
}

func withMAC(c Command, x *cmdText) {
	if c.CLA&0x04 != 0 && len(c.Data) >= 4 {
		n := len(c.Data) - 4
		x.data = append(x.data, fmt.Sprintf("value %X (%d bytes) then MAC %X", c.Data[:n], n, c.Data[n:]))
	}
}

func explainUpdateBinary(c Command, x *cmdText) {
	explainReadBinary(c, x)
	x.summary = strings.Replace(x.summary, "from", "in", 1)
	withMAC(c, x)
}

func explainUpdateRecord(c Command, x *cmdText) {
	sfi := c.P2 >> 3
	if sfi != 0 {
		x.p2 = fmt.Sprintf("SFI %d%s, mode %d", sfi, sfiName(sfi), c.P2&0x07)
	} else {
		x.p2 = fmt.Sprintf("current EF, mode %d", c.P2&0x07)
	}
	if c.P2&0x07 == 0x04 {
		x.p1 = fmt.Sprintf("record number %d", c.P1)
	} else {
		x.p1 = fmt.Sprintf("record %02X", c.P1)
	}
	withMAC(c, x)
	data := c.Data
	if c.CLA&0x04 != 0 && len(data) >= 4 {
		data = data[:len(data)-4]
	}
	if r, err := ParseRecord(data); err == nil {
		if f, text, ok, err := DecodeRecord("", r); ok && err == nil {
			x.data = append(x.data, fmt.Sprintf("record tag %02X %s (%s) = %q", r.Tag, f.Name, f.NameZH, text))
		}
	}
}

func explainGetChallenge(c Command, x *cmdText) {
	x.summary = fmt.Sprintf("(card random of %d bytes)", c.Ne)
	x.le = "length of the random number"
}

var extAuthKeys = map[byte]string{
	0x0A: "RKSSSE read key (before reading holder data)",
	0x06: "key used before PIN reload",
	0x04: "key used before writing EF06 at issuance",
	0x07: "external-authentication key seen in a DES-era trace",
}

func explainInternalAuth(c Command, x *cmdText) {
	x.p2 = fmt.Sprintf("key identifier %02X", c.P2)
	if len(c.Data) > 0 {
		x.data = append(x.data, fmt.Sprintf("challenge / authentication input (%d bytes; 16 on SM4 cards, 8 on DES cards)", len(c.Data)))
	}
}

func explainExternalAuth(c Command, x *cmdText) {
	x.p2 = fmt.Sprintf("key identifier %02X", c.P2)
	if k, ok := extAuthKeys[c.P2]; ok {
		x.p2 += ": " + k
		x.summary = "with " + k
	}
	if len(c.Data) > 0 {
		x.data = append(x.data, fmt.Sprintf("cryptogram over the card's challenge (%d bytes)", len(c.Data)))
	}
}

func masked(n int) string { return strings.Repeat("*", 2*n) }

func explainVerify(c Command, x *cmdText) {
	x.p2 = fmt.Sprintf("reference data %02X", c.P2)
	if c.P2 == 0x00 {
		x.p2 += " (global PIN)"
	}
	if len(c.Data) == 0 {
		x.summary = "(no PIN: asks for the number of tries left)"
		return
	}
	x.summary = "PIN"
	x.data = append(x.data, fmt.Sprintf("PIN block: %s (%d bytes)", masked(len(c.Data)), len(c.Data)))
}

func explainPINChange(c Command, x *cmdText) {
	if c.CLA&0x80 != 0 && c.INS == 0x5E {
		switch c.P1 {
		case 0x01:
			x.p1 = "change PIN (old PIN FF new PIN)"
		case 0x00:
			x.p1 = "reload PIN"
		}
	}
	if len(c.Data) > 0 {
		x.data = append(x.data, fmt.Sprintf("PIN blocks: %s (%d bytes)", masked(len(c.Data)), len(c.Data)))
	}
}

func explainPINUnblock(c Command, x *cmdText) {
	if len(c.Data) > 0 {
		x.data = append(x.data, fmt.Sprintf("encrypted PIN block and MAC: %s (%d bytes)", masked(len(c.Data)), len(c.Data)))
	}
}

func explainGetResponse(c Command, x *cmdText) {
	x.summary = fmt.Sprintf("(fetch %d bytes of pending response data)", c.Ne)
}

func explainGetData(c Command, x *cmdText) {
	x.summary = fmt.Sprintf("tag %02X%02X", c.P1, c.P2)
	x.p1 = "tag (high byte)"
	x.p2 = "tag (low byte)"
}

func explainManageChannel(c Command, x *cmdText) {
	switch c.P1 {
	case 0x00:
		x.p1 = "open a logical channel"
	case 0x80:
		x.p1 = "close a logical channel"
	}
	x.p2 = fmt.Sprintf("channel %d", c.P2)
}

func purseName(p2 byte) string {
	switch p2 {
	case 0x01:
		return "electronic deposit ED (电子存折)"
	case 0x02:
		return "electronic purse EP (电子钱包)"
	}
	return "unknown application"
}

// fields splits data into named fixed-size parts and renders them.
func fields(data []byte, spec ...any) []string {
	var out []string
	for i := 0; i+1 < len(spec); i += 2 {
		name, n := spec[i].(string), spec[i+1].(int)
		if len(data) < n {
			if len(data) > 0 {
				out = append(out, fmt.Sprintf("%d unexpected trailing bytes %X", len(data), data))
			}
			return out
		}
		v := data[:n]
		data = data[n:]
		switch name {
		case "amount", "balance":
			a, _ := DecodeAmount(v)
			out = append(out, fmt.Sprintf("%s %X = %d fen (%s yuan)", name, v, a, FormatFen(a)))
		case "date":
			if d, err := DecodeDate(v); err == nil {
				out = append(out, "date "+d)
			} else {
				out = append(out, fmt.Sprintf("date %X (not a valid date)", v))
			}
		default:
			out = append(out, fmt.Sprintf("%s %X", name, v))
		}
	}
	if len(data) > 0 {
		out = append(out, fmt.Sprintf("%d unexpected trailing bytes %X", len(data), data))
	}
	return out
}

func explainInitialize(c Command, x *cmdText) {
	switch c.P1 {
	case 0x00:
		x.p1 = "load (圈存)"
	case 0x01:
		x.p1 = "purchase (消费)"
	case 0x03:
		x.p1 = "CAPP / composite purchase (复合消费)"
	default:
		x.p1 = "other PBOC transaction"
	}
	x.p2 = purseName(c.P2)
	x.data = fields(c.Data, "key index", 1, "amount", 4, "terminal number", 6)
	if len(c.Data) >= 5 {
		a, _ := DecodeAmount(c.Data[1:5])
		x.summary = fmt.Sprintf("of %s yuan on the %s", FormatFen(a), purseName(c.P2))
	}
}

func explainDebit(c Command, x *cmdText) {
	x.data = fields(c.Data, "terminal transaction sequence", 4, "date", 4, "time", 3, "MAC1", 4)
}

func explainCreditLoad(c Command, x *cmdText) {
	x.data = fields(c.Data, "date", 4, "time", 3, "MAC2", 4)
}

func explainGetBalance(c Command, x *cmdText) {
	x.p2 = purseName(c.P2)
	x.summary = "of the " + purseName(c.P2)
	x.le = "4-byte balance in fen"
}

var txnTypes = map[byte]string{
	0x01: "ED load", 0x02: "EP load", 0x05: "ED purchase", 0x06: "EP purchase", 0x09: "composite purchase",
}

func explainGetProof(c Command, x *cmdText) {
	if t, ok := txnTypes[c.P2]; ok {
		x.p2 = "transaction type " + t
	} else {
		x.p2 = "transaction type (unknown)"
	}
	x.data = fields(c.Data, "transaction sequence", 2)
	x.le = "MAC and TAC of the transaction"
}

func explainInitSAM(c Command, x *cmdText) {
	spec := []any{"card random", 4, "card transaction sequence", 2, "amount", 4, "transaction type", 1,
		"date", 4, "time", 3, "key version", 1, "algorithm id", 1, "card application serial", 8}
	if len(c.Data) > 28 {
		spec = append(spec, "second-level diversification factor", 8)
	}
	x.data = fields(c.Data, spec...)
	x.le = "terminal transaction sequence and MAC1"
}

func explainCreditSAM(c Command, x *cmdText) {
	x.data = fields(c.Data, "MAC2", 4)
}

func keyUsage(u byte) string {
	types := []string{"master", "maintenance", "purchase", "PIN unblock", "PIN reload", "user-card application maintenance", "MAC", "encryption", "MAC and encryption"}
	t := fmt.Sprintf("type %d", u&0x1F)
	if int(u&0x1F) < len(types) {
		t = types[u&0x1F]
	}
	return fmt.Sprintf("key usage %02X: %s key, %d diversification levels", u, t, u>>5)
}

func explainInitDescrypt(c Command, x *cmdText) {
	x.p1 = keyUsage(c.P1)
	x.p2 = fmt.Sprintf("key version/identifier %02X", c.P2)
	if len(c.Data) > 0 {
		x.data = append(x.data, fmt.Sprintf("diversification factors (%d bytes, %d levels)", len(c.Data), len(c.Data)/8))
	}
}

func explainDESCrypt(c Command, x *cmdText) {
	switch c.P1 {
	case 0x00:
		x.p1 = "encrypt"
	case 0x05:
		x.p1 = "MAC with initial value"
	default:
		x.p1 = "operation (card-specific)"
	}
}

func explainAppBlock(c Command, x *cmdText) {
	switch c.P2 {
	case 0x00:
		x.p2 = "temporary block"
	case 0x01:
		x.p2 = "permanent block"
	}
	explainMACOnly(c, x)
}

func explainMACOnly(c Command, x *cmdText) {
	if len(c.Data) == 4 {
		x.data = append(x.data, "MAC")
	}
}

func explainVendorKey(c Command, x *cmdText) {
	x.p1 = fmt.Sprintf("key usage %02X", c.P1)
	x.p2 = fmt.Sprintf("key identifier %02X", c.P2)
}

// --- responses ---

// ExplainResponse explains a response APDU: its data (decoded as an SSC
// record, a balance, an FCI … where the command, if given, or the data's
// shape allows) and its status word with the English and Chinese meaning
// and the national-interface code. cmd may be nil.
func ExplainResponse(r Response, cmd *Command) string {
	var sb strings.Builder
	en, zh := StatusText(r.SW)
	fmt.Fprintf(&sb, "response APDU: SW %04X %s (%s)\n", r.SW, en, zh)
	if len(r.Data) == 0 {
		sb.WriteString("  data (none)\n")
	} else {
		fmt.Fprintf(&sb, "  data %X (%d bytes)\n", r.Data, len(r.Data))
		for _, l := range explainData(r.Data, cmd) {
			fmt.Fprintf(&sb, "       %s\n", l)
		}
	}
	fmt.Fprintf(&sb, "  SW   %04X %s (%s)\n", r.SW, en, zh)
	for _, l := range swHints(r.SW, cmd) {
		fmt.Fprintf(&sb, "       %s\n", l)
	}
	if !PlausibleSW(r.SW) {
		sb.WriteString("       not a valid ISO 7816-4 status word (SW1 must be 61–6F or 90–9F)\n")
	} else if code := NationalCode(r.SW); code != 0 {
		fmt.Fprintf(&sb, "       national reader interface code %d\n", code)
	}
	return sb.String()
}

func swHints(sw uint16, cmd *Command) []string {
	var out []string
	switch {
	case sw>>8 == 0x61:
		n := shortNe(byte(sw))
		out = append(out, fmt.Sprintf("T=0: send GET RESPONSE 00C00000%02X to fetch %d bytes", byte(sw), n))
	case sw>>8 == 0x6C:
		out = append(out, fmt.Sprintf("T=0: send the same command again with Le %02X", byte(sw)))
	case sw&0xFFF0 == 0x63C0:
		n := int(sw & 0x0F)
		what := "the PIN (after VERIFY) or the authentication key (after EXTERNAL AUTHENTICATE) was wrong"
		if cmd != nil {
			switch CommandName(*cmd) {
			case "VERIFY", "CHANGE PIN", "RELOAD PIN", "CHANGE REFERENCE DATA":
				what = "the PIN was wrong"
			case "EXTERNAL AUTHENTICATE":
				what = "the external-authentication cryptogram (key) was wrong"
			}
		}
		if n == 0 {
			out = append(out, what+"; no tries left: it is now blocked (PIN错误，已锁定)")
		} else {
			out = append(out, fmt.Sprintf("%s; %d tries left before it is blocked (PIN或密钥错误，还可尝试%d次)", what, n, n))
		}
	case sw == SWAuthBlocked:
		out = append(out, "the PIN or key is blocked; a PIN unblock/reload is needed")
	case sw == SWSecurityStatus:
		out = append(out, "verify the PIN or run the RKSSSE external authentication first")
	}
	return out
}

func explainData(d []byte, cmd *Command) []string {
	if cmd != nil {
		switch CommandName(*cmd) {
		case "GET BALANCE":
			if a, err := DecodeAmount(d); err == nil {
				return []string{fmt.Sprintf("balance %d fen (%s yuan)", a, FormatFen(a))}
			}
		case "INITIALIZE FOR PURCHASE", "INITIALIZE FOR CAPP PURCHASE":
			return fields(d, "balance", 4, "offline sequence", 2, "overdraft limit", 3, "key version", 1, "algorithm id", 1, "pseudo-random", 4)
		case "INITIALIZE FOR LOAD":
			return fields(d, "balance", 4, "online sequence", 2, "key version", 1, "algorithm id", 1, "random", 4, "MAC1", 4)
		case "DEBIT FOR PURCHASE":
			return fields(d, "TAC", 4, "MAC2", 4)
		case "CREDIT FOR LOAD":
			return fields(d, "TAC", 4)
		case "GET TRANSACTION PROOF":
			return fields(d, "MAC", 4, "TAC", 4)
		case "INIT SAM FOR PURCHASE":
			return fields(d, "terminal transaction sequence", 4, "MAC1", 4)
		case "GET CHALLENGE":
			return []string{fmt.Sprintf("card random number (%d bytes)", len(d))}
		}
	}
	if r, err := ParseRecord(d); err == nil {
		file := ""
		if cmd != nil && CommandName(*cmd) == "READ RECORD" && cmd.P2>>3 != 0 {
			file = strings.Trim(sfiName(cmd.P2>>3), " ()")
		}
		if f, text, ok, err := DecodeRecord(file, r); ok {
			if err != nil {
				return []string{fmt.Sprintf("SSC record tag %02X %s (%s, %s): %v", r.Tag, f.Name, f.NameZH, f.File, err)}
			}
			out := []string{fmt.Sprintf("SSC record tag %02X %s (%s, %s) = %q", r.Tag, f.Name, f.NameZH, f.File, text)}
			if f.Tag == 0x0A {
				switch text {
				case "1":
					out = append(out, "male (男), GB/T 2261")
				case "2":
					out = append(out, "female (女), GB/T 2261")
				}
			}
			if f.Tag == 0x01 && len(r.Value) == 16 {
				out = append(out, fmt.Sprintf("issuing area %X, RID %X, card-specific part %X", r.Value[:3], r.Value[3:8], r.Value[8:]))
			}
			return out
		}
	}
	if d[0]&0x20 != 0 {
		if objs, err := ParseTLV(d); err == nil {
			var out []string
			describeTLV(&out, objs, 0)
			return out
		}
	}
	return nil
}

var tlvNames = map[Tag]string{
	0x6F: "FCI template", 0x62: "FCP template", 0x84: "DF name", 0xA5: "FCI proprietary template",
	0x88: "SFI", 0x50: "application label", 0x87: "application priority", 0x9F0C: "issuer discretionary data (SSC: algorithm flag)",
	0x86: "algorithm flag", 0xBF0C: "FCI issuer discretionary data", 0x5A: "PAN", 0x61: "application template",
	0x4F: "AID", 0x70: "record template", 0x77: "response template", 0x80: "response data",
}

func describeTLV(out *[]string, objs []TLV, depth int) {
	ind := strings.Repeat("  ", depth)
	for _, o := range objs {
		name := tlvNames[o.Tag]
		if name != "" {
			name = " " + name
		}
		if o.Tag.Constructed() {
			*out = append(*out, fmt.Sprintf("%s%s%s:", ind, o.Tag, name))
			describeTLV(out, o.Children, depth+1)
			continue
		}
		extra := ""
		switch o.Tag {
		case 0x84, 0x4F:
			d, _ := dfNameText(o.Value)
			extra = " (" + d + ")"
		case 0x86:
			if len(o.Value) == 1 {
				extra = " (01 DES/3DES, 02 SSF33, 03 SM4 — mapping unconfirmed)"
			}
		}
		*out = append(*out, fmt.Sprintf("%s%s%s = %X%s", ind, o.Tag, name, o.Value, extra))
	}
}
