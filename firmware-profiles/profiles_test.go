package firmwareprofiles

import (
	"errors"
	"testing"

	"github.com/onecard-hub/onecard/reader/serial/profile"
)

// Every shipped profile loads, passes its golden frames, and covers the
// three reader models the project supports.
func TestProfilesShipped(t *testing.T) {
	want := map[string]bool{"creator-crt310-v3": false, "creator-crt591-m": false, "sankyo-ict3q8": false}
	all, err := All()
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]string{}
	for _, p := range all {
		if other, dup := ids[p.ID]; dup {
			t.Errorf("%s: id %s also used by %s", p.File, p.ID, other)
		}
		ids[p.ID] = p.File
		n, err := p.Check()
		if err != nil {
			t.Errorf("%s: %v", p.File, err)
		}
		if n < 10 {
			t.Errorf("%s: only %d golden frames", p.File, n)
		}
		if _, ok := want[p.ID]; ok {
			want[p.ID] = true
		}
		for _, op := range []profile.OpName{profile.OpPowerOn, profile.OpAPDU, profile.OpPowerOff} {
			if p.Op(op, "user") == nil {
				t.Errorf("%s: %s unsupported on the user slot", p.File, op)
			}
		}
	}
	for id, found := range want {
		if !found {
			t.Errorf("profile %s not shipped", id)
		}
	}
}

func TestProfileLoadByNameAndID(t *testing.T) {
	for _, name := range []string{"crt310.yaml", "creator-crt310-v3"} {
		p, err := Load(name)
		if err != nil {
			t.Fatalf("Load(%q): %v", name, err)
		}
		if p.Model != "CRT-310" {
			t.Errorf("Load(%q).Model = %q", name, p.Model)
		}
	}
	_, err := Load("nope")
	var el profile.ErrorList
	if err == nil || errors.As(err, &el) {
		t.Errorf("Load(nope) = %v, want a not-embedded error", err)
	}
}
