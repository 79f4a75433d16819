//go:build reliability

package reliability

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sync/errgroup"

	"github.com/orderhook/orderhook/internal/scenario"
)

// Limits the hostile scenario holds the server to.
const (
	maxRSSKiB      = 150 << 10        // resident memory, whatever the clients send
	slowBodyLimit  = 35 * time.Second // ReadTimeout 30 s, plus slack
	slowHeadLimit  = 10 * time.Second // ReadHeaderTimeout 5 s, plus slack
	hugeConcurrent = 4                // huge bodies in flight at once, per framing
	slowClients    = 4                // slow clients of each kind
)

// Scenario 5, hostile input: thousands of generated bad requests — missing,
// garbled, repeated, long and oversized signature headers, wrong secrets,
// tampered bodies, stale and future timestamps, truncated, deeply nested,
// binary and non-event JSON, invalid UTF-8 in the envelope, bodies over the
// limit, 100 MB bodies declared and chunked, slow-drip bodies and headers,
// wrong methods — each get the right 4xx; nothing is stored; the server stays
// healthy and its memory bounded; slow clients are cut by the server's
// timeouts.
//
// Mechanisms: verification of the raw body before anything is stored
// (count of webhook_events stays 0); the body cap (http.MaxBytesReader: a
// buffered 100 MB body ×4 would blow maxRSSKiB); the envelope validation
// (400 instead of a 503-forever insert); MaxHeaderBytes (431); the HTTP
// server's ReadHeaderTimeout and ReadTimeout (the drips are cut).
func TestHostileInput(t *testing.T) {
	t.Parallel()
	sz := currentSize(t)
	d := newDatabase(t)
	srv := startServer(t, "hostile", d.url)
	rssStart, _, err := srv.memory()
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), sz.deadline)
	defer cancel()
	mem := sampleMemory(ctx, srv)

	var tally hostileTally
	hugeRounds := max(3, sz.hostile/500)
	raw := 2*hugeConcurrent*hugeRounds + 2*slowClients
	reqs := badRequests(rand.New(rand.NewPCG(5, uint64(time.Now().UnixNano()))), sz.hostile-raw)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return sendBad(gctx, srv, reqs, &tally) })
	g.Go(func() error { return sendHuge(gctx, srv, sz.hugeBody, hugeRounds, &tally) })
	g.Go(func() error { return sendSlow(gctx, srv, &tally) })
	require.NoError(t, g.Wait())
	peak := mem()
	var stored int
	require.NoError(t, d.db.Get(&stored, `SELECT count(*) FROM webhook_events`))
	t.Logf("SUMMARY hostile: bad-requests=%d stored=%d by kind: %s; wrong answers by kind: {%s}; huge-body=%d MB; slowest cut: body=%s headers=%s; rss: start=%d MiB peak=%d MiB",
		tally.total(), stored, &tally, tally.wrongCounts(), sz.hugeBody>>20, tally.slowest["slow-body"].Round(time.Millisecond),
		tally.slowest["slow-headers"].Round(time.Millisecond), rssStart>>10, peak>>10)
	require.Empty(t, tally.wrong, "bad requests that did not get the right answer")
	require.GreaterOrEqual(t, tally.total(), sz.hostile)
	require.Zero(t, stored, "events stored from bad requests")
	require.NoError(t, srv.probe(ctx, "/healthz"), "healthy after the bad requests")
	require.NoError(t, srv.probe(ctx, "/readyz"), "ready after the bad requests")
	require.Less(t, peak, maxRSSKiB, "peak resident memory (KiB)")
	requireStillServes(ctx, t, srv, d)
}

// hostileTally counts the bad requests by kind and keeps what went wrong.
type hostileTally struct {
	mu      sync.Mutex
	sent    map[string]int
	wrong   []string                 // the first 20 wrong answers
	wrongBy map[string]int           // wrong answers by kind
	slowest map[string]time.Duration // longest time a slow client held its connection
}

func (h *hostileTally) add(kind string, held time.Duration, wrong string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.sent == nil {
		h.sent, h.wrongBy, h.slowest = map[string]int{}, map[string]int{}, map[string]time.Duration{}
	}
	h.sent[kind]++
	h.slowest[kind] = max(h.slowest[kind], held)
	if wrong == "" {
		return
	}
	h.wrongBy[kind]++
	if len(h.wrong) < 20 {
		h.wrong = append(h.wrong, kind+": "+wrong)
	}
}

func (h *hostileTally) total() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, c := range h.sent {
		n += c
	}
	return n
}

// wrongCounts prints the wrong answers by kind.
func (h *hostileTally) wrongCounts() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return formatCounts(h.wrongBy)
}

func (h *hostileTally) String() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return formatCounts(h.sent)
}

