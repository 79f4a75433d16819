// Package deliver signs Stripe event payloads and posts them to a webhook
// endpoint the way Stripe does: the raw bytes, a Stripe-Signature header with
// one v1 signature per signing secret, Stripe's headers, and — when asked —
// retries with exponential backoff until the endpoint answers 2xx.
//
// It is the engine behind `orderhook send` (an offline stand-in for
// `stripe trigger`) and the load generator of the benchmarks and reliability
// tests, which call it in-process with many events and high concurrency.
package deliver

import (
	"cmp"
	"container/heap"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// ErrConfig is returned, wrapped with the reason, by New for an invalid
// Config.
var ErrConfig = errors.New("invalid sender configuration")

// Defaults for the zero values of Config.
const (
	DefaultTimeout    = 30 * time.Second
	DefaultMaxRetries = 10
	DefaultBackoffMin = 100 * time.Millisecond
	DefaultBackoffMax = 10 * time.Second
)

// Config configures a Sender. Zero values take the documented defaults.
type Config struct {
	URL         string        // endpoint, e.g. http://127.0.0.1:8080/webhooks/stripe
	Secrets     []string      // signing secrets (whsec_…); each request carries one v1 signature per secret
	Concurrency int           // deliveries in flight at once; default 1
	Shuffle     bool          // send in random order instead of the given one
	Seed        uint64        // shuffle seed, for reproducible orders; 0 picks one (see Report.Seed)
	Repeat      int           // times each event is delivered (duplicates); default 1
	FreshIDs    bool          // give every event a new unique id on each Run (its repeats share it)
	Until2xx    bool          // retry non-2xx answers and transport errors, like Stripe
	MaxRetries  int           // retries per delivery when Until2xx; default 10
	BackoffMin  time.Duration // wait before the first retry; doubles each retry; default 100ms
	BackoffMax  time.Duration // cap on the wait between retries; default 10s
	Timeout     time.Duration // limit on each HTTP request, answer included; default 30s

	// Client sends the requests. The default keeps Concurrency idle
	// connections per host and, like Stripe, does not follow redirects.
	Client *http.Client
	// Now is the clock of the signature timestamps; default time.Now.
	// Latency and duration are always measured on the monotonic clock.
	Now func() time.Time
}

// Sender signs and posts events. It is safe for concurrent use; each Run is
// independent.
type Sender struct {
	cfg       Config
	url       string
	client    *http.Client
	ownClient bool
	now       func() time.Time
	headers   http.Header // Stripe's fixed headers, shared read-only
}

// New validates cfg, fills its defaults and returns a Sender. It returns an
// error wrapping ErrConfig when the URL is not an absolute http(s) URL, no
// secret is given, a secret is empty, or a number or duration is negative.
func New(cfg Config) (*Sender, error) {
	cfg.Concurrency = cmp.Or(cfg.Concurrency, 1)
	cfg.Repeat = cmp.Or(cfg.Repeat, 1)
	cfg.MaxRetries = cmp.Or(cfg.MaxRetries, DefaultMaxRetries)
	cfg.BackoffMin = cmp.Or(cfg.BackoffMin, DefaultBackoffMin)
	cfg.BackoffMax = cmp.Or(cfg.BackoffMax, max(DefaultBackoffMax, cfg.BackoffMin))
	cfg.Timeout = cmp.Or(cfg.Timeout, DefaultTimeout)
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	s := &Sender{cfg: cfg, url: cfg.URL, client: cfg.Client, now: cfg.Now, headers: stripeHeaders()}
	if s.now == nil {
		s.now = time.Now
	}
	s.cfg.Secrets = append([]string(nil), cfg.Secrets...)
	if s.client == nil {
		s.client, s.ownClient = newClient(cfg.Concurrency), true
	}
	return s, nil
}

func (c *Config) validate() error {
	u, err := url.Parse(c.URL)
	switch {
	case err != nil:
		return fmt.Errorf("url: %w", err)
	case u.Scheme != "http" && u.Scheme != "https", u.Host == "":
		return fmt.Errorf("url %q: want http://HOST/PATH or https://HOST/PATH", c.URL)
	case len(c.Secrets) == 0:
		return errors.New("no signing secret")
	case c.Concurrency < 0, c.Repeat < 0, c.MaxRetries < 0:
		return errors.New("concurrency, repeat and max retries must not be negative")
	case c.Timeout < 0, c.BackoffMin < 0, c.BackoffMax < c.BackoffMin:
		return errors.New("timeout and backoff must be positive, with backoff min ≤ max")
	}
	for i, s := range c.Secrets {
		if strings.TrimSpace(s) == "" {
			return fmt.Errorf("secret %d is empty", i+1)
		}
	}
	return nil
}

// newClient returns an HTTP client that keeps enough idle connections for
// conc parallel deliveries to one host and returns redirects as answers.
func newClient(conc int) *http.Client {
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          max(100, conc),
		MaxIdleConnsPerHost:   max(2, conc),
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
	return &http.Client{
		Transport:     tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// CloseIdleConnections closes the idle connections of the client New made;
// it does nothing to a Config.Client. Call it when done with the Sender.
func (s *Sender) CloseIdleConnections() {
	if s.ownClient {
		s.client.CloseIdleConnections()
	}
}

// Run delivers every event Repeat times, Concurrency at a time, and returns
// what happened. progress, when not nil, is called after each finished
// delivery, from several goroutines at once.
//
// Failed deliveries are not an error of Run: they are in the Report (see
// Report.Err). Run returns an error when events is empty (wrapping
// ErrNoEvents), when FreshIDs cannot rewrite an event, or, together with the
// partial report, when ctx ends before every delivery got a 2xx (wrapping
// ctx.Err()).
func (s *Sender) Run(ctx context.Context, events []Event, progress func()) (Report, error) {
	if len(events) == 0 {
		return Report{}, fmt.Errorf("send: %w", ErrNoEvents)
	}
	if s.cfg.FreshIDs {
		var err error
		if events, err = freshIDs(events); err != nil {
			return Report{}, err
		}
	}
	order, seed := s.plan(len(events))
	r := &run{s: s, events: events, order: order, outcomes: make([]outcome, len(order)), progress: progress}
	start := time.Now()
	r.work(ctx)
	rep := r.report(time.Since(start))
	rep.Events, rep.Seed = len(events), seed
	if err := ctx.Err(); err != nil && rep.Delivered < rep.Planned {
		return rep, fmt.Errorf("send interrupted after %d of %d deliveries: %w", rep.Delivered+rep.Failed, rep.Planned, err)
	}
	return rep, nil
}

// plan returns the delivery order as indexes into the events: Repeat rounds
// of every event, shuffled when asked, and the seed used.
func (s *Sender) plan(n int) ([]int, uint64) {
	order := make([]int, 0, n*s.cfg.Repeat)
	for range s.cfg.Repeat {
		for i := range n {
			order = append(order, i)
		}
	}
	if !s.cfg.Shuffle {
		return order, 0
	}
	seed := s.cfg.Seed
	for seed == 0 {
		seed = rand.Uint64()
	}
	rng := rand.New(rand.NewPCG(seed, seed))
	rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
	return order, seed
}

// run is the state of one Sender.Run. A delivery is held by one worker at
// a time, which alone writes its outcome; it is handed on, to be retried,
// through the pending queue under mu.
type run struct {
	s        *Sender
	events   []Event
	order    []int
	outcomes []outcome
	progress func()
	workers  []worker

	mu       sync.Mutex
	next     int           // the next first delivery, an index into order
	pending  retryQueue    // deliveries waiting for a retry, soonest first
	inflight int           // attempts being made, which may add to pending
	changed  chan struct{} // closed, and replaced, when pending or inflight changes
}

func (r *run) work(ctx context.Context) {
	r.changed = make(chan struct{})
	r.workers = make([]worker, min(r.s.cfg.Concurrency, len(r.order)))
	per := len(r.order)/len(r.workers) + 1
	var wg sync.WaitGroup
	for i := range r.workers {
		w := &r.workers[i]
		w.s, w.latencies = r.s, make([]time.Duration, 0, per)
		wg.Go(func() { r.loop(ctx, w) })
	}
	wg.Wait()
	for _, p := range r.pending { // left when ctx ended
		r.outcomes[p.i] = interrupted(r.outcomes[p.i], ctx.Err())
	}
}

// loop makes attempts until no delivery is left or ctx ends.
func (r *run) loop(ctx context.Context, w *worker) {
	for {
		i, isRetry, ok := r.take(ctx)
		if !ok {
			return
		}
		if isRetry {
			w.retries++
		}
		out, wait, retry := w.deliver(ctx, &r.events[r.order[i]], r.outcomes[i])
		r.outcomes[i] = out
		r.done(i, wait, retry)
		if !retry && out.state != unsent && r.progress != nil {
			r.progress()
		}
	}
}

// take returns the delivery to attempt next: a retry that is due first, then
// the next first delivery. When neither is ready but retries are pending or
// attempts in flight may add one, it waits. It returns false when no
// delivery is left or ctx ends.
func (r *run) take(ctx context.Context) (i int, isRetry, ok bool) {
	r.mu.Lock()
	for ctx.Err() == nil {
		now := time.Now()
		switch {
		case len(r.pending) > 0 && !r.pending[0].due.After(now):
			i, isRetry = heap.Pop(&r.pending).(pendingRetry).i, true
		case r.next < len(r.order):
			i = r.next
			r.next++
		case len(r.pending) == 0 && r.inflight == 0:
			r.mu.Unlock()
			return 0, false, false
		default:
			r.wait(ctx, now)
			continue
		}
		r.inflight++
		r.mu.Unlock()
		return i, isRetry, true
	}
	r.mu.Unlock()
	return 0, false, false
}

// wait, called with mu held, releases it until the soonest pending retry is
// due, pending or inflight changes, or ctx ends; it returns with mu held.
func (r *run) wait(ctx context.Context, now time.Time) {
	var due <-chan time.Time
	if len(r.pending) > 0 {
		t := time.NewTimer(r.pending[0].due.Sub(now))
		defer t.Stop()
		due = t.C
	}
	changed := r.changed
	r.mu.Unlock()
	select {
	case <-ctx.Done():
	case <-changed:
	case <-due:
	}
	r.mu.Lock()
}

// done ends an attempt of delivery i: it queues the delivery for a retry
// after wait when retry is set, and wakes the workers waiting in take.
func (r *run) done(i int, wait time.Duration, retry bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.inflight--
	if retry {
		heap.Push(&r.pending, pendingRetry{due: time.Now().Add(wait), i: i})
	}
	close(r.changed)
	r.changed = make(chan struct{})
}

// pendingRetry is a delivery waiting for its next attempt.
type pendingRetry struct {
	due time.Time
	i   int // index into run.order and run.outcomes
}

// retryQueue is a container/heap of pending retries, the soonest due first.
type retryQueue []pendingRetry

func (q retryQueue) Len() int           { return len(q) }
func (q retryQueue) Less(a, b int) bool { return q[a].due.Before(q[b].due) }
func (q retryQueue) Swap(a, b int)      { q[a], q[b] = q[b], q[a] }

// Push adds x, a pendingRetry; for container/heap.
func (q *retryQueue) Push(x any) { *q = append(*q, x.(pendingRetry)) }

// Pop removes and returns the last element; for container/heap.
func (q *retryQueue) Pop() any {
	old := *q
	p := old[len(old)-1]
	*q = old[:len(old)-1]
	return p
}

// report tallies the outcomes and the workers' counters.
func (r *run) report(d time.Duration) Report {
	rep := Report{Planned: len(r.order), Status: map[int]int{}, Duration: d}
	for i, out := range r.outcomes {
		switch out.state {
		case unsent:
			rep.Unsent++
			continue
		case delivered:
			rep.Delivered++
		case failed:
			rep.Failed++
			if len(rep.Failures) < maxFailures {
				rep.Failures = append(rep.Failures, out.failure(&r.events[r.order[i]]))
			}
		}
		if out.status == 0 {
			rep.TransportErrors++
		} else {
			rep.Status[out.status]++
		}
	}
	var all []time.Duration
	for i := range r.workers {
		w := &r.workers[i]
		rep.Requests += w.requests
		rep.Retries += w.retries
		all = append(all, w.latencies...)
	}
	rep.latencies = all
	rep.Latency = Summarize(all)
	return rep
}
