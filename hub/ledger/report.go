package ledger

import (
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"

	"github.com/onecard-hub/onecard/hub/store"
	"github.com/onecard-hub/onecard/terminal/record"
)

// Report is the end-of-day settlement and reconciliation of one card
// transaction day.
type Report struct {
	Day string // YYYYMMDD
	// Merchants: what each merchant is owed per fund (pay records).
	Merchants []MerchantLine
	// Programmes: what each programme took in, granted and paid out.
	Programmes []ProgrammeLine
	// Terminals: posted figures against the totals each terminal signed.
	Terminals []TerminalLine
	// Discrepancies, in the order: totals, missing records, dead letters.
	Discrepancies []Discrepancy
}

// MerchantLine is one merchant's settlement in one fund.
type MerchantLine struct {
	Merchant, Fund string
	Count, Amount  int64
}

// ProgrammeLine is one programme's day: Funded (deposits), Granted (to
// cards), Loaded (onto cards, in Loads records), in fen.
type ProgrammeLine struct {
	Programme, Fund         string
	Funded, Granted, Loaded int64
	Loads                   int64
}

// Counts are a terminal's figures for a day.
type Counts struct {
	PayCount, PayAmount, LoadCount, LoadAmount, CertifyCount int64
}

// TerminalLine compares what the hub posted for a terminal with what the
// terminal submitted (nil: nothing submitted).
type TerminalLine struct {
	TerminalNo string
	Posted     Counts
	Submitted  *Counts
	Match      bool
}

// DiscrepancyKind names a kind of discrepancy.
type DiscrepancyKind string

// Discrepancy kinds.
const (
	// TotalsMismatch: a terminal's submitted totals differ from the
	// postings; Records are the terminal's postings of the day.
	TotalsMismatch DiscrepancyKind = "totals-mismatch"
	// TotalsMissing: the hub posted records of a terminal that submitted no
	// totals for the day.
	TotalsMissing DiscrepancyKind = "totals-missing"
	// MissingRecord: a card's counter skipped values: records the hub has
	// not received; Records are the postings either side of the gap.
	MissingRecord DiscrepancyKind = "missing-record"
	// Rejected: a record of the day in the dead letters.
	Rejected DiscrepancyKind = "rejected"
)

// Discrepancy is one thing that does not add up, with the records behind
// it.
type Discrepancy struct {
	Kind       DiscrepancyKind
	TerminalNo string
	CardID     string // 32 hex digits, or ""
	Detail     string // no personal data
	Records    []store.Key
}

// Report builds the report of day (YYYYMMDD). Errors: store.ErrInvalid
// for a bad day, store errors.
func (l *Ledger) Report(ctx context.Context, day string) (*Report, error) {
	if !store.ValidDay(day) {
		return nil, fmt.Errorf("report: %w: day %q", store.ErrInvalid, day)
	}
	lines, err := l.st.Summary(ctx, day)
	if err != nil {
		return nil, fmt.Errorf("report: %w", err)
	}
	r := &Report{Day: day}
	merchants := map[[2]string]*MerchantLine{}
	progs := map[string]*ProgrammeLine{}
	prog := func(id, fund string) *ProgrammeLine {
		p := progs[id]
		if p == nil {
			p = &ProgrammeLine{Programme: id, Fund: fund}
			progs[id] = p
		}
		return p
	}
	for _, ln := range lines {
		switch ln.Kind {
		case store.KindPay:
			k := [2]string{ln.Party, ln.Fund}
			m := merchants[k]
			if m == nil {
				m = &MerchantLine{Merchant: ln.Party, Fund: ln.Fund}
				merchants[k] = m
			}
			m.Count += ln.Count
			m.Amount += ln.Amount
		case store.KindLoad:
			p := prog(ln.Party, ln.Fund)
			p.Loaded += ln.Amount
			p.Loads += ln.Count
		case store.KindFund:
			prog(ln.Party, ln.Fund).Funded += ln.Amount
		case store.KindGrant:
			prog(ln.Party, ln.Fund).Granted += ln.Amount
		}
	}
	for _, m := range merchants {
		r.Merchants = append(r.Merchants, *m)
	}
	sort.Slice(r.Merchants, func(i, j int) bool {
		a, b := r.Merchants[i], r.Merchants[j]
		return a.Merchant < b.Merchant || (a.Merchant == b.Merchant && a.Fund < b.Fund)
	})
	for _, p := range progs {
		r.Programmes = append(r.Programmes, *p)
	}
	sort.Slice(r.Programmes, func(i, j int) bool { return r.Programmes[i].Programme < r.Programmes[j].Programme })

	if err := l.reconcileTerminals(ctx, r, TerminalCounts(lines)); err != nil {
		return nil, err
	}
	gaps, err := l.st.Gaps(ctx, day)
	if err != nil {
		return nil, fmt.Errorf("report: %w", err)
	}
	for _, g := range gaps {
		r.Discrepancies = append(r.Discrepancies, Discrepancy{
			Kind: MissingRecord, CardID: g.CardID.String(),
			Detail:  fmt.Sprintf("card counter %s values %d..%d not received", g.Type, g.From, g.To),
			Records: []store.Key{g.Before, g.After},
		})
	}
	if err := l.rejected(ctx, r); err != nil {
		return nil, err
	}
	return r, nil
}

