package client

import (
	"path/filepath"
	"testing"

	hubsync "github.com/onecard-hub/onecard/hub/sync"
	"github.com/onecard-hub/onecard/terminal/record"
)

func card(n byte) record.CardID {
	c, _ := record.ParseCardID("411600D156000005C38275EEFC9B9600")
	c[15] = n
	return c
}

func ids(ns ...byte) []string {
	var out []string
	for _, n := range ns {
		out = append(out, card(n).String())
	}
	return out
}

// TestSyncLostListApply drives the lost-card list through changes in
// order, out of order, split over messages, interrupted and reset.
func TestSyncLostListApply(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state")
	s, err := openState(path)
	if err != nil {
		t.Fatal(err)
	}
	l := s.lost
	steps := []struct {
		name    string
		m       hubsync.LostCards
		resync  bool
		version uint64
		lost    []byte
	}{
		{"first snapshot", hubsync.LostCards{From: 0, To: 3, Reset: true, Add: ids(1, 2, 3)}, false, 3, []byte{1, 2, 3}},
		{"delta", hubsync.LostCards{From: 3, To: 5, Add: ids(4), Remove: ids(1)}, false, 5, []byte{2, 3, 4}},
		{"gap: resync", hubsync.LostCards{From: 7, To: 9, Add: ids(9)}, true, 5, []byte{2, 3, 4}},
		{"split 1/2 (not applied yet)", hubsync.LostCards{From: 5, To: 8, Add: ids(5), More: true}, false, 5, []byte{2, 3, 4}},
		{"split 2/2", hubsync.LostCards{From: 8, To: 8, Remove: ids(2)}, false, 8, []byte{3, 4, 5}},
		{"split 1/2 again", hubsync.LostCards{From: 8, To: 10, Add: ids(6), More: true}, false, 8, []byte{3, 4, 5}},
		{"interrupted by another change", hubsync.LostCards{From: 3, To: 10, Add: ids(7)}, true, 8, []byte{3, 4, 5}},
		{"reset in two", hubsync.LostCards{From: 99, To: 20, Reset: true, Add: ids(10), More: true}, false, 8, []byte{3, 4, 5}},
		{"reset end", hubsync.LostCards{From: 20, To: 20, Add: ids(11)}, false, 20, []byte{10, 11}},
		{"no change", hubsync.LostCards{From: 20, To: 20}, false, 20, []byte{10, 11}},
	}
	for _, st := range steps {
		resync, err := l.apply(&st.m)
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if resync != st.resync || l.Version() != st.version || l.Len() != len(st.lost) {
			t.Fatalf("%s: resync %v version %d len %d; want %v %d %d", st.name, resync, l.Version(), l.Len(), st.resync, st.version, len(st.lost))
		}
		for _, n := range st.lost {
			if !l.Contains(card(n)) {
				t.Fatalf("%s: card %d not on the list", st.name, n)
			}
		}
	}
	if err := s.close(); err != nil {
		t.Fatal(err)
	}
	// Persisted.
	s, err = openState(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	if s.lost.Version() != 20 || s.lost.Len() != 2 || !s.lost.Contains(card(11)) {
		t.Fatalf("reopened: version %d, %d cards", s.lost.Version(), s.lost.Len())
	}
}
