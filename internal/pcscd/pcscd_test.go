//go:build linux

package pcscd

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ebfe/scard"
)

func TestPCSCSlotsAndConfig(t *testing.T) {
	slots := slotsFor(2)
	want := []Slot{
		{"Virtual PCD 00 00", "127.0.0.1:35963", 35963, 0},
		{"Virtual PCD 00 01", "127.0.0.1:35964", 35964, 1},
		{"Virtual PCD 2 00 00", "127.0.0.1:35965", 35965, 2},
		{"Virtual PCD 2 00 01", "127.0.0.1:35966", 35966, 3},
	}
	if len(slots) != len(want) {
		t.Fatalf("slots %+v", slots)
	}
	for i := range want {
		if slots[i] != want[i] {
			t.Errorf("slot %d = %+v, want %+v", i, slots[i], want[i])
		}
	}
	conf := readerConf([]string{DriverPath, "/tmp/x/drivers/libifdvpcd-1.so"})
	for _, s := range []string{
		"FRIENDLYNAME \"Virtual PCD\"\nDEVICENAME   /dev/null:0x8C7B\nLIBPATH      " + DriverPath + "\nCHANNELID    0x8C7B\n",
		"FRIENDLYNAME \"Virtual PCD 2\"\nDEVICENAME   /dev/null:0x8C7D\nLIBPATH      /tmp/x/drivers/libifdvpcd-1.so\nCHANNELID    0x8C7D\n",
	} {
		if !strings.Contains(conf, s) {
			t.Errorf("reader.conf lacks\n%s\ngot:\n%s", s, conf)
		}
	}
}

// TestPCSCHarness starts two vpcd readers, checks what the harness
// promises, stops and restarts pcscd, and checks the cleanup.
func TestPCSCHarness(t *testing.T) {
	var pid int
	var logPath string
	t.Run("env", func(t *testing.T) {
		env, err := Start(context.Background(), Options{Readers: 2, Debug: true, Owner: t.Name()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(env.Close)
		pid, logPath = env.PID(), env.LogPath
		if pid == 0 {
			t.Fatal("PID() = 0 while running")
		}
		names, err := ListReaders()
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range env.Slots {
			if s.Index >= len(names) || names[s.Index] != s.Name {
				t.Errorf("slot %+v: ListReaders %q", s, names)
			}
			// vpcd listens for the card side.
			c, err := net.DialTimeout("tcp", s.Addr, 2*time.Second)
			if err != nil {
				t.Errorf("vpcd slot %s: %v", s.Addr, err)
				continue
			}
			_ = c.Close()
		}
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		ev, err := WaitCard(ctx, env.Slots[0].Name, false)
		if err != nil || ev&scard.StateEmpty == 0 {
			t.Fatalf("WaitCard(empty) = %#x, %v", uint32(ev), err)
		}
		if _, err := WaitCard(ctx, env.Slots[0].Name, true); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("WaitCard(present) on an empty slot: %v, want deadline exceeded", err)
		}

		env.Stop()
		if env.PID() != 0 {
			t.Fatal("PID() != 0 after Stop")
		}
		if _, err := scard.EstablishContext(); !errors.Is(err, scard.ErrNoService) {
			t.Fatalf("EstablishContext after Stop: %v, want ErrNoService", err)
		}
		if err := env.Restart(); err != nil {
			t.Fatal(err)
		}
		if _, err := ListReaders(); err != nil {
			t.Fatalf("after Restart: %v", err)
		}
		if !strings.Contains(env.Log(), "pcsc-lite") {
			t.Fatalf("debug log lacks pcscd start-up lines:\n%s", env.Log())
		}
	})
	// Cleanup: our pcscd gone, its run files gone, config gone, lock
	// free. (Another test binary may hold the lock and run its own pcscd
	// by now, so only our traces are checked.)
	if alive(pid) {
		t.Errorf("pcscd %d still running after cleanup", pid)
	}
	if b, err := os.ReadFile(filepath.Join(RunDir, "pcscd.pid")); err == nil && strings.TrimSpace(string(b)) == strconv.Itoa(pid) {
		t.Errorf("pid file of pcscd %d left after cleanup", pid)
	}
	if _, err := os.Stat(logPath); !os.IsNotExist(err) {
		t.Errorf("temp dir after cleanup: %v", err)
	}
	unlock, err := Lock(context.Background(), "check", 5*time.Minute)
	if err != nil {
		t.Fatalf("lock not released: %v", err)
	}
	unlock()
}

func TestPCSCLock(t *testing.T) {
	unlock, err := Lock(context.Background(), "holder-test", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	_, err = Lock(context.Background(), "waiter", 100*time.Millisecond)
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "holder-test") {
		t.Fatalf("second lock: %v, want a timeout naming the holder", err)
	}
}

// startRawPcscd starts pcscd outside the harness with conf dir dir.
func startRawPcscd(t *testing.T, dir string) *exec.Cmd {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "vpcd"), []byte(readerConf([]string{DriverPath})), 0o644); err != nil {
		t.Fatal(err)
	}
	path, err := Find()
	if err != nil {
		t.Fatalf("%v (run make deps)", err)
	}
	cmd := exec.Command(path, "-f", "-c", dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(3 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		removeRunFiles(cmd.Process.Pid)
	})
	// Wait until it answers.
	for i := 0; i < 250; i++ {
		if _, err := ListReaders(); err == nil {
			return cmd
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("raw pcscd did not come up")
	return nil
}

func TestPCSCForeignAndStale(t *testing.T) {
	for _, tc := range []struct {
		name      string
		dirPrefix string
		wantErr   string // "" = the stale pcscd is killed
	}{
		{"foreign pcscd is refused", "someone-else-", "not started by onecard"},
		{"stale pcsctest pcscd is killed", Marker, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			unlock, err := Lock(context.Background(), t.Name(), 5*time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			// Cleanups run last-in first-out: the raw pcscd is stopped
			// before the lock is released.
			t.Cleanup(unlock)
			base, err := os.MkdirTemp("", tc.dirPrefix+"*")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = os.RemoveAll(base) })
			cmd := startRawPcscd(t, filepath.Join(base, "reader.conf.d"))
			err = clearStale()
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("clearStale: %v, want error containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("clearStale: %v", err)
			}
			if alive(cmd.Process.Pid) {
				t.Fatal("stale pcscd still alive")
			}
		})
	}
}

func TestPCSCPortsReserved(t *testing.T) {
	for _, tt := range []struct {
		list   string
		lo, hi int
		want   bool
	}{
		{"", 35963, 35964, false},
		{"35963-35999", 35963, 35966, true},
		{"35963", 35963, 35964, false},
		{"35963,35964", 35963, 35964, true},
		{"1000-2000, 35960-35965", 35963, 35966, false},
		{"1000-2000, 35960-35970", 35963, 35966, true},
		{"junk", 35963, 35963, false},
	} {
		if got := portsReserved(tt.list, tt.lo, tt.hi); got != tt.want {
			t.Errorf("portsReserved(%q, %d, %d) = %v, want %v", tt.list, tt.lo, tt.hi, got, tt.want)
		}
	}
}
