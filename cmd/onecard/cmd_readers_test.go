package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/onecard-hub/onecard/internal/pcsctest"
	"github.com/onecard-hub/onecard/internal/simcard"
	"github.com/onecard-hub/onecard/reader/virtual"
)

// rdRun runs onecard in-process and returns its exit code and output.
func rdRun(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	code := run(ctx, args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// rdCard loads a copy of testdata/cards/name.
func rdCard(t *testing.T, name string) virtual.Card {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "testdata", "cards", name))
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	card, err := simcard.LoadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return card
}

// rdPCSC starts pcscd with one vpcd reader and puts the given cards (nil:
// empty) into its two slots, waiting until pcscd sees them.
func rdPCSC(t *testing.T, cards ...virtual.Card) *pcsctest.Env {
	t.Helper()
	env := pcsctest.Start(t, pcsctest.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() {
		cancel()
		wg.Wait()
	})
	for i, card := range cards {
		v := virtual.NewVPCD(virtual.VPCDOptions{Addr: env.Slots[i].Addr, Card: card})
		wg.Go(func() { _ = v.Run(ctx) })
		if card != nil {
			wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
			_, err := pcsctest.WaitCard(wctx, env.Slots[i].Name, true)
			wcancel()
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	return env
}

func atrHex(card virtual.Card) string {
	atr := card.PowerOn()
	card.PowerOff()
	return strings.ToUpper(hex.EncodeToString(atr))
}

func TestReadersCommand(t *testing.T) {
	ssc := rdCard(t, "ssc-gen2.yaml")
	atr := atrHex(ssc)
	env := rdPCSC(t, ssc, nil)

	code, out, errOut := rdRun(t, "readers")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{
		"pcsc\tpcsc:Virtual PCD 00\tVirtual PCD 00\n",
		"  slot 0\tpcsc:Virtual PCD 00 00\tcard ATR " + atr + "\n",
		"  slot 1\tpcsc:Virtual PCD 00 01\tempty\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}

	code, out, errOut = rdRun(t, "readers", "--json")
	if code != 0 {
		t.Fatalf("--json exit %d: %s", code, errOut)
	}
	var got readersJSON
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("%v:\n%s", err, out)
	}
	if len(got.Readers) != 1 || got.Readers[0].Backend != "pcsc" || len(got.Readers[0].Slots) != 2 {
		t.Fatalf("JSON %+v", got)
	}
	s0, s1 := got.Readers[0].Slots[0], got.Readers[0].Slots[1]
	if s0.ID != "pcsc:Virtual PCD 00 00" || !s0.Present || s0.ATR != atr || s1.Present || s1.ATR != "" || s1.Index != 1 {
		t.Fatalf("JSON slots %+v %+v", s0, s1)
	}

	if code, _, errOut := rdRun(t, "readers", "extra"); code != 2 || !strings.Contains(errOut, "unexpected argument") {
		t.Fatalf("extra argument: exit %d %s", code, errOut)
	}

	env.Stop(t)
	code, _, errOut = rdRun(t, "readers")
	if code != 1 || !strings.Contains(errOut, "smart-card service not running") || !strings.Contains(errOut, "pcscd") {
		t.Fatalf("with pcscd stopped: exit %d: %s", code, errOut)
	}
	code, out, _ = rdRun(t, "readers", "--json")
	if code != 1 || !strings.Contains(out, `"errors"`) {
		t.Fatalf("--json with pcscd stopped: exit %d: %s", code, out)
	}
}
