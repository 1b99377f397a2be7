//go:build linux

package ctest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// exports are the national functions the library must export, with the
// bytes of arguments a __stdcall function pops on windows/386.
var exports = map[string]int{
	"iReadCardBas": 8, "iReadCardBas_HSM_Step1": 8, "iReadCardBas_HSM_Step2": 8,
	"iVerifyPIN": 8, "iChangePIN": 8, "iReadCard": 20, "iDoDebit": 16,
	"iGetReaderInfo": 8, "SetPINCallback": 4,
}

var (
	buildOnce  sync.Once
	buildDir   string
	libPath    string
	driverPath string
	buildErr   error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		_ = os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// root is the module root (tests run in sscard/ctest).
func root(t testing.TB) string {
	t.Helper()
	r, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// run runs a command in the module root with extra environment and
// returns its combined output.
func run(ctx context.Context, dir string, env []string, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, out)
	}
	return out, nil
}

// buildLinux builds libsscard.so (as `make dll`) and the C driver once
// per test binary.
func buildLinux(t testing.TB) (lib, driver string) {
	t.Helper()
	buildOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		if buildDir, buildErr = os.MkdirTemp("", "onecard-sscard-*"); buildErr != nil {
			return
		}
		libPath = filepath.Join(buildDir, "libsscard.so")
		driverPath = filepath.Join(buildDir, "driver")
		r := root(t)
		if _, buildErr = run(ctx, r, []string{"CGO_ENABLED=1"}, "go", "build", "-buildmode=c-shared", "-o", libPath, "./sscard"); buildErr != nil {
			return
		}
		_, buildErr = run(ctx, r, nil, "gcc", "-Wall", "-Wextra", "-Werror", "-O1", "-o", driverPath,
			filepath.Join("sscard", "ctest", "driver.c"), "-ldl", "-pthread")
	})
	if buildErr != nil {
		t.Fatalf("build the library and the C driver: %v", buildErr)
	}
	return libPath, driverPath
}

func TestLinuxExports(t *testing.T) {
	lib, _ := buildLinux(t)
	out, err := run(context.Background(), ".", nil, "nm", "-D", "--defined-only", lib)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, l := range strings.Split(string(out), "\n") {
		if f := strings.Fields(l); len(f) == 3 && f[1] == "T" {
			got[f[2]] = true
		}
	}
	for name := range exports {
		if !got[name] {
			t.Errorf("libsscard.so does not export %s (nm -D:\n%s)", name, out)
		}
	}
}

// exportNames parses the "[Ordinal/Name Pointer] Table" of objdump -p.
func exportNames(objdump []byte) []string {
	var names []string
	in := false
	for _, l := range strings.Split(string(objdump), "\n") {
		switch {
		case strings.Contains(l, "[Ordinal/Name Pointer] Table"):
			in = true
		case in && strings.TrimSpace(l) == "":
			return names
		case in:
			if i := strings.Index(l, "]"); i >= 0 {
				names = append(names, strings.TrimSpace(l[i+1:]))
			}
		}
	}
	return names
}

// TestWindowsDLLExports cross-compiles SSCardDriver.dll with mingw-w64 as
// `make dll` does and checks its export table: every national name,
// undecorated; on windows/386 each export is the __stdcall shim (it pops
// its arguments: "ret $N").
func TestWindowsDLLExports(t *testing.T) {
	for _, tt := range []struct {
		arch, cc, objdump, def string
	}{
		{"386", "i686-w64-mingw32-gcc", "i686-w64-mingw32-objdump", "sscard_386.def"},
		{"amd64", "x86_64-w64-mingw32-gcc", "x86_64-w64-mingw32-objdump", "sscard_amd64.def"},
	} {
		t.Run(tt.arch, func(t *testing.T) {
			t.Parallel()
			for _, tool := range []string{tt.cc, tt.objdump} {
				if _, err := exec.LookPath(tool); err != nil {
					t.Fatalf("%s missing: run make deps (gcc-mingw-w64-i686, gcc-mingw-w64-x86-64)", tool)
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			r := root(t)
			dll := filepath.Join(t.TempDir(), "SSCardDriver.dll")
			if _, err := run(ctx, r, []string{"CGO_ENABLED=1", "GOOS=windows", "GOARCH=" + tt.arch, "CC=" + tt.cc},
				"go", "build", "-buildmode=c-shared", "-ldflags", "-extldflags="+filepath.Join(r, "sscard", tt.def), "-o", dll, "./sscard"); err != nil {
				t.Fatal(err)
			}
			out, err := run(ctx, r, nil, tt.objdump, "-p", dll)
			if err != nil {
				t.Fatal(err)
			}
			names := exportNames(out)
			have := map[string]bool{}
			for _, n := range names {
				have[n] = true
				if strings.Contains(n, "@") {
					t.Errorf("decorated export %q: HIS programs look up undecorated names", n)
				}
			}
			for name := range exports {
				if !have[name] {
					t.Errorf("SSCardDriver.dll (%s) does not export %s; exports: %v", tt.arch, name, names)
				}
			}
			if tt.arch != "386" {
				return
			}
			dis, err := run(ctx, r, nil, tt.objdump, "-d", dll)
			if err != nil {
				t.Fatal(err)
			}
			for name, n := range exports {
				re := regexp.MustCompile(`(?s)<_` + regexp.QuoteMeta(fmt.Sprintf("%s@%d", name, n)) + `>:\n(.*?)\n\n`)
				m := re.FindSubmatch(dis)
				if m == nil {
					t.Errorf("no __stdcall symbol _%s@%d in the DLL", name, n)
					continue
				}
				if !bytes.Contains(m[1], []byte(fmt.Sprintf("ret    $0x%x", n))) {
					t.Errorf("%s does not return with ret $0x%x (__stdcall):\n%s", name, n, m[1])
				}
			}
		})
	}
}
