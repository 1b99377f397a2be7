//go:build linux

package main

import (
	"bufio"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// procKiB reads a "VmXxx: N kB" line of /proc/PID/status.
func procKiB(pid int, field string) (int, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			return strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", field, pid)
}

// BenchmarkAgentRSS builds the real binary, starts 'onecard agent' with a
// simulated card and PSAM, and reports its resident memory idle (after
// start-up and one identity read) and while it serves b.N payments through
// the kiosk API (the highest VmRSS seen and VmHWM at the end), in KiB.
func BenchmarkAgentRSS(b *testing.B) {
	dir := b.TempDir()
	bin := filepath.Join(dir, "onecard")
	build := exec.Command(goTool(b), "build", "-o", bin, "github.com/onecard-hub/onecard/cmd/onecard")
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("build: %v\n%s", err, out)
	}
	card, psam := copyTestCard(b, dir, "ssc-gen3.yaml"), copyTestCard(b, dir, "psam.yaml")
	listen := freeAddr(b)
	cfg := filepath.Join(dir, "agent.yaml")
	yml := fmt.Sprintf("listen: %s\nadmin: off\nlog: {level: warn}\nreaders: {pcsc: false, sim: [{name: k, card: %q, psam: %q}]}\nkeys: {test: demo}\nkiosk: {origins: [https://kiosk.example], rate: 100000, burst: 100000}\n", listen, card, psam)
	if err := os.WriteFile(cfg, []byte(yml), 0o600); err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(bin, "agent", "--config", cfg)
	cmd.Env = append(os.Environ(), "GODEBUG=cpu.adx=off", "FORCE_SM4BLOCK_AESNI=1")
	var logs syncWriter
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	}()
	var ws *websocket.Conn
	for i := 0; ; i++ {
		var err error
		ws, _, err = websocket.DefaultDialer.Dial("ws://"+listen+"/v1/ws", http.Header{"Origin": {"https://kiosk.example"}})
		if err == nil {
			break
		}
		if i > 500 {
			b.Fatalf("agent never listened: %v\n%s", err, logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	defer ws.Close()
	for i := 0; ; i++ {
		if _, ok := wsCall(b, ws, `{"id":1,"method":"readIdentity"}`)["result"]; ok {
			break
		}
		if i > 100 {
			b.Fatalf("no identity read:\n%s", logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	pid := cmd.Process.Pid
	idle, err := procKiB(pid, "VmRSS")
	if err != nil {
		b.Fatal(err)
	}
	peak := idle
	b.ResetTimer()
	for i := range b.N {
		res := wsCall(b, ws, fmt.Sprintf(`{"id":%d,"method":"pay","params":{"amount":1,"pin":"123456"}}`, i+2))
		if _, ok := res["result"]; !ok {
			b.Fatalf("pay %d: %s", i, res["error"])
		}
		if rss, err := procKiB(pid, "VmRSS"); err == nil && rss > peak {
			peak = rss
		}
	}
	b.StopTimer()
	hwm, _ := procKiB(pid, "VmHWM")
	b.ReportMetric(float64(idle), "idle-RSS-KiB")
	b.ReportMetric(float64(peak), "pay-RSS-KiB")
	b.ReportMetric(float64(hwm), "HWM-KiB")
}
