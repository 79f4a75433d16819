package reconcile

import (
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/orderhook/orderhook/store"
)

// A loop falls behind on a full batch due for longer than IngestMaxLag, and
// has caught up once a batch was due for less than half of it, or empty: a
// partial batch in between changes nothing.
func TestBehindNeedsAFullLateBatchAndCatchesUpAtHalf(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	w, err := NewWorker(Config{IngestYield: time.Second, BatchSize: 4, IngestMaxLag: 10 * time.Second, Now: func() time.Time { return now }}, nil, zerolog.Nop())
	require.NoError(t, err)
	batch := func(claimed int, lag time.Duration) store.Batch {
		return store.Batch{Claimed: claimed, OldestDue: now.Add(-lag)}
	}
	for _, tc := range []struct {
		name  string
		was   bool
		batch store.Batch
		want  bool
	}{
		{"full and late", false, batch(4, 11*time.Second), true},
		{"full, not late", false, batch(4, 9*time.Second), false},
		{"late, not full", false, batch(3, time.Minute), false},
		{"behind: partial, still late", true, batch(1, 6*time.Second), true},
		{"behind: under half the lag", true, batch(4, 4*time.Second), false},
		{"behind: nothing due", true, batch(0, 0), false},
	} {
		require.Equal(t, tc.want, w.behind("w/0", tc.was, tc.batch, 4), tc.name)
	}

	// In a loop's life: the count of loops behind follows it.
	w, err = NewWorker(Config{IngestYield: time.Second, BatchSize: 4, IngestMaxLag: 10 * time.Second, Now: func() time.Time { return now }}, nil, zerolog.Nop())
	require.NoError(t, err)
	behind := false
	for _, step := range []struct {
		batch store.Batch
		count int32
	}{{batch(4, 11*time.Second), 1}, {batch(2, 7*time.Second), 1}, {batch(4, 3*time.Second), 0}, {batch(4, 3*time.Second), 0}} {
		behind = w.behind("w/0", behind, step.batch, 4)
		require.Equal(t, step.count, w.behindLoops.Load())
	}

	unturned, err := NewWorker(Config{BatchSize: 4}, nil, zerolog.Nop())
	require.NoError(t, err)
	require.False(t, unturned.behind("w/0", false, batch(4, time.Hour), 4), "without turns a loop never waits: never behind")
}
