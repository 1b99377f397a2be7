package soak

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/onecard-hub/onecard/apdu"
	"github.com/onecard-hub/onecard/hub/client"
	"github.com/onecard-hub/onecard/hub/proof"
	"github.com/onecard-hub/onecard/internal/simcard"
	"github.com/onecard-hub/onecard/reader"
	"github.com/onecard-hub/onecard/sm"
	"github.com/onecard-hub/onecard/terminal"
	"github.com/onecard-hub/onecard/terminal/journal"
)

// AgentConfig describes one agent process: its directory (journal, client
// state, card files), its terminal and the hub it syncs with.
type AgentConfig struct {
	Dir        string   // the agent's directory
	TerminalID string   // 12 digits
	HubURL     string   // ws://... (normally the campaign's proxy)
	HubID      string   // the hub's ID
	KeyFile    string   // the terminal's SM2 key (PEM)
	KeyLabel   string   // the TEST issuer key set (sm.TestKeySet)
	Cards      []string // card files (simcard), state beside them
	PSAM       string   // PSAM card file
	PIN        string   // the cards' PIN
	MaxRecords int      // journal bound (0: the journal's default)

	// The reader kind. Empty: in-process slots over the card files (the
	// agent opens them). PCSCUser and PCSCPSAM: PC/SC reader names, the
	// cards behind pcscd (the campaign runs the vpcd bridges, owns the
	// card files and presents, pulls and tears the cards). SerialPort: a
	// pty where the campaign's serial reader emulator (firmware profile
	// SerialProfile, e.g. "crt591.yaml") holds the cards, user slot
	// "user" and PSAM slot "psam1".
	PCSCUser      string `json:",omitempty"`
	PCSCPSAM      string `json:",omitempty"`
	SerialPort    string `json:",omitempty"`
	SerialProfile string `json:",omitempty"`
}

// Remote reports whether the agent's cards sit behind a real reader path
// (pcscd or a serial line) that the campaign drives, rather than in
// process.
func (c AgentConfig) Remote() bool { return c.PCSCUser != "" || c.SerialPort != "" }

// JournalPath is the agent's journal file.
func (c AgentConfig) JournalPath() string { return filepath.Join(c.Dir, "journal.db") }

// Operation names of a Command.
const (
	OpIdentity = "identity"
	OpPay      = "pay"
	OpLoad     = "load"
	OpCertify  = "certify"
	OpSettle   = "settle" // settle the card's uncertain records
	OpDrain    = "drain"  // wait until the journal has nothing left to send
	OpQuit     = "quit"
)

// Fault names of a Command.
const (
	FaultNone     = ""
	FaultTorn     = "torn"     // the card applies the money command, then leaves
	FaultPull     = "pull"     // the card is pulled during the PullAt-th APDU
	FaultWrongPIN = "wrongpin" // the PIN pad gives a wrong PIN
)

// Command is one line the campaign sends an agent.
type Command struct {
	Op        string `json:"op"`
	Card      int    `json:"card"`
	Amount    uint32 `json:"amount,omitempty"`
	Merchant  string `json:"merchant,omitempty"`
	Fund      string `json:"fund,omitempty"`
	Programme string `json:"programme,omitempty"`
	Fault     string `json:"fault,omitempty"`
	PullAt    int    `json:"pull_at,omitempty"`
	TimeoutMS int    `json:"timeout_ms,omitempty"` // drain
	// Fresh: the campaign changed the card in a remote reader's user slot
	// since the last command (as a kiosk sees a card come and go): the
	// agent powers the slot down before the operation.
	Fresh bool `json:"fresh,omitempty"`
}

// Outcome classes of a Reply.
const (
	ClassOK        = "ok"
	ClassDeclined  = "declined"  // the card or the hub refused: nothing moved
	ClassWrongPIN  = "wrong-pin" // refused at VERIFY
	ClassLost      = "lost"      // refused: card on the lost-card list
	ClassUnknown   = "unknown"   // outcome unknown (torn, pulled): uncertain record
	ClassUnsettled = "unsettled" // refused: the card has an unsettled record
	ClassFull      = "full"      // refused: the journal is full (its bound, or the file system's)
	ClassOffline   = "offline"   // refused: the hub could not authorise
	ClassReader    = "reader"    // refused: the reader or the card went (nothing moved)
	ClassError     = "error"     // anything else
)

// Reply is the agent's answer to one Command.
type Reply struct {
	Class  string         `json:"class"`
	Err    string         `json:"err,omitempty"`
	Seq    uint64         `json:"seq,omitempty"`
	Counts map[string]int `json:"counts,omitempty"` // drain: journal records per state
}

