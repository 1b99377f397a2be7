// Package safeenv makes sure the process runs with the environment the GM
// crypto library needs to be correct and constant-time.
//
// github.com/emmansun/gmsm v0.34.1 reads two settings once, when the process
// starts, and never again:
//
//   - GODEBUG=cpu.adx=off works around upstream bug #560: on amd64 CPUs with
//     BMI2/ADX some valid SM2 signatures are rejected. A hub that rejects a
//     valid terminal signature dead-letters a real payment.
//   - FORCE_SM4BLOCK_AESNI=1 makes single-block SM4 (and so CBC-MAC) use the
//     AES-NI path instead of variable-time table lookups.
//
// Setting them with os.Setenv is too late, so [Ensure] re-executes the
// program with them added. Every shipped way of running onecard (the binary,
// the service units, the Makefile and the tests) goes through it or sets the
// variables itself.
package safeenv

import (
	"os"
	"strings"
)

// Required lists the settings as NAME=VALUE pairs. For GODEBUG the value is
// one item of a comma-separated list.
var Required = []string{"GODEBUG=cpu.adx=off", "FORCE_SM4BLOCK_AESNI=1"}

// reexecMarker guards against an endless re-exec loop should the platform
// drop the environment we pass.
const reexecMarker = "ONECARD_SAFEENV_REEXEC"

// OK reports whether env (in os.Environ form) already carries every
// required setting.
func OK(env []string) bool {
	return len(missing(env)) == 0
}

// Environ returns env with the required settings added or merged; it never
// removes or overrides other settings (an existing GODEBUG keeps its other
// items).
func Environ(env []string) []string {
	out := append([]string(nil), env...)
	for _, req := range Required {
		name, val, _ := strings.Cut(req, "=")
		i := index(out, name)
		switch {
		case i < 0:
			out = append(out, req)
		case name == "GODEBUG":
			cur := strings.TrimPrefix(out[i], "GODEBUG=")
			if !hasItem(cur, val) {
				if cur == "" {
					out[i] = "GODEBUG=" + val
				} else {
					// Later items win in GODEBUG, so append ours.
					out[i] = "GODEBUG=" + cur + "," + val
				}
			}
		default:
			out[i] = req
		}
	}
	return out
}

// Ensure re-executes the running program with [Environ] applied when the
// current environment lacks a required setting, and returns only when the
// environment is already right (or the re-exec is impossible, in which case
// it returns and the caller runs with the library's defaults after a warning
// on stderr). On success of the re-exec it does not return: on Unix the
// process image is replaced; on Windows the child's exit code is passed on.
func Ensure() {
	env := os.Environ()
	if OK(env) || os.Getenv(reexecMarker) != "" {
		return
	}
	exe, err := os.Executable()
	if err != nil {
		warn(err)
		return
	}
	if err := reexec(exe, os.Args, append(Environ(env), reexecMarker+"=1")); err != nil {
		warn(err)
	}
}

func warn(err error) {
	os.Stderr.WriteString("onecard: warning: cannot re-exec with " +
		strings.Join(Required, " ") + ": " + err.Error() +
		"; set them in the environment (SM2 verification may reject valid signatures)\n")
}

func missing(env []string) []string {
	var m []string
	for _, req := range Required {
		name, val, _ := strings.Cut(req, "=")
		i := index(env, name)
		if i < 0 {
			m = append(m, req)
			continue
		}
		cur := strings.TrimPrefix(env[i], name+"=")
		if name == "GODEBUG" {
			if !hasItem(cur, val) {
				m = append(m, req)
			}
		} else if cur != val {
			m = append(m, req)
		}
	}
	return m
}

// index returns the position of the last NAME= entry (the one getenv sees).
func index(env []string, name string) int {
	at := -1
	for i, kv := range env {
		if strings.HasPrefix(kv, name+"=") {
			at = i
		}
	}
	return at
}

// hasItem reports whether the comma-separated GODEBUG list sets item's key
// to item's value as its last (effective) setting.
func hasItem(list, item string) bool {
	key, _, _ := strings.Cut(item, "=")
	eff := ""
	for _, it := range strings.Split(list, ",") {
		if k, _, _ := strings.Cut(strings.TrimSpace(it), "="); k == key {
			eff = strings.TrimSpace(it)
		}
	}
	return eff == item
}
