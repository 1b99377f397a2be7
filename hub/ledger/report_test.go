package ledger_test

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/onecard-hub/onecard/hub/ledger"
	"github.com/onecard-hub/onecard/hub/store"
	"github.com/onecard-hub/onecard/terminal/record"
)

// TestReport: a day with two programmes' loads, pays at two merchants,
// a certification, a gap in a card counter, a rejected record and three
// terminals: one whose totals match, one whose totals differ, one that
// sent none.
func TestReport(t *testing.T) {
	eachStore(t, func(t *testing.T, l *ledger.Ledger, _ *logBuffer) {
		setupProgramme(t, l, "SUBSIDY", "agri", 50000)
		c1, c2 := card(1), card(2)
		for i, c := range []record.CardID{c1, c2} {
			if _, err := l.Grant(ctx(t), ledger.Request{Ref: fmt.Sprintf("g%d", i), Programme: "SUBSIDY", Card: c, Amount: 10000}); err != nil {
				t.Fatal(err)
			}
		}
		recs := []*record.Record{
			loadRecord(termA, 1, c1, 1, 10000, "SUBSIDY", "agri"),
			loadRecord(termB, 1, c2, 1, 8000, "SUBSIDY", "agri"),
			payRecord(termA, 2, c1, 1, 1000, "H1", "agri"),
			payRecord(termA, 3, c1, 2, 2000, "H2", "agri"),
			payRecord(termB, 2, c1, 5, 500, "H1", "agri"), // counter 3..4 missing
			payRecord(termC, 1, c2, 1, 300, "H1", "agri"),
			certifyRecord(termC, 2, c2),
		}
		for i, r := range mustPost(t, l, recs...) {
			if r.Err != nil {
				t.Fatalf("record %d: %v", i, r.Err)
			}
		}
		reused := payRecord(termC, 3, c2, 1, 10, "H1", "agri") // counter 1 again
		if r := mustPost(t, l, reused)[0]; r.Err == nil {
			t.Fatal("reused counter posted")
		}
		totals := []store.Totals{
			{TerminalNo: termA, Day: day, PayCount: 2, PayAmount: 3000, LoadCount: 1, LoadAmount: 10000},
			{TerminalNo: termB, Day: day, PayCount: 1, PayAmount: 600, LoadCount: 1, LoadAmount: 8000},
		}
		for _, tt := range totals {
			if err := l.Store().PutTotals(ctx(t), tt); err != nil {
				t.Fatal(err)
			}
		}
		rep, err := l.Report(ctx(t), day)
		if err != nil {
			t.Fatal(err)
		}
		// Expected figures, from the records above.
		wantMerchants := []ledger.MerchantLine{{Merchant: "H1", Fund: "agri", Count: 3, Amount: 1800}, {Merchant: "H2", Fund: "agri", Count: 1, Amount: 2000}}
		if !reflect.DeepEqual(rep.Merchants, wantMerchants) {
			t.Fatalf("merchants %+v", rep.Merchants)
		}
		// Operator postings are dated by the ledger's clock (at = day).
		wantProg := []ledger.ProgrammeLine{{Programme: "SUBSIDY", Fund: "agri", Funded: 50000, Granted: 20000, Loaded: 18000, Loads: 2}}
		if !reflect.DeepEqual(rep.Programmes, wantProg) {
			t.Fatalf("programmes %+v", rep.Programmes)
		}
		if len(rep.Terminals) != 3 {
			t.Fatalf("terminals %+v", rep.Terminals)
		}
		a, b, c := rep.Terminals[0], rep.Terminals[1], rep.Terminals[2]
		if a.TerminalNo != termA || !a.Match || b.TerminalNo != termB || b.Match || c.TerminalNo != termC || c.Submitted != nil || c.Match {
			t.Fatalf("terminal lines %+v", rep.Terminals)
		}
		if b.Posted != (ledger.Counts{PayCount: 1, PayAmount: 500, LoadCount: 1, LoadAmount: 8000}) ||
			c.Posted != (ledger.Counts{PayCount: 1, PayAmount: 300, CertifyCount: 1}) {
			t.Fatalf("posted counts %+v %+v", b.Posted, c.Posted)
		}
		kinds := map[ledger.DiscrepancyKind][]ledger.Discrepancy{}
		for _, d := range rep.Discrepancies {
			kinds[d.Kind] = append(kinds[d.Kind], d)
		}
		mis := kinds[ledger.TotalsMismatch]
		if len(mis) != 1 || mis[0].TerminalNo != termB || !reflect.DeepEqual(mis[0].Records, []store.Key{keyOf(recs[1]), keyOf(recs[4])}) {
			t.Fatalf("mismatch %+v", mis)
		}
		if m := kinds[ledger.TotalsMissing]; len(m) != 1 || m[0].TerminalNo != termC {
			t.Fatalf("missing totals %+v", m)
		}
		gap := kinds[ledger.MissingRecord]
		if len(gap) != 1 || gap[0].CardID != c1.String() || !strings.Contains(gap[0].Detail, "3..4") ||
			!reflect.DeepEqual(gap[0].Records, []store.Key{keyOf(recs[3]), keyOf(recs[4])}) {
			t.Fatalf("gap %+v", gap)
		}
		rej := kinds[ledger.Rejected]
		if len(rej) != 1 || rej[0].Records[0] != keyOf(reused) || !strings.Contains(rej[0].Detail, "reused") {
			t.Fatalf("rejected %+v", rej)
		}
		if len(rep.Discrepancies) != 4 {
			t.Fatalf("discrepancies %+v", rep.Discrepancies)
		}

		var buf bytes.Buffer
		if err := rep.WriteCSV(&buf); err != nil {
			t.Fatal(err)
		}
		rows, err := csv.NewReader(&buf).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		// header + 2 merchants + 3 programme rows + 3×3 terminal rows + 4 discrepancies
		if want := 1 + 2 + 3 + 9 + 4; len(rows) != want || !reflect.DeepEqual(rows[0], ledger.CSVHeader) {
			t.Fatalf("%d CSV rows, want %d: %q", len(rows), want, rows)
		}
		if got := rows[1]; got[0] != "merchant" || got[3] != "H1" || got[7] != "1800" {
			t.Fatalf("merchant row %q", got)
		}
		last := rows[len(rows)-1]
		if last[0] != "discrepancy" || last[5] != string(ledger.Rejected) || !strings.Contains(last[8], keyOf(reused).String()) {
			t.Fatalf("discrepancy row %q", last)
		}
		if _, err := l.Report(ctx(t), "2026-03-14"); err == nil {
			t.Fatal("report of a bad day")
		}
	})
}

