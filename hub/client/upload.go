package client

import (
	"context"
	"encoding/base64"
	"fmt"
	"time"

	hubsync "github.com/onecard-hub/onecard/hub/sync"
	"github.com/onecard-hub/onecard/terminal/journal"
	"github.com/onecard-hub/onecard/terminal/record"
)

// inFlight is one batch waiting for its acknowledgements.
type inFlight struct {
	seqs []uint64
	ch   <-chan reply
	sent time.Time
}

// upload drains the journal over cn until the connection ends, ctx ends,
// or (untilDrained) nothing is left to send.
func (c *Client) upload(ctx context.Context, cn *conn, untilDrained bool) error {
	batch := min(c.o.BatchSize, cn.welcome.MaxBatch)
	inflight := map[uint64]bool{}
	var queue []inFlight
	pause := false // the hub asked to retry: wait before sending more
	for {
		for !pause && len(queue) < c.o.Window {
			es, err := c.nextBatch(batch, inflight)
			if err != nil {
				return err
			}
			if len(es) == 0 {
				break
			}
			recs, seqs, err := c.seal(ctx, es)
			if err != nil {
				return err
			}
			if len(seqs) == 0 {
				continue
			}
			if recs, seqs = fitFrame(recs, seqs, cn.lim.MaxMessage); len(recs) == 0 {
				return fmt.Errorf("%w: the hub's frame limit %d is below one record", ErrProtocol, cn.lim.MaxMessage)
			}
			if err := c.o.Journal.MarkSent(ctx, seqs); err != nil {
				return fmt.Errorf("mark records sent: %w", err)
			}
			ch, err := cn.begin(&hubsync.Batch{Records: recs})
			if err != nil {
				return err
			}
			for _, s := range seqs {
				inflight[s] = true
			}
			queue = append(queue, inFlight{seqs: seqs, ch: ch, sent: time.Now()})
		}
		if len(queue) == 0 {
			if !pause {
				if err := c.submitTotals(ctx, cn); err != nil {
					return err
				}
			}
			if untilDrained {
				if pause {
					return ErrRetryLater
				}
				return nil
			}
			wait := c.o.PollInterval
			if pause {
				wait = Backoff(c.o.MinBackoff, c.o.MaxBackoff, 2)
			}
			t := time.NewTimer(wait)
		waiting:
			for {
				select {
				case <-ctx.Done():
					t.Stop()
					return ctx.Err()
				case <-cn.closed:
					t.Stop()
					return cn.Err()
				case <-c.kick:
					if pause {
						// A kick does not cut a pause the hub asked for
						// short. (The timer is not stopped: a stopped
						// timer's channel never delivers.)
						continue
					}
					t.Stop()
				case <-t.C:
				}
				break waiting
			}
			pause = false
			continue
		}
		head := queue[0]
		t := time.NewTimer(c.o.RequestTimeout)
		var r reply
		select {
		case r = <-head.ch:
			t.Stop()
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
			err := fmt.Errorf("%w: no acknowledgement within %v", ErrDisconnected, c.o.RequestTimeout)
			cn.close(err)
			return err
		}
		queue = queue[1:]
		for _, s := range head.seqs {
			delete(inflight, s)
		}
		retry, err := c.settle(ctx, head.seqs, r)
		if err != nil {
			return err
		}
		if retry {
			pause = true
		}
	}
}

// nextBatch returns up to limit records to send, in sequence order: Sent
// records not in flight (never acknowledged) merged with the next unsent
// ones.
func (c *Client) nextBatch(limit int, inflight map[uint64]bool) ([]journal.Entry, error) {
	un, err := c.o.Journal.Unacknowledged(limit + len(inflight))
	if err != nil {
		return nil, fmt.Errorf("records to resend: %w", err)
	}
	nx, err := c.o.Journal.NextToSend(limit)
	if err != nil {
		return nil, fmt.Errorf("records to send: %w", err)
	}
	out := make([]journal.Entry, 0, limit)
	i, k := 0, 0
	for len(out) < limit && (i < len(un) || k < len(nx)) {
		var e journal.Entry
		if k >= len(nx) || i < len(un) && un[i].Seq < nx[k].Seq {
			e = un[i]
			i++
		} else {
			e = nx[k]
			k++
		}
		if inflight[e.Seq] {
			continue
		}
		out = append(out, e)
	}
	return out, nil
}

