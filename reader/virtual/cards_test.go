package virtual_test

import (
	"bytes"
	"encoding/hex"
	"sync"

	"github.com/onecard-hub/onecard/reader/virtual"
)

// Small simulated cards for the reader tests. They implement just enough
// ISO 7816-4 to tell the transport apart from card behaviour.

var (
	// ATR of a second-generation social-security card (T=0, 13
	// historical bytes; reader-protocols / ssc-card-facts §1.7).
	atrT0 = mustHex("3B6D000000904A3001866033110000048A")
	// A short T=0 ATR for the echo card.
	atrEcho = mustHex("3B021450")
	// SELECT SSSE by name ("sx1.sh.社会保障").
	selectSSSE = mustHex("00A404000F7378312E73682EC9E7BBE1B1A3D5CF")
	// FCI the T=0 card returns for SSSE.
	fciSSSE = mustHex("6F11840F7378312E73682EC9E7BBE1B1A3D5CF")
)

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

// echoCard answers SELECT with 9000, GET CHALLENGE with Le counter bytes
// and anything else with its command data followed by 9000. It counts the
// commands it applied and can be torn (virtual.Tearable).
type echoCard struct {
	mu      sync.Mutex
	powered bool
	applied int
	torn    bool
	ctr     byte
}

func (c *echoCard) PowerOn() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.powered = true
	return append([]byte(nil), atrEcho...)
}

func (c *echoCard) PowerOff() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.powered = false
}

func (c *echoCard) SetTorn(on bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.torn = on
}

func (c *echoCard) Applied() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.applied
}

func (c *echoCard) Transmit(cmd []byte) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(cmd) < 4 {
		return []byte{0x67, 0x00}, nil
	}
	c.applied++
	var resp []byte
	switch cmd[1] {
	case 0xA4:
		resp = []byte{0x90, 0x00}
	case 0x84:
		n := 8
		if len(cmd) == 5 && cmd[4] != 0 {
			n = int(cmd[4])
		}
		for range n {
			c.ctr++
			resp = append(resp, c.ctr)
		}
		resp = append(resp, 0x90, 0x00)
	default:
		if len(cmd) > 5 {
			resp = append(resp, cmd[5:5+min(int(cmd[4]), len(cmd)-5)]...)
		}
		resp = append(resp, 0x90, 0x00)
	}
	if c.torn {
		c.torn = false
		return nil, virtual.ErrTorn
	}
	return resp, nil
}

// t0Card behaves like a T=0 card: SELECT SSSE answers 61xx and the FCI
// comes with GET RESPONSE; READ RECORD with the wrong Le answers 6Cxx.
type t0Card struct {
	mu      sync.Mutex
	pending []byte
	record  []byte
	torn    bool
}

func (c *t0Card) SetTorn(on bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.torn = on
}

func newT0Card() *t0Card {
	return &t0Card{record: []byte{0x01, 0x03, 'A', 'B', 'C'}}
}

func (c *t0Card) PowerOn() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pending = nil
	return append([]byte(nil), atrT0...)
}

func (c *t0Card) PowerOff() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pending = nil
}

func (c *t0Card) Transmit(cmd []byte) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.torn {
		c.torn = false
		return nil, virtual.ErrTorn
	}
	if len(cmd) < 4 {
		return []byte{0x67, 0x00}, nil
	}
	switch {
	case cmd[1] == 0xA4 && bytes.Equal(cmd, selectSSSE):
		c.pending = fciSSSE
		return []byte{0x61, byte(len(fciSSSE))}, nil
	case cmd[1] == 0xA4:
		return []byte{0x6A, 0x82}, nil
	case cmd[1] == 0xC0 && c.pending != nil:
		p := c.pending
		c.pending = nil
		return append(append([]byte(nil), p...), 0x90, 0x00), nil
	case cmd[1] == 0xC0:
		return []byte{0x69, 0x85}, nil
	case cmd[1] == 0xB2:
		if len(cmd) != 5 || int(cmd[4]) != len(c.record) {
			return []byte{0x6C, byte(len(c.record))}, nil
		}
		return append(append([]byte(nil), c.record...), 0x90, 0x00), nil
	}
	return []byte{0x6D, 0x00}, nil
}

var (
	_ virtual.Card     = (*echoCard)(nil)
	_ virtual.Tearable = (*echoCard)(nil)
	_ virtual.Card     = (*t0Card)(nil)
)