func FuzzWriteCSV(f *testing.F) {
	f.Add("H37010000001", "310", "card counter ED-offline values 3..4", "370100000001")
	f.Add("=cmd|' /C calc'!A0", "+1", "-2", "@SUM(A1)")
	f.Add("惠民\"惠农\"", "a,b", "line\nbreak", "\r\n")
	f.Fuzz(func(t *testing.T, party, fund, detail, term string) {
		rep := &ledger.Report{
			Day:           day,
			Merchants:     []ledger.MerchantLine{{Merchant: party, Fund: fund, Count: 1, Amount: 2}},
			Programmes:    []ledger.ProgrammeLine{{Programme: party, Fund: fund}},
			Terminals:     []ledger.TerminalLine{{TerminalNo: term}},
			Discrepancies: []ledger.Discrepancy{{Kind: ledger.TotalsMismatch, TerminalNo: term, Detail: detail}},
		}
		var buf bytes.Buffer
		if err := rep.WriteCSV(&buf); err != nil {
			t.Fatal(err)
		}
		rows, err := csv.NewReader(&buf).ReadAll()
		if err != nil {
			t.Fatalf("WriteCSV output does not parse: %v", err)
		}
		if len(rows) != 1+1+3+3+1 {
			t.Fatalf("%d rows", len(rows))
		}
		for _, row := range rows {
			for _, cell := range row {
				if cell != "" && strings.ContainsRune("=+-@\t\r", rune(cell[0])) {
					t.Fatalf("cell %q starts like a formula", cell)
				}
			}
		}
		// Cells survive, up to the apostrophe and CSV's CRLF folding.
		for _, c := range []struct{ in, out string }{{party, rows[1][3]}, {fund, rows[1][4]}, {term, rows[len(rows)-1][2]}} {
			want := c.in
			if want != "" && strings.ContainsRune("=+-@\t\r", rune(want[0])) {
				want = "'" + want
			}
			if want = strings.ReplaceAll(want, "\r\n", "\n"); c.out != want {
				t.Fatalf("cell %q came back as %q", c.in, c.out)
			}
		}
	})
}
