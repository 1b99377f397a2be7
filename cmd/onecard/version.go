package main

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func init() {
	register(command{
		name:    "version",
		summary: "print the onecard version and build information",
		run: func(_ context.Context, args []string, stdout, stderr io.Writer) error {
			fs := newFlagSet("version", "", stderr)
			if err := fs.Parse(args); err != nil {
				return err
			}
			if fs.NArg() != 0 {
				return usagef("version takes no arguments")
			}
			fmt.Fprintf(stdout, "onecard %s (%s, %s/%s)\n", version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
			if bi, ok := debug.ReadBuildInfo(); ok {
				for _, d := range bi.Deps {
					switch d.Path {
					case "github.com/emmansun/gmsm", "github.com/ebfe/scard":
						fmt.Fprintf(stdout, "  %s %s\n", d.Path, d.Version)
					}
				}
			}
			return nil
		},
	})
}
