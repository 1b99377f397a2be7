package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/onecard-hub/onecard/reader"
)

func init() {
	register(command{
		name:    "readers",
		summary: "list card readers, their slots and cards",
		run:     runReaders,
	})
}

// listedReaders is the result of asking every backend for its readers.
type listedReaders struct {
	Readers []reader.ReaderInfo
	Errors  []backendError
}

type backendError struct {
	Backend string
	Err     error
}

// listReaders asks every backend. The readers of a backend that fails
// only in part (a serial port missing among several) are kept, and its
// error is recorded too. It fails only when every backend failed without
// listing any reader.
func listReaders(ctx context.Context, backends []reader.Backend) (listedReaders, error) {
	var out listedReaders
	var errs []error
	for _, b := range backends {
		rs, err := b.Readers(ctx)
		out.Readers = append(out.Readers, rs...)
		if err != nil {
			out.Errors = append(out.Errors, backendError{b.Name(), err})
			if len(rs) == 0 {
				errs = append(errs, fmt.Errorf("%s: %w", b.Name(), err))
			}
		}
	}
	if len(backends) > 0 && len(errs) == len(backends) {
		return out, fmt.Errorf("list readers: %w", errors.Join(errs...))
	}
	return out, nil
}

// errorHint adds what to do for the common reader failures.
func errorHint(err error) string {
	switch {
	case errors.Is(err, reader.ErrServiceDown):
		return " (is pcscd running? e.g. systemctl start pcscd)"
	case errors.Is(err, reader.ErrReaderBusy):
		return " (another program holds the card or port; lsof +E /run/pcscd/pcscd.comm or lsof PORT shows which)"
	case errors.Is(err, reader.ErrReaderGone):
		return " (is the reader plugged in and the --serial port right? ls /dev/serial/by-id)"
	case errors.Is(err, reader.ErrTimeout):
		return " (the reader does not answer: check its power, the cable, and the profile and baud of --serial)"
	}
	return ""
}

func runReaders(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("readers", "[--json] [--serial PORT,profile=ID]... [--sim CARDFILE [--sim-psam CARDFILE]]", stderr)
	asJSON := fs.Bool("json", false, "print JSON instead of text")
	bf := addBackendFlags(fs)
	timeout := fs.Duration("timeout", 10*time.Second, "give up after this long")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usagef("%v", err)
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	set, err := bf.build()
	if err != nil {
		return err
	}
	defer set.close()
	list, err := listReaders(ctx, set.backends)
	if *asJSON {
		if jerr := writeReadersJSON(stdout, list); jerr != nil {
			return jerr
		}
		return err
	}
	if err != nil { // every backend failed
		return fmt.Errorf("%w%s", err, errorHint(err))
	}
	writeReadersText(stdout, list)
	for _, e := range list.Errors {
		fmt.Fprintf(stderr, "%s: %v%s\n", e.Backend, e.Err, errorHint(e.Err))
	}
	return nil
}

func writeReadersText(w io.Writer, list listedReaders) {
	if len(list.Readers) == 0 && len(list.Errors) == 0 {
		fmt.Fprintln(w, "no readers")
		return
	}
	for _, r := range list.Readers {
		fmt.Fprintf(w, "%s\t%s\t%s", r.Backend, r.ID, r.Name)
		if r.Serial != "" {
			fmt.Fprintf(w, "\tserial %s", r.Serial)
		}
		fmt.Fprintln(w)
		for i, s := range r.Slots {
			fmt.Fprintf(w, "  slot %d\t%s\t%s\n", i, s.ID, slotText(s))
		}
	}
}

func slotText(s reader.SlotInfo) string {
	var parts []string
	switch {
	case !s.Present:
		parts = append(parts, "empty")
	case s.Mute:
		parts = append(parts, "card (mute: re-insert it)")
	default:
		parts = append(parts, fmt.Sprintf("card ATR %X", s.ATR))
	}
	switch {
	case s.Exclusive:
		parts = append(parts, "held exclusively by another program")
	case s.InUse:
		parts = append(parts, "in use")
	}
	return strings.Join(parts, ", ")
}

// JSON view: ATRs in hex rather than base64.
type readersJSON struct {
	Readers []readerJSON       `json:"readers"`
	Errors  []backendErrorJSON `json:"errors,omitempty"`
}

type readerJSON struct {
	ID      string     `json:"id"`
	Name    string     `json:"name"`
	Backend string     `json:"backend"`
	Serial  string     `json:"serial,omitempty"`
	Slots   []slotJSON `json:"slots"`
}

type slotJSON struct {
	Index     int    `json:"index"`
	ID        string `json:"id"`
	Name      string `json:"name"`
	Present   bool   `json:"present"`
	ATR       string `json:"atr,omitempty"`
	Mute      bool   `json:"mute,omitempty"`
	Exclusive bool   `json:"exclusive,omitempty"`
	InUse     bool   `json:"in_use,omitempty"`
}

type backendErrorJSON struct {
	Backend string `json:"backend"`
	Error   string `json:"error"`
}

func writeReadersJSON(w io.Writer, list listedReaders) error {
	out := readersJSON{Readers: []readerJSON{}}
	for _, r := range list.Readers {
		rj := readerJSON{ID: r.ID, Name: r.Name, Backend: r.Backend, Serial: r.Serial, Slots: []slotJSON{}}
		for i, s := range r.Slots {
			rj.Slots = append(rj.Slots, slotJSON{
				Index: i, ID: s.ID, Name: s.Name, Present: s.Present, ATR: strings.ToUpper(hex.EncodeToString(s.ATR)),
				Mute: s.Mute, Exclusive: s.Exclusive, InUse: s.InUse,
			})
		}
		out.Readers = append(out.Readers, rj)
	}
	for _, e := range list.Errors {
		out.Errors = append(out.Errors, backendErrorJSON{e.Backend, e.Err.Error()})
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}
