//go:build linux

package agent_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/onecard-hub/onecard/agent"
	"github.com/onecard-hub/onecard/internal/pcsctest"
	"github.com/onecard-hub/onecard/internal/simcard"
	"github.com/onecard-hub/onecard/reader/virtual"
	"github.com/onecard-hub/onecard/terminal/national"
)

// TestAgentPCSC runs the agent on the real PC/SC stack: the card and the
// PSAM are simulated behind pcscd through vpcd, the agent's PC/SC backend
// finds them, and a page reads the identity and pays through the API.
func TestAgentPCSC(t *testing.T) {
	pc := pcsctest.Start(t, pcsctest.Options{})
	dir := t.TempDir()
	card, err := simcard.LoadFile(copyCard(t, dir, "ssc-gen3.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	psam, err := simcard.LoadFile(copyCard(t, dir, "psam.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for i, c := range []virtual.Card{card, psam} {
		b := virtual.NewVPCD(virtual.VPCDOptions{Addr: pc.Slots[i].Addr, Card: c})
		done := make(chan struct{})
		go func() { defer close(done); _ = b.Run(ctx) }()
		t.Cleanup(func() { cancel(); <-done })
	}
	for _, s := range pc.Slots[:2] {
		wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
		if _, err := pcsctest.WaitCard(wctx, s.Name, true); err != nil {
			wcancel()
			t.Fatal(err)
		}
		wcancel()
	}
	yml := fmt.Sprintf(`
listen: 127.0.0.1:0
admin: off
state_dir: %q
terminal: {device_id: PCSC-T1}
keys: {test: demo}
lanes:
  - {name: counter, card: %q, psam: %q}
kiosk:
  origins: [{origin: %s, full_identity: true}]
`, dir, pc.Slots[0].Name, pc.Slots[1].Name, hisOrigin)
	cfg, err := agent.ParseConfig([]byte(yml), dir)
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	a, err := agent.New(agent.Options{Config: cfg, Version: "test", LogOutput: logs})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, a: a, dir: dir, done: make(chan error, 1), logs: logs}
	actx, acancel := context.WithCancel(context.Background())
	e.cancel = acancel
	go func() { e.done <- a.Run(actx) }()
	t.Cleanup(e.stop)

	c := e.dial(hisOrigin)
	defer c.close()
	deadline := time.Now().Add(15 * time.Second)
	for {
		var rd struct {
			Lanes []struct {
				CardPresent bool   `json:"cardPresent"`
				PSAMSlot    string `json:"psamSlot"`
			} `json:"lanes"`
		}
		if err := json.Unmarshal(c.mustCall("readers", nil), &rd); err != nil {
			t.Fatal(err)
		}
		if len(rd.Lanes) == 1 && rd.Lanes[0].CardPresent && rd.Lanes[0].PSAMSlot != "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("PC/SC lane never ready: %+v\n%s", rd, logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	var id identityRes
	if err := json.Unmarshal(c.mustCall("readIdentity", map[string]any{"mode": "psam"}), &id); err != nil {
		t.Fatal(err)
	}
	if id.Reader != "counter" || id.Identity.PersonID != cardSSN || !id.Identity.Genuine {
		t.Errorf("identity = %+v", id)
	}
	var pay receiptRes
	if err := json.Unmarshal(c.mustCall("pay", map[string]any{"amount": 321, "pin": cardPIN}), &pay); err != nil {
		t.Fatal(err)
	}
	if pay.State != "card-done" || pay.BalanceAfter != 120000-321 || pay.TerminalID != "330100000001" {
		t.Errorf("receipt = %+v", pay)
	}
	var r struct {
		Result   int    `json:"result"`
		POutInfo string `json:"pOutInfo"`
	}
	if err := json.Unmarshal(c.mustCall("iReadCardBas", map[string]any{"iType": 1}), &r); err != nil {
		t.Fatal(err)
	}
	if b, err := national.ParseBasic(r.POutInfo); r.Result != 0 || err != nil || b.Name != cardName || b.DeviceID != "PCSC-T1" {
		t.Errorf("iReadCardBas = %+v (%v)", r, err)
	}
}
