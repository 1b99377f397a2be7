package logbuf

import (
	"strings"
	"sync"
	"testing"
)

func TestBufferConcurrent(t *testing.T) {
	var b Buffer
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				b.Write([]byte{'a' + byte(i)})
				_ = b.String()
			}
		}()
	}
	wg.Wait()
	s := b.String()
	if len(s) != 800 {
		t.Fatalf("%d bytes, want 800", len(s))
	}
	for i := range 8 {
		if n := strings.Count(s, string(rune('a'+i))); n != 100 {
			t.Errorf("writer %d: %d bytes, want 100", i, n)
		}
	}
}
