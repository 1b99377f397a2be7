package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/onecard-hub/onecard/apdu"
	"github.com/onecard-hub/onecard/reader"
)

// "onecard apdu --reader R [flags] HEX..." sends APDUs; cmd_apdu.go hands
// every "onecard apdu" command line that starts with a flag to runAPDUSend.

const apduSendUsage = "(--reader R [--slot N] | --sim CARDFILE) [--serial PORT,profile=ID]... [--raw] [--trace] [--timeout D] HEX..."

// runAPDUSend sends each HEX argument as one command APDU to the card in
// the chosen reader slot, inside one transaction, and prints the responses
// with the meaning of their status words. PIN blocks and key material are
// masked in what it prints.
func runAPDUSend(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("apdu", apduSendUsage, stderr)
	rf := addReaderFlags(fs)
	raw := fs.Bool("raw", false, "send each APDU as is: no GET RESPONSE (61xx) or Le correction (6Cxx)")
	trace := fs.Bool("trace", false, "print every APDU exchanged with the card to stderr (secrets masked)")
	timeout := fs.Duration("timeout", 30*time.Second, "give up after this long")
	// Accept flags before, between and after the APDUs.
	var hexArgs []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return err
			}
			return usagef("%v", err)
		}
		args = fs.Args()
		if len(args) == 0 {
			break
		}
		hexArgs = append(hexArgs, args[0])
		args = args[1:]
	}
	if rf.reader == "" && rf.sim == "" {
		fs.Usage()
		return usagef("missing --reader (or --sim CARDFILE)")
	}
	if len(hexArgs) == 0 {
		fs.Usage()
		return usagef("missing APDU (one hex argument per command APDU)")
	}
	cmds := make([][]byte, len(hexArgs))
	for i, a := range hexArgs {
		b, err := parseHexArgs([]string{a})
		if err != nil {
			return usagef("APDU %d: %v", i+1, err)
		}
		if len(b) < 4 {
			return usagef("APDU %d is %d bytes; a command APDU has at least 4 (each argument is one APDU: quote it to include spaces)", i+1, len(b))
		}
		cmds[i] = b
	}

	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	slot, _, closeSlots, err := rf.open(ctx, stderr)
	if err != nil {
		return fmt.Errorf("%w%s", err, errorHint(err))
	}
	defer closeSlots()
	id := slot.ID()
	if *trace {
		slot = reader.Traced(slot, func(ev reader.TraceEvent) { fmt.Fprintf(stderr, "trace: %s\n", ev) })
	}
	atr, err := slot.Connect(ctx)
	if err != nil {
		return fmt.Errorf("%w%s", err, errorHint(err))
	}
	defer func() { _ = slot.Disconnect() }()
	fmt.Fprintf(stdout, "# %s ATR %s\n", id, spaced(atr))
	tx, err := reader.Begin(ctx, slot)
	if err != nil {
		return fmt.Errorf("%w%s", err, errorHint(err))
	}
	defer func() { _ = tx.End() }()
	pending := false // the last response was 61xx to a command with secret output
	for i, cmd := range cmds {
		secret := pending && cmd[1] == 0xC0 // GET RESPONSE continues it
		sw, secretOut, err := sendOne(ctx, stdout, tx, cmd, *raw, secret)
		if err != nil {
			return fmt.Errorf("APDU %d: %w", i+1, err)
		}
		pending = secretOut && sw>>8 == 0x61
	}
	return tx.End()
}

