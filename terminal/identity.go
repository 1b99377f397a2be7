package terminal

import (
	"context"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/onecard-hub/onecard/apdu"
	"github.com/onecard-hub/onecard/terminal/record"
)

// ReadMode is how an identity read authenticates the card (ssc-card-facts
// §5: PSAM, remote HSM in two steps, or degraded).
type ReadMode int

const (
	// ModeAuto tries the PSAM, then the key service, then falls back to
	// the public fields with the reason stated (Identity.Reason).
	ModeAuto ReadMode = iota
	// ModePSAM authenticates with the PSAM (INIT FOR DESCRYPT + DES
	// CRYPT) and fails when it cannot.
	ModePSAM
	// ModeKeyService authenticates through the key service in two steps
	// (Step1 → key service → Step2) and fails when it cannot.
	ModeKeyService
	// ModePublic reads the free fields only (card ID, type, version,
	// dates): no authentication, no holder data.
	ModePublic
)

var modeNames = map[ReadMode]string{ModeAuto: "auto", ModePSAM: "psam", ModeKeyService: "key-service", ModePublic: "public"}

// String returns "auto", "psam", "key-service" or "public".
func (m ReadMode) String() string {
	if s, ok := modeNames[m]; ok {
		return s
	}
	return fmt.Sprintf("ReadMode(%d)", int(m))
}

// ParseReadMode parses String's form ("hsm" is accepted for key-service).
// Errors: ErrBadRequest.
func ParseReadMode(s string) (ReadMode, error) {
	if strings.EqualFold(s, "hsm") {
		return ModeKeyService, nil
	}
	for m, n := range modeNames {
		if strings.EqualFold(n, s) {
			return m, nil
		}
	}
	return 0, fmt.Errorf("parse read mode: %w: %q (want auto, psam, key-service or public)", ErrBadRequest, s)
}

// Identity is what an identity read learned. Holder fields (CardNumber,
// PersonID, Name and the EF06 details) are empty in ModePublic.
//
// String, GoString, Format and LogValue mask the personal fields (see
// Masked); MarshalJSON does not: JSON output is for the operator or the
// HIS the holder presented the card to.
type Identity struct {
	// Mode is how the card was authenticated; ModePublic when it was not.
	Mode ReadMode
	// Reason says why the read was degraded to ModePublic (nil otherwise);
	// it wraps ErrNoKeys, ErrNoPSAM, ErrPSAMNoAlgorithm, ErrPSAMNoRKSSSE or
	// ErrKeyService.
	Reason error
	// Genuine: the card passed internal authentication.
	Genuine bool
	// ReadAuthorised: the card accepted the RKSSSE external
	// authentication (generation 3).
	ReadAuthorised bool

	Generation int    // 2 or 3
	AlgFlag    byte   // 01 3DES, 03 SM4
	Suite      string // crypto suite name
	ATR        []byte
	Historical []byte // ATR historical bytes (卡复位信息)

	CardID      record.CardID // 卡识别码 AAZ501
	CardType    string        // 卡的类别
	SpecVersion string        // 规范版本
	InitOrg     string        // 初始化机构编号
	IssueDate   string        // 发卡日期 YYYYMMDD
	ExpiryDate  string        // 卡有效期 YYYYMMDD

	CardNumber string // 卡号 AAZ500
	PersonID   string // 社会保障号码 AAC002
	Name       string // 姓名 (09 + 4E)
	Sex        string // 性别 GB/T 2261.1
	Nation     string // 民族
	Birthplace string // 出生地
	BirthDate  string // 出生日期 YYYYMMDD

	TerminalID string // PSAM terminal number (终端机编号), if known
	DeviceID   string // 终端设备号, from Options.DeviceID
}

// Region returns the issuing area code: the first 6 hex digits of the card
// ID (发卡地区行政区划代码).
func (id *Identity) Region() string { return id.CardID.String()[:6] }

// Masked returns a copy fit for logs and screens shown to others: the card
// number keeps its last 4 characters, the person ID its first 3 and last
// 2, the name its first character; birth date and birthplace are hidden.
func (id *Identity) Masked() *Identity {
	c := *id
	c.CardNumber = record.MaskTail(id.CardNumber, 0, 4)
	c.PersonID = record.MaskTail(id.PersonID, 3, 2)
	c.Name = record.MaskTail(id.Name, 1, 0)
	c.BirthDate = record.MaskTail(id.BirthDate, 0, 0)
	c.Birthplace = record.MaskTail(id.Birthplace, 0, 0)
	return &c
}

