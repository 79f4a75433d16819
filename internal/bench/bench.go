// Package bench measures orderhook under a billing run, the way `orderhook
// bench` reports it: a workload of N customers through the full lifecycle in
// Stripe's real shape, delivered in an adversarial order with duplicates at
// concurrency C to a running server; the ingest rate and ack latency, the
// time until everything is applied, the release latency, the server's peak
// RSS; and, in the same run, the engine's limit — plain durable single-row
// INSERTs of the same payloads — that the ingest rate is compared with.
package bench

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/orderhook/orderhook/internal/deliver"
	"github.com/orderhook/orderhook/store"
)

// Defaults for the zero values of Config.
const (
	DefaultConcurrency = 16
	DefaultTimeout     = 5 * time.Minute
)

// ErrIncomplete is returned, wrapped, by Result.Err when a delivery was not
// acknowledged or an event was not applied.
var ErrIncomplete = errors.New("bench run incomplete")

// Config configures a Run. Zero values take the documented defaults.
type Config struct {
	URL         string   // the server's webhook endpoint
	Secrets     []string // its signing secrets (whsec_…)
	Workload    WorkloadConfig
	Concurrency int           // deliveries in flight, and INSERTs for the engine limit; default 16
	Timeout     time.Duration // wait for everything to be applied after the last ack; default 5m
	SkipLimit   bool          // do not measure the engine limit
	// The server's peak RSS is VmHWM of PID when PID is set, otherwise the
	// largest process_resident_memory_bytes sampled from MetricsURL (default:
	// /metrics on the host of URL).
	PID        int
	MetricsURL string
	// Progress, when set, is called at the start of each stage with its
	// name and size, and returns a function to call per item and one to call
	// at the end.
	Progress func(stage string, total int) (tick, done func())
}

// Result is what a Run measured.
type Result struct {
	Workload    Workload
	Concurrency int
	Ingest      deliver.Report // the deliveries: rate, ack latency, answers
	Limit       *Limit         // nil with SkipLimit
	Outcome     Outcome        // the run's events in the inbox, once settled or timed out
	// Applied is the time from the first send until a poll of the inbox
	// found every event applied, less HeldBack; zero when not everything
	// was, within Config.Timeout.
	Applied time.Duration
	// HeldBack is how long the late deliveries (Workload.Late) waited for
	// the others to be applied or deferred.
	HeldBack time.Duration
	RSS      RSS
	// Durability is how commits are made durable on the database, e.g.
	// "synchronous_commit=on fsync=on".
	Durability string
}

// Ratio returns the ingest rate as a multiple of the engine limit, or 0
// without a limit.
func (r Result) Ratio() float64 {
	if r.Limit == nil || r.Limit.Rate() == 0 {
		return 0
	}
	return r.Ingest.Rate() / r.Limit.Rate()
}

// AppliedRatio returns the time until applied as a multiple of the ingest
// time, or 0 when not everything was applied.
func (r Result) AppliedRatio() float64 {
	if r.Applied <= 0 || r.Ingest.Duration <= 0 {
		return 0
	}
	return r.Applied.Seconds() / r.Ingest.Duration.Seconds()
}

// Err returns nil when every delivery was acknowledged and every distinct
// event applied or ignored, and otherwise an error wrapping ErrIncomplete
// that says what is missing.
func (r Result) Err() error {
	if err := r.Ingest.Err(); err != nil {
		return fmt.Errorf("%w: %w", ErrIncomplete, err)
	}
	if r.Outcome.Stored != r.Workload.Distinct || !r.Outcome.Settled() {
		return fmt.Errorf("%w: %d of %d events stored, by status %v", ErrIncomplete, r.Outcome.Stored, r.Workload.Distinct, r.Outcome.Counts)
	}
	if r.Applied <= 0 {
		return fmt.Errorf("%w: not every event was applied within the timeout (every one was by the time the outcome was read)", ErrIncomplete)
	}
	return nil
}

