package safeenv

import (
	"slices"
	"testing"
)

func TestEnviron(t *testing.T) {
	tests := []struct {
		name string
		in   []string
		want []string
		ok   bool
	}{
		{"empty", nil, []string{"GODEBUG=cpu.adx=off", "FORCE_SM4BLOCK_AESNI=1"}, false},
		{"already set", []string{"GODEBUG=cpu.adx=off", "FORCE_SM4BLOCK_AESNI=1"},
			[]string{"GODEBUG=cpu.adx=off", "FORCE_SM4BLOCK_AESNI=1"}, true},
		{"other godebug kept", []string{"PATH=/bin", "GODEBUG=http2client=0"},
			[]string{"PATH=/bin", "GODEBUG=http2client=0,cpu.adx=off", "FORCE_SM4BLOCK_AESNI=1"}, false},
		{"adx on is overridden", []string{"GODEBUG=cpu.adx=on", "FORCE_SM4BLOCK_AESNI=0"},
			[]string{"GODEBUG=cpu.adx=on,cpu.adx=off", "FORCE_SM4BLOCK_AESNI=1"}, false},
		{"later item wins", []string{"GODEBUG=cpu.adx=off,cpu.adx=on", "FORCE_SM4BLOCK_AESNI=1"},
			[]string{"GODEBUG=cpu.adx=off,cpu.adx=on,cpu.adx=off", "FORCE_SM4BLOCK_AESNI=1"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := OK(tt.in); got != tt.ok {
				t.Errorf("OK(%q) = %v, want %v", tt.in, got, tt.ok)
			}
			got := Environ(tt.in)
			if !slices.Equal(got, tt.want) {
				t.Errorf("Environ(%q) = %q, want %q", tt.in, got, tt.want)
			}
			if !OK(got) {
				t.Errorf("OK(Environ(%q)) = false", tt.in)
			}
		})
	}
}
