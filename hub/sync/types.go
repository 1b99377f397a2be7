package sync

import (
	"fmt"
)

// Challenge is the hub's first frame on every connection. The agent
// answers with a Hello (or an Enroll) signing Nonce.
type Challenge struct {
	HubID      string `json:"hub_id"`      // 1..MaxHubID printable ASCII, no spaces
	Versions   []int  `json:"versions"`    // protocol versions the hub speaks
	Nonce      []byte `json:"nonce"`       // NonceLen fresh random bytes
	MaxMessage int    `json:"max_message"` // the hub's frame limit
	MaxBatch   int    `json:"max_batch"`   // the hub's records-per-batch limit
}

// Type implements Message.
func (*Challenge) Type() Type { return TypeChallenge }

// Validate implements Message.
func (m *Challenge) Validate(Limits) error {
	if err := CheckHubID(m.HubID); err != nil {
		return err
	}
	if len(m.Versions) == 0 || len(m.Versions) > 8 {
		return malformed("versions", "want 1 to 8")
	}
	if err := checkLen("nonce", m.Nonce, NonceLen); err != nil {
		return err
	}
	if m.MaxMessage < 4096 || m.MaxMessage > 64<<20 {
		return malformed("max_message", "out of range")
	}
	if m.MaxBatch < 1 || m.MaxBatch > 1<<16 {
		return malformed("max_batch", "out of range")
	}
	return nil
}

// CheckHubID checks a hub ID: 1..MaxHubID printable ASCII characters
// without spaces. Errors wrap ErrMalformed.
func CheckHubID(id string) error {
	if id == "" || len(id) > MaxHubID {
		return malformed("hub_id", "want 1 to %d characters", MaxHubID)
	}
	for i := 0; i < len(id); i++ {
		if id[i] <= 0x20 || id[i] >= 0x7F {
			return malformed("hub_id", "want printable ASCII without spaces")
		}
	}
	return nil
}

// Hello proves the terminal's identity: Signature is the terminal's SM2
// signature (raw r‖s, user ID = TerminalID) over HelloBytes(hub ID,
// TerminalID, Nonce).
type Hello struct {
	TerminalID    string `json:"terminal_id"`
	Nonce         []byte `json:"nonce"`
	Signature     []byte `json:"signature"`
	Agent         string `json:"agent,omitempty"`          // software name and version (informational)
	LostVersion   uint64 `json:"lost_version"`             // the agent's lost-card list version
	ConfigVersion uint64 `json:"config_version,omitempty"` // the agent's configuration version
}

// Type implements Message.
func (*Hello) Type() Type { return TypeHello }

// Validate implements Message.
func (m *Hello) Validate(Limits) error {
	if err := checkTerminal("terminal_id", m.TerminalID); err != nil {
		return err
	}
	if err := checkLen("nonce", m.Nonce, NonceLen); err != nil {
		return err
	}
	if err := checkLen("signature", m.Signature, SignatureLen); err != nil {
		return err
	}
	return checkText("agent", m.Agent, MaxText)
}

// Welcome accepts a Hello. LastAck is the highest terminal sequence the
// hub has posted for this terminal (0: none); the agent passes it to
// journal.ObserveHubAck before uploading.
type Welcome struct {
	TerminalID     string `json:"terminal_id"`
	LastAck        uint64 `json:"last_ack"`
	MaxBatch       int    `json:"max_batch"`
	MaxMessage     int    `json:"max_message"`
	PingIntervalMS int64  `json:"ping_interval_ms"`
}

// Type implements Message.
func (*Welcome) Type() Type { return TypeWelcome }

// Validate implements Message.
func (m *Welcome) Validate(Limits) error {
	if err := checkTerminal("terminal_id", m.TerminalID); err != nil {
		return err
	}
	if m.MaxBatch < 1 || m.MaxBatch > 1<<16 {
		return malformed("max_batch", "out of range")
	}
	if m.MaxMessage < 4096 || m.MaxMessage > 64<<20 {
		return malformed("max_message", "out of range")
	}
	if m.PingIntervalMS < 0 || m.PingIntervalMS > 3_600_000 {
		return malformed("ping_interval_ms", "out of range")
	}
	return nil
}

// MaxToken bounds an enrolment token's length.
const MaxToken = 128

// Enroll asks the hub to register a new terminal key with a one-time
// token. Signature is made with the new key (proof of possession) over
// EnrollBytes(hub ID, TerminalID, Nonce, PublicKey, Token).
type Enroll struct {
	TerminalID string `json:"terminal_id"`
	PublicKey  []byte `json:"public_key"` // SM2 point X‖Y, PublicKeyLen bytes
	Token      string `json:"token"`
	Nonce      []byte `json:"nonce"`
	Signature  []byte `json:"signature"`
	Agent      string `json:"agent,omitempty"`
}