// Run measures the engine limit on db (unless SkipLimit), delivers the
// workload to the server at cfg.URL, waits until the server has applied it
// all, and reads the outcome from db, which must be the server's database.
// It returns an error when the workload, the sender or the engine limit
// cannot be set up, or when db cannot be read; an incomplete run is not an
// error of Run but of Result.Err.
func Run(ctx context.Context, cfg Config, db *store.DB) (Result, error) {
	cfg.Concurrency = cmp.Or(cfg.Concurrency, DefaultConcurrency)
	cfg.Timeout = cmp.Or(cfg.Timeout, DefaultTimeout)
	if cfg.Progress == nil {
		cfg.Progress = func(string, int) (func(), func()) { return func() {}, func() {} }
	}
	w, err := NewWorkload(cfg.Workload)
	if err != nil {
		return Result{}, err
	}
	sender, err := deliver.New(deliver.Config{URL: cfg.URL, Secrets: cfg.Secrets, Concurrency: cfg.Concurrency})
	if err != nil {
		return Result{}, err
	}
	defer sender.CloseIdleConnections()
	res := Result{Workload: w, Concurrency: cfg.Concurrency}
	if res.Durability, err = durability(ctx, db); err != nil {
		return Result{}, err
	}
	if !cfg.SkipLimit {
		tick, done := cfg.Progress("engine limit", len(w.Deliveries))
		lim, err := measureLimit(ctx, db, w.Deliveries, cfg.Concurrency, tick)
		done()
		if err != nil {
			return Result{}, err
		}
		res.Limit = &lim
	}
	rss, stopRSS, err := watchRSS(ctx, cfg)
	if err != nil {
		return Result{}, err
	}
	if err := res.send(ctx, cfg, sender, db); err != nil {
		stopRSS()
		return Result{}, err
	}
	stopRSS()
	res.RSS = rss()
	return res, nil
}

// The inbox is polled every settlePoll after the last ack, and every
// settlePollFine once at most settleFineBelow of the run's events are left.
// The time until applied ends at the first poll that finds none left: it
// overstates the time by at most one fine period and a count, where the
// server's applied_at, the start of the transaction that applied the event,
// would leave out the whole of the last batch. Polling fast throughout
// would take CPU from the server under test; over the last few hundred
// events a count is an index scan of them.
const (
	settlePoll      = 250 * time.Millisecond
	settlePollFine  = 10 * time.Millisecond
	settleFineBelow = 512
)

// send delivers the workload, waits until it is applied and reads the
// outcome.
func (r *Result) send(ctx context.Context, cfg Config, sender *deliver.Sender, db *store.DB) error {
	tick, done := cfg.Progress("sending", len(r.Workload.Deliveries))
	first := time.Now()
	err := r.deliver(ctx, cfg, sender, db, tick)
	done()
	if err != nil {
		return err
	}
	waitCtx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	tick, done = cfg.Progress("applying", r.Workload.Distinct)
	settledAt, waitErr := waitSettled(waitCtx, db, r.Workload.IDPrefix(), r.Workload.Distinct, tick)
	done()
	if waitErr != nil && ctx.Err() != nil {
		return waitErr
	}
	if r.Outcome, err = readOutcome(ctx, db, r.Workload.IDPrefix()); err != nil {
		return err
	}
	if waitErr == nil && r.Outcome.Stored == r.Workload.Distinct && r.Outcome.Settled() {
		r.Applied = settledAt.Sub(first) - r.HeldBack
	}
	return nil
}

// deliver sends the deliveries and sets r.Ingest. The last Workload.Late of
// them wait until none of the others is pending any more; that time is
// r.HeldBack, and counts in neither the ingest nor the time until applied,
// though the server spends it applying or deferring the others.
func (r *Result) deliver(ctx context.Context, cfg Config, sender *deliver.Sender, db *store.DB, tick func()) error {
	all := r.Workload.Deliveries
	early, late := all[:len(all)-r.Workload.Late], all[len(all)-r.Workload.Late:]
	var err error
	if r.Ingest, err = sender.Run(ctx, early, tick); err != nil || len(late) == 0 {
		return err
	}
	start := time.Now()
	waitCtx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	if err := waitNonePending(waitCtx, db, r.Workload.IDPrefix()); err != nil {
		return fmt.Errorf("hold back the late deliveries: %w", err)
	}
	r.HeldBack = time.Since(start)
	rep, err := sender.Run(ctx, late, tick)
	r.Ingest = r.Ingest.Join(rep)
	return err
}

// watchRSS starts measuring the server's peak RSS and returns a function
// that returns it, and one that stops measuring.
func watchRSS(ctx context.Context, cfg Config) (func() RSS, func(), error) {
	if cfg.PID > 0 {
		return func() RSS {
			b, err := readHWM(cfg.PID)
			if err != nil {
				return RSS{Basis: "unknown: " + err.Error()}
			}
			return RSS{PeakBytes: b, Basis: fmt.Sprintf("VmHWM of pid %d, over its whole life", cfg.PID)}
		}, func() {}, nil
	}
	metricsURL := cfg.MetricsURL
	if metricsURL == "" {
		u, err := url.Parse(cfg.URL)
		if err != nil {
			return nil, nil, fmt.Errorf("metrics url: %w", err)
		}
		metricsURL = (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: "/metrics"}).String()
	}
	s := &rssSampler{url: metricsURL, client: &http.Client{Timeout: 2 * time.Second}}
	ctx, cancel := context.WithCancel(ctx)
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		s.run(ctx, 100*time.Millisecond)
	}()
	return s.result, func() { cancel(); <-stopped }, nil
}
