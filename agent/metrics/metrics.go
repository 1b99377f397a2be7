// Package metrics is a small Prometheus registry for the agent: counters,
// gauges and histograms with labels, and gauges computed at scrape time,
// written in the Prometheus text exposition format (version 0.0.4).
//
// It is hand-written on purpose: the agent exports a few dozen series and
// a kiosk installs one small binary, so the prometheus/client_golang
// dependency tree (protobuf, procfs, ...) is not worth it. The format is
// the documented text format: HELP and TYPE lines, label values escaped
// (\\, \", \n), histograms as cumulative _bucket{le=...} series with
// _sum and _count. Families are written in registration order and series
// in label order, so the output is stable.
//
// All methods are safe for concurrent use. Using a metric with the wrong
// number of label values is a programming error and panics (as in
// client_golang).
package metrics

import (
	"fmt"
	"io"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// ContentType is the exposition format's content type.
const ContentType = "text/plain; version=0.0.4; charset=utf-8"

// Registry holds metric families.
type Registry struct {
	mu       sync.Mutex
	families []family
	names    map[string]bool
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{names: map[string]bool{}} }

type family interface {
	write(w *strings.Builder)
}

func (r *Registry) add(name string, f family) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !validName(name) {
		panic("metrics: invalid metric name " + strconv.Quote(name))
	}
	if r.names[name] {
		panic("metrics: duplicate metric " + name)
	}
	r.names[name] = true
	r.families = append(r.families, f)
}

func validName(s string) bool {
	if s == "" {
		return false
	}
	for i, c := range s {
		ok := c == '_' || c == ':' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || i > 0 && '0' <= c && c <= '9'
		if !ok {
			return false
		}
	}
	return true
}

// WriteTo writes every family in the text format.
func (r *Registry) WriteTo(w io.Writer) (int64, error) {
	r.mu.Lock()
	fams := append([]family(nil), r.families...)
	r.mu.Unlock()
	var b strings.Builder
	for _, f := range fams {
		f.write(&b)
	}
	n, err := io.WriteString(w, b.String())
	return int64(n), err
}

// ServeHTTP serves the registry (GET or HEAD).
func (r *Registry) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodGet && req.Method != http.MethodHead {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("Content-Type", ContentType)
	if req.Method == http.MethodHead {
		return
	}
	_, _ = r.WriteTo(w)
}

// header writes the HELP and TYPE lines.
func header(b *strings.Builder, name, help, typ string) {
	fmt.Fprintf(b, "# HELP %s %s\n# TYPE %s %s\n", name, escapeHelp(help), name, typ)
}

func escapeHelp(s string) string {
	return strings.NewReplacer(`\`, `\\`, "\n", `\n`).Replace(s)
}

func escapeLabel(s string) string {
	return strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`).Replace(s)
}

// labelString formats {k="v",...} (empty without labels); extra is
// appended last (the histogram's le).
func labelString(names, values []string, extra ...string) string {
	if len(names) == 0 && len(extra) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteByte('{')
	for i, n := range names {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `%s="%s"`, n, escapeLabel(values[i]))
	}
	for i := 0; i+1 < len(extra); i += 2 {
		if b.Len() > 1 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `%s="%s"`, extra[i], escapeLabel(extra[i+1]))
	}
	b.WriteByte('}')
	return b.String()
}

