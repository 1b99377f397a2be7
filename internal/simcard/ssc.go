package simcard

import (
	"crypto/rand"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/onecard-hub/onecard/apdu"
	"github.com/onecard-hub/onecard/reader/virtual"
	"github.com/onecard-hub/onecard/sm"
)

// Options configures a simulated card built in-process. The zero value is
// an in-memory card using crypto/rand.
type Options struct {
	// Keys is the issuer key set. Nil: resolve the spec's keys reference
	// (sm.TestKeySet or sm.LoadKeySet, relative to BaseDir).
	Keys *sm.KeySet
	// BaseDir anchors a relative keys.file reference.
	BaseDir string
	// StatePath is the file persistent state is read from (if it exists)
	// and written to after every persistent change. "" keeps state in
	// memory only.
	StatePath string
	// Rand supplies challenges and purse randoms. Nil means crypto/rand. Tests pass a deterministic reader to replay traces.
	Rand io.Reader
}

// PurseStatus is a snapshot of one purse.
type PurseStatus struct {
	Balance    uint32 // fen
	OnlineSeq  uint16 // load counter (next value used)
	OfflineSeq uint16 // purchase counter (next value used)
}

// SSC is a virtual social-security card. It implements virtual.Card and is
// safe for concurrent use. Build it with NewSSC or LoadFile.
type SSC struct {
	mu        sync.Mutex
	cfg       *sscConfig
	keys      map[string][]byte // the card's diversified keys
	sm2       *sm.PrivateKey    // generation 3 only
	rand      io.Reader
	statePath string

	proto    Protocol // announced at the next PowerOn
	delay    time.Duration
	sleep    func(time.Duration) // time.Sleep; tests record instead
	torn     TornPoint
	tornLeft int

	powered bool
	tearNow bool
	st      sscState
	ses     session
	link    link
}

var _ virtual.Card = (*SSC)(nil)

// session is the volatile state a reset clears.
type session struct {
	df        int // 0 = SSSE (the MF), 1..4 = DF01..DF04
	ef        int // 0 = none, 5 = EF05, 6 = EF06, 0x18 = transaction log
	pinOK     bool
	rkOK      bool // RKSSSE external authentication passed
	challenge []byte
	tx        *pendingTx
}

// pendingTx is an e-purse transaction between INITIALIZE and DEBIT/CREDIT.
type pendingTx struct {
	load     bool
	purse    int // 0 = ED, 1 = EP
	txType   byte
	amount   uint32
	terminal []byte
	rnd      []byte
	seq      uint16
	key      []byte // load session key (purchase keys need the terminal seq)
}

// NewSSC personalises a virtual social-security card from spec. With
// opts.StatePath set and the file present, persistent state (balances,
// counters, PIN and key tries, blocked flag, proofs, log) is taken from it.
// Errors wrap ErrBadCardFile, ErrBadState or the key set's error.
func NewSSC(spec SSCSpec, opts Options) (*SSC, error) {
	cfg, err := spec.normalize()
	if err != nil {
		return nil, fmt.Errorf("personalise card: %w", err)
	}
	ks := opts.Keys
	if ks == nil {
		if ks, err = spec.Keys.resolve(opts.BaseDir); err != nil {
			return nil, fmt.Errorf("personalise card: %w", err)
		}
	}
	s := &SSC{
		cfg:       cfg,
		rand:      opts.Rand,
		statePath: opts.StatePath,
		proto:     cfg.proto,
		delay:     cfg.delay,
		torn:      cfg.torn,
		tornLeft:  cfg.tornTimes,
		sleep:     time.Sleep,
	}
	if s.rand == nil {
		s.rand = rand.Reader
	}
	if s.keys, err = diversifyCardKeys(ks, cfg.suite, cfg.cardID); err != nil {
		return nil, fmt.Errorf("personalise card: %w", err)
	}
	if cfg.gen == 3 {
		if s.sm2, err = cardSM2Key(ks, cfg.cardID); err != nil {
			return nil, fmt.Errorf("personalise card: %w", err)
		}
	}
	s.st = sscState{
		Format:    stateFormat,
		CardID:    cfg.cardID,
		PINHash:   pinHash(cfg.cardID, cfg.pin),
		PINTries:  cfg.pinTries,
		AuthTries: cfg.authTries,
		Purses:    [2]purseState{{Balance: cfg.balance[0]}, {Balance: cfg.balance[1]}},
	}
	if s.statePath != "" {
		var st sscState
		found, err := readState(s.statePath, &st)
		if err != nil {
			return nil, fmt.Errorf("personalise card: %w", err)
		}
		if found {
			if err := st.check(cfg); err != nil {
				return nil, fmt.Errorf("personalise card: %s: %w", s.statePath, err)
			}
			s.st = st
		}
	}
	return s, nil
}

