// Package reconcile applies the events of the inbox in dependency order,
// exactly once. A Worker claims batches of due events in the transaction that
// applies them (Stripe mirror, registered handlers, status change, history,
// release of the events that waited for it), applies under a lease, one at a
// time, what a batch leaves (a busy customer, a failed event), defers an
// event whose customer does not exist yet, retries failures with capped
// exponential backoff and full jitter, and dead-letters what cannot be
// applied.
package reconcile

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	"github.com/orderhook/orderhook/store"
)

// Store is what a Worker needs of the inbox; *store.DB satisfies it.
type Store interface {
	ProcessDue(ctx context.Context, p store.ClaimParams, fn func(ctx context.Context, tx *store.Tx) error) (store.Batch, error)
	Process(ctx context.Context, ev store.Event, worker string, now time.Time, fn func(ctx context.Context, tx *store.Tx) error) error
	Fail(ctx context.Context, f store.Failure) (int, error)
	ExpireDeferred(ctx context.Context, now time.Time, limit int, worker string) ([]store.Event, error)
	Unlease(ctx context.Context, worker string, events []store.Event) (int, error)
	Subscribe() (<-chan struct{}, func())
	IngestIdle() <-chan struct{}
}

// DefaultBatchSize is how many due events a loop claims and applies in one
// transaction unless Config.BatchSize says otherwise. A transaction costs
// round trips and a claim whatever its size; on two cores a drain of 10,873
// events took 35–50 % less CPU in batches of 64 than of 16 (BENCHMARKS.md).
const DefaultBatchSize = 64

// DefaultIngestMaxLag is how far behind the deliveries a reconciler that
// lets them go first may fall unless Config.IngestMaxLag says otherwise:
// longer than a burst of 12,000 events at the slowest rate measured on two
// cores (BENCHMARKS.md), short next to Stripe's own retries.
const DefaultIngestMaxLag = 10 * time.Second

