// Package logbuf is an in-memory log sink that several goroutines may
// write to at once: the output of processes and components under test
// (exec.Cmd Stdout/Stderr, slog handlers, browser consoles), read back
// while they still write.
package logbuf

import (
	"bytes"
	"sync"
)

// Buffer collects everything written to it. The zero value is ready to
// use; it is safe for concurrent use.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p; it never fails.
func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns everything written so far.
func (s *Buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
