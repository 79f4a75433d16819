package bench

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// RSS is the peak resident set size of the server and how it was measured.
type RSS struct {
	PeakBytes int64  // 0 when unknown
	Basis     string // how PeakBytes was measured, or why it is unknown
}

// readHWM returns the peak resident set size of process pid over its whole
// life (VmHWM of /proc/PID/status; Linux only).
func readHWM(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("read peak RSS of pid %d: %w", pid, err)
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("read peak RSS of pid %d: VmHWM %q: %w", pid, strings.TrimSpace(rest), err)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("read peak RSS of pid %d: no VmHWM in /proc/%d/status", pid, pid)
}

// rssSampler samples a server's process_resident_memory_bytes from its
// Prometheus endpoint and keeps the largest value.
type rssSampler struct {
	url    string
	client *http.Client
	mu     sync.Mutex
	peak   int64
	n      int
	err    error
}

// run samples every interval until ctx ends.
func (s *rssSampler) run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		v, err := s.read(ctx)
		s.mu.Lock()
		if err == nil {
			s.peak, s.n = max(s.peak, v), s.n+1
		} else if ctx.Err() == nil {
			s.err = err
		}
		s.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// read fetches the metrics once and returns the resident memory.
func (s *rssSampler) read(ctx context.Context) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url, nil)
	if err != nil {
		return 0, err
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET %s: %s", s.url, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return 0, err
	}
	return parseRSSMetric(body)
}

// parseRSSMetric finds process_resident_memory_bytes in a Prometheus text
// exposition.
func parseRSSMetric(body []byte) (int64, error) {
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "process_resident_memory_bytes "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			if err != nil {
				return 0, fmt.Errorf("process_resident_memory_bytes %q: %w", rest, err)
			}
			return int64(v), nil
		}
	}
	return 0, fmt.Errorf("no process_resident_memory_bytes in the metrics")
}

// result returns the peak seen, or why there is none.
func (s *rssSampler) result() RSS {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.n == 0 && s.err != nil:
		return RSS{Basis: fmt.Sprintf("unknown: sampling %s failed: %v", s.url, s.err)}
	case s.n == 0:
		return RSS{Basis: fmt.Sprintf("unknown: no sample of %s was taken", s.url)}
	}
	return RSS{PeakBytes: s.peak, Basis: fmt.Sprintf("largest of %d samples of process_resident_memory_bytes", s.n)}
}
