package serial

import (
	"bytes"
	"sync"

	"github.com/onecard-hub/onecard/reader/serial/profile"
	"github.com/onecard-hub/onecard/reader/virtual"
)

// testCard is a minimal virtual.Card for the link tests: it answers SELECT
// of the SSSE application, GET CHALLENGE and READ BINARY of the PSAM
// terminal number, and can be told to tear the next command.
type testCard struct {
	mu       sync.Mutex
	atr      []byte
	powered  bool
	tearNext bool
	seen     [][]byte
}

var (
	selectSSSE = mustHex("00A404000F7378312E73682EC9E7BBE1B1A3D5CF")
	fciSSSE    = mustHex("6F11840F7378312E73682EC9E7BBE1B1A3D5CF9000")
	getChal    = mustHex("0084000008")
	readTermNo = mustHex("00B0960006")
	atrT0      = mustHex("3B6C00005353432043415244205633 30")
	atrT1      = mustHex("3B8801 5053414D20534D34 44")
)

func mustHex(s string) []byte {
	b, err := profile.ParseHex(s)
	if err != nil {
		panic(err)
	}
	return b
}

func newTestCard(atr []byte) *testCard { return &testCard{atr: atr} }

func (c *testCard) PowerOn() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.powered = true
	return append([]byte(nil), c.atr...)
}

func (c *testCard) PowerOff() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.powered = false
}

func (c *testCard) tear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.tearNext = true
}

func (c *testCard) Transmit(cmd []byte) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seen = append(c.seen, append([]byte(nil), cmd...))
	if c.tearNext {
		c.tearNext = false
		return nil, virtual.ErrTorn
	}
	switch {
	case !c.powered:
		return []byte{0x69, 0x85}, nil
	case bytes.Equal(cmd, selectSSSE):
		return append([]byte(nil), fciSSSE...), nil
	case bytes.Equal(cmd, getChal):
		return []byte{0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x90, 0x00}, nil
	case bytes.Equal(cmd, readTermNo):
		return []byte{0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x90, 0x00}, nil
	}
	return []byte{0x6D, 0x00}, nil
}

func (c *testCard) commands() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.seen)
}

func (c *testCard) isPowered() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.powered
}
