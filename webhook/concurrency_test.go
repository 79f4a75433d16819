package webhook_test

import (
	"bytes"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/orderhook/orderhook/store"
	"github.com/orderhook/orderhook/store/storetest"
)

// Concurrent deliveries of one event store it once: exactly one answer is
// accepted, every other a duplicate, none an error.
func TestConcurrentDuplicates(t *testing.T) {
	t.Parallel()
	const deliveries = 50
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		b := setup(t, db, options{})
		payload := event("evt_race")
		signature := sign(payload, secret0, now)
		answers := make([]answer, deliveries)
		var wg sync.WaitGroup
		for i := range deliveries {
			wg.Go(func() { answers[i] = b.post(t, bytes.NewReader(payload), signature) })
		}
		wg.Wait()
		counts := map[string]int{}
		for _, a := range answers {
			require.Equal(t, 200, a.status, string(a.body))
			switch {
			case bytes.Contains(a.body, []byte(`"status":"accepted"`)):
				counts["accepted"]++
			case bytes.Contains(a.body, []byte(`"status":"duplicate"`)):
				counts["duplicate"]++
			}
		}
		require.Equal(t, map[string]int{"accepted": 1, "duplicate": deliveries - 1}, counts)
		require.Equal(t, 1, countEvents(t, db))
		require.Equal(t, payload, storedEvent(t, db, "evt_race").Payload)
	})
}