// String describes the identity with personal fields masked.
func (id *Identity) String() string {
	m := id.Masked()
	var b strings.Builder
	fmt.Fprintf(&b, "card %s gen %d mode %s", m.CardID, m.Generation, m.Mode)
	if m.Reason != nil {
		fmt.Fprintf(&b, " (degraded: %v)", m.Reason)
	}
	fmt.Fprintf(&b, " genuine=%t", m.Genuine)
	for _, f := range []struct{ k, v string }{
		{"card_number", m.CardNumber}, {"person_id", m.PersonID}, {"name", m.Name},
		{"version", m.SpecVersion}, {"issued", m.IssueDate}, {"expires", m.ExpiryDate},
	} {
		if f.v != "" {
			fmt.Fprintf(&b, " %s=%s", f.k, f.v)
		}
	}
	return b.String()
}

// GoString is String (masked).
func (id *Identity) GoString() string { return id.String() }

// Format prints String for every verb, so %v and %+v stay masked.
func (id *Identity) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, id.String()) }

// LogValue gives slog the masked fields.
func (id *Identity) LogValue() slog.Value {
	m := id.Masked()
	attrs := []slog.Attr{
		slog.String("card_id", m.CardID.String()),
		slog.Int("generation", m.Generation),
		slog.String("mode", m.Mode.String()),
		slog.Bool("genuine", m.Genuine),
		slog.String("card_number", m.CardNumber),
		slog.String("person_id", m.PersonID),
		slog.String("name", m.Name),
	}
	if m.Reason != nil {
		attrs = append(attrs, slog.String("degraded", m.Reason.Error()))
	}
	return slog.GroupValue(attrs...)
}

// identityJSON is the JSON form (unmasked).
type identityJSON struct {
	Mode           string `json:"mode"`
	Reason         string `json:"reason,omitempty"`
	Genuine        bool   `json:"genuine"`
	ReadAuthorised bool   `json:"read_authorised"`
	Generation     int    `json:"generation"`
	AlgFlag        string `json:"alg_flag"`
	Suite          string `json:"suite"`
	ATR            string `json:"atr"`
	Historical     string `json:"historical"`
	Region         string `json:"region"`
	CardID         string `json:"card_id"`
	CardType       string `json:"card_type,omitempty"`
	SpecVersion    string `json:"spec_version,omitempty"`
	InitOrg        string `json:"init_org,omitempty"`
	IssueDate      string `json:"issue_date,omitempty"`
	ExpiryDate     string `json:"expiry_date,omitempty"`
	CardNumber     string `json:"card_number,omitempty"`
	PersonID       string `json:"person_id,omitempty"`
	Name           string `json:"name,omitempty"`
	Sex            string `json:"sex,omitempty"`
	Nation         string `json:"nation,omitempty"`
	Birthplace     string `json:"birthplace,omitempty"`
	BirthDate      string `json:"birth_date,omitempty"`
	TerminalID     string `json:"terminal_id,omitempty"`
	DeviceID       string `json:"device_id,omitempty"`
}

// MarshalJSON writes every field, unmasked, hex in upper case.
func (id *Identity) MarshalJSON() ([]byte, error) {
	j := identityJSON{
		Mode: id.Mode.String(), Genuine: id.Genuine, ReadAuthorised: id.ReadAuthorised,
		Generation: id.Generation, AlgFlag: fmt.Sprintf("%02X", id.AlgFlag), Suite: id.Suite,
		ATR: upperHex(id.ATR), Historical: upperHex(id.Historical), Region: id.Region(),
		CardID: id.CardID.String(), CardType: id.CardType, SpecVersion: id.SpecVersion,
		InitOrg: id.InitOrg, IssueDate: id.IssueDate, ExpiryDate: id.ExpiryDate,
		CardNumber: id.CardNumber, PersonID: id.PersonID, Name: id.Name, Sex: id.Sex,
		Nation: id.Nation, Birthplace: id.Birthplace, BirthDate: id.BirthDate,
		TerminalID: id.TerminalID, DeviceID: id.DeviceID,
	}
	if id.Reason != nil {
		j.Reason = id.Reason.Error()
	}
	return json.Marshal(j)
}

