package bench

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orderhook/orderhook/store"
)

// pollUntilNone returns once the count is 0, passing every count on; when
// the context ends, even during a count, it says how many were left.
func TestPollUntilNone(t *testing.T) {
	t.Parallel()
	counts := []int{3, 1, 0}
	var seen []int
	_, err := pollUntilNone(context.Background(), func() (int, error) {
		n := counts[0]
		counts = counts[1:]
		return n, nil
	}, func(n int) { seen = append(seen, n) })
	require.NoError(t, err)
	require.Equal(t, []int{3, 1, 0}, seen)

	ctx, cancel := context.WithCancel(context.Background())
	calls := 0
	_, err = pollUntilNone(ctx, func() (int, error) {
		if calls++; calls == 1 {
			return 7, nil
		}
		cancel() // the context ends while the database is asked
		return 0, fmt.Errorf("count: %w", ctx.Err())
	}, func(int) {})
	require.ErrorIs(t, err, context.Canceled)
	require.EqualError(t, err, "7 events still to go: context canceled")

	broken := errors.New("relation does not exist")
	_, err = pollUntilNone(context.Background(), func() (int, error) { return 0, broken }, func(int) {})
	require.ErrorIs(t, err, broken)
}

// The inbox is polled finely once few events are left, so that the time
// until applied ends soon after the last commit.
func TestPollPeriod(t *testing.T) {
	t.Parallel()
	require.Equal(t, settlePoll, pollPeriod(settleFineBelow+1))
	require.Equal(t, settlePollFine, pollPeriod(settleFineBelow))
	require.Equal(t, settlePollFine, pollPeriod(1))
}

// A run whose wait for the inbox timed out is incomplete, even when the last
// events were applied before its outcome was read: its time until applied
// was not measured.
func TestAWaitThatTimedOutIsIncomplete(t *testing.T) {
	t.Parallel()
	w, err := NewWorkload(WorkloadConfig{Customers: 1, Seed: 1})
	require.NoError(t, err)
	r := Result{Workload: w, Outcome: Outcome{Stored: w.Distinct, Counts: map[store.Status]int{store.StatusApplied: w.Distinct}}}
	require.ErrorIs(t, r.Err(), ErrIncomplete)
	r.Applied = time.Second
	require.NoError(t, r.Err())
}
