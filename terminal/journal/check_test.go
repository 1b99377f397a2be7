package journal_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/onecard-hub/onecard/terminal/journal"
	"github.com/onecard-hub/onecard/terminal/journal/journaltest"
	"github.com/onecard-hub/onecard/terminal/record"
)

// TestCheckFindsCorruption builds a healthy journal (checked by
// journaltest), then damages copies of the file the way bugs would and
// expects Check to name each problem. It knows the stored entry layout:
// format, state, history count, then 9 bytes per transition.
func TestJournalCheckFindsCorruption(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "healthy.db")
	j := journaltest.MustOpenPath(t, path, nil)
	var seqs []uint64
	for i := 0; i < 3; i++ {
		r := journaltest.NewRecord(record.KindPay, journaltest.Card(1), 10)
		s := mustPrepare(t, j, r)
		seqs = append(seqs, s)
		if i == 0 {
			if err := j.CardDone(ctx, s, journaltest.DoneResult(r, 1)); err != nil {
				t.Fatal(err)
			}
		}
	}
	j.Close()
	key := func(s uint64) []byte { return binary.BigEndian.AppendUint64(nil, s) }
	for _, tt := range []struct {
		name   string
		damage func(tx *bolt.Tx) error
		want   string
	}{
		{"gap", func(tx *bolt.Tx) error {
			tx.Bucket([]byte("open")).Delete(key(seqs[1]))
			addMeta(tx, "count:prepared", -1)
			return tx.Bucket([]byte("records")).Delete(key(seqs[1]))
		}, "gap between records"},
		{"state moved back", func(tx *bolt.Tx) error {
			b := tx.Bucket([]byte("records"))
			v := bytes.Clone(b.Get(key(seqs[0])))
			v[1] = byte(journal.Prepared)
			return b.Put(key(seqs[0]), v)
		}, "history ends card-done"},
		{"history backwards", func(tx *bolt.Tx) error {
			b := tx.Bucket([]byte("records"))
			v := bytes.Clone(b.Get(key(seqs[0])))
			v[3+9] = byte(journal.Prepared) // second transition
			v[3] = byte(journal.CardDone)   // first transition
			return b.Put(key(seqs[0]), v)
		}, "history does not start prepared"},
		{"card-done without TAC", func(tx *bolt.Tx) error {
			b := tx.Bucket([]byte("records"))
			v := bytes.Clone(b.Get(key(seqs[2])))
			h := append([]byte{byte(journal.CardDone)}, v[4:12]...)
			v = append(append(append([]byte{v[0], byte(journal.CardDone), 2}, v[3:12]...), h...), v[12:]...)
			return b.Put(key(seqs[2]), v)
		}, "card-done without a TAC"},
		{"open index stale", func(tx *bolt.Tx) error {
			return tx.Bucket([]byte("open")).Delete(key(seqs[2]))
		}, "missing from the open index"},
		{"card-transaction index", func(tx *bolt.Tx) error {
			c := tx.Bucket([]byte("cardtx")).Cursor()
			k, _ := c.First()
			return tx.Bucket([]byte("cardtx")).Delete(k)
		}, "missing from the card-transaction index"},
		{"counter off", func(tx *bolt.Tx) error {
			addMeta(tx, "count:card-done", 1)
			return nil
		}, "card-done counter"},
		{"high-water mark", func(tx *bolt.Tx) error {
			return tx.Bucket([]byte("meta")).Put([]byte("high"), key(seqs[0]))
		}, "high-water mark"},
		{"sequence reused", func(tx *bolt.Tx) error {
			return tx.Bucket([]byte("meta")).Put([]byte("next"), key(seqs[1]))
		}, "at or above the next sequence"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			bad := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "-")+".db")
			copyFile(t, path, bad)
			db, err := bolt.Open(bad, 0o600, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := db.Update(tt.damage); err != nil {
				t.Fatal(err)
			}
			db.Close()
			j, err := journal.Open(bad, &journal.Options{ReadOnly: true})
			if err != nil {
				t.Fatal(err)
			}
			defer j.Close()
			err = j.Check()
			if !errors.Is(err, journal.ErrCorrupt) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Check = %v, want ErrCorrupt naming %q", err, tt.want)
			}
		})
	}
}

func addMeta(tx *bolt.Tx, k string, delta int64) {
	m := tx.Bucket([]byte("meta"))
	v := int64(binary.BigEndian.Uint64(m.Get([]byte(k)))) + delta
	m.Put([]byte(k), binary.BigEndian.AppendUint64(nil, uint64(v)))
}
