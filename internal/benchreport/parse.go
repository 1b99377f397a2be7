// Package benchreport turns `go test -bench` output into the project's
// benchmark report (docs/benchmarks.md) and scaling chart
// (docs/scaling.svg).
package benchreport

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Metric is one value of a benchmark line ("ns/op", "B/op", or a custom
// b.ReportMetric unit).
type Metric struct {
	Value float64
	Unit  string
}

// Result is one benchmark line.
type Result struct {
	Pkg     string
	Name    string // without the "Benchmark" prefix and the -procs suffix
	Procs   int
	N       int64
	Metrics []Metric
}

// Get returns the metric with unit and whether it is there.
func (r Result) Get(unit string) (float64, bool) {
	for _, m := range r.Metrics {
		if m.Unit == unit {
			return m.Value, true
		}
	}
	return 0, false
}

// Run is a parsed benchmark run.
type Run struct {
	CPU     string // the "cpu:" header, if any
	Results []Result
}

// Parse reads `go test -bench` output. Lines that are not benchmark
// results or headers are ignored; a "Benchmark" line that does not parse
// (e.g. a benchmark's log output) is skipped, never a panic. Errors: only
// the reader's.
func Parse(r io.Reader) (*Run, error) {
	run := &Run{}
	pkg := ""
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(line, "pkg: "):
			pkg = strings.TrimSpace(strings.TrimPrefix(line, "pkg: "))
		case strings.HasPrefix(line, "cpu: "):
			run.CPU = strings.TrimSpace(strings.TrimPrefix(line, "cpu: "))
		case strings.HasPrefix(line, "Benchmark"):
			if res, ok := parseLine(line); ok {
				res.Pkg = pkg
				run.Results = append(run.Results, res)
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("parse benchmarks: %w", err)
	}
	return run, nil
}

// parseLine parses "BenchmarkName-4  N  v unit  v unit ...".
func parseLine(line string) (Result, bool) {
	f := strings.Fields(line)
	if len(f) < 4 || len(f)%2 != 0 {
		return Result{}, false
	}
	name := strings.TrimPrefix(f[0], "Benchmark")
	res := Result{Procs: 1}
	if i := strings.LastIndexByte(name, '-'); i > 0 {
		if p, err := strconv.Atoi(name[i+1:]); err == nil && p > 0 {
			name, res.Procs = name[:i], p
		}
	}
	if name == "" {
		return Result{}, false
	}
	res.Name = name
	n, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil || n <= 0 {
		return Result{}, false
	}
	res.N = n
	for i := 2; i+1 < len(f); i += 2 {
		v, err := strconv.ParseFloat(f[i], 64)
		if err != nil {
			return Result{}, false
		}
		res.Metrics = append(res.Metrics, Metric{Value: v, Unit: f[i+1]})
	}
	return res, true
}
