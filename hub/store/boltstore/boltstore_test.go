package boltstore_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/onecard-hub/onecard/hub/store"
	"github.com/onecard-hub/onecard/hub/store/boltstore"
	"github.com/onecard-hub/onecard/hub/store/storetest"
)

func open(t *testing.T) store.Store {
	t.Helper()
	s, err := boltstore.Open(boltstore.Options{Path: filepath.Join(t.TempDir(), "hub.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestContract(t *testing.T) { storetest.Run(t, open) }

func TestReopenKeepsLedger(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hub.db")
	s, err := boltstore.Open(boltstore.Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	c := storetest.Card(1)
	storetest.MustPost(t, s, storetest.Opening("o", c, 100), storetest.Pay(storetest.TermA, 1, c, 1, 40, "H1"))
	if _, err := s.SetLost(context.Background(), c, true); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = boltstore.Open(boltstore.Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	storetest.WantBalance(t, s, storetest.CardAccount(c), 60)
	r := storetest.MustPost(t, s, storetest.Pay(storetest.TermA, 1, c, 1, 40, "H1"))[0]
	if r.Outcome != store.Duplicate {
		t.Fatalf("repeat after reopen: %+v", r)
	}
	l, err := s.LostCards(context.Background(), 0)
	if err != nil || l.Version != 1 || len(l.Changes) != 1 {
		t.Fatalf("lost list after reopen: %+v %v", l, err)
	}
	storetest.MustCheck(t, s)
}

func TestSecondOpenWaitsForLock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hub.db")
	s, err := boltstore.Open(boltstore.Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s2, err := boltstore.Open(boltstore.Options{Path: path, Timeout: 50 * time.Millisecond}); err == nil {
		s2.Close()
		t.Fatal("a second open of a locked file succeeded")
	}
	if _, err := boltstore.Open(boltstore.Options{}); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("open without a path: %v", err)
	}
}

// tamper changes one stored value behind the store's back.
func tamper(t *testing.T, path string, bucket, key, value []byte) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucket).Put(key, value) }); err != nil {
		t.Fatal(err)
	}
}

func TestCheckFindsTampering(t *testing.T) {
	c := storetest.Card(1)
	u64 := func(v uint64) []byte {
		return []byte{byte(v >> 56), byte(v >> 48), byte(v >> 40), byte(v >> 32), byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}
	}
	cases := []struct {
		name               string
		bucket, key, value []byte
		want               string
	}{
		{"balance changed", []byte("accounts"), []byte(storetest.CardAccount(c)), u64(1000), "balance"},
		{"negative merchant", []byte("accounts"), []byte(storetest.MerchantAccount("H1")), u64(^uint64(0)), "negative"},
		{"garbage posting", []byte("postings"), u64(1), []byte{1, 2, 3}, "corrupt"},
		{"foreign account", []byte("accounts"), []byte("card/ghost"), u64(5), "entries sum to 0"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "hub.db")
			s, err := boltstore.Open(boltstore.Options{Path: path})
			if err != nil {
				t.Fatal(err)
			}
			storetest.MustPost(t, s, storetest.Opening("o", c, 100), storetest.Pay(storetest.TermA, 1, c, 1, 40, "H1"))
			storetest.MustCheck(t, s)
			s.Close()
			tamper(t, path, tc.bucket, tc.key, tc.value)
			s, err = boltstore.Open(boltstore.Options{Path: path})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			err = s.Check(context.Background())
			var ie *store.InvariantError
			if !errors.As(err, &ie) || !errors.Is(err, store.ErrInvariant) || !containsAny(ie.Problems, tc.want) {
				t.Fatalf("check: %v, want a problem mentioning %q", err, tc.want)
			}
		})
	}
}

func containsAny(ss []string, sub string) bool {
	for _, s := range ss {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

func TestCorruptPostingIsAnError(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hub.db")
	s, err := boltstore.Open(boltstore.Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	c := storetest.Card(1)
	storetest.MustPost(t, s, storetest.Opening("o", c, 100))
	s.Close()
	tamper(t, path, []byte("postings"), []byte{0, 0, 0, 0, 0, 0, 0, 1}, []byte{1, 0xff})
	s, err = boltstore.Open(boltstore.Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Posting(context.Background(), store.RefKey("o")); !errors.Is(err, store.ErrCorrupt) {
		t.Fatalf("corrupt posting: %v, want ErrCorrupt", err)
	}
	if _, err := s.Post(context.Background(), []*store.Posting{storetest.Opening("o", c, 100)}); !errors.Is(err, store.ErrCorrupt) {
		t.Fatalf("posting over a corrupt record: %v, want ErrCorrupt", err)
	}
}
