package agent

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestAgentDistFiles keeps the shipped configuration valid and the unit
// and polkit rule saying what the agent needs.
func TestAgentDistFiles(t *testing.T) {
	c, err := LoadConfig(filepath.Join("..", "dist", "agent.yaml"))
	if err != nil {
		t.Fatalf("dist/agent.yaml: %v", err)
	}
	if c.Listen != DefaultListen || c.JournalPath() != "/var/lib/onecard/journal.db" || !*c.Kiosk.Pairing {
		t.Errorf("dist/agent.yaml: %+v", c)
	}
	for file, wants := range map[string][]string{
		"onecard-agent.service": {"User=onecard", "Environment=GODEBUG=cpu.adx=off FORCE_SM4BLOCK_AESNI=1",
			"ExecStart=/usr/bin/onecard agent --config /etc/onecard/agent.yaml", "NoNewPrivileges=yes", "ProtectSystem=strict",
			"StateDirectory=onecard", "TimeoutStopSec=60"},
		"polkit/50-onecard-pcscd.rules": {"org.debian.pcsc-lite.access_pcsc", "org.debian.pcsc-lite.access_card", `subject.user == "onecard"`},
		"sysusers.d/onecard.conf":       {"u onecard", "m onecard dialout"},
	} {
		b, err := os.ReadFile(filepath.Join("..", "dist", file))
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range wants {
			if !strings.Contains(string(b), w) {
				t.Errorf("dist/%s lacks %q", file, w)
			}
		}
	}
	// The unit's stop timeout must outlast the agent's drain.
	if DefaultShutdownTimeout.Seconds() >= 60 {
		t.Errorf("TimeoutStopSec=60 does not cover shutdown_timeout %s", DefaultShutdownTimeout)
	}
}