// TerminalCounts adds up a day's summary lines (store.Summary) per
// terminal: what the hub posted for each, to compare with the totals the
// terminal signed. Operator postings (no terminal) are left out.
func TerminalCounts(lines []store.SummaryLine) map[string]*Counts {
	posted := map[string]*Counts{}
	for _, ln := range lines {
		if ln.TerminalNo == "" {
			continue
		}
		c := posted[ln.TerminalNo]
		if c == nil {
			c = &Counts{}
			posted[ln.TerminalNo] = c
		}
		switch ln.Kind {
		case store.KindPay:
			c.PayCount += ln.Count
			c.PayAmount += ln.Amount
		case store.KindLoad:
			c.LoadCount += ln.Count
			c.LoadAmount += ln.Amount
		case store.KindCertify:
			c.CertifyCount += ln.Count
		}
	}
	return posted
}

// SubmittedCounts returns the figures of a terminal's submitted totals.
func SubmittedCounts(t store.Totals) Counts {
	return Counts{PayCount: t.PayCount, PayAmount: t.PayAmount, LoadCount: t.LoadCount,
		LoadAmount: t.LoadAmount, CertifyCount: t.CertifyCount}
}

func (l *Ledger) reconcileTerminals(ctx context.Context, r *Report, posted map[string]*Counts) error {
	submitted, err := l.st.Totals(ctx, r.Day)
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	byTerm := map[string]*Counts{}
	for _, t := range submitted {
		c := SubmittedCounts(t)
		byTerm[t.TerminalNo] = &c
	}
	terms := map[string]bool{}
	for t := range posted {
		terms[t] = true
	}
	for t := range byTerm {
		terms[t] = true
	}
	names := make([]string, 0, len(terms))
	for t := range terms {
		names = append(names, t)
	}
	sort.Strings(names)
	for _, t := range names {
		line := TerminalLine{TerminalNo: t, Submitted: byTerm[t]}
		if p := posted[t]; p != nil {
			line.Posted = *p
		}
		line.Match = line.Submitted != nil && *line.Submitted == line.Posted
		r.Terminals = append(r.Terminals, line)
		switch {
		case line.Submitted == nil:
			r.Discrepancies = append(r.Discrepancies, Discrepancy{Kind: TotalsMissing, TerminalNo: t,
				Detail: "records posted, no end-of-day totals submitted"})
		case !line.Match:
			keys, err := l.dayKeys(ctx, r.Day, t)
			if err != nil {
				return err
			}
			s, p := line.Submitted, line.Posted
			r.Discrepancies = append(r.Discrepancies, Discrepancy{Kind: TotalsMismatch, TerminalNo: t,
				Detail: fmt.Sprintf("submitted pay %d/%d load %d/%d certify %d; posted pay %d/%d load %d/%d certify %d",
					s.PayCount, s.PayAmount, s.LoadCount, s.LoadAmount, s.CertifyCount,
					p.PayCount, p.PayAmount, p.LoadCount, p.LoadAmount, p.CertifyCount),
				Records: keys})
		}
	}
	return nil
}