func upperHex(b []byte) string { return strings.ToUpper(hex.EncodeToString(b)) }

// ReadOptions selects how ReadIdentity authenticates.
type ReadOptions struct {
	Mode ReadMode // default ModeAuto
}

// ReadIdentity reads the card's identity: select SSSE, read EF05, internal
// authentication (the card is genuine), RKSSSE external authentication on
// third-generation cards, read EF05's card number and EF06 (name with its
// 4E extension). It settles the card's unsettled journal records first.
//
// In ModeAuto the PSAM is tried first, then the key service; when neither
// can authenticate the card the result is degraded to the public fields
// (Mode == ModePublic, Reason set) and err is nil. Explicit modes fail
// instead. A card that fails internal authentication is always an error
// (ErrNotGenuine, or ErrKeyServiceMismatch in key-service mode); a failed
// external authentication returns the card's *apdu.StatusError (63Cx,
// 6983). Card and reader errors (reader.ErrNoCard, reader.ErrCardRemoved)
// are returned wrapped.
func (s *Session) ReadIdentity(ctx context.Context, ro ReadOptions) (*Identity, error) {
	if err := s.lock(ctx); err != nil {
		return nil, err
	}
	defer s.unlock()
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	return s.readIdentity(ctx, ro.Mode)
}

func (s *Session) readIdentity(ctx context.Context, mode ReadMode) (*Identity, error) {
	var reasons []error
	if mode == ModeAuto || mode == ModePSAM {
		if s.opts.PSAM == nil {
			if mode == ModePSAM {
				return nil, fmt.Errorf("read identity: %w", ErrNoPSAM)
			}
			reasons = append(reasons, ErrNoPSAM)
		} else {
			id, err := s.readWithPSAM(ctx)
			switch {
			case err == nil:
				return id, nil
			case mode == ModeAuto && psamUnusable(err):
				reasons = append(reasons, err)
			default:
				return nil, fmt.Errorf("read identity: %w", err)
			}
		}
	}
	if mode == ModeAuto || mode == ModeKeyService {
		if s.opts.KeyService == nil {
			if mode == ModeKeyService {
				return nil, fmt.Errorf("read identity: %w: no key service", ErrNoKeys)
			}
		} else {
			id, err := s.readWithKeyService(ctx)
			switch {
			case err == nil:
				return id, nil
			case mode == ModeAuto && errors.Is(err, ErrKeyService):
				reasons = append(reasons, err)
			default:
				return nil, fmt.Errorf("read identity: %w", err)
			}
		}
	}
	if mode != ModeAuto && mode != ModePublic {
		return nil, fmt.Errorf("read identity: %w: unknown mode %v", ErrBadRequest, mode)
	}
	id, err := s.readPublic(ctx)
	if err != nil {
		return nil, fmt.Errorf("read identity: %w", err)
	}
	if mode == ModeAuto {
		id.Reason = errors.Join(reasons...)
		if s.opts.PSAM == nil && s.opts.KeyService == nil {
			id.Reason = fmt.Errorf("%w: %w", ErrNoKeys, ErrNoPSAM)
		}
	}
	return id, nil
}

// psamUnusable reports whether a PSAM-mode failure is the PSAM's (missing,
// lacking keys), so that ModeAuto may try the key service.
func psamUnusable(err error) bool {
	return errors.Is(err, ErrNoPSAM) || errors.Is(err, ErrPSAMNoAlgorithm) || errors.Is(err, ErrPSAMNoRKSSSE)
}

// identityFrom starts an Identity from the card's free fields.
func (s *Session) identityFrom(ci *cardInfo, mode ReadMode) *Identity {
	return &Identity{
		Mode: mode, Generation: ci.gen, AlgFlag: ci.algFlag, Suite: ci.suite.Name(),
		ATR: append([]byte(nil), ci.atr...), Historical: append([]byte(nil), ci.historical...),
		CardID: ci.id, CardType: ci.cardType, SpecVersion: ci.version, InitOrg: ci.initOrg,
		IssueDate: ci.issueDate, ExpiryDate: ci.expiryDate,
		TerminalID: s.terminalIDCached(), DeviceID: s.opts.DeviceID,
	}
}

