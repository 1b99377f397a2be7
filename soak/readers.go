package soak

import (
	"context"
	"fmt"

	firmwareprofiles "github.com/onecard-hub/onecard/firmware-profiles"
	"github.com/onecard-hub/onecard/internal/simcard"
	"github.com/onecard-hub/onecard/reader"
	"github.com/onecard-hub/onecard/reader/pcsc"
	"github.com/onecard-hub/onecard/reader/serial"
	"github.com/onecard-hub/onecard/reader/virtual"
)

// agentReaders are an agent's user-card and PSAM slots. local and cards
// are set for in-process readers only: the agent itself then presents,
// pulls and tears its cards.
type agentReaders struct {
	user, psam reader.Slot
	local      *virtual.Slot
	cards      []*simcard.SSC
	close      func()
}

// openReaders opens the reader kind cfg names (see AgentConfig). Errors:
// a card file that is not an ssc, the card files', the profile's, the
// serial port's.
func openReaders(ctx context.Context, cfg AgentConfig) (*agentReaders, error) {
	switch {
	case cfg.PCSCUser != "":
		user := pcsc.NewSlot(cfg.PCSCUser, pcsc.Options{})
		psam := pcsc.NewSlot(cfg.PCSCPSAM, pcsc.Options{})
		return &agentReaders{user: user, psam: psam, close: func() { _ = user.Disconnect(); _ = psam.Disconnect() }}, nil
	case cfg.SerialPort != "":
		p, err := firmwareprofiles.Load(cfg.SerialProfile)
		if err != nil {
			return nil, fmt.Errorf("open serial reader: %w", err)
		}
		rd, err := serial.Open(ctx, serial.Options{Port: cfg.SerialPort, Profile: p})
		if err != nil {
			return nil, fmt.Errorf("open serial reader: %w", err)
		}
		user, err := rd.Slot("user")
		if err != nil {
			_ = rd.Close()
			return nil, fmt.Errorf("open serial reader: %w", err)
		}
		psam, err := rd.Slot("psam1")
		if err != nil {
			_ = rd.Close()
			return nil, fmt.Errorf("open serial reader: %w", err)
		}
		return &agentReaders{user: user, psam: psam, close: func() { _ = rd.Close() }}, nil
	}
	rd := &agentReaders{cards: make([]*simcard.SSC, len(cfg.Cards)), close: func() {}}
	for i, f := range cfg.Cards {
		c, err := simcard.LoadFile(f)
		if err != nil {
			return nil, err
		}
		ssc, ok := c.(*simcard.SSC)
		if !ok {
			return nil, fmt.Errorf("card file %s is not an ssc", f)
		}
		rd.cards[i] = ssc
	}
	psam, err := simcard.LoadFile(cfg.PSAM)
	if err != nil {
		return nil, err
	}
	rd.local = virtual.NewSlot("user-"+cfg.TerminalID, nil)
	rd.user, rd.psam = rd.local, virtual.NewSlot("psam-"+cfg.TerminalID, psam)
	return rd, nil
}
