package simcard

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/onecard-hub/onecard/apdu"
	"github.com/onecard-hub/onecard/reader/virtual"
	"github.com/onecard-hub/onecard/sm"
)

// psamAID is the PSAM's e-purse application DF01.
var psamAID = []byte{0xD1, 0x56, 0x00, 0x00, 0x05, 0x90}

// ssseName2 is the SSF33/national-algorithm environment's name, "sx2.sh."
// + 社会保障 in GBK (PSAM DF DDF1).
var ssseName2 = []byte{0x73, 0x78, 0x32, 0x2E, 0x73, 0x68, 0x2E, 0xC9, 0xE7, 0xBB, 0xE1, 0xB1, 0xA3, 0xD5, 0xCF}

// psamKeyUsage is the one table of INIT FOR DESCRYPT key usages. The usage
// byte is levels<<5 | type (ssc-card-facts §1.6): the high 3 bits give
// the number of 8-byte diversification factors that must follow, the low
// 5 bits the key type below. So 0x27 = RKSSSE with one factor (the card
// factor), 0x28 = IRK with one factor.
var psamKeyUsage = map[byte]string{
	0x01: sm.KeySTK,    // maintenance: APPLICATION BLOCK MAC
	0x03: sm.KeyPUK,    // PIN unblock
	0x07: sm.KeyRKSSSE, // encryption: external authentication (read control)
	0x08: sm.KeyIRK,    // MAC + encryption: checking internal authentication
}

// PSAM key version / algorithm bytes. INIT FOR DESCRYPT's P2 takes the
// card's 9F0C algorithm flag; INIT SAM FOR PURCHASE's alg byte takes the
// card's INITIALIZE FOR PURCHASE algorithm id.
const (
	flag3DES  = 0x01
	flagSM4   = 0x03
	algID3DES = 0x00
	algIDSM4  = 0x04
)

// PSAM is a virtual PBOC-style PSAM holding the issuer masters a terminal
// needs. It implements virtual.Card and is safe for concurrent use.
type PSAM struct {
	mu        sync.Mutex
	cfg       *psamConfig
	ks        *sm.KeySet
	rand      io.Reader
	statePath string
	proto     Protocol
	delay     time.Duration
	powered   bool
	st        psamState
	ses       psamSession
	link      link
}

var _ virtual.Card = (*PSAM)(nil)

type psamConfig struct {
	proto      Protocol
	delay      time.Duration
	hist       []byte
	terminal   []byte // 6 bytes BCD
	firstSeq   uint32
	keyVersion byte
	suiteSM4   sm.Suite
	suite3DES  sm.Suite
}

type psamSession struct {
	app      bool // DF01 selected
	ef16     bool // EF16 current
	purchase *psamPurchase
	crypt    *psamCrypt
}

type psamPurchase struct {
	suite  sm.Suite
	key    []byte
	amount []byte
}

type psamCrypt struct {
	suite sm.Suite
	key   []byte
}

