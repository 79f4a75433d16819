package store

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
)

// Batch is what ProcessDue did.
type Batch struct {
	// Claimed is how many due events the transaction claimed, those
	// claimed along (ClaimParams.Alongside) included: it can exceed Limit.
	Claimed int
	// Processed holds the events fn processed, as locked, in the order fn
	// ran, once committed: the claimed events in claim order (those
	// ClaimParams.First picks before the others), each event a
	// Release made due after those queued when it was released (an event
	// deferred and then released within the batch is there twice).
	Processed []Event
	// Leased holds the claimed events left for the caller to Process one at
	// a time, leased to the worker until ClaimParams.Lease ends: those whose
	// customer another transaction held, and, when fn failed, every claimed
	// event still due.
	Leased []Event
	// OldestDue is when the oldest claimed event became due (zero when none
	// was claimed): how far behind the claimer is.
	OldestDue time.Time
}

// ProcessDue claims up to p.Limit due events, oldest first, with, on
// PostgreSQL, the due events of the types p.Alongside names whose customer
// is among theirs, and runs fn for each, in order (p.First's picks first)
// and in the same transaction: one commit for the whole batch. fn must
// record each event's outcome with one of Tx's Mark methods.
// The events a Release in the batch makes due, and whose customer the
// transaction holds, are processed in it too, after the ones before them,
// so that a dependent commits together with the dependency it waited for.
// The claim writes nothing: the transaction's row locks (FOR UPDATE SKIP
// LOCKED on PostgreSQL, the one writer on SQLite) keep every other claimer
// away until it commits, and a worker that dies leaves its events due again
// at once, when its transaction rolls back.
//
// On PostgreSQL it takes the advisory locks of the claimed events'
// customers without waiting; the events whose customer another transaction
// holds are leased to p.Worker in the same transaction and returned in
// Leased, for the caller to Process once that transaction is done.
//
// When fn fails, the transaction rolls back, and the claimed events still
// due are then leased to p.Worker and returned in Leased with fn's error,
// untouched, so that the caller can record the failure and process the
// others one at a time. That lease is written even when ctx has ended, and
// gives up after 5 s. When the store fails, even under fn (its connection
// is lost, or PostgreSQL answers that it is unavailable), nothing is leased
// and the error wraps ErrUnavailable. A network error of fn's own, over a
// live connection, is fn's.
func (db *DB) ProcessDue(ctx context.Context, p ClaimParams, fn func(ctx context.Context, tx *Tx) error) (Batch, error) {
	if p.Partitions > 1 && (p.Partition < 0 || p.Partition >= p.Partitions) {
		return Batch{}, fmt.Errorf("claim partition %d of %d: want 0 to %d", p.Partition, p.Partitions, p.Partitions-1)
	}
	db.prepared.warm(ctx)
	var claimed, busy []Event // of the transaction's last attempt
	until := ts(p.Now.Add(p.Lease))
	processed, err := db.process(ctx, p.Worker, p.Now, true, func(ctx context.Context, tx *sqlx.Tx, h *held) ([]Event, error) {
		busy = nil
		if err := db.setLocal(ctx, tx, asyncCommit, noBitmapScans); err != nil {
			return nil, err
		}
		if h != nil {
			h.bitmapOff = true
		}
		rows, err := db.claimDue(ctx, tx, p)
		if err != nil {
			return nil, err
		}
		claimed = make([]Event, len(rows))
		var todo []Event
		for i, r := range rows {
			claimed[i] = r.Event
			if r.Free {
				todo = append(todo, r.Event)
			} else {
				busy = append(busy, r.Event)
			}
		}
		if len(busy) > 0 {
			busy, err = db.lease(ctx, tx, busy, p.Worker, p.Now, until, 0)
		}
		if h != nil && p.Releases != nil {
			h.deps = make(map[string]bool)
			for _, ev := range todo {
				if dep := p.Releases(ev); dep != "" {
					h.deps[dep] = true
				}
			}
		}
		if p.First != nil {
			slices.SortStableFunc(todo, func(a, b Event) int {
				switch fa, fb := p.First(a), p.First(b); {
				case fa == fb:
					return 0
				case fa:
					return -1
				}
				return 1
			})
		}
		return todo, err
	}, fn)
	var oldest time.Time
	if len(claimed) > 0 {
		oldest = claimed[0].NextAttemptAt // claimed oldest first
	}
	switch {
	case err == nil:
		return Batch{Claimed: len(claimed), Processed: processed, Leased: busy, OldestDue: oldest}, nil
	case errors.Is(err, ErrUnavailable) || len(claimed) == 0:
		return Batch{}, err
	}
	// fn failed: lease what it rolled back, for the caller to go through,
	// even when ctx has ended (fn may have failed because it did).
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), rollbackLeaseTimeout)
	defer cancel()
	leased, lerr := db.leaseRolledBack(ctx, claimed, p.Worker, p.Now, until)
	if lerr != nil {
		return Batch{}, fmt.Errorf("%w (and leasing the batch again failed: %w)", err, lerr)
	}
	return Batch{Claimed: len(claimed), Leased: leased, OldestDue: oldest}, err
}

