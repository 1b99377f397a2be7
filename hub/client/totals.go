package client

import (
	"context"
	"errors"
	"fmt"

	hubsync "github.com/onecard-hub/onecard/hub/sync"
)

// DefaultTotalsDays is how many of the journal's latest card days the
// client keeps submitting (Options.TotalsDays).
const DefaultTotalsDays = 7

// TotalsStatus is the last end-of-day totals submission of one day.
type TotalsStatus struct {
	Day   string
	Rev   uint64
	Match bool // the hub's postings equalled the totals when they were stored
	// Refused is the hub's error code when it refused this revision (it
	// is not sent again until the day's totals change).
	Refused string
}

// submitTotals signs and sends the journal's totals of each of its
// latest Options.TotalsDays card days that changed since the hub last
// stored them (the journal's days, not the clock's: a terminal whose
// records carry another date than the machine's still reports them). It runs when the upload
// queue is empty, so the hub has posted every record the totals count
// (except those it rejected, which the report lists). A day the hub
// cannot take now (unavailable, rate limited) is sent again at the next
// drain; one it refuses is logged and not sent again until its totals
// change; a connection failure is returned.
func (c *Client) submitTotals(ctx context.Context, cn *conn) error {
	days, err := c.o.Journal.Totals("")
	if err != nil {
		return fmt.Errorf("submit totals: %w", err)
	}
	if len(days) > c.o.TotalsDays {
		days = days[len(days)-c.o.TotalsDays:]
	}
	for _, d := range days {
		c.mu.Lock()
		done := c.totals[d.Day].Rev == d.Rev
		c.mu.Unlock()
		if done {
			continue
		}
		m := &hubsync.Totals{Day: d.Day, Rev: d.Rev, PayCount: d.PayCount, PayAmount: d.PayAmount,
			LoadCount: d.LoadCount, LoadAmount: d.LoadAmount, CertifyCount: d.CertifyCount}
		if err := hubsync.SignTotals(c.o.Key, c.o.TerminalID, m); err != nil {
			return fmt.Errorf("submit totals of %s: %w", d.Day, err)
		}
		ans, err := cn.request(ctx, m, c.o.RequestTimeout)
		var he *hubsync.Error
		switch {
		case errors.As(err, &he) && (he.Code == hubsync.CodeUnavailable || he.Code == hubsync.CodeRateLimited):
			continue // sent again at the next drain
		case errors.As(err, &he) && !he.Fatal:
			// Refused for good: not sent again until the day's totals change.
			c.o.Logger.Warn("hub: end-of-day totals refused", "day", d.Day, "rev", d.Rev, "err", err)
			c.mu.Lock()
			c.totals[d.Day] = TotalsStatus{Day: d.Day, Rev: d.Rev, Refused: he.Code}
			c.mu.Unlock()
			continue
		case err != nil:
			return fmt.Errorf("submit totals of %s: %w", d.Day, err)
		}
		r, ok := ans.(*hubsync.TotalsResult)
		if !ok || r.Day != d.Day {
			return fmt.Errorf("submit totals of %s: %w: unexpected answer", d.Day, ErrProtocol)
		}
		c.mu.Lock()
		c.totals[d.Day] = TotalsStatus{Day: d.Day, Rev: d.Rev, Match: r.Match}
		c.mu.Unlock()
		if r.Status == hubsync.TotalsStored && !r.Match {
			c.o.Logger.Warn("hub: end-of-day totals differ from the hub's postings", "day", d.Day, "rev", d.Rev)
		} else {
			c.o.Logger.Info("hub: end-of-day totals submitted", "day", d.Day, "rev", d.Rev, "status", r.Status, "match", r.Match)
		}
	}
	return nil
}