// PowerOn cold-resets the card and returns its ATR.
func (s *SSC) PowerOn() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.powered = true
	s.ses = session{}
	s.link = link{proto: s.proto}
	return buildATR(s.proto, s.cfg.hist)
}

// PowerOff removes power; the session (selection, PIN and key
// verification, challenge, pending transaction) is lost.
func (s *SSC) PowerOff() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.powerOffLocked()
}

func (s *SSC) powerOffLocked() {
	s.powered = false
	s.ses = session{}
	s.link.reset()
}

// Transmit processes one command APDU. It returns ErrNotPowered before
// PowerOn and virtual.ErrTorn when the torn-transaction switch fires (the
// change is applied and persisted, the card is then unpowered).
func (s *SSC) Transmit(cmd []byte) ([]byte, error) {
	s.mu.Lock()
	d, sleep := s.delay, s.sleep
	s.mu.Unlock()
	if d > 0 {
		sleep(d)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.powered {
		return nil, ErrNotPowered
	}
	resp := s.process(cmd)
	if s.tearNow {
		s.tearNow = false
		s.powerOffLocked()
		return nil, virtual.ErrTorn
	}
	return resp, nil
}

type sscHandler func(*SSC, apdu.Command) ([]byte, uint16)

type insKey struct{ cla, ins byte }

var sscCommands = map[insKey]sscHandler{
	{0x00, 0xA4}: (*SSC).cmdSelect,
	{0x00, 0xB2}: (*SSC).cmdReadRecord,
	{0x00, 0x84}: (*SSC).cmdGetChallenge,
	{0x00, 0x88}: (*SSC).cmdInternalAuth,
	{0x00, 0x82}: (*SSC).cmdExternalAuth,
	{0x00, 0x20}: (*SSC).cmdVerify,
	{0x80, 0x5E}: (*SSC).cmdChangePIN,
	{0x80, 0x50}: (*SSC).cmdInitialize,
	{0x80, 0x54}: (*SSC).cmdDebit,
	{0x80, 0x52}: (*SSC).cmdCredit,
	{0x80, 0x5C}: (*SSC).cmdGetBalance,
	{0x80, 0x5A}: (*SSC).cmdGetProof,
	{0x84, 0x1E}: (*SSC).cmdAppBlock,
	{0x80, 0x2A}: (*SSC).cmdSign,
	{0x00, 0xCA}: (*SSC).cmdGetData,
	{0x80, 0xCA}: (*SSC).cmdGetData,
}

// gen3Only lists instructions a second-generation COS does not know.
var gen3Only = map[byte]bool{0x2A: true, 0xCA: true}

// lookup finds the handler for CLA/INS or the status word for its absence.
func lookup[T any](table map[insKey]T, cla, ins byte, known func(ins byte) bool) (T, uint16) {
	var zero T
	if h, ok := table[insKey{cla, ins}]; ok && known(ins) {
		return h, apdu.SWOK
	}
	claKnown, insKnown := false, false
	for k := range table {
		if !known(k.ins) {
			continue
		}
		claKnown = claKnown || k.cla == cla
		insKnown = insKnown || k.ins == ins
	}
	if !claKnown || insKnown {
		return zero, apdu.SWCLANotSupported
	}
	return zero, apdu.SWINSNotSupported
}

func (s *SSC) process(raw []byte) []byte {
	c, bad := s.link.parse(raw)
	if bad != nil {
		s.link.reset()
		return bad
	}
	if c.CLA == 0x00 && c.INS == 0xC0 {
		return s.link.getResponse(c)
	}
	s.link.reset()
	h, code := lookup(sscCommands, c.CLA, c.INS, func(ins byte) bool {
		return s.cfg.gen == 3 || !gen3Only[ins]
	})
	if code != apdu.SWOK {
		return sw(code)
	}
	if c.INS != 0xA4 {
		switch s.st.Blocked {
		case blockTemp:
			return sw(apdu.SWFuncNotSupported)
		case blockPerm:
			return sw(apdu.SWAppLocked)
		}
	}
	data, code := h(s, c)
	return s.link.reply(c, data, code)
}

// commit persists the state; on failure it restores old and answers 6581.
func (s *SSC) commit(old sscState) uint16 {
	if s.statePath == "" {
		return apdu.SWOK
	}
	if err := writeState(s.statePath, &s.st); err != nil {
		s.st = old
		return apdu.SWMemoryFailure
	}
	return apdu.SWOK
}

func (s *SSC) random(n int) ([]byte, bool) {
	b := make([]byte, n)
	if _, err := io.ReadFull(s.rand, b); err != nil {
		return nil, false
	}
	return b, true
}

// Test accessors and switches.

// CardID returns the 16-byte card ID (卡识别码).
func (s *SSC) CardID() []byte { return append([]byte(nil), s.cfg.cardID...) }

// Generation returns 2 or 3.
func (s *SSC) Generation() int { return s.cfg.gen }

// Suite returns the card's crypto suite.
func (s *SSC) Suite() sm.Suite { return s.cfg.suite }

// SM2PublicKey returns the card's SM2 public key as 04‖X‖Y (65 bytes), or
// nil on a second-generation card.
func (s *SSC) SM2PublicKey() []byte {
	if s.sm2 == nil {
		return nil
	}
	return s.sm2.PublicKey().Bytes()
}

// Balance returns the EP (electronic purse) balance in fen.
func (s *SSC) Balance() uint32 { return s.EP().Balance }

// EP returns the electronic purse's balance and counters.
func (s *SSC) EP() PurseStatus { return s.purse(1) }

// ED returns the electronic deposit's balance and counters.
func (s *SSC) ED() PurseStatus { return s.purse(0) }

func (s *SSC) purse(i int) PurseStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	return PurseStatus(s.st.Purses[i])
}