// Type implements Message.
func (*Enroll) Type() Type { return TypeEnroll }

// Validate implements Message.
func (m *Enroll) Validate(Limits) error {
	if err := checkTerminal("terminal_id", m.TerminalID); err != nil {
		return err
	}
	if err := checkLen("public_key", m.PublicKey, PublicKeyLen); err != nil {
		return err
	}
	if m.Token == "" || len(m.Token) > MaxToken {
		return malformed("token", "want 1 to %d characters", MaxToken)
	}
	for i := 0; i < len(m.Token); i++ {
		if m.Token[i] <= 0x20 || m.Token[i] >= 0x7F {
			return malformed("token", "want printable ASCII")
		}
	}
	if err := checkLen("nonce", m.Nonce, NonceLen); err != nil {
		return err
	}
	if err := checkLen("signature", m.Signature, SignatureLen); err != nil {
		return err
	}
	return checkText("agent", m.Agent, MaxText)
}

// Terminal statuses in the hub's registry (Enrolled.Status and the hub's
// terminal list).
const (
	StatusPending   = "pending"   // enrolled, waiting for an operator's approval
	StatusActive    = "active"    // approved: hello and uploads accepted
	StatusSuspended = "suspended" // refused until re-approved
)

// Enrolled answers an Enroll: the key is registered with Status (normally
// "pending" until an operator approves it). The hub closes the connection
// after it.
type Enrolled struct {
	TerminalID string `json:"terminal_id"`
	Status     string `json:"status"`
}

// Type implements Message.
func (*Enrolled) Type() Type { return TypeEnrolled }

// Validate implements Message.
func (m *Enrolled) Validate(Limits) error {
	if err := checkTerminal("terminal_id", m.TerminalID); err != nil {
		return err
	}
	return checkCode("status", m.Status, false)
}

// Batch carries records to post, each its canonical envelope encoding
// (record.Envelope.MarshalBinary), in terminal-sequence order. The hub
// answers with one Acks whose frame ID is the batch's.
type Batch struct {
	Records [][]byte `json:"records"`
}

// Type implements Message.
func (*Batch) Type() Type { return TypeBatch }

// Validate implements Message: 1..lim.MaxBatch records of
// 1..MaxRecordBytes bytes each. The envelopes themselves are decoded by the
// hub, which rejects a bad one alone.
func (m *Batch) Validate(lim Limits) error {
	lim = lim.withDefaults()
	if len(m.Records) == 0 {
		return malformed("records", "empty batch")
	}
	if len(m.Records) > lim.MaxBatch {
		return tooLarge("records", len(m.Records), lim.MaxBatch)
	}
	for i, r := range m.Records {
		if len(r) == 0 {
			return malformed(fmt.Sprintf("records[%d]", i), "empty")
		}
		if len(r) > MaxRecordBytes {
			return tooLarge(fmt.Sprintf("records[%d]", i), len(r), MaxRecordBytes)
		}
	}
	return nil
}

// AckStatus is the hub's verdict on one record.
type AckStatus string

// Ack statuses.
const (
	// AckAccepted: verified and durably posted by this request.
	AckAccepted AckStatus = "accepted"
	// AckDuplicate: already posted with identical content (a resend):
	// the agent clears it as it would an accepted one.
	AckDuplicate AckStatus = "duplicate"
	// AckRejected: refused for good (Code, Reason); the agent moves it
	// to its dead letters for an operator.
	AckRejected AckStatus = "rejected"
	// AckRetry: not processed now (the hub's store is unavailable, the
	// terminal is over its rate); the agent sends it again later.
	AckRetry AckStatus = "retry"
)

// Valid reports whether s is a known status.
func (s AckStatus) Valid() bool {
	switch s {
	case AckAccepted, AckDuplicate, AckRejected, AckRetry:
		return true
	}
	return false
}

// Ack is the result for one record. Seq is the record's terminal sequence
// (0 when the envelope could not be decoded).
type Ack struct {
	Seq    uint64    `json:"seq"`
	Status AckStatus `json:"status"`
	Code   string    `json:"code,omitempty"`   // reject/retry reason code (Reject* constants)
	Reason string    `json:"reason,omitempty"` // human-readable detail
}