// rollbackLeaseTimeout bounds leasing the events of a batch that fn rolled
// back: long enough for a database that answers, short enough that one that
// stopped answering does not hold the caller.
const rollbackLeaseTimeout = 5 * time.Second

// rollbackLockWait bounds how long leasing a rolled back batch waits for
// its rows while another transaction holds them: its own, when the
// transaction ran out of its context and its connection was closed instead
// of rolled back, until the database notices; or a claimer's, since.
const rollbackLockWait = 500 * time.Millisecond

// leaseRolledBack leases, as lease does, the events of a batch that rolled
// back. On PostgreSQL it first waits for their rows, for at most
// rollbackLockWait, and only then skips those still locked: skipped at
// once, the rows of the batch's own transaction, not yet ended by the
// database, would be left out.
func (db *DB) leaseRolledBack(ctx context.Context, events []Event, worker string, now, until time.Time) ([]Event, error) {
	var leased []Event
	lease := func(wait time.Duration) error {
		return db.withTx(ctx, func(tx *sqlx.Tx) error {
			var err error
			leased, err = db.lease(ctx, tx, events, worker, now, until, wait)
			return err
		})
	}
	err := lease(rollbackLockWait)
	var pqErr *pq.Error
	if errors.As(err, &pqErr) && pqErr.Code == lockNotAvailable {
		err = lease(0)
	}
	return leased, err
}

// lockNotAvailable is PostgreSQL's error when lock_timeout passes.
const lockNotAvailable = "55P03"

// claimDue locks and reads, whole, up to p.Limit due pending events of p's
// partition, oldest first, skipping the rows another transaction holds. On
// PostgreSQL, in the same statement, it adds the events p.Alongside takes
// along and takes the advisory locks of their customers without waiting,
// and reports for each event whether its customer's lock was free (on
// SQLite always: every write transaction is exclusive).
func (db *DB) claimDue(ctx context.Context, tx *sqlx.Tx, p ClaimParams) ([]claimedRow, error) {
	var rows []claimedRow
	var err error
	if db.dialect == Postgres {
		// The transaction runs without bitmap scans (noBitmapScans), for
		// this statement: after a burst the planner's statistics still
		// describe the table before it, and the share's range gets a
		// default selectivity: it then expects a row or two and reads the
		// whole due backlog through a bitmap scan and a sort, on every
		// claim (22 ms against 1.3 ms with a backlog of 6,600 rows, and
		// growing with it). Without bitmap scans the due index is read in
		// order, the other shares' rows skipped inside it, and the scan
		// stops at the batch's last row.
		lo, hi := shareBounds(p.Partition, p.Partitions)
		err = db.txSelect(ctx, tx, &rows, claimDueQuery, ts(p.Now), p.Limit, lo, hi, pq.Array(p.Alongside))
	} else {
		err = db.txSelect(ctx, tx, &rows, `
			SELECT `+eventColumns+`, true AS free FROM webhook_events INDEXED BY webhook_events_due
			WHERE status = 'pending' AND next_attempt_at <= $1
			ORDER BY next_attempt_at
			LIMIT $2`, ts(p.Now), p.Limit)
	}
	if err != nil {
		return nil, fmt.Errorf("claim due events: %w", translate(err))
	}
	return rows, nil
}

