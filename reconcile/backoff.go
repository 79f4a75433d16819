package reconcile

import (
	"math/rand/v2"
	"time"
)

// backoff returns the delay before retry number attempt (1-based):
// exponential from base, capped at max, with full jitter (a uniform draw in
// [0, ceiling)), so that retries of many events spread out.
func backoff(attempt int, base, max time.Duration) time.Duration {
	ceiling := base
	for i := 1; i < attempt && ceiling < max; i++ {
		ceiling *= 2
	}
	ceiling = min(ceiling, max)
	if ceiling <= 0 {
		return 0
	}
	return rand.N(ceiling)
}

// jitter spreads a poll interval by ±20%, so replicas do not poll in step.
func jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return d
	}
	return d*4/5 + rand.N(d*2/5+1)
}
