package pcsc_test

import (
	"bufio"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ebfe/scard"

	"github.com/onecard-hub/onecard/internal/pcsctest"
	"github.com/onecard-hub/onecard/internal/simcard"
	"github.com/onecard-hub/onecard/reader/virtual"
)

// holdEnv makes the test binary a helper process that holds a PC/SC
// reader like another program would (see TestMain and startHolder).
const holdEnv = "ONECARD_PCSC_TEST_HOLD"

func TestMain(m *testing.M) {
	if spec := os.Getenv(holdEnv); spec != "" {
		os.Exit(hold(spec))
	}
	os.Exit(m.Run())
}

// hold runs in the helper process: spec is "exclusive:<reader>" (connect
// exclusively) or "tx:<reader>" (connect shared and hold a transaction).
// It prints "ready" once it holds the reader and lets go when stdin closes.
func hold(spec string) int {
	mode, name, ok := strings.Cut(spec, ":")
	if !ok {
		fmt.Fprintln(os.Stderr, "bad spec", spec)
		return 2
	}
	sc, err := scard.EstablishContext()
	if err != nil {
		fmt.Fprintln(os.Stderr, "establish:", err)
		return 1
	}
	defer func() { _ = sc.Release() }()
	share := scard.ShareShared
	if mode == "exclusive" {
		share = scard.ShareExclusive
	}
	card, err := sc.Connect(name, share, scard.ProtocolAny)
	if err != nil {
		fmt.Fprintln(os.Stderr, "connect:", err)
		return 1
	}
	defer func() { _ = card.Disconnect(scard.LeaveCard) }()
	if mode == "tx" {
		if err := card.BeginTransaction(); err != nil {
			fmt.Fprintln(os.Stderr, "begin:", err)
			return 1
		}
		defer func() { _ = card.EndTransaction(scard.LeaveCard) }()
	}
	fmt.Println("ready")
	_, _ = io.Copy(io.Discard, os.Stdin)
	return 0
}

// holder is a helper process holding a reader.
type holder struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	once  sync.Once
}

// startHolder starts a second process (this test binary) that holds the
// reader name in mode "exclusive" or "tx", and waits until it does.
func startHolder(t *testing.T, mode, name string) *holder {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), holdEnv+"="+mode+":"+name)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	h := &holder{cmd: cmd, stdin: stdin}
	t.Cleanup(h.release)
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "ready" {
		h.release()
		t.Fatalf("holder process: %q, %v (exit %v)", line, err, cmd.ProcessState)
	}
	return h
}

// release makes the holder let go and waits for it to exit.
func (h *holder) release() {
	h.once.Do(func() {
		_ = h.stdin.Close()
		_ = h.cmd.Wait()
	})
}

// testCard is a small simulated card: it echoes a command's data followed
// by 9000, after an optional delay. It counts the commands it applied.
type testCard struct {
	atr     []byte
	delay   atomic.Int64 // nanoseconds
	applied atomic.Int64
}

func newTestCard(atr string) *testCard { return &testCard{atr: mustHex(atr)} }

func (c *testCard) PowerOn() []byte { return append([]byte(nil), c.atr...) }
func (c *testCard) PowerOff()       {}

func (c *testCard) Transmit(cmd []byte) ([]byte, error) {
	if d := time.Duration(c.delay.Load()); d > 0 {
		time.Sleep(d)
	}
	c.applied.Add(1)
	var data []byte
	if len(cmd) > 5 {
		data = cmd[5:]
		if n := int(cmd[4]); n > 0 && n <= len(data) {
			data = data[:n]
		}
	}
	return append(append([]byte(nil), data...), 0x90, 0x00), nil
}

func mustHex(s string) []byte {
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		panic(err)
	}
	return b
}

// loadCard copies testdata/cards/name to a temp dir and loads it.
func loadCard(t testing.TB, name string) virtual.Card {
	t.Helper()
	_, here, _, _ := runtime.Caller(0)
	data, err := os.ReadFile(filepath.Join(filepath.Dir(here), "..", "..", "testdata", "cards", name))
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(dst, data, 0o600); err != nil {
		t.Fatal(err)
	}
	card, err := simcard.LoadFile(dst)
	if err != nil {
		t.Fatalf("load %s: %v", name, err)
	}
	return card
}

// bench is a pcscd with vpcd readers and one bridge per slot.
type bench struct {
	env     *pcsctest.Env
	bridges []*virtual.VPCD
}

// startPCSC starts pcscd with the given number of vpcd readers (two slots
// each) and an empty bridge on every slot; everything stops at cleanup.
func startPCSC(t testing.TB, readers int) *bench {
	t.Helper()
	env := pcsctest.Start(t, pcsctest.Options{Readers: readers})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() {
		cancel()
		wg.Wait()
	})
	b := &bench{env: env}
	for _, s := range env.Slots {
		v := virtual.NewVPCD(virtual.VPCDOptions{Addr: s.Addr, RetryMax: 100 * time.Millisecond})
		b.bridges = append(b.bridges, v)
		wg.Go(func() { _ = v.Run(ctx) })
	}
	return b
}

// insert puts card into slot i and waits until pcscd sees it.
func (b *bench) insert(t testing.TB, i int, card virtual.Card) {
	t.Helper()
	if st := b.bridges[i].Status(); st.Inserted && b.bridges[i].Card() != card {
		// Swapping cards: let pcscd see the removal first, or it may
		// still report the old card present.
		b.remove(t, i)
	}
	b.bridges[i].Insert(card)
	b.wait(t, i, true)
}

// remove takes the card out of slot i and waits until pcscd sees it.
func (b *bench) remove(t testing.TB, i int) {
	t.Helper()
	b.bridges[i].Remove()
	b.wait(t, i, false)
}

func (b *bench) wait(t testing.TB, i int, present bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := pcsctest.WaitCard(ctx, b.env.Slots[i].Name, present); err != nil {
		t.Fatal(err)
	}
}

func (b *bench) name(i int) string { return b.env.Slots[i].Name }

// tctx returns a context bounded for one test step.
func tctx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// scardCode returns the PC/SC code inside err, or 0.
func scardCode(err error) scard.Error {
	var e scard.Error
	if errors.As(err, &e) {
		return e
	}
	return 0
}
