package serial

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/onecard-hub/onecard/internal/simcard"
	"github.com/onecard-hub/onecard/reader/serial/profile"
	"github.com/onecard-hub/onecard/reader/virtual"
)

// copyCard copies a shipped card file into a temporary directory (the
// simulator persists state beside the file) and loads it.
func copyCard(t *testing.T, name string) virtual.Card {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "testdata", "cards", name))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := simcard.LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// The project's social-security card and PSAM simulators behind the
// emulator of each profile: the SSSE application is selected through the
// serial stack, and the PSAM gives its terminal number.
func TestSerialWithSimulatedSSCAndPSAM(t *testing.T) {
	forEachProfile(t, func(t *testing.T, name string) {
		p := loadProfile(t, name)
		emu, err := NewEmulator(p, EmulatorOptions{Cards: map[string]virtual.Card{
			"user":  copyCard(t, "ssc-gen3.yaml"),
			"psam1": copyCard(t, "psam.yaml"),
		}})
		if err != nil {
			t.Fatal(err)
		}
		pt, err := emu.ServePTY(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		defer pt.Close()
		ctx := ctxT(t)
		r, err := Open(ctx, Options{Port: pt.Path, Profile: p})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		user, _ := r.Slot("user")
		atr, err := user.Connect(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if want := profile.ATRProtocol(atr); user.Protocol() != want {
			t.Errorf("protocol %s, the ATR says %s", user.Protocol(), want)
		}
		resp, err := user.Transmit(ctx, selectSSSE)
		if err != nil {
			t.Fatal(err)
		}
		if sw := resp[len(resp)-2:]; sw[0] != 0x90 && sw[0] != 0x61 {
			t.Errorf("SELECT SSSE → % X", resp)
		}
		psam, _ := r.Slot("psam1")
		if _, err := psam.Connect(ctx); err != nil {
			t.Fatal(err)
		}
		resp, err = psam.Transmit(ctx, readTermNo)
		if err != nil {
			t.Fatal(err)
		}
		if len(resp) != 8 || resp[6] != 0x90 || resp[7] != 0x00 {
			t.Errorf("PSAM READ BINARY (terminal number) → % X", resp)
		}
	})
}
