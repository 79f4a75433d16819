package reconcile

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"time"

	"github.com/rs/zerolog"

	"github.com/orderhook/orderhook/store"
)

// processBatch claims a batch of at most limit due events of part and
// applies, defers or ignores them in one transaction, those that create
// their customer first (the others of that customer then need not wait),
// and reports their transitions once it has committed. The batch it returns
// holds the events left leased to name: those whose customer another
// transaction holds. When an event fails, it rolls the whole batch back and
// returns that event, as locked, with its error, and the batch's events
// leased; when the store fails, the store's error.
func (w *Worker) processBatch(ctx context.Context, name string, part partition, limit int) (batch store.Batch, failed store.Event, err error) {
	start := w.cfg.Now()
	type outcome struct {
		tr       Transition
		released []store.Released
	}
	// An event deferred and then released within the batch is processed
	// twice, so each event keeps the outcomes of every run, in order. A
	// transaction retried after a deadlock runs fn again: the committed
	// runs of an event are its last ones.
	runs := make(map[string][]outcome, limit)
	var failure error // failed's
	batch, err = w.store.ProcessDue(ctx, store.ClaimParams{
		Worker: name, Limit: limit, Now: start, Lease: w.cfg.Lease,
		First: w.rules.createsCustomer, Alongside: w.rules.customerTypes, Releases: w.rules.releases,
		Partition: part.index, Partitions: part.count,
	}, func(ctx context.Context, tx *store.Tx) error {
		tr, released, err := w.apply(ctx, tx, start)
		if err != nil && !errors.Is(err, store.ErrUnavailable) && !errors.Is(err, errHeldWrites) {
			failed, failure = tx.Event(), err
		}
		runs[tx.Event().ID] = append(runs[tx.Event().ID], outcome{tr, released})
		return err
	})
	if err != nil {
		if failure == nil || !errors.Is(err, failure) {
			// The transaction failed outside the event that failed a run
			// of it before it was retried: the event is not to blame.
			failed = store.Event{}
		}
		return batch, failed, err
	}
	committed := make(map[string]int, len(batch.Processed))
	for _, ev := range batch.Processed {
		committed[ev.ID]++
	}
	elapsed := w.cfg.Now().Sub(start)
	for _, ev := range batch.Processed {
		r := runs[ev.ID]
		o := r[len(r)-committed[ev.ID]]
		committed[ev.ID]--
		o.tr.Worker, o.tr.Duration = name, elapsed
		w.report(ev, o.tr)
		w.reportReleased(ev, name, o.released)
	}
	return batch, store.Event{}, nil
}

// process applies, defers or ignores one claimed event, or records its
// failure. It returns an error only when the store itself is unavailable, so
// that the loop backs off and retries the event later, without an attempt
// being counted against it.
func (w *Worker) process(ctx context.Context, name string, ev store.Event) error {
	start := w.cfg.Now()
	var tr Transition
	var released []store.Released
	err := w.store.Process(ctx, ev, name, start, func(ctx context.Context, tx *store.Tx) error {
		var err error
		tr, released, err = w.apply(ctx, tx, start)
		return err
	})
	tr.Worker, tr.Duration = name, w.cfg.Now().Sub(start)
	switch {
	case err == nil:
		w.report(ev, tr)
		w.reportReleased(ev, name, released)
		return nil
	case errors.Is(err, store.ErrNotClaimed):
		w.logger.Debug().Str("event_id", ev.ID).Str("worker", name).Err(err).Msg("skipped: no longer ours")
		return nil
	case errors.Is(err, store.ErrUnavailable):
		return err
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		// It ran past its lease, which ended with ctx: the event is no
		// longer this worker's to fail. It is due again, and whoever claims
		// it next records the failure if it happens again.
		w.logger.Warn().Err(err).Str("event_id", ev.ID).Str("type", ev.Type).Str("customer_id", ev.CustomerID).
			Int("attempt", ev.Attempts+1).Str("worker", name).Msg("ran past its lease; due again")
		return nil
	default:
		return w.fail(ctx, name, ev, start, err)
	}
}

// apply decides the fate of the event locked in tx and records it there. It
// returns the events the application released.
func (w *Worker) apply(ctx context.Context, tx *store.Tx, now time.Time) (Transition, []store.Released, error) {
	ev := tx.Event()
	tr := Transition{Attempt: ev.Attempts + 1, At: now, ReleasedAt: ev.ReleasedAt}
	builtin, handler := builtinApplier(ev), w.rules.handlers[ev.Type]
	if builtin == nil && handler == nil {
		tr.Outcome = store.OutcomeIgnored
		return tr, nil, tx.MarkIgnored(ctx)
	}
	if dep := w.rules.dependency(ev); dep != "" {
		ok, err := tx.CustomerExists(ctx, ev.CustomerID)
		if err != nil {
			return tr, nil, err
		}
		if !ok {
			tr.Outcome, tr.WaitingFor, tr.Attempt = store.OutcomeDeferred, dep, ev.Attempts
			return tr, nil, tx.MarkDeferred(ctx, dep, now.Add(w.cfg.DependencyTimeout))
		}
	}
	creates, existed := w.rules.createsCustomer(ev), false
	if creates {
		var err error
		if existed, err = tx.CustomerExists(ctx, ev.CustomerID); err != nil {
			return tr, nil, err
		}
	}
	note, err := w.write(ctx, tx, ev, builtin, handler)
	if err != nil {
		return tr, nil, err
	}
	if err := tx.MarkApplied(ctx, note); err != nil {
		return tr, nil, err
	}
	tr.Outcome = store.OutcomeApplied
	// Only the event that brings its customer into being can release
	// anything. An event waits for customer X only if X did not exist when
	// it was deferred, under X's lock; the event that creates X releases,
	// under the same lock, everything deferred before it; once X exists,
	// nothing is deferred on it. A customer row is only ever created here,
	// by a customer event (handlers must not write the mirror).
	if !creates || existed {
		return tr, nil, nil
	}
	released, err := tx.Release(ctx, w.rules.releases(ev))
	tr.Released = len(released)
	return tr, released, err
}

