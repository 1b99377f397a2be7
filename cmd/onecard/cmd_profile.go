package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	firmwareprofiles "github.com/onecard-hub/onecard/firmware-profiles"
	"github.com/onecard-hub/onecard/reader/serial/profile"
)

func init() {
	register(command{
		name:    "profile",
		summary: "check reader firmware profiles, list the embedded ones",
		run:     runProfile,
	})
}

const profileUsage = "check FILE... | list"

func runProfile(_ context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintf(stderr, "usage: onecard profile %s\n", profileUsage)
		return usagef("profile needs a subcommand: check or list")
	}
	switch args[0] {
	case "check":
		return profileCheck(args[1:], stdout, stderr)
	case "list":
		return profileList(args[1:], stdout, stderr)
	case "-h", "-help", "--help", "help":
		fmt.Fprintf(stderr, "usage: onecard profile %s\n\n", profileUsage)
		fmt.Fprintln(stderr, "  check FILE...  validate profile files and run their golden test frames")
		fmt.Fprintln(stderr, "  list           list the profiles built into this binary")
		return nil
	}
	return usagef("unknown profile subcommand %q (want check or list)", args[0])
}

// profileCheck validates each file and runs its golden frames, printing
// "FILE: ok (N test frames)" or the file's line-precise errors. It fails
// (exit 1) when any file is invalid.
func profileCheck(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("profile check", "FILE...", stderr)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return usagef("profile check needs at least one FILE")
	}
	bad := 0
	for _, path := range fs.Args() {
		p, err := profile.LoadFile(path)
		n := 0
		if err == nil {
			n, err = p.Check()
		}
		if err != nil {
			bad++
			var list profile.ErrorList
			if errors.As(err, &list) {
				for _, e := range list {
					fmt.Fprintln(stdout, e)
				}
			} else {
				fmt.Fprintf(stdout, "%s: %v\n", path, err)
			}
			continue
		}
		fmt.Fprintf(stdout, "%s: ok (%d test frames)\n", path, n)
	}
	if bad > 0 {
		return fmt.Errorf("%d of %d profile(s) invalid", bad, fs.NArg())
	}
	return nil
}

// profileList prints the embedded profiles.
func profileList(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("profile list", "", stderr)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return usagef("profile list takes no arguments")
	}
	all, err := firmwareprofiles.All()
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "FILE\tID\tREADER\tSTATUS\tLINK\tSLOTS")
	for _, p := range all {
		slots := make([]string, len(p.Slots))
		for i, s := range p.Slots {
			slots[i] = s.Name
		}
		fmt.Fprintf(tw, "%s\t%s\t%s %s\t%s\t%d baud %s\t%s\n", p.File, p.ID, p.Vendor, p.Model, p.Status,
			p.Transport.Baud, p.Link.Style, strings.Join(slots, ","))
	}
	return tw.Flush()
}
