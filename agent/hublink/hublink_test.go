package hublink

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/onecard-hub/onecard/agent"
	"github.com/onecard-hub/onecard/hub/client"
	"github.com/onecard-hub/onecard/sm"
	"github.com/onecard-hub/onecard/terminal/journal"
	"github.com/onecard-hub/onecard/terminal/record"
)

func TestLink(t *testing.T) {
	dir := t.TempDir()
	j, err := journal.Open(filepath.Join(dir, "j.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	ks, err := sm.TestKeySet("demo")
	if err != nil {
		t.Fatal(err)
	}
	p := agent.HubParams{
		Config:     agent.HubConfig{URL: "ws://127.0.0.1:1/sync"},
		StatePath:  filepath.Join(dir, "hub.state"),
		TerminalID: "330100000001", Key: ks.TerminalKey(), Journal: j, Agent: "test",
	}
	h, err := New(p)
	if err != nil {
		t.Fatal(err)
	}
	st, err := h.Status()
	if err != nil || st.Connected || st.Waiting != 0 {
		t.Errorf("status %+v %v", st, err)
	}
	if lost, err := h.IsLost(context.Background(), record.CardID{1}); lost || err != nil {
		t.Errorf("IsLost = %v %v", lost, err)
	}
	if err := h.Close(); err != nil {
		t.Error(err)
	}
	p.Config.URL = "http://hub.example/"
	if _, err := New(p); !errors.Is(err, client.ErrConfig) {
		t.Errorf("bad URL: %v", err)
	}
}