// sendBad sends the generated requests, 16 at a time, and checks each
// answer's status and problem type (and Allow for 405).
func sendBad(ctx context.Context, srv *server, reqs []badRequest, tally *hostileTally) error {
	c := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	defer c.CloseIdleConnections()
	var next atomic.Int64
	g, ctx := errgroup.WithContext(ctx)
	for range 16 {
		g.Go(func() error {
			for i := int(next.Add(1) - 1); i < len(reqs) && ctx.Err() == nil; i = int(next.Add(1) - 1) {
				tally.add(reqs[i].kind, 0, checkBad(ctx, c, srv.url(), reqs[i]))
			}
			return ctx.Err()
		})
	}
	return g.Wait()
}

// checkBad sends r and returns what is wrong with the answer, or "".
func checkBad(ctx context.Context, c *http.Client, url string, r badRequest) string {
	req, err := http.NewRequestWithContext(ctx, r.method, url, bytes.NewReader(r.body))
	if err != nil {
		return err.Error()
	}
	for k, v := range r.header {
		req.Header[k] = v
	}
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Sprintf("no answer: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	got := problemName(resp.Header.Get("Content-Type"), body)
	switch {
	case resp.StatusCode != r.status:
		return fmt.Sprintf("status %d (%s), want %d %s", resp.StatusCode, got, r.status, r.problem)
	case r.problem != "" && got != r.problem:
		return fmt.Sprintf("problem %q, want %q", got, r.problem)
	case r.status == http.StatusMethodNotAllowed && resp.Header.Get("Allow") != http.MethodPost:
		return fmt.Sprintf("Allow %q, want POST", resp.Header.Get("Allow"))
	}
	return ""
}

// sendHuge sends rounds of huge bodies, hugeConcurrent at once with a
// Content-Length and as many chunked: each must be answered 413 without the
// server reading (or holding) it.
func sendHuge(ctx context.Context, srv *server, size int64, rounds int, tally *hostileTally) error {
	for range rounds {
		var wg sync.WaitGroup
		for i := range 2 * hugeConcurrent {
			chunked := i%2 == 1
			kind := map[bool]string{false: "huge-declared", true: "huge-chunked"}[chunked]
			wg.Go(func() {
				r := rawExchange(ctx, srv.addr, time.Minute, hugeBody(srv.addr, size, chunked))
				wrong := ""
				if r.status != http.StatusRequestEntityTooLarge {
					wrong = fmt.Sprintf("status %d (%v), want 413", r.status, r.err)
				}
				tally.add(kind, r.elapsed, wrong)
			})
		}
		wg.Wait()
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	return nil
}

// sendSlow runs slow clients that drip a body or a head one byte every
// 500 ms: the server must cut each (an answer, if any, is a 4xx) within its
// timeout.
func sendSlow(ctx context.Context, srv *server, tally *hostileTally) error {
	var wg sync.WaitGroup
	for i := range 2 * slowClients {
		kind, write, limit := "slow-body", dripBody(srv.addr, 500*time.Millisecond), slowBodyLimit
		if i%2 == 1 {
			kind, write, limit = "slow-headers", dripHeaders(srv.addr, 500*time.Millisecond), slowHeadLimit
		}
		wg.Go(func() {
			r := rawExchange(ctx, srv.addr, 2*limit, write)
			wrong := ""
			switch {
			case r.elapsed > limit:
				wrong = fmt.Sprintf("connection held %s, want at most %s (%v)", r.elapsed, limit, r.err)
			case r.status != 0 && r.status/100 != 4:
				wrong = fmt.Sprintf("status %d, want a 4xx or a closed connection", r.status)
			}
			tally.add(kind, r.elapsed, wrong)
		})
	}
	wg.Wait()
	return ctx.Err()
}

// sampleMemory reads the server's resident memory every 50 ms until ctx
// ends; the returned function stops sampling and returns the peak in KiB
// (VmHWM, which also covers the moments between samples).
func sampleMemory(ctx context.Context, srv *server) func() int {
	ctx, cancel := context.WithCancel(ctx)
	var peak int
	var wg sync.WaitGroup
	wg.Go(func() {
		_ = poll(ctx, 50*time.Millisecond, func() (bool, error) {
			if rss, hwm, err := srv.memory(); err == nil {
				peak = max(peak, rss, hwm)
			}
			return false, nil
		})
	})
	return func() int {
		cancel()
		wg.Wait()
		return peak
	}
}

// requireStillServes delivers one good event after the storm of bad ones:
// it is answered 200 and stored.
func requireStillServes(ctx context.Context, t *testing.T, srv *server, d *database) {
	t.Helper()
	s := scenario.Generate(scenario.Config{Customers: 1, Seed: 6, Prefix: "control"})
	led := newLedger()
	cl := newClient(led, srv.url())
	defer cl.close()
	require.NoError(t, cl.deliver(ctx, s.Events[0]))
	require.Equal(t, 1, led.count(200), "a good event after the bad ones: %s", led)
	var stored int
	require.NoError(t, d.db.Get(&stored, `SELECT count(*) FROM webhook_events`))
	require.Equal(t, 1, stored)
}
