package bench

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestParseRSSMetric(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		body string
		want int64
		err  string
	}{
		{"# HELP process_resident_memory_bytes Resident memory size in bytes.\n# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes 4.2991616e+07\n", 42991616, ""},
		{"go_goroutines 12\nprocess_resident_memory_bytes 1024\nprocess_virtual_memory_bytes 9e+09\n", 1024, ""},
		{"process_resident_memory_bytes_total 5\n", 0, "no process_resident_memory_bytes"},
		{"process_resident_memory_bytes lots\n", 0, `"lots"`},
	} {
		got, err := parseRSSMetric([]byte(tc.body))
		if tc.err != "" {
			require.ErrorContains(t, err, tc.err)
			continue
		}
		require.NoError(t, err)
		require.Equal(t, tc.want, got)
	}
}

func TestReadHWM(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Skip("no /proc on this system")
	}
	b, err := readHWM(os.Getpid())
	require.NoError(t, err)
	require.Greater(t, b, int64(1<<20), "a Go test binary holds more than 1 MiB")
	_, err = readHWM(1 << 30)
	require.ErrorContains(t, err, "read peak RSS of pid")
}

// The sampler keeps the largest value it saw, and says why it has none.
func TestRSSSampler(t *testing.T) {
	t.Parallel()
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintf(w, "process_resident_memory_bytes %d\n", []int64{10 << 20, 30 << 20, 20 << 20}[min(calls.Add(1)-1, 2)])
	}))
	defer srv.Close()
	s := &rssSampler{url: srv.URL, client: srv.Client()}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.run(ctx, time.Millisecond) }()
	require.Eventually(t, func() bool { return calls.Load() >= 4 }, 5*time.Second, time.Millisecond)
	cancel()
	<-done
	got := s.result()
	require.Equal(t, int64(30<<20), got.PeakBytes)
	require.Contains(t, got.Basis, "process_resident_memory_bytes")

	missing := &rssSampler{url: srv.URL + "/nothing", client: &http.Client{Transport: errTransport{}}}
	ctx, cancel = context.WithCancel(context.Background())
	cancel()
	missing.run(ctx, time.Millisecond)
	require.Zero(t, missing.result().PeakBytes)
	require.Contains(t, missing.result().Basis, "unknown")
}

// errTransport fails every request.
type errTransport struct{}

func (errTransport) RoundTrip(*http.Request) (*http.Response, error) {
	return nil, errors.New("connection refused")
}
