package server

import (
	"sync"
	"time"
)

// bucket is a token bucket: rate tokens per second up to burst. take
// reserves tokens, possibly into debt, so waiting callers are served in
// order.
type bucket struct {
	mu     sync.Mutex
	rate   float64
	burst  float64
	tokens float64
	last   time.Time
}

func newBucket(rate, burst float64, now time.Time) *bucket {
	return &bucket{rate: rate, burst: burst, tokens: burst, last: now}
}

// take reserves n tokens (capped at burst). It returns how long the
// caller must wait before using them, or ok = false (nothing reserved)
// when that would exceed maxWait.
func (b *bucket) take(n float64, now time.Time, maxWait time.Duration) (wait time.Duration, ok bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if n > b.burst {
		n = b.burst
	}
	if el := now.Sub(b.last).Seconds(); el > 0 {
		b.tokens = min(b.burst, b.tokens+el*b.rate)
		b.last = now
	}
	if b.tokens >= n {
		b.tokens -= n
		return 0, true
	}
	wait = time.Duration((n - b.tokens) / b.rate * float64(time.Second))
	if wait > maxWait {
		return 0, false
	}
	b.tokens -= n
	return wait, true
}
