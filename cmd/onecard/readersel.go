package main

// Reader selection shared by every command that talks to cards.
//
// A command registers the flags on its FlagSet and, after parsing, opens
// the slots it needs:
//
//	fs := newFlagSet("read", usage, stderr)
//	rf := addReaderFlags(fs)            // --reader --slot --psam-reader --serial --sim --sim-psam
//	... fs.Parse(args) ...
//	user, psam, closeSlots, err := rf.open(ctx, stderr)
//	if err != nil {
//		return err                       // usageError for bad flags; reader errors wrap reader.Err*
//	}
//	defer closeSlots()
//	// user is never nil; psam may be nil (see open).
//
// Commands that only list readers (onecard readers) use addBackendFlags
// and backendFlags.build instead.
//
// Flags: --reader R (ID or name part, any backend; see pickSlot), --slot N,
// --psam-reader R, --serial PORT,profile=ID[,baud=N][,addr=N][,name=TEXT]
// (repeatable), --sim CARDFILE and --sim-psam CARDFILE. The simulated
// reader is "virtual:sim" with slots "virtual:sim:user" and
// "virtual:sim:psam1". Note for switching read/pay/load/certify to this:
// their own flags call the simulated PSAM --psam FILE; here it is
// --sim-psam, so that --psam... never means two different things.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	firmwareprofiles "github.com/onecard-hub/onecard/firmware-profiles"
	"github.com/onecard-hub/onecard/internal/simcard"
	"github.com/onecard-hub/onecard/reader"
	"github.com/onecard-hub/onecard/reader/pcsc"
	"github.com/onecard-hub/onecard/reader/serial"
	"github.com/onecard-hub/onecard/reader/serial/profile"
	"github.com/onecard-hub/onecard/reader/virtual"
)

// simReaderID is the reader ID of the in-process reader --sim creates; its
// slots are simReaderID+":user" and, with --sim-psam, simReaderID+":psam1".
const simReaderID = "virtual:sim"

// psamSlotName is the slot name that holds the PSAM by convention in a
// reader with several slots (serial readers, the --sim reader).
const psamSlotName = "psam1"

// serialSpec is one --serial value: PORT,profile=ID[,baud=N][,addr=N][,name=TEXT].
type serialSpec struct {
	raw string
	cfg serial.Config
}

// serialSpecs is the repeatable --serial flag.
type serialSpecs []serialSpec

func (s *serialSpecs) String() string {
	if s == nil {
		return ""
	}
	var parts []string
	for _, x := range *s {
		parts = append(parts, x.raw)
	}
	return strings.Join(parts, " ")
}

// Set parses one --serial value. The profile is an embedded profile's id
// or file name (see 'onecard profile list') or the path of a profile file;
// it is required.
func (s *serialSpecs) Set(v string) error {
	spec, err := parseSerialSpec(v)
	if err != nil {
		return err
	}
	*s = append(*s, spec)
	return nil
}

func parseSerialSpec(v string) (serialSpec, error) {
	parts := strings.Split(v, ",")
	spec := serialSpec{raw: v, cfg: serial.Config{Port: strings.TrimSpace(parts[0])}}
	if spec.cfg.Port == "" {
		return spec, errors.New("missing port (PORT,profile=ID[,baud=N][,addr=N][,name=TEXT])")
	}
	profileName := ""
	for _, kv := range parts[1:] {
		k, val, ok := strings.Cut(kv, "=")
		k, val = strings.TrimSpace(k), strings.TrimSpace(val)
		if !ok || val == "" {
			return spec, fmt.Errorf("%q: want key=value (profile, baud, addr, name)", kv)
		}
		switch k {
		case "profile":
			profileName = val
		case "baud", "addr":
			n, err := strconv.Atoi(val)
			if err != nil || n < 0 || (k == "baud" && n == 0) || (k == "addr" && n > 255) {
				return spec, fmt.Errorf("%s=%s: not a valid number", k, val)
			}
			if k == "baud" {
				spec.cfg.Baud = n
			} else {
				spec.cfg.Address = n
			}
		case "name":
			spec.cfg.Name = val
		default:
			return spec, fmt.Errorf("unknown key %q (profile, baud, addr, name)", k)
		}
	}
	if profileName == "" {
		return spec, fmt.Errorf("%s: missing profile=ID (one of %s)", spec.cfg.Port, strings.Join(firmwareprofiles.Names(), ", "))
	}
	p, err := loadReaderProfile(profileName)
	if err != nil {
		return spec, err
	}
	spec.cfg.Profile = p
	return spec, nil
}