// readWithPSAM is the one-transaction PSAM read.
func (s *Session) readWithPSAM(ctx context.Context) (*Identity, error) {
	o, err := s.begin(ctx, true)
	if err != nil {
		return nil, err
	}
	defer o.end()
	ci, err := o.identify(ctx, true)
	if err != nil {
		return nil, err
	}
	if err := o.settle(ctx, ci); err != nil {
		return nil, err
	}
	id := s.identityFrom(ci, ModePSAM)
	// Internal authentication: a terminal random, so a cloned card cannot
	// have the answer ready.
	in, err := s.random(16)
	if err != nil {
		return nil, err
	}
	answer, err := o.internalAuth(ctx, in)
	if err != nil {
		return nil, err
	}
	want, err := o.psam.encrypt(ctx, usageIRK, ci.algFlag, ci.factor(), in)
	if err != nil {
		return nil, err
	}
	if subtle.ConstantTimeCompare(answer, want) != 1 {
		return nil, fmt.Errorf("card %s: %w", ci.id, ErrNotGenuine)
	}
	id.Genuine = true
	if ci.gen == 3 {
		ch, err := o.challenge(ctx)
		if err != nil {
			return nil, err
		}
		crypt, err := o.psam.encrypt(ctx, usageRKSSSE, ci.algFlag, ci.factor(), ch)
		if err != nil {
			return nil, err
		}
		if err := o.externalAuth(ctx, crypt); err != nil {
			return nil, err
		}
		id.ReadAuthorised = true
	}
	if err := o.readHolder(ctx, id); err != nil {
		return nil, err
	}
	id.TerminalID = s.terminalIDCached()
	return id, nil
}

// readPublic reads the free fields only.
func (s *Session) readPublic(ctx context.Context) (*Identity, error) {
	o, err := s.begin(ctx, false)
	if err != nil {
		return nil, err
	}
	defer o.end()
	ci, err := o.identify(ctx, true)
	if err != nil {
		return nil, err
	}
	if err := o.settle(ctx, ci); err != nil {
		return nil, err
	}
	return s.identityFrom(ci, ModePublic), nil
}

// readHolder reads EF05 tag 07 (card number) and EF06 into id.
func (o *op) readHolder(ctx context.Context, id *Identity) error {
	if err := o.selectEF(ctx, 0xEF05); err != nil {
		return err
	}
	var err error
	if id.CardNumber, err = o.readText(ctx, "EF05", 0x07); err != nil {
		return err
	}
	if err := o.selectEF(ctx, 0xEF06); err != nil {
		return err
	}
	var name, ext string
	for _, x := range []struct {
		tag      byte
		dst      *string
		optional bool
	}{
		{0x08, &id.PersonID, false}, {0x09, &name, false}, {0x4E, &ext, true},
		{0x0A, &id.Sex, false}, {0x0B, &id.Nation, true}, {0x0C, &id.Birthplace, true}, {0x0D, &id.BirthDate, false},
	} {
		*x.dst, err = o.readText(ctx, "EF06", x.tag)
		if err != nil && !(x.optional && errors.Is(err, apdu.ErrRecordNotFound)) {
			return err
		}
	}
	id.Name = name + ext
	return nil
}

// Step1 runs the first half of a two-step (HSM) identity read in one card
// transaction: select SSSE, read EF05's free fields, settle the card's
// unsettled records, INTERNAL AUTHENTICATE with a 16-byte terminal random
// (rnd1‖rnd2; the answer is kept for Step2) and GET CHALLENGE for 16 bytes
// (rnd3‖rnd4). The card stays connected until Step2; the transaction
// does not (the key-service round trip happens between them).
//
// Give the result to the key service (or format it with
// terminal/national for an external HSM) and call Step2 with its answer.
// Errors: card and reader errors, wrapped.
func (s *Session) Step1(ctx context.Context) (Step1, error) {
	if err := s.lock(ctx); err != nil {
		return Step1{}, err
	}
	defer s.unlock()
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	return s.step1(ctx)
}

