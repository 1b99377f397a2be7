package terminal_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/onecard-hub/onecard/hub/proof"
	"github.com/onecard-hub/onecard/internal/safeenv"
	"github.com/onecard-hub/onecard/internal/simcard"
	"github.com/onecard-hub/onecard/reader"
	"github.com/onecard-hub/onecard/reader/virtual"
	"github.com/onecard-hub/onecard/sm"
	"github.com/onecard-hub/onecard/terminal"
	"github.com/onecard-hub/onecard/terminal/journal"
	"github.com/onecard-hub/onecard/terminal/record"
)

// TestMain re-executes with the GM crypto environment and serves as the
// child process of the kill tests (see kill_test.go).
func TestMain(m *testing.M) {
	safeenv.Ensure()
	if os.Getenv(childEnv) != "" {
		os.Exit(childMain())
	}
	os.Exit(m.Run())
}

// keyLabel is the test key set the shipped card files reference.
const keyLabel = "demo"

var (
	keysOnce sync.Once
	demoKeys *sm.KeySet
	keysErr  error
)

func keys(t testing.TB) *sm.KeySet {
	t.Helper()
	keysOnce.Do(func() { demoKeys, keysErr = sm.TestKeySet(keyLabel) })
	if keysErr != nil {
		t.Fatalf("test key set: %v", keysErr)
	}
	return demoKeys
}

func cardsDir() string { return filepath.Join("..", "testdata", "cards") }

// readSpec parses a shipped card file.
func readSpec(t testing.TB, name string) simcard.CardFile {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(cardsDir(), name))
	if err != nil {
		t.Fatal(err)
	}
	cf, err := simcard.ParseCardFile(data)
	if err != nil {
		t.Fatal(err)
	}
	return cf
}

// newCard personalises an in-memory card from a shipped file; edit may
// change the spec first.
func newCard(t testing.TB, name string, edit func(*simcard.SSCSpec)) *simcard.SSC {
	t.Helper()
	spec := *readSpec(t, name).SSC
	if edit != nil {
		edit(&spec)
	}
	c, err := simcard.NewSSC(spec, simcard.Options{Keys: keys(t)})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func newPSAM(t testing.TB) *simcard.PSAM {
	t.Helper()
	p, err := simcard.NewPSAM(*readSpec(t, "psam.yaml").PSAM, simcard.Options{Keys: keys(t)})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// copyCardFile copies a shipped card file into dir (state persists beside
// it) and returns the new path.
func copyCardFile(t testing.TB, dir, name string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(cardsDir(), name))
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func openJournal(t testing.TB, path string, opts *journal.Options) *journal.Journal {
	t.Helper()
	j, err := journal.Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = j.Close() })
	if _, err := j.Recover(context.Background(), time.Now()); err != nil {
		t.Fatal(err)
	}
	return j
}

// faultSlot wraps an in-process slot: it can pull the card before or after
// the n-th APDU (the card never saw it / the card applied it but its
// answer was lost) and calls hook around every APDU.
type faultSlot struct {
	*virtual.Slot
	mu         sync.Mutex
	n          int
	pullBefore int
	pullAfter  int
	hook       func(stage string, cmd []byte)
	// answer, when it returns a response, answers for the card.
	answer func(cmd []byte) []byte
}

func (f *faultSlot) arm(before, after int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n, f.pullBefore, f.pullAfter = 0, before, after
}

func (f *faultSlot) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.n
}

func (f *faultSlot) Transmit(ctx context.Context, cmd []byte) ([]byte, error) {
	f.mu.Lock()
	f.n++
	k, before, after, hook := f.n, f.pullBefore, f.pullAfter, f.hook
	f.mu.Unlock()
	if k == before {
		f.Slot.Remove()
		return nil, fmt.Errorf("fault slot: pulled before APDU %d: %w", k, reader.ErrCardRemoved)
	}
	if hook != nil {
		hook("before", cmd)
	}
	if f.answer != nil {
		if resp := f.answer(cmd); resp != nil {
			return resp, nil
		}
	}
	resp, err := f.Slot.Transmit(ctx, cmd)
	if hook != nil {
		hook("after", cmd)
	}
	if k == after && err == nil {
		f.Slot.Remove()
		return nil, fmt.Errorf("fault slot: pulled after APDU %d: %w", k, reader.ErrCardRemoved)
	}
	return resp, err
}

// rig is a terminal with in-process card and PSAM slots.
type rig struct {
	t        testing.TB
	card     *simcard.SSC
	psam     *simcard.PSAM
	cardSlot *faultSlot
	psamSlot *virtual.Slot
	j        *journal.Journal
	pad      *terminal.StaticPINPad
	swap     *swapPad
	lost     *terminal.LostSet
	sess     *terminal.Session
	opts     terminal.Options
}

type rigOpts struct {
	noPSAM      bool
	keyService  bool
	pins        []string
	journalOpts *journal.Options
	journalPath string
	entitled    terminal.EntitlementFunc
}

func entitleAll(context.Context, terminal.LoadAuthorisation) error { return nil }

