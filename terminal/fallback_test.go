package terminal_test

import (
	"context"
	"errors"
	"testing"

	"github.com/onecard-hub/onecard/reader/virtual"
	"github.com/onecard-hub/onecard/terminal"
	"github.com/onecard-hub/onecard/terminal/national"
)

// A PSAM without the RKSSSE key (INIT FOR DESCRYPT usage 27 → 6A88) or
// without the card's algorithm (usage 28 → 6A88): ModeAuto falls back to
// the key service; without one it degrades with the PSAM's reason;
// ModePSAM fails with it.
func TestPSAMKeyFallback(t *testing.T) {
	for _, tc := range []struct {
		name  string
		usage byte
		want  error
		code  int
	}{
		{"no-rkssse", 0x27, terminal.ErrPSAMNoRKSSSE, national.CodePSAMNoRKSSSE},
		{"no-sm4", 0x28, terminal.ErrPSAMNoAlgorithm, national.CodePSAMNoAlgorithm},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ps := &faultSlot{Slot: virtual.NewSlot("psam", newPSAM(t)), answer: func(cmd []byte) []byte {
				if len(cmd) > 3 && cmd[0] == 0x80 && cmd[1] == 0x1A && cmd[2] == tc.usage {
					return []byte{0x6A, 0x88}
				}
				return nil
			}}
			for _, withKS := range []bool{true, false} {
				card := newCard(t, "ssc-gen3.yaml", nil)
				r := newRigWith(t, card, virtual.NewSlot("user", card), ps, rigOpts{keyService: withKS})
				id, err := r.sess.ReadIdentity(ctxT(t), terminal.ReadOptions{})
				if err != nil {
					t.Fatal(err)
				}
				switch {
				case withKS && (id.Mode != terminal.ModeKeyService || !id.Genuine || id.Name == ""):
					t.Errorf("with key service: %v", id)
				case !withKS && (id.Mode != terminal.ModePublic || !errors.Is(id.Reason, tc.want) || id.Name != ""):
					t.Errorf("without key service: %v", id)
				}
				if !withKS {
					if _, code := national.ReadCardBas(id, nil); code != tc.code {
						t.Errorf("national code %d, want %d", code, tc.code)
					}
				}
				_, err = r.sess.ReadIdentity(ctxT(t), terminal.ReadOptions{Mode: terminal.ModePSAM})
				if !errors.Is(err, tc.want) {
					t.Errorf("PSAM mode: %v", err)
				}
			}
		})
	}
}

type failingKeyService struct{}

func (failingKeyService) AuthenticateRead(context.Context, terminal.Step1) (terminal.Step2Key, error) {
	return terminal.Step2Key{}, errors.New("hub unreachable")
}

func TestKeyServiceFailure(t *testing.T) {
	card := newCard(t, "ssc-gen3.yaml", nil)
	r := newRig(t, card, rigOpts{noPSAM: true})
	r.opts.KeyService = failingKeyService{}
	r.rebuild()
	id, err := r.sess.ReadIdentity(ctxT(t), terminal.ReadOptions{})
	if err != nil || id.Mode != terminal.ModePublic || !errors.Is(id.Reason, terminal.ErrKeyService) {
		t.Fatalf("auto: %v %v", id, err)
	}
	_, err = r.sess.ReadIdentity(ctxT(t), terminal.ReadOptions{Mode: terminal.ModeKeyService})
	if !errors.Is(err, terminal.ErrKeyService) || national.Code(err) != national.CodeKeyService {
		t.Errorf("key-service mode: %v", err)
	}
}