// loadReaderProfile loads an embedded profile by id, file name or file
// name without ".yaml" ("crt310"), or a profile file by path.
func loadReaderProfile(name string) (*profile.Profile, error) {
	p, err := firmwareprofiles.Load(name)
	if err == nil {
		return p, nil
	}
	if p, serr := firmwareprofiles.Load(name + ".yaml"); serr == nil && !strings.ContainsAny(name, `/\`) {
		return p, nil
	}
	if _, serr := os.Stat(name); serr == nil {
		return profile.LoadFile(name)
	}
	return nil, err
}

// backendFlags selects the reader backends: PC/SC always, the serial
// readers of --serial, and the in-process simulated reader of --sim.
type backendFlags struct {
	serial  serialSpecs
	sim     string
	simPSAM string
}

// addBackendFlags registers --serial (repeatable), --sim and --sim-psam on
// fs.
func addBackendFlags(fs *flag.FlagSet) *backendFlags {
	bf := &backendFlags{}
	fs.Var(&bf.serial, "serial", "include the serial reader on `PORT,profile=ID[,baud=N][,addr=N][,name=TEXT]` (repeatable; profile: "+
		strings.Join(firmwareprofiles.Names(), ", ")+", a profile id, or a profile file)")
	fs.StringVar(&bf.sim, "sim", "", "in-process reader "+simReaderID+" holding the simulated card `CARDFILE` (see testdata/cards)")
	fs.StringVar(&bf.simPSAM, "sim-psam", "", "simulated PSAM `CARDFILE` for the "+simReaderID+" reader's psam1 slot")
	return bf
}

// backendSet is the built backends and what to release when done.
type backendSet struct {
	backends []reader.Backend
	serial   *serial.Backend // nil without --serial
}

// close releases the serial ports.
func (s *backendSet) close() {
	if s.serial != nil {
		_ = s.serial.Close()
	}
}

// build returns the backends in listing order: PC/SC, serial (with
// --serial), virtual (with --sim; the simulated cards are loaded now). It
// fails with a usageError for --sim-psam without --sim, and with the card
// loader's error for a bad card file.
func (bf *backendFlags) build() (*backendSet, error) {
	set := &backendSet{backends: []reader.Backend{pcsc.NewBackend(pcsc.Options{})}}
	if len(bf.serial) > 0 {
		cfgs := make([]serial.Config, len(bf.serial))
		for i, s := range bf.serial {
			cfgs[i] = s.cfg
		}
		b, err := serial.NewBackend(serial.BackendOptions{Readers: cfgs})
		if err != nil {
			return nil, usagef("--serial: %v", err)
		}
		set.serial = b
		set.backends = append(set.backends, b)
	}
	if bf.simPSAM != "" && bf.sim == "" {
		return nil, usagef("--sim-psam needs --sim")
	}
	if bf.sim != "" {
		card, err := simcard.LoadFile(bf.sim)
		if err != nil {
			return nil, fmt.Errorf("load --sim card: %w", err)
		}
		slots := []reader.Slot{virtual.NewSlot(simReaderID+":user", card)}
		if bf.simPSAM != "" {
			psam, err := simcard.LoadFile(bf.simPSAM)
			if err != nil {
				return nil, fmt.Errorf("load --sim-psam card: %w", err)
			}
			slots = append(slots, virtual.NewSlot(simReaderID+":"+psamSlotName, psam))
		}
		set.backends = append(set.backends, reader.NewStaticBackend(reader.StaticOptions{
			Readers: []reader.StaticReader{{ID: simReaderID, Name: "simulated card (" + bf.sim + ")", Slots: slots}},
		}))
	}
	return set, nil
}

// readerFlags is the reader selection of a command that talks to a card:
// the backends (backendFlags) plus which slot holds the user card
// (--reader, --slot) and which the PSAM (--psam-reader, or by convention).
type readerFlags struct {
	*backendFlags
	reader     string
	slot       int
	psamReader string
}

// addReaderFlags registers on fs: --reader R (a reader or slot ID from
// 'onecard readers', or a case-insensitive part of a reader or slot name
// or ID, of any backend), --slot N (slot number within that reader),
// --psam-reader R (the PSAM's slot, same matching), and the backend
// flags --serial, --sim and --sim-psam (see addBackendFlags).
func addReaderFlags(fs *flag.FlagSet) *readerFlags {
	rf := &readerFlags{}
	fs.StringVar(&rf.reader, "reader", "", "reader or slot of the card: an ID from 'onecard readers' or part of its name (default with --sim: the simulated card)")
	fs.IntVar(&rf.slot, "slot", -1, "slot number within the --reader (as listed by 'onecard readers')")
	fs.StringVar(&rf.psamReader, "psam-reader", "", "reader or slot of the PSAM (default: the psam1 slot of a serial or --sim reader)")
	rf.backendFlags = addBackendFlags(fs)
	return rf
}

// open builds the backends and returns the chosen slots, not connected
// (call Connect), and a closer that disconnects them and releases the
// serial ports; call it when done (it is never nil when err is nil).
//
// The user-card slot is the one --reader/--slot choose among the readers
// of every backend (see pickSlot; --slot N alone is not enough), or, with
// --sim and no --reader, the simulated card. The PSAM slot is, in order:
// the slot --psam-reader names; else the present psam1 slot of the user
// slot's reader (serial readers, the --sim reader with --sim-psam); else
// nil — PC/SC readers have no PSAM convention, give --psam-reader.
//
// Errors: a usageError when neither --reader nor --sim is given or
// --sim-psam lacks --sim; "no reader matches" / "matches several slots"
// errors from pickSlot; the listing's error wrapping reader.ErrServiceDown
// (pcscd not running), reader.ErrReaderGone or reader.ErrReaderBusy
// (serial port missing or held) when no backend could list any reader;
// warnings about the backends that failed while others worked go to
// stderr. Callers add errorHint(err) when printing.
func (rf *readerFlags) open(ctx context.Context, stderr io.Writer) (user, psam reader.Slot, closer func(), err error) {
	if rf.reader == "" && rf.sim == "" {
		return nil, nil, nil, usagef("missing --reader (or --sim CARDFILE)")
	}
	set, err := rf.build()
	if err != nil {
		return nil, nil, nil, err
	}
	ok := false
	var opened []reader.Slot
	cleanup := func() {
		for _, s := range opened {
			_ = s.Disconnect()
		}
		set.close()
	}
	defer func() {
		if !ok {
			cleanup()
		}
	}()
	openID := func(id string) (reader.Slot, error) {
		var errs []error
		for _, b := range set.backends {
			s, err := b.Slot(id)
			if err == nil {
				opened = append(opened, s)
				return s, nil
			}
			errs = append(errs, err)
		}
		return nil, fmt.Errorf("open %s: %w", id, errors.Join(errs...))
	}

	var readers []reader.ReaderInfo
	if rf.reader != "" || rf.psamReader != "" {
		list, err := listReaders(ctx, set.backends)
		if err != nil {
			return nil, nil, nil, err
		}
		for _, e := range list.Errors {
			if e.Backend == pcsc.BackendName && errors.Is(e.Err, reader.ErrServiceDown) && rf.onlyNonPCSC() {
				continue // nobody asked for PC/SC
			}
			fmt.Fprintf(stderr, "warning: %s: %v%s\n", e.Backend, e.Err, errorHint(e.Err))
		}
		readers = list.Readers
	}

	// The user card.
	var userID string
	if rf.reader == "" {
		userID = simReaderID + ":user"
	} else {
		si, err := pickSlot(readers, rf.reader, rf.slot)
		if err != nil {
			return nil, nil, nil, err
		}
		userID = si.ID
	}
	if user, err = openID(userID); err != nil {
		return nil, nil, nil, err
	}

	// The PSAM.
	switch {
	case rf.psamReader != "":
		si, err := pickSlot(readers, rf.psamReader, -1)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("--psam-reader: %w", err)
		}
		if psam, err = openID(si.ID); err != nil {
			return nil, nil, nil, err
		}
	default:
		if id := conventionalPSAM(readers, userID, rf.sim != "" && rf.simPSAM != ""); id != "" {
			if psam, err = openID(id); err != nil {
				return nil, nil, nil, err
			}
		}
	}
	ok = true
	return user, psam, cleanup, nil
}

// onlyNonPCSC reports whether the selection names serial or simulated
// readers only, so that pcscd not running is not worth a warning.
func (rf *readerFlags) onlyNonPCSC() bool {
	if len(rf.serial) == 0 && rf.sim == "" {
		return false
	}
	for _, q := range []string{rf.reader, rf.psamReader} {
		if strings.HasPrefix(q, pcsc.BackendName+":") {
			return false
		}
	}
	return true
}

// conventionalPSAM returns the ID of the PSAM slot that goes with the
// user slot userID: the present psam1 slot of the same reader, or the
// --sim reader's psam1 slot when simPSAM is set. It returns "" when there
// is none.
func conventionalPSAM(readers []reader.ReaderInfo, userID string, simPSAM bool) string {
	if strings.HasPrefix(userID, simReaderID+":") {
		if simPSAM {
			return simReaderID + ":" + psamSlotName
		}
		return ""
	}
	for _, r := range readers {
		mine := false
		for _, s := range r.Slots {
			if s.ID == userID {
				mine = true
			}
		}
		if !mine {
			continue
		}
		for _, s := range r.Slots {
			if s.ID != userID && s.Present && (s.Name == psamSlotName || strings.HasSuffix(s.ID, ":"+psamSlotName)) {
				return s.ID
			}
		}
	}
	return ""
}