// seal signs the records. A record that cannot be signed (it breaks the
// record rules: the journal would not normally hold one) goes to the dead
// letters at once rather than block the queue.
func (c *Client) seal(ctx context.Context, es []journal.Entry) ([][]byte, []uint64, error) {
	recs := make([][]byte, 0, len(es))
	seqs := make([]uint64, 0, len(es))
	for _, e := range es {
		b, err := sealEntry(c, e.Record)
		if err != nil {
			if derr := c.o.Journal.DeadLetter(ctx, e.Seq, "agent: cannot sign: "+err.Error()); derr != nil {
				return nil, nil, fmt.Errorf("dead-letter record %d: %w", e.Seq, derr)
			}
			c.o.Logger.Error("hub: record cannot be signed", "seq", e.Seq, "err", err)
			continue
		}
		recs = append(recs, b)
		seqs = append(seqs, e.Seq)
	}
	return recs, seqs, nil
}

func sealEntry(c *Client, r *record.Record) ([]byte, error) {
	env, err := record.Seal(r, c.o.Key)
	if err != nil {
		return nil, err
	}
	return env.MarshalBinary()
}

// settle applies the hub's verdicts on one batch to the journal. It
// returns retry = true when the hub asked to resend some later.
func (c *Client) settle(ctx context.Context, seqs []uint64, r reply) (bool, error) {
	if r.err != nil {
		return false, r.err
	}
	if e, ok := r.m.(*hubsync.Error); ok {
		if e.Code == hubsync.CodeRateLimited || e.Code == hubsync.CodeUnavailable {
			c.count(0, 0, 0, uint64(len(seqs)))
			return true, nil
		}
		return false, fmt.Errorf("batch: %w: %w", ErrRefused, e)
	}
	a, ok := r.m.(*hubsync.Acks)
	if !ok {
		return false, fmt.Errorf("batch: %w: answer %s", ErrProtocol, r.m.Type())
	}
	if len(a.Results) != len(seqs) {
		return false, fmt.Errorf("batch: %w: %d results for %d records", ErrProtocol, len(a.Results), len(seqs))
	}
	var clear []uint64
	var acc, dup, rej, retry uint64
	for i, res := range a.Results {
		// The hub names each record's sequence (0 only for one it could
		// not decode, which it rejects).
		if res.Seq != seqs[i] && !(res.Seq == 0 && res.Status == hubsync.AckRejected) {
			return false, fmt.Errorf("batch: %w: result %d for record %d", ErrProtocol, res.Seq, seqs[i])
		}
		res.Seq = seqs[i]
		switch res.Status {
		case hubsync.AckAccepted:
			clear = append(clear, res.Seq)
			acc++
		case hubsync.AckDuplicate:
			clear = append(clear, res.Seq)
			dup++
		case hubsync.AckRejected:
			reason := res.Code
			if res.Reason != "" {
				reason += ": " + res.Reason
			}
			if err := c.o.Journal.DeadLetter(ctx, res.Seq, "hub: "+reason); err != nil {
				return false, fmt.Errorf("dead-letter record %d: %w", res.Seq, err)
			}
			c.o.Logger.Warn("hub: record rejected", "seq", res.Seq, "code", res.Code)
			rej++
		case hubsync.AckRetry:
			retry++
		}
	}
	if err := c.o.Journal.MarkCleared(ctx, clear); err != nil {
		return false, fmt.Errorf("mark records cleared: %w", err)
	}
	c.count(acc, dup, rej, retry)
	c.mu.Lock()
	c.stats.hubAck = max(c.stats.hubAck, a.LastAck)
	c.mu.Unlock()
	return retry > 0, nil
}

func (c *Client) count(acc, dup, rej, retry uint64) {
	c.mu.Lock()
	c.stats.accepted += acc
	c.stats.duplicates += dup
	c.stats.rejected += rej
	c.stats.retried += retry
	c.mu.Unlock()
}

// fitFrame keeps the leading records whose batch frame stays within the
// hub's frame limit (the rest stay unsent and go in a later batch).
func fitFrame(recs [][]byte, seqs []uint64, maxMessage int) ([][]byte, []uint64) {
	size := 128 // frame envelope and JSON punctuation
	for k, r := range recs {
		size += base64.StdEncoding.EncodedLen(len(r)) + 3
		if size > maxMessage {
			return recs[:k], seqs[:k]
		}
	}
	return recs, seqs
}
