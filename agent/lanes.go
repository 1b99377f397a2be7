package agent

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/onecard-hub/onecard/agent/kioskapi"
	"github.com/onecard-hub/onecard/reader"
	"github.com/onecard-hub/onecard/terminal"
)

// A lane is one place a card is served: a user-card slot with its PSAM
// slot and the terminal.Session over them. Configured lanes select their
// slots by LaneConfig; without configuration every non-PSAM slot is a
// lane named by its slot ID ("auto" lanes).
//
// One request at a time holds a lane (busy); a second request for the
// same card is refused with kioskapi.CodeBusy rather than queued, so a
// page never waits behind another page's PIN entry without knowing it.
type lane struct {
	name   string
	cfg    LaneConfig // configured lanes
	autoID string     // auto lanes: the user slot ID

	busy atomic.Bool

	// Owned by the holder of busy.
	sess           *terminal.Session
	cardID, psamID string
	gen            uint64
	opened         []reader.Slot

	progress atomic.Pointer[func(stage string)]
}

// setProgress routes progress stages of the current request (nil: none).
func (l *lane) setProgress(f func(stage string)) {
	if f == nil {
		l.progress.Store(nil)
		return
	}
	l.progress.Store(&f)
}

func (l *lane) report(stage string) {
	if f := l.progress.Load(); f != nil {
		(*f)(stage)
	}
}

// closeSlots disconnects the slots the lane opened; the holder of busy
// calls it.
func (l *lane) closeSlots() {
	for _, s := range l.opened {
		_ = s.Disconnect()
	}
	l.opened, l.sess, l.cardID, l.psamID = nil, nil, "", ""
}

// slotRef is a slot with its reader.
type slotRef struct {
	r reader.ReaderInfo
	s reader.SlotInfo
}

func allSlots(readers []reader.ReaderInfo) []slotRef {
	var out []slotRef
	for _, r := range readers {
		for _, s := range r.Slots {
			out = append(out, slotRef{r, s})
		}
	}
	return out
}

var samWord = regexp.MustCompile(`(?i)(^|[^a-z])p?sam([^a-z]|$)`)

// isPSAMSlot recognises PSAM/SAM slots: the psamN slots of serial and
// simulated readers ("...:psam1"), PC/SC readers named "... SAM ...".
func isPSAMSlot(s reader.SlotInfo) bool {
	last := s.ID
	if i := strings.LastIndexByte(last, ':'); i >= 0 {
		last = last[i+1:]
	}
	return strings.HasPrefix(strings.ToLower(last), "psam") || samWord.MatchString(s.Name) && !strings.Contains(strings.ToLower(s.Name), "sample")
}

// matchSlots finds the slots sel names among refs: an exact slot ID; the
// slots of the reader with exactly that ID; else every slot whose ID or
// name, or whose reader's ID or name, contains sel (case-insensitive).
// Among several, psam prefers PSAM slots (true) or user slots (false).
func matchSlots(refs []slotRef, sel string, psam bool) []slotRef {
	for _, x := range refs {
		if x.s.ID == sel {
			return []slotRef{x}
		}
	}
	// Prefer slots of the wanted role; a selector that names only slots
	// of the other role (a PSAM in a plain PC/SC reader) keeps them.
	role := func(in []slotRef) []slotRef {
		var out []slotRef
		for _, x := range in {
			if isPSAMSlot(x.s) == psam {
				out = append(out, x)
			}
		}
		if len(out) == 0 {
			return in
		}
		return out
	}
	var byReader []slotRef
	for _, x := range refs {
		if x.r.ID == sel {
			byReader = append(byReader, x)
		}
	}
	if len(byReader) > 0 {
		return role(byReader)
	}
	q := strings.ToLower(sel)
	var out []slotRef
	for _, x := range refs {
		for _, f := range []string{x.s.ID, x.s.Name, x.r.ID, x.r.Name} {
			if q != "" && strings.Contains(strings.ToLower(f), q) {
				out = append(out, x)
				break
			}
		}
	}
	return role(out)
}

func slotIDs(refs []slotRef) string {
	ids := make([]string, len(refs))
	for i, x := range refs {
		ids[i] = x.s.ID
	}
	return strings.Join(ids, ", ")
}

// lanes manages the agent's lanes.
type lanes struct {
	a          *Agent
	configured []*lane

	mu     sync.Mutex
	auto   map[string]*lane // by user slot ID
	bySlot sync.Map         // slot ID → *lane, for progress from the trace hook
	psams  sync.Map         // slot ID → true for slots used as PSAM (metrics role)
	gen    atomic.Uint64    // bumped on reader added/removed
}

func newLanes(a *Agent, cfg []LaneConfig) *lanes {
	ls := &lanes{a: a, auto: map[string]*lane{}}
	for _, c := range cfg {
		ls.configured = append(ls.configured, &lane{name: c.Name, cfg: c})
	}
	return ls
}

