//go:build reliability

package reliability

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/orderhook/orderhook/internal/deliver"
	"github.com/orderhook/orderhook/internal/scenario"
)

// answer is what one request got: a status, or a transport error (status 0).
type answer struct {
	eventID    string
	url        string
	status     int
	retryAfter string
	sent, done time.Time
}

// ledger is the client side of the truth: which events were acknowledged
// with a 2xx, and the tally of every answer.
type ledger struct {
	mu        sync.Mutex
	acked     map[string]int // 2xx answers per event id
	statuses  map[int]int
	transport int
	keep      bool     // keep every answer in answers
	answers   []answer // when keep
}

// kept returns the answers recorded with keep set.
func (l *ledger) kept() []answer {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.answers)
}

func newLedger() *ledger {
	return &ledger{acked: map[string]int{}, statuses: map[int]int{}}
}

func (l *ledger) record(a answer) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if a.status == 0 {
		l.transport++
	} else {
		l.statuses[a.status]++
	}
	if a.status/100 == 2 {
		l.acked[a.eventID]++
	}
	if l.keep {
		l.answers = append(l.answers, a)
	}
}

// ackedIDs returns the ids of the events that got at least one 2xx.
func (l *ledger) ackedIDs() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Sorted(maps.Keys(l.acked))
}

// String tallies the answers: "requests=N 200=… 503=… transport-errors=…".
func (l *ledger) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := l.transport
	var parts []string
	for _, code := range slices.Sorted(maps.Keys(l.statuses)) {
		n += l.statuses[code]
		parts = append(parts, fmt.Sprintf("%d=%d", code, l.statuses[code]))
	}
	parts = append(parts, fmt.Sprintf("transport-errors=%d", l.transport))
	return fmt.Sprintf("requests=%d %s", n, strings.Join(parts, " "))
}

// count returns how many answers had the status (0: transport errors).
func (l *ledger) count(status int) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	if status == 0 {
		return l.transport
	}
	return l.statuses[status]
}

// client is a Stripe-like sender: it signs each event as Stripe does
// (deliver.Signature over the raw bytes, a fresh timestamp per attempt) and
// posts it until it gets a 2xx, retrying transport errors and every non-2xx
// with capped, jittered exponential backoff. Its attempts go round-robin over
// urls, so a dead replica's share moves to the others on retry.
type client struct {
	urls       []string
	http       *http.Client
	next       atomic.Uint64
	ledger     *ledger
	backoffMax time.Duration
}

func newClient(l *ledger, urls ...string) *client {
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		MaxIdleConns:        256,
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     30 * time.Second,
	}
	return &client{urls: urls, http: &http.Client{Transport: tr, Timeout: 20 * time.Second}, ledger: l, backoffMax: time.Second}
}

// close releases the client's idle connections.
func (c *client) close() { c.http.CloseIdleConnections() }

// deliverAll delivers every event until acknowledged, concurrency at a
// time. It returns ctx's error if ctx ends first.
func (c *client) deliverAll(ctx context.Context, events []scenario.Event, concurrency int) error {
	var next atomic.Int64
	g, ctx := errgroup.WithContext(ctx)
	for range concurrency {
		g.Go(func() error {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(events) {
					return nil
				}
				if err := c.deliver(ctx, events[i]); err != nil {
					return err
				}
			}
		})
	}
	return g.Wait()
}

// deliver posts ev until it gets a 2xx, and returns ctx's error if ctx ends
// first.
func (c *client) deliver(ctx context.Context, ev scenario.Event) error {
	for attempt := 1; ; attempt++ {
		url := c.urls[int(c.next.Add(1)-1)%len(c.urls)]
		a := c.post(ctx, url, ev)
		if ctx.Err() != nil {
			return fmt.Errorf("deliver %s: %w", ev.ID, ctx.Err())
		}
		c.ledger.record(a)
		if a.status/100 == 2 {
			return nil
		}
		if err := sleepCtx(ctx, backoff(attempt, 20*time.Millisecond, c.backoffMax)); err != nil {
			return fmt.Errorf("deliver %s: %w", ev.ID, err)
		}
	}
}

// post makes one signed request.
func (c *client) post(ctx context.Context, url string, ev scenario.Event) answer {
	a := answer{eventID: ev.ID, url: url, sent: time.Now()}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(ev.Payload))
	if err != nil {
		a.done = time.Now()
		return a
	}
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	req.Header.Set("User-Agent", "Stripe/1.0 (+https://stripe.com/docs/webhooks)")
	req.Header.Set("Stripe-Signature", deliver.Signature(time.Now(), ev.Payload, secret))
	resp, err := c.http.Do(req)
	if err == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		a.status, a.retryAfter = resp.StatusCode, resp.Header.Get("Retry-After")
	}
	a.done = time.Now()
	return a
}

// backoff returns the wait before retry n: min·2^(n-1), capped, jittered
// over its upper half.
func backoff(n int, minDelay, limit time.Duration) time.Duration {
	d := minDelay << min(n-1, 20)
	d = min(d, limit)
	return d/2 + rand.N(d/2+1)
}

// sleepCtx waits d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
