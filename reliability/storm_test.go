//go:build reliability

package reliability

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sync/errgroup"

	"github.com/orderhook/orderhook/internal/scenario"
)

// Scenario 4, duplicate storm: the same events, each delivered stormCopies
// times at once across three replicas by three `orderhook send --until-2xx`
// processes, are stored once and applied once.
//
// Mechanisms: the primary key on event_id, with INSERT … ON CONFLICT
// (event_id) DO NOTHING (one row, exactly one `accepted` answer per event
// across the replicas; a batch refused on the key would be retried one row
// at a time, so the key is the guard the result rests on), and the claim in
// the apply transaction with the guarded status change (one `applied`
// history row per event). The copies are sent at once, but nothing checks
// that two of them overlapped in the database.
func TestDuplicateStorm(t *testing.T) {
	t.Parallel()
	sz := currentSize(t)
	d := newDatabase(t)
	events := stormEvents(sz.stormEvents)
	replicas := []*server{
		startServer(t, "storm-a", d.url), startServer(t, "storm-b", d.url), startServer(t, "storm-c", d.url),
	}

	start := time.Now()
	reports := sendStorm(t, events, sz.stormCopies, replicas)
	sent := time.Since(start)
	var deliveries, requests int
	for _, r := range reports {
		require.True(t, r.OK, "orderhook send to %s: %+v", r.URL, r)
		deliveries += r.Delivered
		requests += r.Requests
	}
	require.Equal(t, len(events)*sz.stormCopies, deliveries)

	d.settle(t, len(events), 60*time.Second)
	v := d.requireExactlyOnce(t, events, eventIDs(events))
	var accepted, duplicate int
	for _, s := range replicas {
		a, dup := receiverOutcomes(t, s)
		accepted, duplicate = accepted+a, duplicate+dup
	}
	require.Equal(t, len(events), accepted, "`accepted` answers across the replicas: one per event")
	require.Equal(t, deliveries-len(events), duplicate, "`duplicate` answers across the replicas")
	t.Logf("SUMMARY storm: %s replicas=3 copies=%d deliveries=%d requests=%d accepted=%d duplicate=%d rows=%d send=%s",
		v, sz.stormCopies, deliveries, requests, accepted, duplicate, len(events), sent.Round(time.Millisecond))
}

// stormEvents returns the first n events of a scenario, in causal order (so
// every customer they mention is among them).
func stormEvents(n int) []scenario.Event {
	s := scenario.Generate(scenario.Config{Customers: n/8 + 1, Seed: 4, Prefix: "storm"})
	return s.Events[:n]
}

func eventIDs(events []scenario.Event) []string {
	ids := make([]string, len(events))
	for i, ev := range events {
		ids[i] = ev.ID
	}
	return ids
}

// sendReport is the part of `orderhook send --json` the storm reads.
type sendReport struct {
	OK         bool        `json:"ok"`
	URL        string      `json:"url"`
	Deliveries int         `json:"deliveries"`
	Delivered  int         `json:"delivered"`
	Requests   int         `json:"requests"`
	Status     map[int]int `json:"status"`
}

// sendStorm writes the copies of every event as files, the copies of one
// event next to each other, split over one directory per replica, and runs
// one `orderhook send --until-2xx` per replica at once. A sender posts in
// path order with as many deliveries in flight as it has copies of an event,
// so all copies of one event are in flight together across the replicas.
func sendStorm(t *testing.T, events []scenario.Event, copies int, replicas []*server) []sendReport {
	t.Helper()
	per := make([]int, len(replicas))
	for i := range copies {
		per[i%len(replicas)]++
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	reports := make([]sendReport, len(replicas))
	g, ctx := errgroup.WithContext(ctx)
	for i, s := range replicas {
		dir := writeCopies(t, events, per[i])
		g.Go(func() error {
			r, err := runSend(ctx, s.url(), dir, per[i])
			reports[i] = r
			return err
		})
	}
	require.NoError(t, g.Wait())
	return reports
}

// writeCopies writes n copies of each event into a new directory, named so
// that the copies of one event sort together.
func writeCopies(t *testing.T, events []scenario.Event, n int) string {
	t.Helper()
	dir := t.TempDir()
	for i, ev := range events {
		for c := range n {
			name := filepath.Join(dir, fmt.Sprintf("%04d-%02d.json", i, c))
			require.NoError(t, os.WriteFile(name, ev.Payload, 0o600))
		}
	}
	return dir
}

// runSend runs `orderhook send --until-2xx --json` and decodes its report.
func runSend(ctx context.Context, url, dir string, concurrency int) (sendReport, error) {
	cmd := exec.CommandContext(ctx, binary, "send", "--url", url, "--secret", secret, "--until-2xx",
		"--concurrency", strconv.Itoa(concurrency), "--backoff", "20ms", "--max-backoff", "1s", "--max-retries", "30", "--json", dir)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	var r sendReport
	if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
		return r, fmt.Errorf("orderhook send: %w (%v); stdout %q; stderr %q", err, runErr, tail(stdout.Bytes(), 500), tail(stderr.Bytes(), 500))
	}
	if runErr != nil {
		return r, fmt.Errorf("orderhook send: %w; report %+v; stderr %q", runErr, r, tail(stderr.Bytes(), 500))
	}
	return r, nil
}

// receiverOutcomes reads the server's /metrics and returns how many
// deliveries it answered `accepted` (stored by this request) and `duplicate`.
func receiverOutcomes(t *testing.T, s *server) (accepted, duplicate int) {
	t.Helper()
	counts := metricSums(t, s, "orderhook_receiver_requests_total", "outcome")
	return counts["accepted"], counts["duplicate"]
}

// metricSums sums the samples of a counter by the value of one label.
func metricSums(t *testing.T, s *server, name, label string) map[string]int {
	t.Helper()
	resp, err := http.Get("http://" + s.addr + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	out := map[string]int{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"{") {
			continue
		}
		labels, value, _ := strings.Cut(line[len(name)+1:], "} ")
		_, rest, ok := strings.Cut(labels, label+`="`)
		if !ok {
			continue
		}
		key, _, _ := strings.Cut(rest, `"`)
		f, err := strconv.ParseFloat(value, 64)
		require.NoError(t, err, "metric line %q", line)
		out[key] += int(f)
	}
	require.NoError(t, sc.Err())
	return out
}