// switchPad is a PIN pad whose next PIN can be made wrong.
type switchPad struct {
	pin   string
	wrong atomic.Bool
}

func (p *switchPad) ReadPIN(context.Context, terminal.PINPurpose) (*terminal.PIN, error) {
	if p.wrong.Load() {
		bad := []byte(p.pin)
		bad[len(bad)-1] = '0' + (bad[len(bad)-1]-'0'+1)%10
		return terminal.NewPIN(bad)
	}
	return terminal.NewPIN([]byte(p.pin))
}

// AgentMain runs one agent: it opens the journal (recovering what a kill
// left), starts the hub client and answers the Commands read from in, one
// Reply per line on out, until OpQuit, the end of in or ctx's end. Errors:
// setting up (journal, key, cards, client) or writing a reply.
func AgentMain(ctx context.Context, cfg AgentConfig, in io.Reader, out io.Writer) error {
	keys, err := sm.TestKeySet(cfg.KeyLabel)
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	key, err := sm.LoadPrivateKeyPEM(cfg.KeyFile)
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	rd, err := openReaders(ctx, cfg)
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	defer rd.close()
	j, err := journal.Open(cfg.JournalPath(), &journal.Options{MaxRecords: cfg.MaxRecords, LockTimeout: 10 * time.Second})
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	defer j.Close()
	c, err := client.New(client.Options{URL: cfg.HubURL, HubID: cfg.HubID, TerminalID: cfg.TerminalID, Key: key, Journal: j,
		StatePath: filepath.Join(cfg.Dir, "client.state"), BatchSize: 8,
		MinBackoff: 20 * time.Millisecond, MaxBackoff: 250 * time.Millisecond, PollInterval: 50 * time.Millisecond,
		DialTimeout: 2 * time.Second, RequestTimeout: 3 * time.Second, Agent: "onecard soak"})
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	defer c.Close()
	pad := &switchPad{pin: cfg.PIN}
	topts := terminal.Options{
		Card: rd.user, PSAM: rd.psam, Journal: j, TerminalKey: key,
		TerminalID: cfg.TerminalID, PINPad: pad, Authoriser: c, LostCards: c.LostCards(),
		CardVerifier: proof.Verifier{Keys: keys, Suite: sm.SuiteSM4}, Timeout: 10 * time.Second,
	}
	sess, err := terminal.New(topts)
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	if _, err := sess.Recover(ctx); err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	runCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = c.Run(runCtx) }()
	defer func() { stop(); wg.Wait() }()

	enc := json.NewEncoder(out)
	if err := enc.Encode(Reply{Class: "ready"}); err != nil {
		return fmt.Errorf("agent: write reply: %w", err)
	}
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		var cmd Command
		if err := json.Unmarshal(sc.Bytes(), &cmd); err != nil {
			return fmt.Errorf("agent: bad command: %w", err)
		}
		if cmd.Op == OpQuit {
			return nil
		}
		var r Reply
		if cmd.Op == OpDrain {
			r = drain(ctx, j, c, time.Duration(cmd.TimeoutMS)*time.Millisecond)
		} else if cmd.Card < 0 || cmd.Card >= len(cfg.Cards) {
			r = Reply{Class: ClassError, Err: "no such card"}
		} else {
			if cmd.Fresh {
				_ = rd.user.Disconnect()
			}
			var err error
			r, err = execute(ctx, sess, rd, cmd.Card, pad, cmd)
			if errors.Is(err, reader.ErrServiceDown) || errors.Is(err, reader.ErrReaderGone) {
				// pcscd restarted or the line went: drop both connections
				// and start a fresh session, which connects them again.
				_ = rd.user.Disconnect()
				_ = rd.psam.Disconnect()
				if sess, err = terminal.New(topts); err != nil {
					return fmt.Errorf("agent: %w", err)
				}
			}
			c.Kick()
		}
		if err := enc.Encode(r); err != nil {
			return fmt.Errorf("agent: write reply: %w", err)
		}
	}
	return sc.Err()
}