// dayKeys lists the keys of a terminal's postings of a day.
func (l *Ledger) dayKeys(ctx context.Context, day, term string) ([]store.Key, error) {
	var keys []store.Key
	var after uint64
	for {
		ps, err := l.st.Postings(ctx, store.Query{Day: day, TerminalNo: term, AfterID: after, Limit: 1000})
		if err != nil {
			return nil, fmt.Errorf("report: %w", err)
		}
		if len(ps) == 0 {
			return keys, nil
		}
		for _, p := range ps {
			keys = append(keys, p.Key)
		}
		after = ps[len(ps)-1].ID
	}
}

// rejected adds the dead letters whose record is of the report's day.
func (l *Ledger) rejected(ctx context.Context, r *Report) error {
	var after uint64
	for {
		ds, err := l.st.DeadLetters(ctx, after, 1000)
		if err != nil {
			return fmt.Errorf("report: %w", err)
		}
		if len(ds) == 0 {
			return nil
		}
		for _, d := range ds {
			rec, err := record.Decode(d.Content)
			if err != nil || rec.CardDate != r.Day {
				continue
			}
			r.Discrepancies = append(r.Discrepancies, Discrepancy{Kind: Rejected, TerminalNo: d.Key.TerminalNo,
				CardID: rec.CardID.String(), Detail: fmt.Sprintf("%s record rejected %d time(s): %s", rec.Kind, d.Count, d.Reason),
				Records: []store.Key{d.Key}})
		}
		after = ds[len(ds)-1].ID
	}
}

// CSVHeader is the first row WriteCSV writes.
var CSVHeader = []string{"section", "day", "terminal", "party", "fund", "kind", "count", "amount", "detail"}

// WriteCSV renders the report as CSV (RFC 4180, header CSVHeader): one row
// per merchant line, three per programme (fund, grant, load), three per
// terminal (pay, load, certify: posted figures, submitted ones in detail)
// and one per discrepancy (records in detail). Cells that a spreadsheet
// would take for a formula (starting with = + - @ or a tab/CR) are
// prefixed with an apostrophe.
func (r *Report) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	i := strconv.FormatInt
	row := func(cells ...string) {
		for k, c := range cells {
			cells[k] = safeCell(c)
		}
		_ = cw.Write(cells)
	}
	row(append([]string(nil), CSVHeader...)...)
	for _, m := range r.Merchants {
		row("merchant", r.Day, "", m.Merchant, m.Fund, "pay", i(m.Count, 10), i(m.Amount, 10), "")
	}
	for _, p := range r.Programmes {
		row("programme", r.Day, "", p.Programme, p.Fund, "fund", "", i(p.Funded, 10), "")
		row("programme", r.Day, "", p.Programme, p.Fund, "grant", "", i(p.Granted, 10), "")
		row("programme", r.Day, "", p.Programme, p.Fund, "load", i(p.Loads, 10), i(p.Loaded, 10), "")
	}
	for _, t := range r.Terminals {
		sub := func(count, amount int64) string {
			if t.Submitted == nil {
				return "submitted: none"
			}
			return fmt.Sprintf("submitted: %d/%d", count, amount)
		}
		var s Counts
		if t.Submitted != nil {
			s = *t.Submitted
		}
		row("terminal", r.Day, t.TerminalNo, "", "", "pay", i(t.Posted.PayCount, 10), i(t.Posted.PayAmount, 10), sub(s.PayCount, s.PayAmount))
		row("terminal", r.Day, t.TerminalNo, "", "", "load", i(t.Posted.LoadCount, 10), i(t.Posted.LoadAmount, 10), sub(s.LoadCount, s.LoadAmount))
		row("terminal", r.Day, t.TerminalNo, "", "", "certify", i(t.Posted.CertifyCount, 10), "", sub(s.CertifyCount, 0))
	}
	for _, d := range r.Discrepancies {
		keys := make([]string, len(d.Records))
		for k, key := range d.Records {
			keys[k] = key.String()
		}
		detail := d.Detail
		if d.CardID != "" {
			detail = "card " + d.CardID + ": " + detail
		}
		if len(keys) > 0 {
			detail += "; records: " + strings.Join(keys, " ")
		}
		row("discrepancy", r.Day, d.TerminalNo, "", "", string(d.Kind), "", "", detail)
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("write report CSV: %w", err)
	}
	return nil
}

func safeCell(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}
