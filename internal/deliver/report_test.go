package deliver_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orderhook/orderhook/internal/deliver"
)

// ms returns the durations of n milliseconds.
func ms(n ...int) []time.Duration {
	out := make([]time.Duration, len(n))
	for i, v := range n {
		out[i] = time.Duration(v) * time.Millisecond
	}
	return out
}

func TestPercentile(t *testing.T) {
	t.Parallel()
	hundred := make([]int, 100)
	for i := range hundred {
		hundred[i] = i + 1
	}
	tests := []struct {
		name   string
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{"empty", nil, 50, 0},
		{"one value", ms(7), 50, 7 * time.Millisecond},
		{"one value p99", ms(7), 99, 7 * time.Millisecond},
		{"median of four is the second", ms(1, 2, 3, 4), 50, 2 * time.Millisecond},
		{"median of five", ms(1, 2, 3, 4, 5), 50, 3 * time.Millisecond},
		{"p95 of 1..100", ms(hundred...), 95, 95 * time.Millisecond},
		{"p99 of 1..100", ms(hundred...), 99, 99 * time.Millisecond},
		{"p100 is the max", ms(hundred...), 100, 100 * time.Millisecond},
		{"p95 of ten is the last", ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 95, 10 * time.Millisecond},
		{"tiny p is the min", ms(1, 2, 3), 0.1, time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.want, deliver.Percentile(tt.sorted, tt.p))
		})
	}
}

func TestSummarizeSortsAndSummarizes(t *testing.T) {
	t.Parallel()
	d := ms(9, 1, 5, 3, 7, 2, 8, 4, 6, 10)

	got := deliver.Summarize(d)

	require.Equal(t, deliver.Latency{
		Count: 10,
		P50:   5 * time.Millisecond,
		P95:   10 * time.Millisecond,
		P99:   10 * time.Millisecond,
		Max:   10 * time.Millisecond,
	}, got)
	require.Equal(t, ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), d)
	require.Equal(t, deliver.Latency{}, deliver.Summarize(nil))
}

func TestReportErrAndRate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		rep  deliver.Report
		err  string
	}{
		{"all delivered", deliver.Report{Planned: 3, Delivered: 3}, ""},
		{"failed", deliver.Report{Planned: 3, Delivered: 1, Failed: 2}, "undelivered events: 2 of 3 deliveries failed"},
		{"unsent", deliver.Report{Planned: 3, Delivered: 1, Failed: 1, Unsent: 1}, "undelivered events: 1 of 3 deliveries failed, 1 not sent"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if tt.err == "" {
				require.NoError(t, tt.rep.Err())
				return
			}
			require.EqualError(t, tt.rep.Err(), tt.err)
			require.ErrorIs(t, tt.rep.Err(), deliver.ErrUndelivered)
		})
	}
	require.InDelta(t, 4.0, deliver.Report{Delivered: 6, Failed: 2, Duration: 2 * time.Second}.Rate(), 1e-9)
	require.Zero(t, deliver.Report{}.Rate())
}

// Two runs joined read as one: what adds up adds up, and the latencies are
// summarized over both runs' requests.
func TestReportJoinReadsAsOneRun(t *testing.T) {
	t.Parallel()
	events := loadEvents(t)
	rc := newReceiver(t, func(n int, _ []byte) int {
		if n == 1 { // the first run's only request
			return http.StatusBadRequest
		}
		return http.StatusOK
	}, secretA)
	s := newSender(t, rc, nil)
	first, second := send(t, s, events[:1]), send(t, s, events[1:])

	j := first.Join(second)

	require.Equal(t, len(events), j.Events)
	require.Equal(t, len(events), j.Planned)
	require.Equal(t, len(events)-1, j.Delivered)
	require.Equal(t, 1, j.Failed)
	require.Equal(t, len(events), j.Requests)
	require.Equal(t, map[int]int{http.StatusBadRequest: 1, http.StatusOK: len(events) - 1}, j.Status)
	require.Equal(t, first.Duration+second.Duration, j.Duration)
	require.Equal(t, []deliver.Failure{first.Failures[0]}, j.Failures)
	require.Equal(t, len(events), j.Latency.Count)
	require.Equal(t, max(first.Latency.Max, second.Latency.Max), j.Latency.Max)
	require.Equal(t, map[int]int{http.StatusBadRequest: 1}, first.Status, "joining leaves the reports as they were")
	require.ErrorContains(t, j.Err(), "1 of 4 deliveries failed")
}