func newRig(t testing.TB, card *simcard.SSC, ro rigOpts) *rig {
	t.Helper()
	fs := &faultSlot{Slot: virtual.NewSlot("user", card)}
	var psamSlot reader.Slot
	var psam *simcard.PSAM
	if !ro.noPSAM {
		psam = newPSAM(t)
		psamSlot = virtual.NewSlot("psam", psam)
	}
	r := newRigWith(t, card, fs, psamSlot, ro)
	r.cardSlot = fs
	r.psam = psam
	if psamSlot != nil {
		r.psamSlot = psamSlot.(*virtual.Slot)
	}
	return r
}

// newRigWith builds a rig on given slots (PC/SC, serial); psamSlot nil
// means no PSAM.
func newRigWith(t testing.TB, card *simcard.SSC, cardSlot, psamSlot reader.Slot, ro rigOpts) *rig {
	t.Helper()
	r := &rig{t: t, card: card, lost: terminal.NewLostSet(), pad: terminal.NewStaticPINPad(ro.pins...)}
	r.swap = &swapPad{inner: r.pad}
	path := ro.journalPath
	if path == "" {
		path = filepath.Join(t.TempDir(), "journal.db")
	}
	r.j = openJournal(t, path, ro.journalOpts)
	ks := keys(t)
	ent := ro.entitled
	if ent == nil {
		ent = entitleAll
	}
	r.opts = terminal.Options{
		Card: cardSlot, Journal: r.j, TerminalKey: ks.TerminalKey(), PINPad: r.swap, LostCards: r.lost,
		Authoriser:   &terminal.LocalAuthoriser{Keys: ks, Entitled: ent},
		CardVerifier: proof.Verifier{Keys: ks, Suite: sm.SuiteSM4},
		DeviceID:     "KIOSK-01",
	}
	if psamSlot != nil {
		r.opts.PSAM = psamSlot
	} else {
		r.opts.TerminalID = "330100000001"
	}
	if ro.keyService {
		r.opts.KeyService = &terminal.LocalKeyService{Keys: ks}
	}
	var err error
	if r.sess, err = terminal.New(r.opts); err != nil {
		t.Fatal(err)
	}
	return r
}

// swapPad is the rig's PIN pad: tests replace the PINs it answers
// without replacing the session (whose in-memory state must survive).
type swapPad struct {
	mu    sync.Mutex
	inner terminal.PINPad
}

func (p *swapPad) ReadPIN(ctx context.Context, purpose terminal.PINPurpose) (*terminal.PIN, error) {
	p.mu.Lock()
	inner := p.inner
	p.mu.Unlock()
	return inner.ReadPIN(ctx, purpose)
}

// pins queues PINs on the rig's pad (replacing what was left).
func (r *rig) pins(p ...string) {
	r.pad = terminal.NewStaticPINPad(p...)
	r.swap.mu.Lock()
	r.swap.inner = r.pad
	r.swap.mu.Unlock()
}

// rebuild makes a new session from r.opts (after changing them).
func (r *rig) rebuild() {
	s, err := terminal.New(r.opts)
	if err != nil {
		r.t.Fatal(err)
	}
	r.sess = s
}

// reinsert puts the card back (after a pull).
func (r *rig) reinsert() { r.cardSlot.Insert(r.card) }

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// verifier for the card's suite.
func verifierFor(t testing.TB, c *simcard.SSC) proof.Verifier {
	return proof.Verifier{Keys: keys(t), Suite: c.Suite()}
}

func bcd(t testing.TB, digits string, n int) []byte {
	t.Helper()
	out := make([]byte, n)
	for i := range out {
		out[i] = 0xFF
	}
	for i := 0; i < len(digits); i++ {
		nib := digits[i] - '0'
		if i%2 == 0 {
			out[i/2] = nib<<4 | 0x0F
		} else {
			out[i/2] = out[i/2]&0xF0 | nib
		}
	}
	return out
}

// checkTAC verifies a card-done money record's TAC with hub/proof.
func checkTAC(t testing.TB, c *simcard.SSC, rec *record.Record) {
	t.Helper()
	v := verifierFor(t, c)
	var term [6]byte
	var date [4]byte
	var tm [3]byte
	copy(term[:], bcd(t, rec.TerminalID, 6))
	copy(date[:], bcd(t, rec.CardDate, 4))
	copy(tm[:], bcd(t, rec.CardTime, 3))
	var err error
	switch rec.Kind {
	case record.KindPay:
		err = v.VerifyPurchaseTAC(proof.Purchase{CardID: rec.CardID[:], Amount: rec.Amount, Type: byte(rec.TxType),
			Terminal: term, TermSeq: rec.PSAMSeq, Date: date, Time: tm}, rec.TAC)
	case record.KindLoad:
		err = v.VerifyLoadTAC(proof.Load{CardID: rec.CardID[:], NewBalance: rec.BalanceAfter, OnlineSeq: rec.CardCounter,
			Amount: rec.Amount, Type: byte(rec.TxType), Terminal: term, Date: date, Time: tm}, rec.TAC)
	default:
		t.Fatalf("checkTAC on a %s record", rec.Kind)
	}
	if err != nil {
		t.Errorf("record %d TAC: %v", rec.TerminalSeq, err)
	}
}

// entries lists every journal entry.
func entries(t testing.TB, j *journal.Journal) []journal.Entry {
	t.Helper()
	es, err := j.List(0, 0)
	if err != nil {
		t.Fatal(err)
	}
	return es
}