// sendOne sends one APDU and prints it and its response, with PIN blocks
// and key material masked (all response data when secret is set). It
// returns the status word and whether the response data was secret.
func sendOne(ctx context.Context, w io.Writer, t apdu.Transmitter, cmd []byte, raw, secret bool) (uint16, bool, error) {
	shown, masked := reader.RedactCommand(cmd)
	fmt.Fprintf(w, "> %s\n", reader.MaskedHex(shown, true, masked))
	var resp apdu.Response
	if raw {
		b, err := t.Transmit(ctx, cmd)
		if err != nil {
			return 0, false, err
		}
		if resp, err = apdu.ParseResponse(b); err != nil {
			return 0, false, err
		}
	} else {
		c, err := apdu.ParseCommand(cmd)
		if err != nil {
			return 0, false, fmt.Errorf("%w (use --raw to send it anyway)", err)
		}
		if resp, err = apdu.Exchange(ctx, t, c); err != nil {
			return 0, false, err
		}
	}
	_, secretResp, _ := reader.SecretCommand(cmd)
	secretResp = secretResp || secret
	out, respMasked := reader.RedactResponse(resp.Bytes(), secretResp)
	fmt.Fprintf(w, "< %s\n", reader.MaskedHex(out, false, respMasked))
	en, zh := apdu.StatusText(resp.SW)
	fmt.Fprintf(w, "  SW %04X: %s (%s)\n", resp.SW, en, zh)
	return resp.SW, secretResp, nil
}

func spaced(b []byte) string { return reader.MaskedHex(b, false, false) }

// pickSlot chooses the slot for --reader q and --slot n (-1: not given).
// q matches a slot or reader ID exactly, else part of a slot or reader
// name or ID (case-insensitive). A query that fits several slots needs
// --slot, or a longer query; the error lists the candidates.
func pickSlot(readers []reader.ReaderInfo, q string, n int) (reader.SlotInfo, error) {
	type cand struct {
		r reader.ReaderInfo
		i int
	}
	var exact, slots []cand
	var rdrs []reader.ReaderInfo
	lq := strings.ToLower(q)
	for _, r := range readers {
		readerHit := r.ID == q || strings.Contains(strings.ToLower(r.ID), lq) || strings.Contains(strings.ToLower(r.Name), lq)
		slotHit := false
		for i, s := range r.Slots {
			switch {
			case s.ID == q:
				exact = append(exact, cand{r, i})
			case strings.Contains(strings.ToLower(s.ID), lq) || strings.Contains(strings.ToLower(s.Name), lq):
				slots = append(slots, cand{r, i})
				slotHit = true
			}
		}
		if r.ID == q {
			rdrs = []reader.ReaderInfo{r}
			slots = nil
			break
		}
		if readerHit || slotHit {
			rdrs = append(rdrs, r)
		}
	}
	if len(exact) == 1 && n < 0 {
		return exact[0].r.Slots[exact[0].i], nil
	}
	if n >= 0 {
		switch {
		case len(rdrs) == 0:
			return reader.SlotInfo{}, fmt.Errorf("no reader matches %q (see 'onecard readers')", q)
		case len(rdrs) > 1:
			return reader.SlotInfo{}, fmt.Errorf("%q matches several readers: %s", q, readerIDs(rdrs))
		case n >= len(rdrs[0].Slots):
			return reader.SlotInfo{}, fmt.Errorf("reader %s has no slot %d (it has %d)", rdrs[0].ID, n, len(rdrs[0].Slots))
		}
		return rdrs[0].Slots[n], nil
	}
	switch {
	case len(slots) == 1:
		return slots[0].r.Slots[slots[0].i], nil
	case len(rdrs) == 1 && len(rdrs[0].Slots) == 1:
		return rdrs[0].Slots[0], nil
	case len(rdrs) == 0:
		return reader.SlotInfo{}, fmt.Errorf("no reader matches %q (see 'onecard readers')", q)
	}
	var ids []string
	for _, r := range rdrs {
		for _, s := range r.Slots {
			ids = append(ids, s.ID)
		}
	}
	return reader.SlotInfo{}, fmt.Errorf("%q matches several slots (%s): give --slot N or a slot ID", q, strings.Join(ids, ", "))
}

func readerIDs(rs []reader.ReaderInfo) string {
	ids := make([]string, len(rs))
	for i, r := range rs {
		ids[i] = r.ID
	}
	return strings.Join(ids, ", ")
}
