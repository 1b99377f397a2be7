package journal_test

import (
	"os"
	"sync"
	"testing"
	"time"

	"github.com/onecard-hub/onecard/internal/safeenv"
)

// TestMain dispatches the child processes of the crash and lock tests
// (re-executions of this binary), then runs the tests in the GM crypto
// environment the product uses.
func TestMain(m *testing.M) {
	if mode := os.Getenv(childModeEnv); mode != "" {
		os.Exit(runChild(mode))
	}
	safeenv.Ensure()
	os.Exit(m.Run())
}

// clock is an injectable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock(t time.Time) *clock { return &clock{t: t} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// t0 is the default test clock start.
var t0 = time.Date(2026, 3, 14, 9, 0, 0, 0, time.UTC)