func (ls *lanes) autoLane(id string) *lane {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	l, ok := ls.auto[id]
	if !ok {
		l = &lane{name: id, autoID: id}
		ls.auto[id] = l
	}
	return l
}

// all returns every lane known so far.
func (ls *lanes) all() []*lane {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	out := append([]*lane(nil), ls.configured...)
	ids := make([]string, 0, len(ls.auto))
	for id := range ls.auto {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		out = append(out, ls.auto[id])
	}
	return out
}

// cardSlot resolves a lane's user slot among refs.
func (ls *lanes) cardSlot(l *lane, refs []slotRef) (slotRef, error) {
	if l.autoID != "" {
		for _, x := range refs {
			if x.s.ID == l.autoID {
				return x, nil
			}
		}
		return slotRef{}, kioskapi.Errorf(kioskapi.CodeReaderGone, "reader slot %s is not connected", l.autoID)
	}
	m := matchSlots(refs, l.cfg.Card, false)
	switch len(m) {
	case 0:
		return slotRef{}, kioskapi.Errorf(kioskapi.CodeReaderGone, "lane %s: no connected reader matches %q; is it plugged in?", l.name, l.cfg.Card)
	case 1:
		return m[0], nil
	}
	return slotRef{}, kioskapi.Errorf(kioskapi.CodeInternal, "lane %s: card selector %q matches several slots (%s); fix the configuration", l.name, l.cfg.Card, slotIDs(m))
}

// psamSlot picks the PSAM slot for a lane whose card is in u ("" = none).
func (ls *lanes) psamSlot(l *lane, u slotRef, refs []slotRef) (string, error) {
	sel := l.cfg.PSAM
	if sel == "" {
		sel = ls.a.cfg.Readers.PSAM
	}
	if sel != "" {
		m := matchSlots(refs, sel, true)
		switch len(m) {
		case 0:
			return "", nil // the operations that need it fail with no_psam
		case 1:
			return m[0].s.ID, nil
		}
		return "", kioskapi.Errorf(kioskapi.CodeInternal, "PSAM selector %q matches several slots (%s); fix the configuration", sel, slotIDs(m))
	}
	for _, s := range u.r.Slots {
		if s.ID != u.s.ID && s.Present && isPSAMSlot(s) {
			return s.ID, nil
		}
	}
	return "", nil
}

// pick chooses the lane for a request: sel names a lane, a slot or a
// reader; "" picks the only lane, or the only lane with a card present.
func (ls *lanes) pick(sel string) (*lane, error) {
	refs := allSlots(ls.a.mgr.Readers())
	if len(ls.configured) > 0 {
		if sel != "" {
			for _, l := range ls.configured {
				if l.name == sel {
					return l, nil
				}
			}
			for _, l := range ls.configured {
				if u, err := ls.cardSlot(l, refs); err == nil && u.s.ID == sel {
					return l, nil
				}
			}
			return nil, kioskapi.Errorf(kioskapi.CodeUnknownReader, "no lane named %q (lanes: %s)", sel, ls.names())
		}
		if len(ls.configured) == 1 {
			return ls.configured[0], nil
		}
		var present []*lane
		for _, l := range ls.configured {
			if u, err := ls.cardSlot(l, refs); err == nil && u.s.Present {
				present = append(present, l)
			}
		}
		switch len(present) {
		case 0:
			return nil, kioskapi.Errorf(kioskapi.CodeNoCard, "insert a card (lanes: %s)", ls.names())
		case 1:
			return present[0], nil
		}
		return nil, kioskapi.Errorf(kioskapi.CodeAmbiguousReader, "cards in several lanes: give \"reader\" (lanes: %s)", ls.names())
	}
	var cards []slotRef
	psamSel := ls.a.cfg.Readers.PSAM
	var psamIDs []string
	if psamSel != "" {
		for _, x := range matchSlots(refs, psamSel, true) {
			psamIDs = append(psamIDs, x.s.ID)
		}
	}
	for _, x := range refs {
		if !isPSAMSlot(x.s) && !slices.Contains(psamIDs, x.s.ID) {
			cards = append(cards, x)
		}
	}
	if sel != "" {
		m := matchSlots(cards, sel, false)
		switch len(m) {
		case 0:
			return nil, kioskapi.Errorf(kioskapi.CodeUnknownReader, "no reader matches %q (slots: %s)", sel, slotIDs(cards))
		case 1:
			return ls.autoLane(m[0].s.ID), nil
		}
		return nil, kioskapi.Errorf(kioskapi.CodeAmbiguousReader, "%q matches several slots (%s)", sel, slotIDs(m))
	}
	var present []slotRef
	for _, x := range cards {
		if x.s.Present {
			present = append(present, x)
		}
	}
	switch {
	case len(present) == 1:
		return ls.autoLane(present[0].s.ID), nil
	case len(present) > 1:
		return nil, kioskapi.Errorf(kioskapi.CodeAmbiguousReader, "cards in several readers: give \"reader\" (%s)", slotIDs(present))
	case len(cards) == 1:
		return ls.autoLane(cards[0].s.ID), nil
	case len(cards) == 0:
		return nil, kioskapi.Errorf(kioskapi.CodeReaderGone, "no card reader connected")
	}
	return nil, kioskapi.Errorf(kioskapi.CodeNoCard, "insert a card")
}