func (p *PSAMSpec) normalize() (*psamConfig, error) {
	if p.Kind != "psam" {
		return nil, badf("kind %q: want psam", p.Kind)
	}
	c := &psamConfig{suiteSM4: sm.SuiteSM4, suite3DES: sm.Suite3DES}
	var err error
	if c.proto, err = ParseProtocol(p.Protocol); err != nil {
		return nil, badf("%v", err)
	}
	if p.DelayMS < 0 || p.DelayMS > maxDelayMS {
		return nil, badf("delay_ms %d: want 0..%d", p.DelayMS, maxDelayMS)
	}
	c.delay = time.Duration(p.DelayMS) * time.Millisecond
	if len(p.Terminal) != 12 || !isDigits(p.Terminal) {
		return nil, badf("terminal: want 12 digits")
	}
	if c.terminal, err = apdu.EncodeCN(p.Terminal, 6); err != nil {
		return nil, badf("terminal: %v", err)
	}
	c.firstSeq = max(p.TerminalSeq, 1)
	switch {
	case p.KeyVersion == 0:
		c.keyVersion = 1
	case p.KeyVersion > 0 && p.KeyVersion < 256:
		c.keyVersion = byte(p.KeyVersion)
	default:
		return nil, badf("key_version %d: want 1..255", p.KeyVersion)
	}
	for _, x := range []struct {
		name string
		dst  *sm.Suite
		alg  sm.Alg
	}{{p.SuiteSM4, &c.suiteSM4, sm.AlgSM4}, {p.Suite3DES, &c.suite3DES, sm.Alg3DES}} {
		if x.name == "" {
			continue
		}
		su, err := sm.ParseSuite(x.name)
		if err != nil {
			return nil, badf("suite: %v", err)
		}
		if su.Alg != x.alg {
			return nil, badf("suite %q has the wrong algorithm", x.name)
		}
		*x.dst = su
	}
	if p.ATRHistorical != "" {
		h, err := decodeHexN("atr_historical", p.ATRHistorical, len(p.ATRHistorical)/2)
		if err != nil || len(h) == 0 || len(h) > 15 {
			return nil, badf("atr_historical: want 1..15 bytes of hex")
		}
		c.hist = h
	} else {
		// 00 90 ‖ "PSAM" ‖ terminal number.
		c.hist = append([]byte{0x00, 0x90, 'P', 'S', 'A', 'M'}, c.terminal...)
	}
	if err := p.Keys.validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// NewPSAM builds a virtual PSAM from spec. With opts.StatePath set and the
// file present, the terminal transaction counter is taken from it. Errors
// wrap ErrBadCardFile, ErrBadState or the key set's error.
func NewPSAM(spec PSAMSpec, opts Options) (*PSAM, error) {
	cfg, err := spec.normalize()
	if err != nil {
		return nil, fmt.Errorf("personalise PSAM: %w", err)
	}
	ks := opts.Keys
	if ks == nil {
		if ks, err = spec.Keys.resolve(opts.BaseDir); err != nil {
			return nil, fmt.Errorf("personalise PSAM: %w", err)
		}
	}
	// Fail now, not at the first transaction, if a master is missing.
	for _, alg := range []sm.Alg{sm.AlgSM4, sm.Alg3DES} {
		for _, name := range append([]string{sm.KeyDPK}, psamKeyNames()...) {
			if _, err := ks.Master(alg, name); err != nil {
				return nil, fmt.Errorf("personalise PSAM: %w", err)
			}
		}
	}
	p := &PSAM{cfg: cfg, ks: ks, rand: opts.Rand, statePath: opts.StatePath, proto: cfg.proto, delay: cfg.delay}
	if p.rand == nil {
		p.rand = rand.Reader
	}
	p.st = psamState{Format: stateFormat, Terminal: cfg.terminal, NextSeq: cfg.firstSeq}
	if p.statePath != "" {
		var st psamState
		found, err := readState(p.statePath, &st)
		if err != nil {
			return nil, fmt.Errorf("personalise PSAM: %w", err)
		}
		if found {
			if st.Format != stateFormat || !bytes.Equal(st.Terminal, cfg.terminal) {
				return nil, fmt.Errorf("personalise PSAM: %s: %w: belongs to another PSAM", p.statePath, ErrBadState)
			}
			p.st = st
		}
	}
	return p, nil
}

func psamKeyNames() []string {
	out := make([]string, 0, len(psamKeyUsage))
	for _, n := range psamKeyUsage {
		out = append(out, n)
	}
	return out
}

// PowerOn cold-resets the PSAM and returns its ATR.
func (p *PSAM) PowerOn() []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.powered = true
	p.ses = psamSession{}
	p.link = link{proto: p.proto}
	return buildATR(p.proto, p.cfg.hist)
}