// PINTriesLeft returns the PIN retry counter (0 = blocked).
func (s *SSC) PINTriesLeft() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.st.PINTries
}

// AuthTriesLeft returns the RKSSSE external-authentication retry counter.
func (s *SSC) AuthTriesLeft() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.st.AuthTries
}

// Blocked reports whether APPLICATION BLOCK has been applied and whether
// it was permanent.
func (s *SSC) Blocked() (blocked, permanent bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.st.Blocked != blockNone, s.st.Blocked == blockPerm
}

// Log returns the transaction log, newest first.
func (s *SSC) Log() []LogEntry {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]LogEntry(nil), s.st.Log...)
}

// SetProtocol selects T=0 or T=1 from the next PowerOn (the ATR announces
// it).
func (s *SSC) SetProtocol(p Protocol) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.proto = p
}

// SetDelay makes every Transmit sleep d before answering (slow card).
func (s *SSC) SetDelay(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.delay = max(d, 0)
}

// SetTorn arms the torn-transaction switch: the next times successful
// DEBIT FOR PURCHASE (TornAfterDebit) or CREDIT FOR LOAD (TornAfterLoad)
// are applied and persisted, then Transmit returns virtual.ErrTorn and the
// card is unpowered. TornNone (or times < 1) disarms it.
func (s *SSC) SetTorn(p TornPoint, times int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if times < 1 {
		p = TornNone
	}
	s.torn, s.tornLeft = p, times
}

// tear fires the torn switch if it is armed for p.
func (s *SSC) tear(p TornPoint) {
	if s.torn != p || s.tornLeft < 1 {
		return
	}
	s.tornLeft--
	if s.tornLeft == 0 {
		s.torn = TornNone
	}
	s.tearNow = true
}
