package server

import (
	"github.com/onecard-hub/onecard/hub/ledger"
	"github.com/onecard-hub/onecard/hub/store"
	hubsync "github.com/onecard-hub/onecard/hub/sync"
)

// totals stores the terminal's signed end-of-day totals for one day (the
// report compares them with the postings) and tells the terminal whether
// they match what the hub posted for it. A submission with a lower Rev
// than the stored one is answered "stale" and changes nothing: a replayed
// old submission cannot replace a newer one. (The Rev check and the store
// are two steps; one terminal has one live session, so they do not race.)
func (ss *session) totals(id uint64, m *hubsync.Totals) {
	if !hubsync.VerifyTotals(ss.pub, ss.term, m) {
		ss.log.Warn("hub: totals signature invalid", "day", m.Day)
		ss.send(id, hubsync.NewError(hubsync.CodeBadRequest, "totals signature does not verify", false))
		return
	}
	have, err := ss.s.o.Store.Totals(ss.ctx, m.Day)
	if err != nil {
		ss.log.Warn("hub: totals unavailable", "err", err)
		ss.send(id, hubsync.NewError(hubsync.CodeUnavailable, "totals unavailable", false))
		return
	}
	for _, t := range have {
		if rev, ok := hubsync.TotalsRev(t.Signed); ok && t.TerminalNo == ss.term && rev > m.Rev {
			ss.send(id, &hubsync.TotalsResult{Day: m.Day, Status: hubsync.TotalsStale, Match: false})
			return
		}
	}
	signed, _ := hubsync.TotalsBytes(ss.term, m) // verified above
	t := store.Totals{TerminalNo: ss.term, Day: m.Day, PayCount: m.PayCount, PayAmount: m.PayAmount,
		LoadCount: m.LoadCount, LoadAmount: m.LoadAmount, CertifyCount: m.CertifyCount,
		Signed: signed, Signature: m.Signature}
	if err := ss.s.o.Store.PutTotals(ss.ctx, t); err != nil {
		ss.log.Warn("hub: totals not stored", "day", m.Day, "err", err)
		ss.send(id, hubsync.NewError(hubsync.CodeUnavailable, "totals not stored", false))
		return
	}
	match, err := ss.postedMatch(t)
	if err != nil {
		ss.log.Warn("hub: totals stored; posted figures unavailable", "day", m.Day, "err", err)
	}
	ss.log.Info("hub: end-of-day totals stored", "day", m.Day, "rev", m.Rev, "match", match)
	ss.send(id, &hubsync.TotalsResult{Day: m.Day, Status: hubsync.TotalsStored, Match: match})
}

// postedMatch reports whether the hub's postings of t's terminal and day
// add up to t.
func (ss *session) postedMatch(t store.Totals) (bool, error) {
	lines, err := ss.s.o.Store.Summary(ss.ctx, t.Day)
	if err != nil {
		return false, err
	}
	var posted ledger.Counts
	if c := ledger.TerminalCounts(lines)[t.TerminalNo]; c != nil {
		posted = *c
	}
	return posted == ledger.SubmittedCounts(t), nil
}