// execute runs one card operation with its fault and returns the reply
// and the operation's error. With a remote reader the campaign presents,
// pulls and tears the card; only the wrong PIN is the agent's.
func execute(ctx context.Context, sess *terminal.Session, rd *agentReaders, k int, pad *switchPad, cmd Command) (Reply, error) {
	slot, card := rd.local, (*simcard.SSC)(nil)
	if slot != nil {
		card = rd.cards[k]
		slot.Insert(card)
	}
	switch {
	case cmd.Fault == FaultWrongPIN:
		pad.wrong.Store(true)
	case slot == nil:
	case cmd.Fault == FaultTorn:
		if cmd.Op == OpLoad {
			card.SetTorn(simcard.TornAfterLoad, 1)
		} else {
			card.SetTorn(simcard.TornAfterDebit, 1)
		}
		defer card.SetTorn(simcard.TornNone, 0)
	case cmd.Fault == FaultPull:
		slot.PullDuring(max(cmd.PullAt, 1))
		defer slot.PullDuring(0)
	}
	var rc *terminal.Receipt
	var err error
	switch cmd.Op {
	case OpIdentity:
		_, err = sess.ReadIdentity(ctx, terminal.ReadOptions{})
	case OpPay:
		rc, err = sess.Pay(ctx, terminal.PayRequest{Amount: cmd.Amount, Merchant: cmd.Merchant, Fund: cmd.Fund})
	case OpLoad:
		rc, err = sess.Load(ctx, terminal.LoadRequest{Amount: cmd.Amount, Programme: cmd.Programme, Fund: cmd.Fund})
	case OpCertify:
		rc, err = sess.Certify(ctx, terminal.CertifyRequest{Programme: cmd.Programme, Fund: cmd.Fund})
	case OpSettle:
		_, err = sess.Settle(ctx)
	default:
		err = fmt.Errorf("unknown operation %q", cmd.Op)
	}
	if cmd.Fault == FaultWrongPIN {
		// The holder then types the right PIN: the card's retry counter is
		// reset, so wrong PINs never block a soak card.
		pad.wrong.Store(false)
		if slot != nil {
			slot.Insert(card)
		}
		_ = sess.VerifyPIN(ctx)
	}
	if cmd.Fault == FaultPull && slot != nil {
		slot.PullDuring(0)
		slot.Insert(card)
	}
	r := Reply{Class: classify(err)}
	if err != nil {
		r.Err = err.Error()
	}
	if rc != nil && rc.Envelope != nil && rc.Envelope.Record != nil {
		r.Seq = rc.Envelope.Record.TerminalSeq
	}
	return r, err
}

// classify maps an operation's error to a Reply class.
func classify(err error) string {
	var pe *terminal.PINError
	switch {
	case err == nil:
		return ClassOK
	case errors.Is(err, terminal.ErrOutcomeUnknown):
		return ClassUnknown
	case errors.Is(err, terminal.ErrUnsettled):
		return ClassUnsettled
	case errors.Is(err, terminal.ErrLostCard):
		return ClassLost
	case errors.Is(err, journal.ErrFull), diskFull(err):
		return ClassFull
	case errors.As(err, &pe):
		return ClassWrongPIN
	case errors.Is(err, reader.ErrServiceDown), errors.Is(err, reader.ErrReaderGone),
		errors.Is(err, reader.ErrCardRemoved), errors.Is(err, reader.ErrNoCard), errors.Is(err, reader.ErrCardMute):
		return ClassReader
	case errors.Is(err, terminal.ErrNotAuthorised), errors.Is(err, client.ErrUnreachable):
		return ClassOffline
	case errors.Is(err, apdu.ErrInsufficientBalance):
		// INITIALIZE FOR PURCHASE refused a payment above the balance.
		return ClassDeclined
	}
	return ClassError
}

// diskFull reports a journal write the file system refused: the file
// size limit (EFBIG) or a full disk (ENOSPC). bbolt formats the errno into
// its message ("file resize error: truncate ...: file too large") rather
// than wrapping it, so a journal failure's text is checked too.
func diskFull(err error) bool {
	if errors.Is(err, syscall.EFBIG) || errors.Is(err, syscall.ENOSPC) {
		return true
	}
	if !errors.Is(err, terminal.ErrJournal) {
		return false
	}
	msg := err.Error()
	return strings.Contains(msg, syscall.EFBIG.Error()) || strings.Contains(msg, syscall.ENOSPC.Error())
}

// drain waits until every journal record is final or uncertain (nothing
// left for the hub), or timeout.
func drain(ctx context.Context, j *journal.Journal, c *client.Client, timeout time.Duration) Reply {
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	deadline := time.Now().Add(timeout)
	for {
		st, err := j.Stats()
		if err != nil {
			return Reply{Class: ClassError, Err: err.Error()}
		}
		counts := map[string]int{}
		for s, n := range st.Counts {
			if n > 0 {
				counts[s.String()] = n
			}
		}
		if st.Counts[journal.Prepared]+st.Counts[journal.CardDone]+st.Counts[journal.Sent] == 0 {
			return Reply{Class: ClassOK, Counts: counts}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return Reply{Class: ClassError, Err: "journal did not drain", Counts: counts}
		}
		c.Kick()
		time.Sleep(50 * time.Millisecond)
	}
}