// Reason codes of rejected (and retried) records.
const (
	RejectMalformed     = "malformed"          // envelope does not decode
	RejectWrongTerminal = "wrong_terminal"     // record of another terminal than the session's
	RejectSignature     = "bad_signature"      // terminal signature does not verify
	RejectTerminal      = "terminal"           // terminal unknown, pending or suspended
	RejectTAC           = "tac_mismatch"       // the card's TAC does not match the record
	RejectCardSignature = "card_signature"     // the card's SM2 signature does not verify
	RejectNoProof       = "no_proof"           // money record without a TAC (uncertain): reconcile by hand
	RejectCounterReuse  = "counter_reuse"      // the card's counter was already used by another record
	RejectConflict      = "conflict"           // same terminal sequence, different content
	RejectSuite         = "suite"              // unknown crypto suite
	RejectFunds         = "insufficient_funds" // an account would go below zero (card purse, grant)
	RejectInvalid       = "invalid"            // the ledger refused the record's values
	RetryUnavailable    = "unavailable"        // store or ledger failure (retry)
)

// Acks answers a Batch: Results[i] is the verdict on Records[i]. LastAck is
// the hub's highest posted sequence for the terminal after the batch.
type Acks struct {
	Results []Ack  `json:"results"`
	LastAck uint64 `json:"last_ack"`
}

// Type implements Message.
func (*Acks) Type() Type { return TypeAcks }

// Validate implements Message.
func (m *Acks) Validate(lim Limits) error {
	lim = lim.withDefaults()
	if len(m.Results) > lim.MaxBatch {
		return tooLarge("results", len(m.Results), lim.MaxBatch)
	}
	for i, a := range m.Results {
		f := fmt.Sprintf("results[%d]", i)
		if !a.Status.Valid() {
			return malformed(f+".status", "unknown status")
		}
		needCode := a.Status == AckRejected || a.Status == AckRetry
		if err := checkCode(f+".code", a.Code, !needCode); err != nil {
			return err
		}
		if err := checkText(f+".reason", a.Reason, MaxText); err != nil {
			return err
		}
	}
	return nil
}

// LostCards is a change of the lost-card list from version From to version
// To: add then remove the card IDs (32 hex digits). Reset: drop the local
// list first (a full snapshot; From is then ignored). More: further
// messages of the same change follow; the agent applies the change
// atomically once the last one (More false) arrives. A change the agent
// cannot apply (its version is not From) makes it send a LostSync.
type LostCards struct {
	From   uint64   `json:"from"`
	To     uint64   `json:"to"`
	Reset  bool     `json:"reset,omitempty"`
	More   bool     `json:"more,omitempty"`
	Add    []string `json:"add,omitempty"`
	Remove []string `json:"remove,omitempty"`
}

// Type implements Message.
func (*LostCards) Type() Type { return TypeLostCards }

// Validate implements Message.
func (m *LostCards) Validate(Limits) error {
	if n := len(m.Add) + len(m.Remove); n > MaxLostPerMessage {
		return tooLarge("add+remove", n, MaxLostPerMessage)
	}
	if !m.Reset && m.To < m.From {
		return malformed("to", "below from")
	}
	if m.Reset && len(m.Remove) != 0 {
		return malformed("remove", "not with reset")
	}
	if _, err := ParseCardIDs("add", m.Add); err != nil {
		return err
	}
	_, err := ParseCardIDs("remove", m.Remove)
	return err
}

// LostSync asks for the lost-card changes after Version (0: everything).
type LostSync struct {
	Version uint64 `json:"version"`
}

// Type implements Message.
func (*LostSync) Type() Type { return TypeLostSync }

// Validate implements Message.
func (*LostSync) Validate(Limits) error { return nil }

// Config pushes the terminal's configuration (the whole map, replacing the
// previous one).
type Config struct {
	Version uint64            `json:"version"`
	Values  map[string]string `json:"values"`
}

// Type implements Message.
func (*Config) Type() Type { return TypeConfig }

// Validate implements Message: at most MaxConfigEntries keys of [a-z0-9_.]
// (≤ 64), values text ≤ MaxConfigValue.
func (m *Config) Validate(Limits) error {
	if len(m.Values) > MaxConfigEntries {
		return tooLarge("values", len(m.Values), MaxConfigEntries)
	}
	for k, v := range m.Values {
		if err := CheckConfigKey(k); err != nil {
			return err
		}
		if err := checkText("values."+clip(k, 64), v, MaxConfigValue); err != nil {
			return err
		}
	}
	return nil
}

// CheckConfigKey checks a configuration key: 1..64 of [a-z0-9_.-].
// Errors wrap ErrMalformed.
func CheckConfigKey(k string) error {
	if k == "" || len(k) > 64 {
		return malformed("config key", "want 1 to 64 characters")
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-') {
			return malformed("config key", "want [a-z0-9_.-]")
		}
	}
	return nil
}

