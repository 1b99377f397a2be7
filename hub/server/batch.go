package server

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"unicode/utf8"

	"github.com/onecard-hub/onecard/hub/store"
	hubsync "github.com/onecard-hub/onecard/hub/sync"
	"github.com/onecard-hub/onecard/terminal/record"
)

// batch verifies and posts one batch, then acknowledges it. The
// acknowledgements are queued only after the ledger and the dead-letter
// store have committed.
func (ss *session) batch(id uint64, b *hubsync.Batch) {
	s := ss.s
	if !ss.admit(id, len(b.Records)) {
		s.st.retried.Add(uint64(len(b.Records)))
		return
	}
	t, err := s.o.Store.Terminal(ss.ctx, ss.term)
	if err != nil {
		ss.log.Error("hub: terminal lookup failed", "err", err)
		ss.send(id, hubsync.NewError(hubsync.CodeUnavailable, "registry unavailable; retry later", false))
		s.st.retried.Add(uint64(len(b.Records)))
		return
	}
	if t.State != store.StateActive {
		ss.log.Warn("hub: batch from a terminal no longer active", "state", t.State.String())
		ss.refuse(hubsync.CodeSuspended, "terminal "+t.State.String())
		return
	}
	s.st.batches.Add(1)
	cs := s.verifyBatch(ss, b.Records)

	acks := make([]hubsync.Ack, len(cs))
	var post []int // indexes of verified records, in order
	for i, c := range cs {
		acks[i].Seq = c.seq
		if c.rec != nil {
			post = append(post, i)
		}
	}
	if len(post) > 0 {
		in := make([]*record.Record, len(post))
		for k, i := range post {
			in[k] = cs[i].rec
		}
		res, err := s.o.Ledger.PostRecords(ss.ctx, in)
		if err == nil && len(res) != len(in) {
			err = errors.New("ledger returned a wrong number of results")
		}
		for k, i := range post {
			switch {
			case err != nil:
				cs[i].code, cs[i].reason = hubsync.RetryUnavailable, "ledger unavailable; retry later"
			case res[k].Err != nil:
				cs[i].code = res[k].Code
				if cs[i].code == "" {
					cs[i].code = hubsync.RejectInvalid
				}
				cs[i].reason = res[k].Err.Error()
				cs[i].filed = res[k].Filed
			case res[k].Duplicate:
				acks[i].Status = hubsync.AckDuplicate
			default:
				acks[i].Status = hubsync.AckAccepted
			}
		}
		if err != nil {
			ss.log.Error("hub: posting failed", "err", err, "records", len(in))
		}
	}
	var high uint64
	for i, c := range cs {
		switch {
		case acks[i].Status != "":
			high = max(high, c.seq)
			continue
		case c.code == hubsync.RetryUnavailable:
			acks[i].Status, acks[i].Code, acks[i].Reason = hubsync.AckRetry, c.code, hubsync.Printable(c.reason)
			continue
		}
		// A rejection: file it for the operators first (unless the ledger
		// did).
		if !c.filed {
			if err := ss.deadLetter(c); err != nil {
				ss.log.Error("hub: dead letter not stored", "seq", c.seq, "err", err)
				acks[i].Status, acks[i].Code, acks[i].Reason = hubsync.AckRetry, hubsync.RetryUnavailable, "dead-letter store unavailable"
				continue
			}
		}
		acks[i].Status, acks[i].Code, acks[i].Reason = hubsync.AckRejected, c.code, hubsync.Printable(c.reason)
		ss.log.Warn("hub: record rejected", "seq", c.seq, "code", c.code)
	}
	last := t.AckedSeq
	if high > last {
		nt, err := s.o.Store.UpdateTerminal(ss.ctx, ss.term, func(t *store.Terminal) error { return t.Acknowledge(high) })
		if err != nil {
			// Informational only (the hello's resume point): the postings
			// are durable; a lagging high-water mark costs a resend.
			ss.log.Warn("hub: acknowledged sequence not stored", "err", err)
		} else {
			last = nt.AckedSeq
		}
	}
	for _, a := range acks {
		switch a.Status {
		case hubsync.AckAccepted:
			s.st.accepted.Add(1)
		case hubsync.AckDuplicate:
			s.st.duplicates.Add(1)
		case hubsync.AckRejected:
			s.st.rejected.Add(1)
		case hubsync.AckRetry:
			s.st.retried.Add(1)
		}
	}
	ss.send(id, &hubsync.Acks{Results: acks, LastAck: last})
}

// deadLetter files a rejected record in the store's dead letters.
func (ss *session) deadLetter(c checked) error {
	key := store.RecordKey(ss.term, c.seq)
	if c.seq == 0 {
		h := sha256.Sum256(c.raw)
		key = store.RefKey("undecodable/" + ss.term + "/" + hex.EncodeToString(h[:8]))
	}
	content := c.raw
	if len(content) > store.MaxContent {
		content = content[:store.MaxContent]
	}
	reason := clipRunes(hubsync.Printable(c.code+": "+c.reason), store.MaxText)
	_, err := ss.s.o.Store.AddDeadLetter(ss.ctx, store.DeadLetter{Key: key, Content: content, Reason: reason})
	return err
}

// clipRunes cuts s to at most n bytes at a rune boundary.
func clipRunes(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}
