// Command benchreport reads `go test -bench` output on stdin and writes
// docs/benchmarks.md and docs/scaling.svg (flags -md, -svg). It also
// echoes its input to stdout unless -echo=false.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/onecard-hub/onecard/internal/benchreport"
)

func main() {
	md := flag.String("md", "docs/benchmarks.md", "report file")
	svg := flag.String("svg", "docs/scaling.svg", "scaling chart file")
	echo := flag.Bool("echo", true, "copy the input to stdout")
	flag.Parse()
	var in bytes.Buffer
	var w io.Writer = &in
	if *echo {
		w = io.MultiWriter(os.Stdout, &in)
	}
	if _, err := io.Copy(w, os.Stdin); err != nil {
		fail(err)
	}
	run, err := benchreport.Parse(&in)
	if err != nil {
		fail(err)
	}
	if len(run.Results) == 0 {
		fail(fmt.Errorf("no benchmark results in the input"))
	}
	var out bytes.Buffer
	rel, _ := filepath.Rel(filepath.Dir(*md), *svg)
	if err := benchreport.WriteMarkdown(&out, run, benchreport.ThisMachine(run.CPU), rel); err != nil {
		fail(err)
	}
	if err := os.WriteFile(*md, out.Bytes(), 0o644); err != nil {
		fail(err)
	}
	out.Reset()
	if err := benchreport.WriteSVG(&out, benchreport.Scaling(run)); err != nil {
		fail(err)
	}
	if err := os.WriteFile(*svg, out.Bytes(), 0o644); err != nil {
		fail(err)
	}
	fmt.Fprintf(os.Stderr, "benchreport: %d results -> %s, %s\n", len(run.Results), *md, *svg)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "benchreport:", err)
	os.Exit(1)
}
