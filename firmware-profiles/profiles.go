// Package firmwareprofiles embeds the reader firmware profiles shipped with
// onecard: one YAML data file per reader model, schema reader-profile/v1
// (SCHEMA.md; loader and engine in package reader/serial/profile). Adding a
// model means adding a file here — see README.md — and no code.
package firmwareprofiles

import (
	"embed"
	"fmt"
	"io/fs"
	"sort"
	"strings"

	"github.com/onecard-hub/onecard/reader/serial/profile"
)

//go:embed *.yaml
var files embed.FS

// FS returns the embedded profile files (flat, *.yaml).
func FS() fs.FS { return files }

// Names lists the embedded profile file names, sorted.
func Names() []string {
	entries, _ := fs.ReadDir(files, ".")
	var out []string
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".yaml") {
			out = append(out, e.Name())
		}
	}
	sort.Strings(out)
	return out
}

// Load parses and validates the embedded profile with the given file name
// ("crt310.yaml") or profile id ("creator-crt310-v3"). It fails with an
// error naming the known profiles when there is no such profile, or with
// the loader's profile.ErrorList.
func Load(name string) (*profile.Profile, error) {
	if data, err := fs.ReadFile(files, name); err == nil {
		return profile.Parse(name, data)
	}
	all, err := All()
	if err != nil {
		return nil, err
	}
	for _, p := range all {
		if p.ID == name {
			return p, nil
		}
	}
	return nil, fmt.Errorf("load firmware profile %q: not embedded (have %s)", name, strings.Join(Names(), ", "))
}

// All parses every embedded profile, in file-name order.
func All() ([]*profile.Profile, error) {
	var out []*profile.Profile
	for _, n := range Names() {
		data, err := fs.ReadFile(files, n)
		if err != nil {
			return nil, fmt.Errorf("load firmware profile %s: %w", n, err)
		}
		p, err := profile.Parse(n, data)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}