// CreditsQuery asks for the credits waiting for a card (informational:
// the terminal shows them; loading goes through LoadAuth).
type CreditsQuery struct {
	CardID string `json:"card_id"`
}

// Type implements Message.
func (*CreditsQuery) Type() Type { return TypeCreditsQuery }

// Validate implements Message.
func (m *CreditsQuery) Validate(Limits) error { return checkCardID("card_id", m.CardID) }

// Credit is one pending credit (an entitlement not yet loaded).
type Credit struct {
	Programme string `json:"programme"`
	Fund      string `json:"fund,omitempty"`
	Amount    uint32 `json:"amount"` // fen
	Note      string `json:"note,omitempty"`
}

// Credits answers a CreditsQuery.
type Credits struct {
	CardID  string   `json:"card_id"`
	Credits []Credit `json:"credits"`
}

// Type implements Message.
func (*Credits) Type() Type { return TypeCredits }

// Validate implements Message.
func (m *Credits) Validate(Limits) error {
	if err := checkCardID("card_id", m.CardID); err != nil {
		return err
	}
	if len(m.Credits) > MaxCredits {
		return tooLarge("credits", len(m.Credits), MaxCredits)
	}
	for i, c := range m.Credits {
		f := fmt.Sprintf("credits[%d]", i)
		if err := checkText(f+".programme", c.Programme, 64); err != nil {
			return err
		}
		if err := checkText(f+".fund", c.Fund, 64); err != nil {
			return err
		}
		if err := checkText(f+".note", c.Note, MaxText); err != nil {
			return err
		}
	}
	return nil
}

// LoadAuth asks the hub to authorise a load: the card's INITIALIZE FOR
// LOAD answer (Balance, OnlineSeq, Random, MAC1) and the terms. The
// terminal is the session's (authenticated by the hello).
type LoadAuth struct {
	TerminalSeq uint64 `json:"terminal_seq"`
	CardID      string `json:"card_id"`
	AlgFlag     uint8  `json:"alg_flag"` // 01 3DES, 03 SM4
	Programme   string `json:"programme"`
	Fund        string `json:"fund,omitempty"`
	Amount      uint32 `json:"amount"`
	TxType      uint8  `json:"tx_type"` // 01 ED, 02 EP
	Balance     uint32 `json:"balance"`
	OnlineSeq   uint16 `json:"online_seq"`
	Random      []byte `json:"random"` // 4 bytes
	MAC1        []byte `json:"mac1"`   // 4 bytes
	CardDate    string `json:"card_date"`
	CardTime    string `json:"card_time"`
}

// Type implements Message.
func (*LoadAuth) Type() Type { return TypeLoadAuth }

// Validate implements Message.
func (m *LoadAuth) Validate(Limits) error {
	if err := checkCardID("card_id", m.CardID); err != nil {
		return err
	}
	if m.AlgFlag != 0x01 && m.AlgFlag != 0x03 {
		return malformed("alg_flag", "want 1 or 3")
	}
	if m.Programme == "" {
		return malformed("programme", "empty")
	}
	if err := checkText("programme", m.Programme, 64); err != nil {
		return err
	}
	if err := checkText("fund", m.Fund, 64); err != nil {
		return err
	}
	if m.Amount == 0 {
		return malformed("amount", "zero")
	}
	if m.TxType != 0x01 && m.TxType != 0x02 {
		return malformed("tx_type", "want 1 or 2")
	}
	if err := checkLen("random", m.Random, 4); err != nil {
		return err
	}
	if err := checkLen("mac1", m.MAC1, 4); err != nil {
		return err
	}
	if !digits(m.CardDate, 8) {
		return malformed("card_date", "want YYYYMMDD")
	}
	if !digits(m.CardTime, 6) {
		return malformed("card_time", "want HHMMSS")
	}
	return nil
}