// PowerOff removes power; sessions are lost.
func (p *PSAM) PowerOff() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.powered = false
	p.ses = psamSession{}
	p.link.reset()
}

// Transmit processes one command APDU. It returns ErrNotPowered before
// PowerOn.
func (p *PSAM) Transmit(cmd []byte) ([]byte, error) {
	p.mu.Lock()
	d := p.delay
	p.mu.Unlock()
	if d > 0 {
		time.Sleep(d)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.powered {
		return nil, ErrNotPowered
	}
	return p.process(cmd), nil
}

type psamHandler func(*PSAM, apdu.Command) ([]byte, uint16)

var psamCommands = map[insKey]psamHandler{
	{0x00, 0xA4}: (*PSAM).cmdSelect,
	{0x00, 0xB0}: (*PSAM).cmdReadBinary,
	{0x80, 0x70}: (*PSAM).cmdInitPurchase,
	{0x80, 0x72}: (*PSAM).cmdCreditPurchase,
	{0x80, 0x1A}: (*PSAM).cmdInitCrypt,
	{0x80, 0xFA}: (*PSAM).cmdCrypt,
}

func (p *PSAM) process(raw []byte) []byte {
	c, bad := p.link.parse(raw)
	if bad != nil {
		p.link.reset()
		return bad
	}
	if c.CLA == 0x00 && c.INS == 0xC0 {
		return p.link.getResponse(c)
	}
	p.link.reset()
	h, code := lookup(psamCommands, c.CLA, c.INS, func(byte) bool { return true })
	if code != apdu.SWOK {
		return sw(code)
	}
	data, code := h(p, c)
	return p.link.reply(c, data, code)
}

// cmdSelect: by FID (3F00, DDF1, 0016) or by name (sx1/sx2 SSSE names,
// DF01 AID D15600000590).
func (p *PSAM) cmdSelect(c apdu.Command) ([]byte, uint16) {
	if c.P2 != 0x00 && c.P2 != 0x0C {
		return nil, apdu.SWWrongP1P2
	}
	fci := func(name []byte) []byte {
		if c.P2 == 0x0C {
			return nil
		}
		return tlv([]byte{0x6F}, tlv([]byte{0x84}, name))
	}
	switch c.P1 {
	case 0x04:
		switch {
		case len(c.Data) == 0:
			return nil, apdu.SWWrongLength
		case bytes.Equal(c.Data, ssseName), bytes.Equal(c.Data, ssseName2):
			p.ses.app, p.ses.ef16 = false, false
			return fci(c.Data), apdu.SWOK
		case bytes.Equal(c.Data, psamAID):
			p.ses.app, p.ses.ef16 = true, false
			return fci(c.Data), apdu.SWOK
		}
		return nil, apdu.SWFileNotFound
	case 0x00, 0x02:
		if len(c.Data) != 2 {
			return nil, apdu.SWWrongLength
		}
		switch uint16(c.Data[0])<<8 | uint16(c.Data[1]) {
		case 0x3F00:
			p.ses.app, p.ses.ef16 = false, false
			return fci(ssseName), apdu.SWOK
		case 0xDDF1:
			p.ses.app, p.ses.ef16 = false, false
			return fci(ssseName2), apdu.SWOK
		case 0x0016:
			p.ses.ef16 = true
			return nil, apdu.SWOK
		}
		return nil, apdu.SWFileNotFound
	}
	return nil, apdu.SWWrongP1P2
}

// cmdReadBinary: 00 B0 96 00 06 (SFI 16) or 00 B0 00 off Le after
// selecting 0016: the terminal number.
func (p *PSAM) cmdReadBinary(c apdu.Command) ([]byte, uint16) {
	if len(c.Data) != 0 {
		return nil, apdu.SWWrongLength
	}
	var off int
	switch {
	case c.P1&0x80 != 0:
		if c.P1&0x1F != 0x16 || c.P1&0x60 != 0 {
			return nil, apdu.SWFileNotFound
		}
		p.ses.ef16 = true
		off = int(c.P2)
	case p.ses.ef16:
		off = int(c.P1)<<8 | int(c.P2)
	default:
		return nil, apdu.SWNoCurrentEF
	}
	if off >= len(p.st.Terminal) {
		return nil, apdu.SWWrongP1P2
	}
	data := p.st.Terminal[off:]
	if c.Ne > 0 && c.Ne < len(data) {
		data = data[:c.Ne]
	}
	return append([]byte(nil), data...), apdu.SWOK
}

func (p *PSAM) suiteForAlgID(id byte) (sm.Suite, bool) {
	switch id {
	case algID3DES:
		return p.cfg.suite3DES, true
	case algIDSM4:
		return p.cfg.suiteSM4, true
	}
	return sm.Suite{}, false
}

func (p *PSAM) suiteForFlag(flag byte) (sm.Suite, bool) {
	switch flag {
	case flag3DES:
		return p.cfg.suite3DES, true
	case flagSM4:
		return p.cfg.suiteSM4, true
	}
	return sm.Suite{}, false
}

// cmdInitPurchase: 80 70 00 00 1C|24 <card rnd(4) card seq(2) amount(4)
// type(1) date(4) time(3) key ver(1) alg(1) card factor(8) [factor 2(8)]>
// 08 → terminal seq(4) ‖ MAC1(4).
func (p *PSAM) cmdInitPurchase(c apdu.Command) ([]byte, uint16) {
	if c.P1 != 0 || c.P2 != 0 {
		return nil, apdu.SWWrongP1P2
	}
	if (len(c.Data) != 0x1C && len(c.Data) != 0x24) || p.link.leTooShort(c, 8) {
		return nil, apdu.SWWrongLength
	}
	if !p.ses.app {
		return nil, apdu.SWConditions
	}
	p.ses.purchase = nil
	d := c.Data
	rnd, cardSeq, amount, txType := d[0:4], d[4:6], d[6:10], d[10]
	date, tm, keyVer, alg := d[11:15], d[15:18], d[18], d[19]
	factors := [][]byte{d[20:28]}
	if len(d) == 0x24 {
		factors = append(factors, d[28:36])
	}
	suite, ok := p.suiteForAlgID(alg)
	if !ok || keyVer != p.cfg.keyVersion {
		return nil, apdu.SWKeyIndex
	}
	if txType != txPurchaseED && txType != txPurchaseEP && txType != 0x09 {
		return nil, apdu.SWWrongData
	}
	if p.st.NextSeq == 0xFFFFFFFF {
		return nil, apdu.SWCounterMax
	}
	master, err := p.ks.Master(suite.Alg, sm.KeyDPK)
	if err != nil {
		return nil, apdu.SWKeyIndex
	}
	dpk, err := suite.Diversify(master, factors...)
	if err != nil {
		return nil, apdu.SWNoDiagnosis
	}
	termSeq := be32(p.st.NextSeq)
	key, err := suite.PurchaseSessionKey(dpk, rnd, cardSeq, termSeq[2:4])
	if err != nil {
		return nil, apdu.SWNoDiagnosis
	}
	mac1, err := suite.MAC(key, nil, cat(amount, []byte{txType}, p.st.Terminal, date, tm))
	if err != nil {
		return nil, apdu.SWNoDiagnosis
	}
	old := p.st
	p.st.NextSeq++
	if p.statePath != "" {
		if err := writeState(p.statePath, &p.st); err != nil {
			p.st = old
			return nil, apdu.SWMemoryFailure
		}
	}
	p.ses.purchase = &psamPurchase{suite: suite, key: key, amount: append([]byte(nil), amount...)}
	return cat(termSeq, mac1), apdu.SWOK
}

// cmdCreditPurchase: 80 72 00 00 04 <MAC2>: checks the card's MAC2.
func (p *PSAM) cmdCreditPurchase(c apdu.Command) ([]byte, uint16) {
	if c.P1 != 0 || c.P2 != 0 {
		return nil, apdu.SWWrongP1P2
	}
	if len(c.Data) != 4 {
		return nil, apdu.SWWrongLength
	}
	pur := p.ses.purchase
	if pur == nil {
		return nil, apdu.SWInvalidState
	}
	p.ses.purchase = nil
	want, err := pur.suite.MAC(pur.key, nil, pur.amount)
	if err != nil {
		return nil, apdu.SWNoDiagnosis
	}
	if !sm.VerifyMAC(c.Data, want) {
		return nil, apdu.SWMACInvalid
	}
	return nil, apdu.SWOK
}

// cmdInitCrypt: 80 1A <usage> <alg flag 01|03> Lc <factors>: loads the
// master named by the usage table, diversified by the factors.
func (p *PSAM) cmdInitCrypt(c apdu.Command) ([]byte, uint16) {
	if !p.ses.app {
		return nil, apdu.SWConditions
	}
	p.ses.crypt = nil
	name, ok := psamKeyUsage[c.P1&0x1F]
	if !ok {
		return nil, apdu.SWRefNotFound
	}
	suite, ok := p.suiteForFlag(c.P2)
	if !ok {
		return nil, apdu.SWRefNotFound
	}
	levels := int(c.P1 >> 5)
	if len(c.Data) != 8*levels {
		return nil, apdu.SWWrongLength
	}
	master, err := p.ks.Master(suite.Alg, name)
	if err != nil {
		return nil, apdu.SWRefNotFound
	}
	key := append([]byte(nil), master...)
	if levels > 0 {
		factors := make([][]byte, levels)
		for i := range factors {
			factors[i] = c.Data[8*i : 8*i+8]
		}
		if key, err = suite.Diversify(master, factors...); err != nil {
			return nil, apdu.SWNoDiagnosis
		}
	}
	p.ses.crypt = &psamCrypt{suite: suite, key: key}
	return nil, apdu.SWOK
}

// cmdCrypt: 80 FA 00 00 Lc <blocks> encrypts (ECB); 80 FA 05 00 Lc
// <IV(block) ‖ message> returns the 4-byte MAC with that initial value.
func (p *PSAM) cmdCrypt(c apdu.Command) ([]byte, uint16) {
	if c.P2 != 0 || (c.P1 != 0x00 && c.P1 != 0x05) {
		return nil, apdu.SWWrongP1P2
	}
	cr := p.ses.crypt
	if cr == nil {
		return nil, apdu.SWConditions
	}
	bs := cr.suite.Alg.BlockSize()
	if c.P1 == 0x00 {
		if len(c.Data) == 0 || len(c.Data)%bs != 0 {
			return nil, apdu.SWWrongLength
		}
		out, err := cr.suite.Encrypt(cr.key, c.Data)
		if err != nil {
			return nil, apdu.SWNoDiagnosis
		}
		return out, apdu.SWOK
	}
	if len(c.Data) < bs {
		return nil, apdu.SWWrongLength
	}
	mac, err := cr.suite.MAC(cr.key, c.Data[:bs], c.Data[bs:])
	if err != nil {
		return nil, apdu.SWNoDiagnosis
	}
	return mac, apdu.SWOK
}

// Test accessors and switches.

// TerminalNumber returns the 12-digit terminal number.
func (p *PSAM) TerminalNumber() string { return apdu.DecodeCN(p.cfg.terminal) }

// NextSeq returns the terminal transaction number the next INIT SAM FOR
// PURCHASE will use.
func (p *PSAM) NextSeq() uint32 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.st.NextSeq
}

// SetProtocol selects T=0 or T=1 from the next PowerOn.
func (p *PSAM) SetProtocol(proto Protocol) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.proto = proto
}

// SetDelay makes every Transmit sleep d before answering.
func (p *PSAM) SetDelay(d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.delay = max(d, 0)
}
