// Package pcscd runs a private pcscd with vsmartcard's vpcd driver, so
// virtual cards (reader/virtual.VPCD) can be driven through the real PC/SC
// stack: by the integration tests (internal/pcsctest wraps it for
// testing.TB) and by `onecard demo`.
//
// How it works:
//
//   - pcscd 1.9.9 always uses the machine-wide socket /run/pcscd/pcscd.comm,
//     so only one pcscd can run per machine. Start takes an exclusive flock
//     on LockPath (/tmp/onecard-pcscd.lock) first, so test binaries of
//     different packages run by `go test ./...` in parallel, and the demo,
//     take turns. It waits up to Options.LockTimeout and then fails naming
//     the holder (ErrLocked).
//   - Start refuses (ErrForeign) when a pcscd it did not start is running:
//     it never kills a system or developer pcscd. A pcscd left behind by a
//     crashed Start (recognised by Marker in its "-c DIR" argument) is
//     killed, since the lock proves its owner is gone.
//   - It writes a reader.conf.d directory (os.MkdirTemp, named with
//     Marker) configuring Options.Readers vpcd readers. vpcd reader i
//     listens on CHANNELID 0x8C7B+2i and the next port, i.e. reader 0 on
//     TCP 35963 and 35964, reader 1 on 35965 and 35966, ... Reader i > 0
//     loads its own copy of the vpcd driver (outside reader.conf.d): the
//     driver keeps its state in static variables, so readers sharing one
//     library file would share slots. Reader 0 is named "Virtual PCD" (as
//     in the Debian default), reader i > 0 "Virtual PCD <i+1>" — distinct
//     names, because pcscd 1.9.9 gives two readers with the same
//     FRIENDLYNAME the same "00 00" names. PC/SC reader names are
//     "<friendly name> 00 00" and "... 00 01".
//   - It starts `pcscd -f -c DIR` (plus `-a -d` with Options.Debug) with
//     output to LogPath, and waits until scard.ListReaders shows every
//     virtual slot. pcscd dies with the process that started it
//     (Pdeathsig).
//   - Close stops pcscd (SIGTERM, then SIGKILL after 3 s), removes the
//     /run/pcscd files of a killed pcscd, deletes the directory and
//     releases the lock.
package pcscd

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/ebfe/scard"
)

// Paths and constants.
const (
	// LockPath is the machine-wide lock serialising pcscd users.
	LockPath = "/tmp/onecard-pcscd.lock"
	// DriverPath is the vpcd IFD handler installed by vsmartcard-vpcd.
	DriverPath = "/usr/lib/pcsc/drivers/serial/libifdvpcd.so"
	// RunDir holds pcscd's socket and pid file (fixed in pcscd 1.9.9).
	RunDir = "/run/pcscd"
	// FirstChannel is CHANNELID (= TCP port) of reader 0's first slot.
	FirstChannel = 0x8C7B
	// MaxReaders bounds Options.Readers (pcsc-lite allows 16 slots).
	MaxReaders = 8
	// Marker is part of every directory Start creates; a pcscd whose
	// command line contains it was started by this package.
	Marker = "onecard-pcsctest-"
)

// Errors of Start.
var (
	// ErrNotInstalled: pcscd or the vpcd driver is missing (make deps).
	ErrNotInstalled = errors.New("not installed")
	// ErrForeign: a pcscd this package did not start is running.
	ErrForeign = errors.New("a pcscd not started by onecard is running")
	// ErrLocked: another process held the pcscd lock too long.
	ErrLocked = errors.New("pcscd in use")
)

// Options configures Start. The zero value starts one vpcd reader (two
// slots) without debug logging.
type Options struct {
	// Readers is the number of vpcd readers, two slots each. Default 1,
	// at most MaxReaders.
	Readers int
	// Debug runs pcscd with -a -d (APDU and debug logging into LogPath).
	Debug bool
	// LockTimeout bounds the wait for LockPath. Default 5 min.
	LockTimeout time.Duration
	// StartTimeout bounds the wait for pcscd to list the readers.
	// Default 15 s.
	StartTimeout time.Duration
	// Owner names the lock's holder for whoever waits (a test name, "demo").
	Owner string
}