func (s *Session) step1(ctx context.Context) (Step1, error) {
	s.pending = nil
	o, err := s.begin(ctx, false)
	if err != nil {
		return Step1{}, fmt.Errorf("two-step read step 1: %w", err)
	}
	defer o.end()
	ci, err := o.identify(ctx, true)
	if err != nil {
		return Step1{}, fmt.Errorf("two-step read step 1: %w", err)
	}
	if err := o.settle(ctx, ci); err != nil {
		return Step1{}, fmt.Errorf("two-step read step 1: %w", err)
	}
	in, err := s.random(16)
	if err != nil {
		return Step1{}, fmt.Errorf("two-step read step 1: %w", err)
	}
	answer, err := o.internalAuth(ctx, in)
	if err != nil {
		return Step1{}, fmt.Errorf("two-step read step 1: %w", err)
	}
	ch, err := o.challenge(ctx)
	if err != nil {
		return Step1{}, fmt.Errorf("two-step read step 1: %w", err)
	}
	st := Step1{
		Region: ci.id.String()[:6], Historical: ci.historical, AlgFlag: ci.algFlag, CardID: ci.id,
		TerminalID: s.terminalIDCached(),
	}
	copy(st.Randoms[0][:], in[:8])
	copy(st.Randoms[1][:], in[8:])
	copy(st.Randoms[2][:], ch[:8])
	copy(st.Randoms[3][:], ch[8:])
	s.pending = &pendingStep1{info: ci, answer: answer, step: st}
	return st, nil
}

// pendingStep1 is what Step2 needs from Step1.
type pendingStep1 struct {
	info   *cardInfo
	answer []byte // the card's internal-authentication answer
	step   Step1
}

// Step2 completes a two-step read with the key service's answer: it
// re-selects the SSSE on the still-connected card, checks it is the card of
// Step1 (ErrWrongCard), compares the card's internal-authentication answer
// with key.Result1 (ErrKeyServiceMismatch), sends EXTERNAL AUTHENTICATE
// with key.Result2 on third-generation cards and reads the holder data.
// Errors also: ErrNoStep1, ErrBadRequest (malformed key), card and reader
// errors (a card pulled since Step1: reader.ErrCardRemoved; start again
// with Step1).
func (s *Session) Step2(ctx context.Context, key Step2Key) (*Identity, error) {
	if err := s.lock(ctx); err != nil {
		return nil, err
	}
	defer s.unlock()
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	return s.step2(ctx, key)
}

func (s *Session) step2(ctx context.Context, key Step2Key) (*Identity, error) {
	p := s.pending
	s.pending = nil
	if p == nil {
		return nil, fmt.Errorf("two-step read step 2: %w", ErrNoStep1)
	}
	if len(key.Result1) != len(p.answer) {
		return nil, fmt.Errorf("two-step read step 2: %w: RESULT1 has %d bytes, want %d", ErrBadRequest, len(key.Result1), len(p.answer))
	}
	if p.info.gen == 3 && len(key.Result2) != 16 {
		return nil, fmt.Errorf("two-step read step 2: %w: RESULT2 has %d bytes, want 16", ErrBadRequest, len(key.Result2))
	}
	o, err := s.resume(ctx)
	if err != nil {
		return nil, fmt.Errorf("two-step read step 2: %w", err)
	}
	defer o.end()
	o.atr = p.info.atr
	ci, err := o.identify(ctx, false)
	if err != nil {
		return nil, fmt.Errorf("two-step read step 2: %w", err)
	}
	if err := sameCard(p.info.id, ci.id); err != nil {
		return nil, fmt.Errorf("two-step read step 2: %w", err)
	}
	if subtle.ConstantTimeCompare(p.answer, key.Result1) != 1 {
		return nil, fmt.Errorf("two-step read step 2: card %s: %w", ci.id, ErrKeyServiceMismatch)
	}
	id := s.identityFrom(p.info, ModeKeyService)
	id.Genuine = true
	if p.info.gen == 3 {
		if err := o.externalAuth(ctx, key.Result2); err != nil {
			return nil, fmt.Errorf("two-step read step 2: %w", err)
		}
		id.ReadAuthorised = true
	}
	if err := o.readHolder(ctx, id); err != nil {
		return nil, fmt.Errorf("two-step read step 2: %w", err)
	}
	return id, nil
}

// readWithKeyService runs Step1, the key service and Step2.
func (s *Session) readWithKeyService(ctx context.Context) (*Identity, error) {
	st, err := s.step1(ctx)
	if err != nil {
		return nil, err
	}
	key, err := s.opts.KeyService.AuthenticateRead(ctx, st)
	if err != nil {
		s.pending = nil
		if !errors.Is(err, ErrKeyService) {
			err = fmt.Errorf("%w: %w", ErrKeyService, err)
		}
		return nil, fmt.Errorf("key service: %w", err)
	}
	return s.step2(ctx, key)
}