// Config configures a Worker. Zero values take the documented defaults.
type Config struct {
	Name              string        // worker name in leases and history, unique among the workers of a database; default host-pid-random
	Workers           int           // concurrent loops; default 4
	BatchSize         int           // events claimed at once per loop; default DefaultBatchSize
	Lease             time.Duration // how long a claim is held, and a transaction may run; default 1m
	PollInterval      time.Duration // fallback when no wake-up arrives; default 1s
	MaxAttempts       int           // failed attempts before dead; default 12
	DependencyTimeout time.Duration // how long an event may stay deferred; default 72h
	BackoffBase       time.Duration // first retry delay ceiling; default 1s
	BackoffMax        time.Duration // retry delay cap; default 1h
	// IngestYield, when positive, lets the deliveries this process is
	// storing go first: until Store.IngestIdle says the burst is over (no
	// delivery stored for a few ms), one loop at a time (IngestLoops, when
	// set) waits for it, at most IngestYield, before its batch. During a
	// burst acknowledgements then come first and events are applied one
	// batch per turn, and at full speed after it. Zero: loops never wait
	// (the default). Worth it where an apply transaction blocks every
	// insert, as on SQLite, and where the two share few cores (serve sets
	// it on both engines).
	IngestYield time.Duration
	// IngestLoops, when positive, is how many loops may run a batch at
	// once until Store.IngestIdle says the burst is over; the others wait
	// for a turn, without IngestYield's wait unless it is set too. Zero:
	// one loop when IngestYield is set, every loop otherwise. On two cores
	// shared with PostgreSQL, two loops of four during a burst kept
	// acknowledgements fast and still kept pace (BENCHMARKS.md).
	IngestLoops int
	// IngestMaxLag bounds how far behind the deliveries IngestYield lets
	// the reconciler fall: once a loop's full batch had been due for longer
	// than IngestMaxLag, no loop waits before its batch (they still take
	// IngestLoops turns) until that loop has caught up to half of it. A
	// burst shorter than that is acknowledged first and applied after;
	// deliveries that keep coming faster than both can be done share the
	// CPU again, with the reconciler about IngestMaxLag behind. Default
	// DefaultIngestMaxLag.
	IngestMaxLag time.Duration
	// IngestBatchSize is how many events a loop claims at once when it
	// takes its turn while deliveries are being stored (see IngestYield):
	// where an apply transaction blocks every insert, as on SQLite, a small
	// batch holds the acknowledgements back for less time, and BatchSize
	// applies the backlog with fewer commits once the burst is over.
	// Default BatchSize.
	IngestBatchSize int
	// CustomerEvents are the event types that create the customer row other
	// events wait for; default DefaultCustomerEvents.
	CustomerEvents []string
	// Handlers run, per event type, inside the apply transaction.
	Handlers map[string]HandlerFunc
	// OnTransition, when set, is called after every committed transition,
	// from the loop that committed it: from several goroutines at once, and
	// holding that loop up until it returns. Keep it safe for concurrent use
	// and quick (a metric, a channel send that cannot block).
	OnTransition func(Transition)
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Transition is a committed change of an event's state, reported to
// Config.OnTransition: the hook for metrics and for tests that wait.
type Transition struct {
	EventID    string
	Type       string
	CustomerID string
	Outcome    string // one of the store.Outcome* values
	Attempt    int
	Worker     string
	WaitingFor string        // for deferred; for released, the dependency applied
	Released   int           // events released by this application
	ReleasedAt *time.Time    // for applied: when its dependency released it, if it waited
	Err        error         // for failed and dead
	Received   time.Time     // when the event entered the inbox
	Duration   time.Duration // time of the transaction that committed it, shared by its batch
	At         time.Time
}

// Worker applies inbox events. Create it with NewWorker and start it with Run.
type Worker struct {
	cfg    Config
	store  Store
	rules  rules
	logger zerolog.Logger
	turn   chan struct{} // a slot per loop whose turn it is while deliveries are stored; nil: no turns
	// behindLoops counts the loops behind by more than IngestMaxLag: while
	// one is, the loops take their turns without waiting.
	behindLoops atomic.Int32
}

// NewWorker returns a Worker over st. It returns an error when cfg holds a
// negative count or duration.
func NewWorker(cfg Config, st Store, logger zerolog.Logger) (*Worker, error) {
	if cfg.Workers < 0 || cfg.BatchSize < 0 || cfg.MaxAttempts < 0 || cfg.Lease < 0 ||
		cfg.PollInterval < 0 || cfg.DependencyTimeout < 0 || cfg.BackoffBase < 0 || cfg.BackoffMax < 0 || cfg.IngestYield < 0 || cfg.IngestLoops < 0 || cfg.IngestMaxLag < 0 || cfg.IngestBatchSize < 0 {
		return nil, errors.New("reconcile: counts and durations must not be negative")
	}
	cfg.Name = cmp.Or(cfg.Name, defaultName())
	cfg.Workers = cmp.Or(cfg.Workers, 4)
	cfg.BatchSize = cmp.Or(cfg.BatchSize, DefaultBatchSize)
	cfg.IngestBatchSize = cmp.Or(cfg.IngestBatchSize, cfg.BatchSize)
	cfg.Lease = cmp.Or(cfg.Lease, time.Minute)
	cfg.PollInterval = cmp.Or(cfg.PollInterval, time.Second)
	cfg.MaxAttempts = cmp.Or(cfg.MaxAttempts, 12)
	cfg.DependencyTimeout = cmp.Or(cfg.DependencyTimeout, 72*time.Hour)
	cfg.BackoffBase = cmp.Or(cfg.BackoffBase, time.Second)
	cfg.BackoffMax = cmp.Or(cfg.BackoffMax, time.Hour)
	cfg.IngestMaxLag = cmp.Or(cfg.IngestMaxLag, DefaultIngestMaxLag)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	w := &Worker{
		cfg:    cfg,
		store:  st,
		rules:  newRules(cfg.CustomerEvents, cfg.Handlers),
		logger: logger.With().Str("component", "reconcile").Logger(),
	}
	turns := cfg.IngestLoops
	if turns == 0 && cfg.IngestYield > 0 {
		turns = 1
	}
	if turns > 0 {
		w.turn = make(chan struct{}, turns)
	}
	return w, nil
}

// Run processes events until ctx is done, then returns nil once every loop
// has finished its current transaction, or cut it short 10 s after ctx
// ended. A loop whose store fails logs the failure at error and tries
// again, backing off up to 5 s, for as long as ctx lasts: an unmigrated
// database, too, is such a failure, not a reason to return.
func (w *Worker) Run(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	for i := range w.cfg.Workers {
		name := fmt.Sprintf("%s/%d", w.cfg.Name, i)
		g.Go(func() error { return w.loop(ctx, name, partition{index: i, count: w.cfg.Workers}) })
	}
	g.Go(func() error { return w.sweep(ctx, w.cfg.Name+"/sweeper") })
	return g.Wait()
}

// loop claims and processes batches, sleeping until a wake-up or the poll
// interval when nothing is due, and backing off while the store fails.
func (w *Worker) loop(ctx context.Context, name string, part partition) error {
	wake, unsubscribe := w.store.Subscribe()
	defer unsubscribe()
	failures := 0
	behind := false
	defer func() {
		if behind {
			w.behindLoops.Add(-1)
		}
	}()
	for {
		endTurn, limit, ok := w.yield(ctx)
		if !ok {
			return nil
		}
		batch, err := w.runBatch(ctx, name, part, limit)
		endTurn()
		if ctx.Err() != nil {
			return nil
		}
		behind = w.behind(name, behind, batch, limit)
		wait := jitter(w.cfg.PollInterval)
		switch {
		case err != nil:
			failures++
			wait = backoff(failures, w.cfg.PollInterval, 5*time.Second)
			msg := "store failed" // an unmigrated database, say
			if errors.Is(err, store.ErrUnavailable) {
				msg = "store unavailable"
			}
			w.logger.Error().Err(err).Str("worker", name).Dur("retry_in", wait).Msg(msg)
		case full(batch, limit):
			failures = 0
			continue // more may be due
		default:
			failures = 0
		}
		if !sleep(ctx, wake, wait) {
			return nil
		}
	}
}

// full reports whether batch claimed limit events or more (the events
// claimed alongside come on top): more may be due.
func full(batch store.Batch, limit int) bool { return batch.Claimed >= limit }

// behind reports whether a loop that was or was not behind is behind after
// batch, of at most limit events: it falls behind when a full batch had
// been due for longer than IngestMaxLag, and has caught up once its batch
// had been due for less than half of that, or was empty. It logs both, and
// counts the loop in behindLoops while it is behind.
func (w *Worker) behind(name string, was bool, batch store.Batch, limit int) bool {
	if w.turn == nil {
		return false
	}
	var lag time.Duration
	if batch.Claimed > 0 {
		lag = w.cfg.Now().Sub(batch.OldestDue)
	}
	is := lag > w.cfg.IngestMaxLag/2
	if !was {
		is = full(batch, limit) && lag > w.cfg.IngestMaxLag
	}
	switch {
	case is && !was:
		w.behindLoops.Add(1)
		w.logger.Info().Str("worker", name).Dur("lag", lag).Dur("max_lag", w.cfg.IngestMaxLag).
			Msg("reconciler behind the deliveries: applying without waiting for them")
	case was && !is:
		w.behindLoops.Add(-1)
		w.logger.Info().Str("worker", name).Dur("lag", lag).Msg("reconciler caught up: deliveries go first again")
	}
	return is
}

// yield lets the deliveries this process is storing go first. While
// Store.IngestIdle is open, the loops take turns: IngestLoops of them at a
// time (one with IngestYield alone) each wait for it, for at most
// IngestYield, then run their batch while the others queue behind them;
// when it closes, every loop goes on at once. yield returns the func that
// ends the turn, how many events the batch may claim (IngestBatchSize while
// deliveries are still being stored, BatchSize once they are not), and false
// when ctx is done. While a loop is behind by more than IngestMaxLag, the
// loops still take turns but do not wait.
func (w *Worker) yield(ctx context.Context) (func(), int, bool) {
	if w.turn == nil {
		return func() {}, w.cfg.BatchSize, true
	}
	idle := w.store.IngestIdle()
	select {
	case <-idle:
		return func() {}, w.cfg.BatchSize, true
	case w.turn <- struct{}{}:
	case <-ctx.Done():
		return nil, 0, false
	}
	end := func() { <-w.turn }
	if w.cfg.IngestYield == 0 || w.behindLoops.Load() > 0 {
		return end, w.cfg.IngestBatchSize, true
	}
	t := time.NewTimer(w.cfg.IngestYield)
	defer t.Stop()
	select {
	case <-idle:
		return end, w.cfg.BatchSize, true
	case <-t.C:
		return end, w.cfg.IngestBatchSize, true
	case <-ctx.Done():
		end()
		return nil, 0, false
	}
}

// partition is the share of the customers a loop claims: those hashing to
// index of count (the zero value: all of them). The loops of one Worker
// split the customers, so they never hold the same customer's events.
type partition struct{ index, count int }

// RunOnce claims one batch as worker name and processes it. It returns how
// many events it claimed, and an error only when the store failed, or did
// not answer a transaction within a lease. A ctx that ends while the batch
// runs cuts it short 10 s later.
func (w *Worker) RunOnce(ctx context.Context, name string) (int, error) {
	batch, err := w.runBatch(ctx, name, partition{}, w.cfg.BatchSize)
	return batch.Claimed, err
}

// runBatch claims and processes a batch in one transaction, then, one at a
// time, the events it left leased: those whose customer another transaction
// held, or the whole batch when one of its events failed and rolled it back.
// The batch claims at most limit events; runBatch returns it.
func (w *Worker) runBatch(ctx context.Context, name string, part partition, limit int) (store.Batch, error) {
	if ctx.Err() != nil {
		return store.Batch{}, nil
	}
	inFlight, done := w.inFlight(ctx)
	defer done()
	batch, failed, cause := w.processBatch(inFlight, name, part, limit)
	switch {
	case cause == nil:
		// Another transaction held these customers: wait for it.
		return batch, w.processEach(ctx, name, batch.Leased, store.Event{}, nil)
	case failed.ID == "" && store.IsRefusedValue(cause) && len(batch.Leased) > 0:
		// PostgreSQL refused a value of the writes the batch held to its
		// end: one event's, but not one it names. Alone, each event's own
		// writes fail, as its attempt, or commit.
		w.logger.Warn().Err(cause).Str("worker", name).Int("events", batch.Claimed).Msg("batch's writes refused; processing its events one at a time")
		return batch, w.processEach(ctx, name, batch.Leased, store.Event{}, nil)
	case failed.ID == "", errors.Is(cause, store.ErrUnavailable), batch.Claimed == 0:
		// No event to blame, or the batch could not be leased again after
		// it rolled back (ProcessDue then returns no batch): the store
		// failed. The events are due again.
		return batch, w.storeFailure(inFlight, cause)
	}
	// failed took the batch down with it: record its failure, and process
	// the others again one at a time.
	w.logger.Debug().Err(cause).Str("worker", name).Int("events", batch.Claimed).Msg("batch rolled back; processing its events one at a time")
	if !slices.ContainsFunc(batch.Leased, func(ev store.Event) bool { return ev.ID == failed.ID }) {
		// Released, and processed, in its dependency's transaction, failed
		// is not leased to this worker: it has no attempt to record, and
		// is due again once its dependency is applied. Its failure is
		// logged here, once.
		w.logger.Warn().Err(cause).Str("event_id", failed.ID).Str("type", failed.Type).Str("customer_id", failed.CustomerID).
			Int("attempt", failed.Attempts+1).Str("worker", name).Msg("failed in its dependency's transaction; due again once that is applied")
	}
	return batch, w.processEach(ctx, name, batch.Leased, failed, cause)
}

// storeFailure returns cause, the failure of a transaction that no event is
// to blame for. A transaction that ran out of its lease waited for a database
// that did not answer in time: the store was unavailable. (The connection's
// deadline is the context's, and may fail a call before the context ends.)
func (w *Worker) storeFailure(inFlight context.Context, cause error) error {
	deadline, _ := inFlight.Deadline()
	if errors.Is(cause, store.ErrUnavailable) || time.Now().Before(deadline) {
		return cause
	}
	return fmt.Errorf("%w: no answer within the %s lease: %w", store.ErrUnavailable, w.cfg.Lease, cause)
}

// processEach processes events one transaction at a time, recording the
// failure cause for the event failed instead of processing it again. It stops
// early when ctx is done (giving up the leases of the rest) or when the store
// fails (the loop backs off; the rest are claimed again once their leases
// expire).
func (w *Worker) processEach(ctx context.Context, name string, events []store.Event, failed store.Event, cause error) error {
	for i, ev := range events {
		if ctx.Err() != nil {
			w.unlease(context.WithoutCancel(ctx), name, events[i:])
			return nil
		}
		if err := w.processOne(ctx, name, ev, failed, cause); err != nil {
			return err
		}
	}
	return nil
}

// processOne processes ev in its own transaction, or records cause for it
// when it is failed.
func (w *Worker) processOne(ctx context.Context, name string, ev, failed store.Event, cause error) error {
	inFlight, done := w.inFlight(ctx)
	defer done()
	if ev.ID == failed.ID {
		return w.fail(inFlight, name, failed, w.cfg.Now(), cause)
	}
	return w.process(inFlight, name, ev)
}

// stopGrace is how long a transaction in flight may go on once the worker
// is told to stop: long enough for any batch against a database that
// answers, so that a stop finishes it, and short enough that a database that
// stopped answering does not hold the stop for ever. A transaction cut short
// rolls back, and its events are due again.
const stopGrace = 10 * time.Second

// inFlight returns the context of one transaction. It ends a lease
// (Config.Lease) after it starts: a transaction that holds its events
// longer, most likely on a database that stopped answering, is cut short and
// rolls back, and its events are due again. It goes on when ctx ends, and
// then ends no later than stopGrace after. done releases it.
func (w *Worker) inFlight(ctx context.Context) (inFlight context.Context, done func()) {
	inFlight, cancel := context.WithTimeout(context.WithoutCancel(ctx), w.cfg.Lease)
	stop := context.AfterFunc(ctx, func() {
		t := time.NewTimer(stopGrace)
		defer t.Stop()
		select {
		case <-t.C:
			cancel()
		case <-inFlight.Done():
		}
	})
	return inFlight, func() {
		stop()
		cancel()
	}
}

// unleaseTimeout bounds giving up the leases on stop.
const unleaseTimeout = 5 * time.Second

// unlease gives up name's leases on events, so that another worker takes
// them at once rather than when the leases expire. A failure is logged: the
// leases then expire as they would have.
func (w *Worker) unlease(ctx context.Context, name string, events []store.Event) {
	ctx, cancel := context.WithTimeout(ctx, unleaseTimeout)
	defer cancel()
	n, err := w.store.Unlease(ctx, name, events)
	if err != nil {
		w.logger.Warn().Err(err).Str("worker", name).Int("events", len(events)).Msg("stopping: could not give up the leases; they expire as usual")
		return
	}
	w.logger.Info().Str("worker", name).Int("events", n).Msg("stopping: gave up the leases of the events not processed")
}

// sleep waits for a wake-up, d, or ctx; it reports false when ctx is done.
func sleep(ctx context.Context, wake <-chan struct{}, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-wake:
	case <-t.C:
	}
	return true
}

// sweep dead-letters deferred events whose dependency timed out.
func (w *Worker) sweep(ctx context.Context, name string) error {
	for {
		expired, err := w.store.ExpireDeferred(ctx, w.cfg.Now(), 100, name)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			w.logger.Error().Err(err).Str("worker", name).Msg("expire deferred events")
		}
		for _, ev := range expired {
			w.report(ev, Transition{Outcome: store.OutcomeDead, Worker: name, WaitingFor: ev.WaitingFor, Err: errors.New(ev.LastError)})
		}
		if len(expired) == 100 {
			continue
		}
		if !sleep(ctx, nil, jitter(w.cfg.PollInterval)) {
			return nil
		}
	}
}

// defaultName identifies this process in leases and history: the host, the
// pid and random bytes, so that two workers never share a lease by name.
func defaultName() string {
	host, err := os.Hostname()
	if err != nil {
		host = "orderhook"
	}
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b))
}