// claimDueQuery locks and reads, on PostgreSQL, up to $2 pending rows due at
// $1 whose customer's hash is in [$3, $4], then the due pending rows of the
// types $5 whose customer is among theirs, and tries their customers'
// advisory locks. The second read probes webhook_events_pending_customer
// once per customer.
const claimDueQuery = `
	WITH claimed AS (
		SELECT ` + eventColumns + ` FROM webhook_events
		WHERE status = 'pending' AND next_attempt_at <= $1
			AND hashtext(COALESCE(customer_id, event_id)) BETWEEN $3 AND $4
		ORDER BY next_attempt_at
		LIMIT $2
		FOR UPDATE SKIP LOCKED
	), alongside AS (
		SELECT a.* FROM (SELECT DISTINCT customer_id FROM claimed WHERE customer_id <> '') AS c,
		LATERAL (
			SELECT ` + eventColumns + ` FROM webhook_events e
			WHERE e.customer_id = c.customer_id AND e.status = 'pending' AND e.next_attempt_at <= $1
				AND e.type = ANY($5::text[]) AND e.event_id NOT IN (SELECT event_id FROM claimed)
			OFFSET 0
			FOR UPDATE SKIP LOCKED
		) AS a
	)
	SELECT *, pg_try_advisory_xact_lock(` + lockKeyOf + serializationKeySQL + lockKeyEnd + `) AS free
	FROM (SELECT * FROM claimed UNION ALL SELECT * FROM alongside) AS batch
	ORDER BY next_attempt_at`

// shareBounds returns the range of hashtext values, on PostgreSQL, of the
// customers in partition i of n: the n ranges split the int32 values evenly
// and in order. With n ≤ 1 it is every value.
func shareBounds(i, n int) (lo, hi int32) {
	if n <= 1 {
		return math.MinInt32, math.MaxInt32
	}
	const values = int64(1) << 32
	return int32(math.MinInt32 + values*int64(i)/int64(n)), int32(math.MinInt32 + values*int64(i+1)/int64(n) - 1)
}

// claimedRow is a claimed event and whether its customer's lock was free.
type claimedRow struct {
	Event
	Free bool `db:"free"`
}

// lease leases those of events that are still due and pending, and not
// locked by another transaction, to worker until until, and returns them in
// the order of events, without their payload. On PostgreSQL, with wait, it
// waits for locked rows instead, and fails with lock_timeout after wait.
func (db *DB) lease(ctx context.Context, tx *sqlx.Tx, events []Event, worker string, now, until time.Time, wait time.Duration) ([]Event, error) {
	pick := `SELECT event_id FROM webhook_events WHERE status = 'pending' AND next_attempt_at <= ? AND event_id IN (?)`
	switch {
	case db.dialect != Postgres:
	case wait > 0:
		if err := db.setLocal(ctx, tx, fmt.Sprintf("SET LOCAL lock_timeout = %d", wait.Milliseconds())); err != nil {
			return nil, err
		}
		pick += ` FOR UPDATE`
	default:
		pick += ` FOR UPDATE SKIP LOCKED`
	}
	byID, err := db.rowsByID(ctx, tx, "lease", events, `UPDATE webhook_events SET lease_owner = ?, lease_expires_at = ?, next_attempt_at = ?
		WHERE event_id IN (`+pick+`)
		RETURNING `+stateColumns, worker, ts(until), ts(until), ts(now))
	if err != nil {
		return nil, err
	}
	leased := make([]Event, 0, len(byID))
	for _, ev := range events {
		if l, ok := byID[ev.ID]; ok {
			leased = append(leased, l)
		}
	}
	return leased, nil
}