func digits(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < n; i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// LoadAuthResult carries the MAC2 authorising the load (4 bytes).
type LoadAuthResult struct {
	MAC2 []byte `json:"mac2"`
}

// Type implements Message.
func (*LoadAuthResult) Type() Type { return TypeLoadAuthResult }

// Validate implements Message.
func (m *LoadAuthResult) Validate(Limits) error { return checkLen("mac2", m.MAC2, 4) }

// KeyRead is the first half of a two-step identity read sent to the hub's
// key service (terminal.Step1).
type KeyRead struct {
	Region     string   `json:"region,omitempty"`
	Historical []byte   `json:"historical,omitempty"` // ATR historical bytes, ≤ 15
	AlgFlag    uint8    `json:"alg_flag"`
	CardID     string   `json:"card_id"`
	Randoms    [][]byte `json:"randoms"` // 4 × 8 bytes
}

// Type implements Message.
func (*KeyRead) Type() Type { return TypeKeyRead }

// Validate implements Message.
func (m *KeyRead) Validate(Limits) error {
	if err := checkText("region", m.Region, 16); err != nil {
		return err
	}
	if len(m.Historical) > 15 {
		return tooLarge("historical", len(m.Historical), 15)
	}
	if m.AlgFlag != 0x01 && m.AlgFlag != 0x03 {
		return malformed("alg_flag", "want 1 or 3")
	}
	if err := checkCardID("card_id", m.CardID); err != nil {
		return err
	}
	if len(m.Randoms) != 4 {
		return malformed("randoms", "want 4")
	}
	for i, r := range m.Randoms {
		if err := checkLen(fmt.Sprintf("randoms[%d]", i), r, 8); err != nil {
			return err
		}
	}
	return nil
}

// KeyReadResult is the key service's answer: RESULT1 (16 bytes) and
// RESULT2 (16 bytes for SM4 cards, empty for 3DES ones).
type KeyReadResult struct {
	Result1 []byte `json:"result1"`
	Result2 []byte `json:"result2,omitempty"`
}

// Type implements Message.
func (*KeyReadResult) Type() Type { return TypeKeyReadResult }

// Validate implements Message.
func (m *KeyReadResult) Validate(Limits) error {
	if err := checkLen("result1", m.Result1, 16); err != nil {
		return err
	}
	if len(m.Result2) != 0 {
		return checkLen("result2", m.Result2, 16)
	}
	return nil
}

// Error codes.
const (
	CodeBadMessage      = "bad_message"      // the frame did not decode (fatal)
	CodeVersion         = "version"          // protocol version not spoken (fatal)
	CodeUnexpected      = "unexpected"       // a message not allowed at this point (fatal)
	CodeUnknownTerminal = "unknown_terminal" // hello from a terminal not enrolled (fatal)
	CodePending         = "pending"          // enrolled, not yet approved (fatal)
	CodeSuspended       = "suspended"        // suspended by an operator (fatal)
	CodeBadSignature    = "bad_signature"    // hello or enrolment signature invalid (fatal)
	CodeBadToken        = "bad_token"        // enrolment token unknown, used or expired (fatal)
	CodeTooLarge        = "too_large"        // frame or batch above the limits (fatal)
	CodeRateLimited     = "rate_limited"     // over the terminal's rate
	CodeReplaced        = "replaced"         // a newer connection of the same terminal took over (fatal)
	CodeNotAuthorised   = "not_authorised"   // load refused (no entitlement, MAC1 invalid)
	CodeBadRequest      = "bad_request"      // a request the hub cannot serve
	CodeUnavailable     = "unavailable"      // store, ledger or key service failure (retry)
	CodeShutdown        = "shutdown"         // the hub is stopping (fatal, reconnect later)
	CodeTimeout         = "timeout"          // no hello in time (fatal)
)

// Error is a refusal or failure. With a non-zero frame ID it answers that
// request; with ID 0 it concerns the connection, and Fatal means the
// sender closes it.
type Error struct {
	Code   string `json:"code"`
	Reason string `json:"reason,omitempty"`
	Fatal  bool   `json:"fatal,omitempty"`
}

// Type implements Message.
func (*Error) Type() Type { return TypeError }

// Validate implements Message.
func (m *Error) Validate(Limits) error {
	if err := checkCode("code", m.Code, false); err != nil {
		return err
	}
	return checkText("reason", m.Reason, MaxText)
}

// Error makes *Error an error value: "code: reason".
func (m *Error) Error() string {
	if m.Reason == "" {
		return "hub: " + m.Code
	}
	return "hub: " + m.Code + ": " + m.Reason
}

// NewError returns an *Error with the reason clipped to MaxText and made
// printable, so any error text can be sent.
func NewError(code, reason string, fatal bool) *Error {
	return &Error{Code: code, Reason: Printable(reason), Fatal: fatal}
}

// Printable returns s clipped to MaxText bytes with control characters
// and invalid UTF-8 replaced, fit for Reason fields.
func Printable(s string) string {
	rs := []rune(s)
	out := make([]rune, 0, len(rs))
	for _, r := range rs {
		if r < 0x20 || r == 0x7F || (r >= 0x80 && r < 0xA0) {
			r = ' '
		}
		out = append(out, r)
	}
	return clip(string(out), MaxText-3)
}