func (ls *lanes) names() string {
	n := make([]string, len(ls.configured))
	for i, l := range ls.configured {
		n[i] = l.name
	}
	return strings.Join(n, ", ")
}

// session returns the lane's session, (re)building it when its slots
// changed or a reader came or went. The caller holds l.busy.
func (ls *lanes) session(l *lane) (*terminal.Session, error) {
	refs := allSlots(ls.a.mgr.Readers())
	u, err := ls.cardSlot(l, refs)
	if err != nil {
		return nil, err
	}
	psamID, err := ls.psamSlot(l, u, refs)
	if err != nil {
		return nil, err
	}
	gen := ls.gen.Load()
	if l.sess != nil && l.cardID == u.s.ID && l.psamID == psamID && l.gen == gen {
		return l.sess, nil
	}
	l.closeSlots()
	card, err := ls.a.mgr.Slot(u.s.ID)
	if err != nil {
		return nil, fmt.Errorf("open card slot: %w", err)
	}
	l.opened = append(l.opened, card)
	var psam reader.Slot
	if psamID != "" {
		if psam, err = ls.a.mgr.Slot(psamID); err != nil {
			l.closeSlots()
			return nil, fmt.Errorf("open PSAM slot: %w", err)
		}
		l.opened = append(l.opened, psam)
		ls.psams.Store(psamID, true)
	}
	opts := ls.a.sessionOptions()
	opts.Card, opts.PSAM = card, psam
	opts.PINPad = &lanePad{a: ls.a, l: l}
	sess, err := terminal.New(opts)
	if err != nil {
		l.closeSlots()
		return nil, fmt.Errorf("lane %s: %w", l.name, err)
	}
	l.sess, l.cardID, l.psamID, l.gen = sess, u.s.ID, psamID, gen
	ls.bySlot.Store(u.s.ID, l)
	ls.a.log.Info("lane ready", "lane", l.name, "card_slot", u.s.ID, "psam_slot", psamID)
	return sess, nil
}

// acquire takes the lane for one request; busy lanes are refused.
func (l *lane) acquire() error {
	if !l.busy.CompareAndSwap(false, true) {
		return kioskapi.Errorf(kioskapi.CodeBusy, "another request is using the card in %s; try again when it finished", l.name)
	}
	return nil
}

func (l *lane) release() {
	l.setProgress(nil)
	l.busy.Store(false)
}

// closeAll disconnects every lane's slots (shutdown; no request runs).
func (ls *lanes) closeAll() {
	for _, l := range ls.all() {
		if l.busy.CompareAndSwap(false, true) {
			l.closeSlots()
			l.busy.Store(false)
		}
	}
}

// pinsKey carries the PINs of a request to the lane's PIN pad.
type pinsKey struct{}

// requestPINs maps a purpose to the digits the page sent.
type requestPINs map[terminal.PINPurpose]kioskapi.Secret

func withPINs(ctx context.Context, p requestPINs) context.Context {
	return context.WithValue(ctx, pinsKey{}, p)
}

// lanePad is a lane's terminal.PINPad: the PIN from the request when the
// page sent one (and kiosk.pin_in_request allows it), else the agent's
// PIN pad (Options.PINPad) with an enter_pin progress event, else
// terminal.ErrNoPINPad.
type lanePad struct {
	a *Agent
	l *lane
}

func (p *lanePad) ReadPIN(ctx context.Context, purpose terminal.PINPurpose) (*terminal.PIN, error) {
	if pins, _ := ctx.Value(pinsKey{}).(requestPINs); pins != nil {
		if d, ok := pins[purpose]; ok && len(d) > 0 {
			pin, err := terminal.NewPIN(d)
			if err != nil {
				return nil, fmt.Errorf("read %s: %w", purpose, err)
			}
			return pin, nil
		}
	}
	if p.a.opts.PINPad != nil {
		p.l.report("enter_pin")
		return p.a.opts.PINPad.ReadPIN(ctx, purpose)
	}
	return nil, fmt.Errorf("read %s: %w", purpose, terminal.ErrNoPINPad)
}