func (o Options) withDefaults() Options {
	if o.Readers <= 0 {
		o.Readers = 1
	}
	if o.LockTimeout <= 0 {
		o.LockTimeout = 5 * time.Minute
	}
	if o.StartTimeout <= 0 {
		o.StartTimeout = 15 * time.Second
	}
	return o
}

// Slot is one virtual card slot of the private pcscd.
type Slot struct {
	// Name is the PC/SC reader name, e.g. "Virtual PCD 00 00".
	Name string
	// Addr is where the card side connects: "127.0.0.1:35963", ...
	Addr string
	// Port is Addr's TCP port.
	Port int
	// Index is the slot's position in SCardListReaders order (the number
	// opensc-tool -r takes).
	Index int
}

// slotsFor returns the slots Options.Readers readers give.
func slotsFor(readers int) []Slot {
	var slots []Slot
	for i := range readers {
		for s := range 2 {
			port := FirstChannel + 2*i + s
			slots = append(slots, Slot{
				Name:  fmt.Sprintf("%s %02X %02X", friendlyName(i), 0, s),
				Addr:  fmt.Sprintf("127.0.0.1:%d", port),
				Port:  port,
				Index: len(slots),
			})
		}
	}
	return slots
}

func friendlyName(i int) string {
	if i == 0 {
		return "Virtual PCD"
	}
	return fmt.Sprintf("Virtual PCD %d", i+1)
}

// readerConf returns the reader.conf text for vpcd readers, one per entry
// of libs: reader i loads the driver at libs[i]. The vpcd driver keeps its
// slots in static variables, so two readers loaded from the same file
// share them and only one reader's slots ever see a card; every reader
// beyond the first therefore needs its own copy of the library (see
// driverCopies).
func readerConf(libs []string) string {
	var s string
	for i, lib := range libs {
		ch := FirstChannel + 2*i
		s += fmt.Sprintf("FRIENDLYNAME \"%s\"\nDEVICENAME   /dev/null:0x%X\nLIBPATH      %s\nCHANNELID    0x%X\n\n",
			friendlyName(i), ch, lib, ch)
	}
	return s
}

// WaitCard waits until the PC/SC reader name reports a card present
// (present = true) or empty, using SCardGetStatusChange, and returns the
// reader's last event state (event counter in the upper 16 bits). It
// returns ctx's error if that does not happen before ctx is done.
func WaitCard(ctx context.Context, name string, present bool) (scard.StateFlag, error) {
	sc, err := scard.EstablishContext()
	if err != nil {
		return 0, fmt.Errorf("wait for card in %q: %w", name, err)
	}
	defer func() { _ = sc.Release() }()
	rs := []scard.ReaderState{{Reader: name, CurrentState: scard.StateUnaware}}
	for {
		switch err := sc.GetStatusChange(rs, 100*time.Millisecond); err {
		case nil:
			ev := rs[0].EventState
			if (ev&scard.StatePresent != 0) == present {
				return ev, nil
			}
			rs[0].CurrentState = ev
		case scard.ErrTimeout:
		default:
			return 0, fmt.Errorf("wait for card in %q: %w", name, err)
		}
		if ctx.Err() != nil {
			return rs[0].EventState, fmt.Errorf("wait for card present=%v in %q (state %#x): %w",
				present, name, uint32(rs[0].EventState), ctx.Err())
		}
	}
}

// hasAll reports whether got contains every slot name.
func hasAll(got []string, slots []Slot) bool {
	for _, s := range slots {
		if !slices.Contains(got, s.Name) {
			return false
		}
	}
	return true
}
