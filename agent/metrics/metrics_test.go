package metrics

import (
	"bufio"
	"math"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

// lineRE is one sample line of the text format.
var lineRE = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="(\\.|[^"\\])*",?)*\})? (\+Inf|-Inf|NaN|[-+0-9.eE]+)$`)

func scrape(t *testing.T, r *Registry) string {
	t.Helper()
	rec := httptest.NewRecorder()
	r.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if ct := rec.Header().Get("Content-Type"); ct != ContentType {
		t.Errorf("content type %q", ct)
	}
	out := rec.Body.String()
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		l := sc.Text()
		if strings.HasPrefix(l, "# HELP ") || strings.HasPrefix(l, "# TYPE ") {
			continue
		}
		if !lineRE.MatchString(l) {
			t.Errorf("invalid exposition line %q", l)
		}
	}
	return out
}

func TestExposition(t *testing.T) {
	r := NewRegistry()
	ops := r.Counter("onecard_operations_total", "Card operations.", "kind", "outcome")
	ops.Inc("pay", "ok")
	ops.Inc("pay", "ok")
	ops.Inc("read", `we"ird\`+"\n")
	ops.Add(-5, "pay", "ok") // ignored
	g := r.Gauge("onecard_kiosk_connections", "Open connections.")
	g.Set(3)
	g.Add(-1)
	h := r.Histogram("onecard_apdu_seconds", "APDU latency.", []float64{0.01, 0.1}, "role")
	for _, x := range []float64{0.25, 0.05, 0.5, 0.0078125, 0.01} {
		h.Observe(x, "card")
	}
	r.GaugeFunc("onecard_journal_records", "Records by state.", func() []Sample {
		return []Sample{{[]string{"sent"}, 2}, {[]string{"card-done"}, 1}, {[]string{"bad", "labels"}, 9}}
	}, "state")
	out := scrape(t, r)
	for _, want := range []string{
		"# TYPE onecard_operations_total counter",
		`onecard_operations_total{kind="pay",outcome="ok"} 2`,
		`onecard_operations_total{kind="read",outcome="we\"ird\\\n"} 1`,
		"# TYPE onecard_kiosk_connections gauge",
		"onecard_kiosk_connections 2",
		`onecard_apdu_seconds_bucket{role="card",le="0.01"} 2`,
		`onecard_apdu_seconds_bucket{role="card",le="0.1"} 3`,
		`onecard_apdu_seconds_bucket{role="card",le="+Inf"} 5`,
		`onecard_apdu_seconds_count{role="card"} 5`,
		`onecard_apdu_seconds_sum{role="card"} 0.8178125`,
		`onecard_journal_records{state="card-done"} 1`,
	} {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("missing %q in\n%s", want, out)
		}
	}
	if strings.Contains(out, "bad") {
		t.Errorf("sample with wrong label count written:\n%s", out)
	}
	if i, j := strings.Index(out, "card-done"), strings.Index(out, `"sent"`); i > j {
		t.Errorf("gauge func samples not sorted")
	}
	if ops.Value("pay", "ok") != 2 || g.Value() != 2 || h.Count("card") != 5 {
		t.Errorf("values: %v %v %v", ops.Value("pay", "ok"), g.Value(), h.Count("card"))
	}
}

func TestFormatFloat(t *testing.T) {
	for _, tt := range []struct {
		v    float64
		want string
	}{{math.Inf(1), "+Inf"}, {math.Inf(-1), "-Inf"}, {math.NaN(), "NaN"}, {1.5, "1.5"}, {1e21, "1e+21"}, {0, "0"}} {
		if got := FormatFloat(tt.v); got != tt.want {
			t.Errorf("FormatFloat(%v) = %q, want %q", tt.v, got, tt.want)
		}
	}
}

func TestMisuse(t *testing.T) {
	for name, f := range map[string]func(r *Registry){
		"duplicate":     func(r *Registry) { r.Counter("a", ""); r.Gauge("a", "") },
		"bad name":      func(r *Registry) { r.Counter("1a", "") },
		"bad label":     func(r *Registry) { r.Counter("a", "", "le") },
		"label count":   func(r *Registry) { r.Counter("a", "", "x").Inc() },
		"unsorted":      func(r *Registry) { r.Histogram("h", "", []float64{2, 1}) },
		"hist label ct": func(r *Registry) { r.Histogram("h", "", nil, "x").Observe(1) },
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Errorf("no panic")
				}
			}()
			f(NewRegistry())
		})
	}
}

func TestConcurrent(t *testing.T) {
	r := NewRegistry()
	c := r.Counter("c", "", "k")
	h := r.Histogram("h", "", nil)
	done := make(chan bool)
	for range 4 {
		go func() {
			for range 1000 {
				c.Inc("x")
				h.Observe(0.01)
			}
			done <- true
		}()
	}
	go func() {
		for range 10 {
			scrape(t, r)
		}
		done <- true
	}()
	for range 5 {
		<-done
	}
	if c.Value("x") != 4000 || h.Count() != 4000 {
		t.Errorf("counts %v %v", c.Value("x"), h.Count())
	}
}