// write runs the built-in applier and the registered handler for ev, and
// creates the customer row when ev is one of the customer events. A panic
// in either is ev's failure, with the stack in its error: it would
// otherwise take the process down, and every replica after it, on every
// restart, and the event would never be dead-lettered.
func (w *Worker) write(ctx context.Context, tx *store.Tx, ev store.Event, builtin applier, handler HandlerFunc) (note string, err error) {
	defer func() {
		if r := recover(); r != nil {
			note, err = "", fmt.Errorf("%w applying %s: %v\n%s", ErrPanic, ev.Type, r, debug.Stack())
		}
	}()
	if builtin != nil {
		if note, err = builtin(ctx, tx, ev); err != nil {
			return "", fmt.Errorf("apply %s to the mirror: %w", ev.Type, err)
		}
	}
	if w.rules.createsCustomer(ev) {
		if err := tx.EnsureCustomer(ctx, ev.CustomerID); err != nil {
			return "", err
		}
	}
	if handler != nil {
		// The handler may read the mirror as applied so far. The writes
		// flushed are the batch's held so far, other events' among them:
		// a value refused there is none of this event's doing.
		if err := tx.Flush(ctx); err != nil {
			return "", fmt.Errorf("%w: %w", errHeldWrites, err)
		}
		if err := handler(ctx, tx.SQLX(), handlerEvent(ev)); err != nil {
			return "", fmt.Errorf("handler for %s: %w", ev.Type, err)
		}
		// A handler that returned nil may still have spoiled the batch:
		// run on past its lease, ignoring ctx, or swallowed a failed
		// statement, which aborts a PostgreSQL transaction. Either is this
		// event's failure, not that of the batch's last write.
		if err := ctx.Err(); err != nil {
			return "", fmt.Errorf("handler for %s returned after its lease ended: %w", ev.Type, err)
		}
		if err := tx.Usable(ctx); err != nil {
			return "", fmt.Errorf("handler for %s returned nil, but its transaction has failed (a SQL error it swallowed?): %w", ev.Type, err)
		}
	}
	return note, nil
}

// errHeldWrites wraps the failure of the writes a batch held back, flushed
// before an event's handler: they are the events' before it, and the
// failure names none of them.
var errHeldWrites = errors.New("the batch's held writes failed")

// fail records a failed attempt: retried with backoff, or dead after
// MaxAttempts, or at once when cause wraps ErrPermanent.
func (w *Worker) fail(ctx context.Context, name string, ev store.Event, start time.Time, cause error) error {
	attempt := ev.Attempts + 1
	dead := attempt >= w.cfg.MaxAttempts || errors.Is(cause, ErrPermanent)
	next := start.Add(backoff(attempt, w.cfg.BackoffBase, w.cfg.BackoffMax))
	_, err := w.store.Fail(ctx, store.Failure{
		EventID: ev.ID, Worker: name, Err: cause.Error(), Now: start, NextAttemptAt: next, Dead: dead,
	})
	switch {
	case errors.Is(err, store.ErrNotClaimed):
		return nil
	case err != nil:
		w.logger.Error().Err(err).AnErr("cause", cause).Str("event_id", ev.ID).Str("worker", name).Msg("record failure")
		return err
	}
	tr := Transition{Outcome: store.OutcomeFailed, Attempt: attempt, Worker: name, Err: cause, At: start, Duration: w.cfg.Now().Sub(start)}
	if dead {
		tr.Outcome = store.OutcomeDead
	}
	w.report(ev, tr)
	return nil
}

// reportReleased reports, once committed, each event that the application of
// by released.
func (w *Worker) reportReleased(by store.Event, worker string, released []store.Released) {
	dep := customerDependency(by.CustomerID)
	for _, r := range released {
		w.report(store.Event{ID: r.ID, Type: r.Type, CustomerID: by.CustomerID},
			Transition{Outcome: store.OutcomeReleased, Worker: worker, WaitingFor: dep})
	}
}

// report logs a committed transition once and hands it to OnTransition.
func (w *Worker) report(ev store.Event, tr Transition) {
	tr.EventID, tr.Type, tr.CustomerID, tr.Received = ev.ID, ev.Type, ev.CustomerID, ev.ReceivedAt
	if tr.At.IsZero() {
		tr.At = w.cfg.Now()
	}
	w.log(tr)
	if w.cfg.OnTransition != nil {
		w.cfg.OnTransition(tr)
	}
}

func (w *Worker) log(tr Transition) {
	var e *zerolog.Event
	switch tr.Outcome {
	case store.OutcomeDead:
		e = w.logger.Error().Err(tr.Err)
	case store.OutcomeFailed:
		e = w.logger.Warn().Err(tr.Err)
	default:
		e = w.logger.Info()
	}
	e = e.Str("event_id", tr.EventID).Str("type", tr.Type).Str("customer_id", tr.CustomerID).
		Int("attempt", tr.Attempt).Str("worker", tr.Worker).Str("outcome", tr.Outcome)
	if tr.WaitingFor != "" {
		e = e.Str("waiting_for", tr.WaitingFor)
	}
	if tr.Released > 0 {
		e = e.Int("released", tr.Released)
	}
	e.Dur("duration", tr.Duration).Msg("event " + tr.Outcome)
}
