package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestAPDUDecode(t *testing.T) {
	tests := []struct {
		name   string
		args   []string
		code   int
		stdout []string
		stderr []string
		notOut []string
	}{
		{
			name:   "SELECT SSSE",
			args:   []string{"apdu", "decode", "00A404000F7378312E73682EC9E7BBE1B1A3D5CF"},
			stdout: []string{"command APDU", "SELECT", "SSSE", `"sx1.sh.社会保障"`},
		},
		{
			name:   "hex split over arguments with spaces and colons",
			args:   []string{"apdu", "decode", "00 a4:04:00", "0F", "7378312E73682EC9E7BBE1B1A3D5CF"},
			stdout: []string{"SELECT", `"sx1.sh.社会保障"`},
		},
		{
			name:   "63C2",
			args:   []string{"apdu", "decode", "63C2"},
			stdout: []string{"response APDU", "63C2", "verification failed, 2 tries left", "校验失败，还可尝试2次", "PIN"},
		},
		{
			name:   "VERIFY masks the PIN",
			args:   []string{"apdu", "decode", "0020000003123456"},
			stdout: []string{"VERIFY", "PIN block: ****** (3 bytes)"},
			notOut: []string{"123456"},
		},
		{
			name:   "--response after the hex",
			args:   []string{"apdu", "decode", "0084000008", "--response"},
			stdout: []string{"response APDU", "SW 0008"},
		},
		{
			name:   "--command forces a command",
			args:   []string{"apdu", "decode", "--command", "AABBCC9000"},
			stdout: []string{"command APDU (case 2, short)"},
		},
		{
			name:   "--command on a status word fails",
			args:   []string{"apdu", "decode", "--command", "63C2"},
			code:   1,
			stderr: []string{"malformed command APDU"},
		},
		{name: "odd hex", args: []string{"apdu", "decode", "63C"}, code: 2, stderr: []string{"bad hex", "odd number"}},
		{name: "non-hex", args: []string{"apdu", "decode", "00A4zz"}, code: 2, stderr: []string{"bad hex", `'z'`}},
		{name: "no hex", args: []string{"apdu", "decode"}, code: 2, stderr: []string{"missing hex"}},
		{name: "both overrides", args: []string{"apdu", "decode", "--command", "--response", "9000"}, code: 2, stderr: []string{"exclude"}},
		{name: "unknown sub-subcommand", args: []string{"apdu", "send", "9000"}, code: 2, stderr: []string{`unknown subcommand "send"`, "decode"}},
		{name: "no sub-subcommand", args: []string{"apdu"}, code: 2, stderr: []string{"missing subcommand"}},
		{name: "unknown flag", args: []string{"apdu", "decode", "--bogus", "9000"}, code: 2, stderr: []string{"bogus"}},
		{name: "decode help", args: []string{"apdu", "decode", "-h"}, code: 0, stderr: []string{"--command|--response"}},
		{name: "help", args: []string{"apdu", "--help"}, code: 0, stderr: []string{"decode"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run(context.Background(), tt.args, &out, &errb)
			if code != tt.code {
				t.Fatalf("exit code %d, want %d; stdout:\n%s\nstderr:\n%s", code, tt.code, out.String(), errb.String())
			}
			for _, w := range tt.stdout {
				if !strings.Contains(out.String(), w) {
					t.Errorf("stdout lacks %q:\n%s", w, out.String())
				}
			}
			for _, w := range tt.notOut {
				if strings.Contains(out.String(), w) {
					t.Errorf("stdout contains %q:\n%s", w, out.String())
				}
			}
			for _, w := range tt.stderr {
				if !strings.Contains(errb.String(), w) {
					t.Errorf("stderr lacks %q:\n%s", w, errb.String())
				}
			}
		})
	}
}
