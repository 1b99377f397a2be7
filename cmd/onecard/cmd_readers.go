package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/onecard-hub/onecard/reader"
	"github.com/onecard-hub/onecard/reader/pcsc"
)

func init() {
	register(command{
		name:    "readers",
		summary: "list card readers, their slots and cards",
		run:     runReaders,
	})
}

// readerBackends returns the backends the reader commands look at. Only
// PC/SC for now; serial readers join when they have a configuration.
func readerBackends() []reader.Backend {
	return []reader.Backend{pcsc.NewBackend(pcsc.Options{})}
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

// listReaders asks every backend; it fails only when every backend does.
func listReaders(ctx context.Context, backends []reader.Backend) (listedReaders, error) {
	var out listedReaders
	var errs []error
	for _, b := range backends {
		rs, err := b.Readers(ctx)
		if err != nil {
			out.Errors = append(out.Errors, backendError{b.Name(), err})
			errs = append(errs, fmt.Errorf("%s: %w", b.Name(), err))
			continue
		}
		out.Readers = append(out.Readers, rs...)
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
		return " (another program holds the card; lsof +E /run/pcscd/pcscd.comm shows which)"
	}
	return ""
}

func runReaders(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("readers", "[--json]", stderr)
	asJSON := fs.Bool("json", false, "print JSON instead of text")
	timeout := fs.Duration("timeout", 10*time.Second, "give up after this long")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	list, err := listReaders(ctx, readerBackends())
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
