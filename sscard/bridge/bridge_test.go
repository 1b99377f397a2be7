package bridge_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/onecard-hub/onecard/agent"
	"github.com/onecard-hub/onecard/sscard/bridge"
	"github.com/onecard-hub/onecard/terminal/national"
)

const (
	cardName = "阿依古丽·买买提艾力·阿不都热依木江"
	cardSSN  = "650102199208154026"
)

// startAgent runs an agent with the simulated reader "virtual:t" (the
// generation-3 test card and the PSAM) and native clients without a token
// admitted (masked).
func startAgent(t *testing.T) *agent.Agent {
	return startAgentWith(t, "keys: {test: demo}\nreaders: {pcsc: false, sim: [{name: t, card: ssc-gen3.yaml, psam: psam.yaml}]}\n")
}

// startAgentWith runs an agent with the given keys and readers YAML.
func startAgentWith(t *testing.T, keysReaders string) *agent.Agent {
	t.Helper()
	dir := t.TempDir()
	for _, n := range []string{"ssc-gen3.yaml", "psam.yaml"} {
		b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "cards", n))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, n), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	yml := fmt.Sprintf(`
listen: 127.0.0.1:0
admin: off
state_dir: %q
terminal: {device_id: T1}
kiosk: {allow_no_origin: true}
`, dir) + keysReaders
	cfg, err := agent.ParseConfig([]byte(yml), dir)
	if err != nil {
		t.Fatal(err)
	}
	a, err := agent.New(agent.Options{Config: cfg, Version: "test", LogOutput: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("agent: %v", err)
		}
	})
	return a
}