// FormatFloat formats v as the text format wants (+Inf, -Inf, NaN).
func FormatFloat(v float64) string {
	switch {
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	case math.IsNaN(v):
		return "NaN"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

// vec is the label handling shared by counters and gauges.
type vec struct {
	name, help, typ string
	labels          []string
	mu              sync.Mutex
	values          map[string]*series
}

type series struct {
	labelValues []string
	v           float64
}

func newVec(name, help, typ string, labels []string) *vec {
	for _, l := range labels {
		if !validName(l) || strings.Contains(l, ":") || l == "le" {
			panic("metrics: invalid label name " + strconv.Quote(l))
		}
	}
	return &vec{name: name, help: help, typ: typ, labels: labels, values: map[string]*series{}}
}

func (v *vec) get(lv []string) *series {
	if len(lv) != len(v.labels) {
		panic(fmt.Sprintf("metrics: %s takes %d label values, got %d", v.name, len(v.labels), len(lv)))
	}
	k := strings.Join(lv, "\xff")
	s, ok := v.values[k]
	if !ok {
		s = &series{labelValues: append([]string(nil), lv...)}
		v.values[k] = s
	}
	return s
}

func (v *vec) write(b *strings.Builder) {
	v.mu.Lock()
	defer v.mu.Unlock()
	header(b, v.name, v.help, v.typ)
	keys := make([]string, 0, len(v.values))
	for k := range v.values {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		s := v.values[k]
		fmt.Fprintf(b, "%s%s %s\n", v.name, labelString(v.labels, s.labelValues), FormatFloat(s.v))
	}
}

// CounterVec is a counter family.
type CounterVec struct{ v *vec }

// Counter registers a counter family with the given label names.
func (r *Registry) Counter(name, help string, labels ...string) *CounterVec {
	c := &CounterVec{newVec(name, help, "counter", labels)}
	r.add(name, c.v)
	return c
}

// Inc adds 1 to the series with the label values lv.
func (c *CounterVec) Inc(lv ...string) { c.Add(1, lv...) }

// Add adds d (ignored unless > 0: counters only go up).
func (c *CounterVec) Add(d float64, lv ...string) {
	c.v.mu.Lock()
	defer c.v.mu.Unlock()
	s := c.v.get(lv)
	if d > 0 {
		s.v += d
	}
}

// Value returns the series' current value (0 when it does not exist).
func (c *CounterVec) Value(lv ...string) float64 { return c.v.value(lv) }

func (v *vec) value(lv []string) float64 {
	v.mu.Lock()
	defer v.mu.Unlock()
	if s, ok := v.values[strings.Join(lv, "\xff")]; ok {
		return s.v
	}
	return 0
}

// GaugeVec is a gauge family.
type GaugeVec struct{ v *vec }

// Gauge registers a gauge family.
func (r *Registry) Gauge(name, help string, labels ...string) *GaugeVec {
	g := &GaugeVec{newVec(name, help, "gauge", labels)}
	r.add(name, g.v)
	return g
}

// Set sets the series' value.
func (g *GaugeVec) Set(x float64, lv ...string) {
	g.v.mu.Lock()
	defer g.v.mu.Unlock()
	g.v.get(lv).v = x
}

// Add adds d (may be negative).
func (g *GaugeVec) Add(d float64, lv ...string) {
	g.v.mu.Lock()
	defer g.v.mu.Unlock()
	g.v.get(lv).v += d
}

// Value returns the series' current value (0 when it does not exist).
func (g *GaugeVec) Value(lv ...string) float64 { return g.v.value(lv) }

// Sample is one series of a GaugeFunc.
type Sample struct {
	LabelValues []string
	Value       float64
}

type gaugeFunc struct {
	name, help string
	labels     []string
	f          func() []Sample
}

// GaugeFunc registers a gauge family whose series f computes at every
// scrape (journal depth, sync state). Samples with the wrong number of
// label values are skipped.
func (r *Registry) GaugeFunc(name, help string, f func() []Sample, labels ...string) {
	newVec(name, help, "gauge", labels) // validates the label names
	r.add(name, &gaugeFunc{name: name, help: help, labels: labels, f: f})
}

func (g *gaugeFunc) write(b *strings.Builder) {
	header(b, g.name, g.help, "gauge")
	ss := g.f()
	sort.SliceStable(ss, func(i, j int) bool {
		return strings.Join(ss[i].LabelValues, "\xff") < strings.Join(ss[j].LabelValues, "\xff")
	})
	for _, s := range ss {
		if len(s.LabelValues) != len(g.labels) {
			continue
		}
		fmt.Fprintf(b, "%s%s %s\n", g.name, labelString(g.labels, s.LabelValues), FormatFloat(s.Value))
	}
}

// HistogramVec is a histogram family.
type HistogramVec struct {
	name, help string
	labels     []string
	buckets    []float64
	mu         sync.Mutex
	series     map[string]*hseries
}

type hseries struct {
	labelValues []string
	counts      []uint64 // per bucket, not cumulative
	count       uint64
	sum         float64
}

// DefBuckets suit card and network latencies in seconds (1 ms .. 30 s).
var DefBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}

// Histogram registers a histogram family with upper bounds buckets
// (sorted ascending; +Inf is implied); nil means DefBuckets.
func (r *Registry) Histogram(name, help string, buckets []float64, labels ...string) *HistogramVec {
	if buckets == nil {
		buckets = DefBuckets
	}
	if !sort.Float64sAreSorted(buckets) {
		panic("metrics: buckets of " + name + " not sorted")
	}
	newVec(name, help, "histogram", labels)
	h := &HistogramVec{name: name, help: help, labels: labels, buckets: append([]float64(nil), buckets...), series: map[string]*hseries{}}
	r.add(name, h)
	return h
}

// Observe records x in the series with label values lv.
func (h *HistogramVec) Observe(x float64, lv ...string) {
	if len(lv) != len(h.labels) {
		panic(fmt.Sprintf("metrics: %s takes %d label values, got %d", h.name, len(h.labels), len(lv)))
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	k := strings.Join(lv, "\xff")
	s, ok := h.series[k]
	if !ok {
		s = &hseries{labelValues: append([]string(nil), lv...), counts: make([]uint64, len(h.buckets))}
		h.series[k] = s
	}
	i := sort.SearchFloat64s(h.buckets, x) // first bucket with bound >= x
	if i < len(h.buckets) {
		s.counts[i]++
	}
	s.count++
	s.sum += x
}

// Count returns the number of observations of a series.
func (h *HistogramVec) Count(lv ...string) uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	if s, ok := h.series[strings.Join(lv, "\xff")]; ok {
		return s.count
	}
	return 0
}

func (h *HistogramVec) write(b *strings.Builder) {
	h.mu.Lock()
	defer h.mu.Unlock()
	header(b, h.name, h.help, "histogram")
	keys := make([]string, 0, len(h.series))
	for k := range h.series {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		s := h.series[k]
		var cum uint64
		for i, ub := range h.buckets {
			cum += s.counts[i]
			fmt.Fprintf(b, "%s_bucket%s %d\n", h.name, labelString(h.labels, s.labelValues, "le", FormatFloat(ub)), cum)
		}
		fmt.Fprintf(b, "%s_bucket%s %d\n", h.name, labelString(h.labels, s.labelValues, "le", "+Inf"), s.count)
		fmt.Fprintf(b, "%s_sum%s %s\n", h.name, labelString(h.labels, s.labelValues), FormatFloat(s.sum))
		fmt.Fprintf(b, "%s_count%s %d\n", h.name, labelString(h.labels, s.labelValues), s.count)
	}
}
