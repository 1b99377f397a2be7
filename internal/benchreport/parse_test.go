package benchreport

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	data, err := os.ReadFile("testdata/bench.txt")
	if err != nil {
		t.Fatal(err)
	}
	run, err := Parse(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, unit string
		want       float64
	}{
		{"Scaling/agents=1", "ns/op", 432612471},
		{"Scaling/agents=10", "records/s", 830.4},
		{"Scaling/agents=1000", "p99-ms", 995.7},
	}
	for _, tc := range tests {
		found := false
		for _, r := range run.Results {
			if r.Name == tc.name {
				found = true
				if got, ok := r.Get(tc.unit); !ok || got != tc.want || r.Procs != 2 || !strings.HasSuffix(r.Pkg, "benchreport") {
					t.Errorf("%s %s = %v %v (procs %d, pkg %q), want %v", tc.name, tc.unit, got, ok, r.Procs, r.Pkg, tc.want)
				}
			}
		}
		if !found {
			t.Errorf("%s not parsed", tc.name)
		}
	}
	if run.CPU != "AMD EPYC" || len(run.Results) != 4 {
		t.Errorf("cpu %q, %d results", run.CPU, len(run.Results))
	}
	pts := Scaling(run)
	if len(pts) != 4 || pts[0].Agents != 1 || pts[3].Agents != 1000 || pts[3].Rate != 3898 {
		t.Errorf("scaling %+v", pts)
	}
	var md, svg bytes.Buffer
	if err := WriteMarkdown(&md, run, Machine{CPU: "X", Cores: 2, GoVersion: "go1.26", Date: time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC)}, "scaling.svg"); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"2026-01-02", "X, 2 cores", "| 1000 | 3898 | 996 |", "Scaling/agents=10"} {
		if !strings.Contains(md.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, md.String())
		}
	}
	if err := WriteSVG(&svg, pts); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(svg.String(), "<svg") || strings.Count(svg.String(), "<polyline") != 2 {
		t.Errorf("svg:\n%s", svg.String())
	}
}

func TestParseLineRejects(t *testing.T) {
	for _, l := range []string{"Benchmark", "BenchmarkX-2 abc 1 ns/op", "BenchmarkX-2 1 1", "BenchmarkX-2 0 1 ns/op", "BenchmarkX-2 1 x ns/op"} {
		if _, ok := parseLine(l); ok {
			t.Errorf("parseLine(%q) accepted", l)
		}
	}
}

func FuzzParse(f *testing.F) {
	data, err := os.ReadFile("testdata/bench.txt")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(data)
	f.Add([]byte("BenchmarkA-4 10 5 ns/op 3 x-raw\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		run, err := Parse(bytes.NewReader(b))
		if err != nil {
			return
		}
		for _, r := range run.Results {
			if r.N <= 0 || r.Name == "" {
				t.Fatalf("bad result %+v", r)
			}
		}
		var w bytes.Buffer
		if err := WriteMarkdown(&w, run, Machine{}, "s.svg"); err != nil {
			t.Fatal(err)
		}
		if err := WriteSVG(&w, Scaling(run)); err != nil {
			t.Fatal(err)
		}
	})
}