// ready waits until the agent reads the card.
func ready(t *testing.T, b *bridge.Bridge) bridge.Result {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := b.ReadCardBas(context.Background(), 3)
		if r.Code == 0 || time.Now().After(deadline) {
			return r
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestBridge(t *testing.T) {
	a := startAgent(t)
	full := bridge.New(bridge.Options{Addr: a.KioskAddr(), TokenFile: a.NativeTokenPath()})
	r := ready(t, full)
	b, err := national.ParseBasic(r.Out)
	if r.Code != 0 || err != nil || b.Name != cardName || b.PersonID != cardSSN || b.DeviceID != "T1" {
		t.Fatalf("with the token: %+v (%v)", r, err)
	}

	t.Run("masked without token", func(t *testing.T) {
		masked := bridge.New(bridge.Options{Addr: a.KioskAddr(), TokenFile: filepath.Join(t.TempDir(), "none")})
		r := masked.ReadCardBas(context.Background(), 1)
		b, err := national.ParseBasic(r.Out)
		if r.Code != 0 || err != nil || b.PersonID == cardSSN || !strings.Contains(b.PersonID, "*") {
			t.Errorf("allow_no_origin without the token: %+v (%v); want masked", r, err)
		}
	})

	t.Run("concurrent", func(t *testing.T) {
		var wg sync.WaitGroup
		got := make([]bridge.Result, 8)
		for i := range got {
			wg.Go(func() { got[i] = full.ReadCardBas(context.Background(), 1+i%4) })
		}
		wg.Wait()
		for i, g := range got {
			if g != r {
				t.Errorf("call %d: %+v, want %+v", i, g, r)
			}
		}
	})

	t.Run("PIN source", func(t *testing.T) {
		for _, tt := range []struct {
			name string
			src  bridge.PINSource
			code int
		}{
			{"cancelled", func(context.Context, bridge.PINPurpose) ([]byte, int) { return nil, bridge.CodePINCancelled }, bridge.CodePINCancelled},
			{"too short", func(context.Context, bridge.PINPurpose) ([]byte, int) { return []byte("12"), 0 }, bridge.CodePINLength},
			{"not digits", func(context.Context, bridge.PINPurpose) ([]byte, int) { return []byte("12ab56"), 0 }, bridge.CodePINLength},
			{"right", func(context.Context, bridge.PINPurpose) ([]byte, int) { return []byte("123456"), 0 }, 0},
			{"no source", nil, bridge.CodeUnsupported},
		} {
			t.Run(tt.name, func(t *testing.T) {
				pb := bridge.New(bridge.Options{Addr: a.KioskAddr(), TokenFile: a.NativeTokenPath(), PIN: tt.src})
				if r := pb.VerifyPIN(context.Background(), 1); r.Code != tt.code {
					t.Errorf("VerifyPIN = %+v, want %d", r, tt.code)
				}
			})
		}
		var pin []byte
		pb := bridge.New(bridge.Options{Addr: a.KioskAddr(), TokenFile: a.NativeTokenPath(),
			PIN: func(context.Context, bridge.PINPurpose) ([]byte, int) { pin = []byte("123456"); return pin, 0 }})
		if r := pb.VerifyPIN(context.Background(), 1); r.Code != 0 || string(pin) != "\x00\x00\x00\x00\x00\x00" {
			t.Errorf("VerifyPIN = %+v; the PIN must be zeroed after use: %q", r, pin)
		}
	})

	t.Run("reader info", func(t *testing.T) {
		sn, term, code := full.ReaderInfo(context.Background())
		if code != 0 || sn != "virtual:t" || term != "" {
			t.Errorf("ReaderInfo = %q, %q, %d", sn, term, code)
		}
		other := bridge.New(bridge.Options{Addr: a.KioskAddr(), TokenFile: a.NativeTokenPath(), Reader: "nonesuch"})
		if _, _, code := other.ReaderInfo(context.Background()); code != bridge.CodeReaderConnect {
			t.Errorf("ReaderInfo of an unknown lane = %d, want -11", code)
		}
		if r := other.ReadCardBas(context.Background(), 1); r.Code != bridge.CodeReaderConnect {
			t.Errorf("ReadCardBas of an unknown lane = %+v, want -11", r)
		}
	})
}

// TestBridgeDeadlines: an agent address that accepts connections but
// never answers fails the call with -11 once ConnectTimeout passes; a
// call whose context is already done fails at once.
func TestBridgeDeadlines(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	defer func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	}()
	var logs strings.Builder
	var logMu sync.Mutex
	b := bridge.New(bridge.Options{Addr: l.Addr().String(), TokenFile: "/nonexistent", ConnectTimeout: 100 * time.Millisecond,
		Logger: newLogger(&logMu, &logs)})
	if r := b.ReadCardBas(context.Background(), 1); r.Code != bridge.CodeReaderConnect || r.Out != "读卡器连接错|" {
		t.Errorf("silent agent: %+v", r)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if r := b.Step1(ctx, 1); r.Code != bridge.CodeReaderConnect {
		t.Errorf("cancelled: %+v", r)
	}
	logMu.Lock()
	defer logMu.Unlock()
	if n := strings.Count(logs.String(), "cannot reach the onecard agent"); n != 2 {
		t.Errorf("%d log lines, want 2:\n%s", n, logs.String())
	}
}

// TestBridgeDegraded: without PSAM and keys the agent reads the public
// fields only; what needs the holder data fails with the agent's reason
// (-2201), with the public fields where the layout has them.
func TestBridgeDegraded(t *testing.T) {
	a := startAgentWith(t, "readers: {pcsc: false, sim: [{name: t, card: ssc-gen3.yaml}]}\n")
	b := bridge.New(bridge.Options{Addr: a.KioskAddr(), TokenFile: a.NativeTokenPath(),
		PIN: func(context.Context, bridge.PINPurpose) ([]byte, int) { return []byte("123456"), 0 }})
	var bas bridge.Result
	deadline := time.Now().Add(10 * time.Second)
	for bas = b.ReadCardBas(context.Background(), 1); bas.Code != bridge.CodeNoPSAM && time.Now().Before(deadline); bas = b.ReadCardBas(context.Background(), 1) {
		time.Sleep(20 * time.Millisecond)
	}
	basic, err := national.ParseBasic(bas.Out)
	if bas.Code != bridge.CodeNoPSAM || err != nil || basic.Name != "" {
		t.Fatalf("ReadCardBas = %+v (%v); want -2201 and the public fields", bas, err)
	}
	if r := b.ReadCard(context.Background(), 1, 2, "", "SSSEEF05|01|03|$"); r.Code != 0 || r.Out != "SSSEEF05|"+basic.CardID+"|"+basic.SpecVersion+"|$" {
		t.Errorf("ReadCard of public tags = %+v", r)
	}
	if r := b.ReadCard(context.Background(), 1, 2, "", "SSSEEF05|01|$SSSEEF06|08|$"); r.Code != bridge.CodeNoPSAM || r.Out != "SSSEEF05|"+basic.CardID+"|$SSSEEF06||$" {
		t.Errorf("ReadCard of holder tags = %+v; want -2201 with the public fields", r)
	}
	if r := b.DoDebit(context.Background(), 1, basic.CardID+"|B98765432|", "100|"); r.Code != bridge.CodeNoPSAM || r.Out != "无PSAM卡|" {
		t.Errorf("DoDebit checking the card number = %+v; want -2201", r)
	}
}
