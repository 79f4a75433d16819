package bench

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/orderhook/orderhook/internal/deliver"
	"github.com/orderhook/orderhook/store"
)

// The bench reads the inbox of the server under test directly, restricted
// to the ids of its own run, so that the database may hold other events.

// count counts the run's events in any of statuses. One count per status
// lets each use its own index entries; on PostgreSQL that is an order of
// magnitude cheaper than status IN (…) while the run's updates leave dead
// index entries behind.
func count(ctx context.Context, db *store.DB, idPrefix string, statuses ...store.Status) (int, error) {
	counts := make([]string, len(statuses))
	args := make([]any, 0, 2*len(statuses))
	for i, s := range statuses {
		counts[i] = `(SELECT count(*) FROM webhook_events WHERE status = ? AND event_id LIKE ?)`
		args = append(args, s, idPrefix+"%")
	}
	var n int
	err := db.SQLX().GetContext(ctx, &n, db.SQLX().Rebind(`SELECT `+strings.Join(counts, " + ")), args...)
	if err != nil {
		return 0, fmt.Errorf("count the run's events %v: %w", statuses, err)
	}
	return n, nil
}

// pollUntilNone calls count every settlePoll, or every settlePollFine once
// it returned at most settleFineBelow, until it returns 0, and returns when
// it did. It calls seen with every count. It returns an error when ctx ends
// first.
func pollUntilNone(ctx context.Context, count func() (int, error), seen func(int)) (time.Time, error) {
	t := time.NewTimer(0)
	defer t.Stop()
	left := -1 // not counted yet
	for {
		select {
		case <-ctx.Done():
			if left < 0 {
				return time.Time{}, ctx.Err()
			}
			return time.Time{}, fmt.Errorf("%d events still to go: %w", left, ctx.Err())
		case <-t.C:
		}
		n, err := count()
		switch {
		case err != nil && ctx.Err() != nil && left >= 0: // ctx ended during the count
			return time.Time{}, fmt.Errorf("%d events still to go: %w", left, ctx.Err())
		case err != nil:
			return time.Time{}, err
		}
		left = n
		seen(n)
		if n == 0 {
			return time.Now(), nil
		}
		t.Reset(pollPeriod(n))
	}
}

// pollPeriod is the wait before the next count when left events are left.
func pollPeriod(left int) time.Duration {
	if left <= settleFineBelow {
		return settlePollFine
	}
	return settlePoll
}

// waitSettled polls until none of the run's events is pending or deferred,
// and returns when it saw that. It calls tick once per event of total seen
// settled. It returns an error when ctx ends first.
func waitSettled(ctx context.Context, db *store.DB, idPrefix string, total int, tick func()) (time.Time, error) {
	settled := 0
	at, err := pollUntilNone(ctx, func() (int, error) {
		return count(ctx, db, idPrefix, store.StatusPending, store.StatusDeferred)
	}, func(n int) {
		for ; settled < total-n; settled++ {
			tick()
		}
	})
	if err != nil {
		return at, fmt.Errorf("wait until applied: %w", err)
	}
	return at, nil
}

// waitNonePending polls until none of the run's events is pending: every one
// stored is applied, ignored or deferred. It returns an error when ctx ends
// first.
func waitNonePending(ctx context.Context, db *store.DB, idPrefix string) error {
	_, err := pollUntilNone(ctx, func() (int, error) {
		return count(ctx, db, idPrefix, store.StatusPending)
	}, func(int) {})
	if err != nil {
		return fmt.Errorf("wait until none is pending: %w", err)
	}
	return nil
}

// Outcome is the state of the run's events in the inbox.
type Outcome struct {
	Stored  int                  // distinct events in the inbox
	Counts  map[store.Status]int // stored events by status
	Release deliver.Latency      // applied_at − released_at of every event a dependency released
	// ReleasedAndApplied counts the released events applied by the very
	// transaction that released them (applied_at = released_at).
	ReleasedAndApplied int
}

// Settled reports whether every stored event is applied or ignored.
func (o Outcome) Settled() bool {
	return o.Counts[store.StatusApplied]+o.Counts[store.StatusIgnored] == o.Stored
}

// readOutcome reads the status, applied_at and released_at of every event of
// the run.
func readOutcome(ctx context.Context, db *store.DB, idPrefix string) (Outcome, error) {
	var rows []struct {
		Status     store.Status `db:"status"`
		AppliedAt  *time.Time   `db:"applied_at"`
		ReleasedAt *time.Time   `db:"released_at"`
	}
	err := db.SQLX().SelectContext(ctx, &rows, db.SQLX().Rebind(`SELECT status, applied_at, released_at
		FROM webhook_events WHERE event_id LIKE $1`), idPrefix+"%")
	if err != nil {
		return Outcome{}, fmt.Errorf("read the outcome of the run: %w", err)
	}
	o := Outcome{Stored: len(rows), Counts: map[store.Status]int{}}
	var release []time.Duration
	for _, r := range rows {
		o.Counts[r.Status]++
		if r.AppliedAt == nil {
			continue
		}
		if r.ReleasedAt != nil {
			release = append(release, r.AppliedAt.Sub(*r.ReleasedAt))
			if r.AppliedAt.Equal(*r.ReleasedAt) {
				o.ReleasedAndApplied++
			}
		}
	}
	o.Release = deliver.Summarize(release)
	return o, nil
}
