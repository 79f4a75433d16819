package store

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
)

// ErrNotClaimed is returned by Process and Fail when the event is no longer
// pending under the caller's lease: another worker took it over after the
// lease expired, or it was already processed. The caller should move on.
var ErrNotClaimed = errors.New("event not claimed by this worker")

// ClaimParams says who claims how many due events, when, and for how long
// the events left to the caller are leased (see ProcessDue).
type ClaimParams struct {
	Worker string        // worker recorded in the history and on leased rows
	Limit  int           // at most this many rows
	Now    time.Time     // rows due at or before Now are claimed
	Lease  time.Duration // leased rows are not due again before Now+Lease
	// First, when set, picks the claimed events a batch processes before
	// the others, each group in claim order. The worker picks the events
	// that create their customer: the events of that customer claimed with
	// them then find it there, instead of being deferred and released in
	// the same transaction.
	First func(Event) bool
	// Alongside, on PostgreSQL, names event types claimed with the batch
	// past Limit: the due pending events of these types whose customer has
	// an event among the first Limit. The worker names the types that
	// create a customer, so that a batch holding a customer's invoices
	// holds the customer too and, with First, applies it before them,
	// instead of deferring them until a later batch reaches the customer.
	Alongside []string
	// Releases, when set, names the dependency that processing an event
	// may release ("" for none). On PostgreSQL a batch then reads, at its
	// first Release, the events deferred on every dependency its events
	// name, in one statement, and serves its Releases from them instead of
	// reading each. The worker names the customer of each event that
	// creates one.
	Releases func(Event) string
	// Partition and Partitions, on PostgreSQL, restrict the due rows to the
	// customers (or, without one, the events) that hash into Partition of
	// Partitions, so that the worker loops of one process never claim the
	// same customer's events at once. Partitions 0 or 1 claims every row;
	// otherwise Partition is 0 to Partitions-1.
	Partition, Partitions int
}

// Tx is the transaction in which one claimed event is processed: its mirror
// writes, registered handlers and status change commit together or not at
// all.
type Tx struct {
	tx       *sqlx.Tx
	db       *DB
	event    Event
	worker   string
	now      time.Time
	released []Event          // by Release, as locked
	held     *held            // writes held until the commit, on PostgreSQL
	mirror   *mirrorCache     // shared by the transaction's events
	chains   func(Event) bool // whether the transaction processes a released event itself
}

// Process runs fn in one transaction for the event ev, which is leased to
// worker (ProcessDue's Batch.Leased). On PostgreSQL it first waits for the
// advisory lock on ev's customer (or, without one, on the event), so one
// customer's events are never processed concurrently, by any replica. It
// returns ErrNotClaimed when the row is no longer pending under worker's
// lease, and fn's error, untouched, after rolling back, unless the store
// failed under fn (the connection died, or PostgreSQL answered that it is
// unavailable): that is not the event's failure, and wraps ErrUnavailable,
// as in ProcessDue. A network error of fn's own, over a live connection, is
// fn's.
func (db *DB) Process(ctx context.Context, ev Event, worker string, now time.Time, fn func(ctx context.Context, tx *Tx) error) error {
	events := []Event{ev}
	processed, err := db.process(ctx, worker, now, false, func(ctx context.Context, tx *sqlx.Tx, _ *held) ([]Event, error) {
		return db.pickClaimed(ctx, tx, events, worker)
	}, fn)
	if err == nil && len(processed) == 0 {
		return fmt.Errorf("process %s: %w", ev.ID, ErrNotClaimed)
	}
	return err
}

// picker chooses, in a processing transaction, the events to process, locked
// and in order, and sets up the transaction; h is what it holds back, nil on
// SQLite.
type picker func(ctx context.Context, tx *sqlx.Tx, h *held) ([]Event, error)

// pickClaimed waits for the serialization keys of events, leased to worker,
// and picks those still pending under worker's lease.
func (db *DB) pickClaimed(ctx context.Context, tx *sqlx.Tx, events []Event, worker string) ([]Event, error) {
	if err := db.setLocal(ctx, tx, asyncCommit); err != nil {
		return nil, err
	}
	if err := db.lockKeys(ctx, tx, events); err != nil {
		return nil, err
	}
	return db.stillClaimed(ctx, tx, events, worker)
}

// process runs fn, in one transaction, for the events pick chooses, and
// returns those fn processed. Transactions that lose a deadlock are retried
// from the start.
//
// With chain (a batch), it also processes the events a Release makes due
// whose serialization key the transaction holds. Without (one event) it does
// not: a failure of the released event would be blamed on the one that
// released it. Only the released events it leaves due wake the workers.
func (db *DB) process(ctx context.Context, worker string, now time.Time, chain bool, pick picker, fn func(ctx context.Context, tx *Tx) error) (processed []Event, err error) {
	var owed int // released events the transaction leaves to other loops
	err = db.withRetry(ctx, func(sqltx *sqlx.Tx) error {
		processed, owed = processed[:0], 0
		var h *held
		if db.dialect == Postgres {
			h = newHeld()
		}
		todo, err := pick(ctx, sqltx, h)
		if err != nil {
			return translate(err)
		}
		locked := make(map[string]bool, len(todo)) // serialization keys the transaction holds
		for _, ev := range todo {
			locked[serializationKey(ev)] = true
		}
		chains := func(ev Event) bool { return chain && locked[serializationKey(ev)] }
		mirror := newMirrorCache()
		if err := mirror.load(ctx, db, sqltx, todo); err != nil {
			return translate(err)
		}
		for len(todo) > 0 {
			cur := todo[0]
			todo = todo[1:]
			tx := &Tx{tx: sqltx, db: db, event: cur, worker: worker, now: ts(now), held: h, mirror: mirror, chains: chains}
			if err := fn(ctx, tx); err != nil {
				return fnFailed(ctx, sqltx, err)
			}
			processed = append(processed, cur)
			for _, r := range tx.released {
				if chains(r) {
					todo = append(todo, r)
					continue
				}
				owed++
			}
		}
		if h != nil {
			h.notify = owed > 0
		}
		return translate(h.write(ctx, db, sqltx, mirror, worker, ts(now)))
	})
	if err != nil {
		return nil, err
	}
	if owed > 0 {
		db.wake.signal()
	}
	return processed, nil
}

// asyncCommit lets a processing transaction commit without waiting for its
// WAL flush (PostgreSQL), so that applying never queues behind the inbox's
// durable inserts. This keeps exactly once: the mirror, status and history
// of an event commit atomically, and the WAL is replayed in order, so a
// database crash can only lose the latest applications whole, leaving those
// events pending (or under an expired lease), to be applied again, once. The
// inbox insert, which is what a 2xx promises, stays synchronous.
const asyncCommit = `SET LOCAL synchronous_commit TO OFF`

// noBitmapScans keeps the claim's plan in the due index's order (see
// claimDue); Tx.Flush resets it for registered handlers.
const noBitmapScans = `SET LOCAL enable_bitmapscan TO off`

// setLocal applies settings to the transaction (PostgreSQL), in one round
// trip.
func (db *DB) setLocal(ctx context.Context, tx *sqlx.Tx, settings ...string) error {
	if db.dialect != Postgres {
		return nil
	}
	// Without arguments, lib/pq sends them as one simple query.
	if _, err := tx.ExecContext(ctx, strings.Join(settings, "; ")); err != nil {
		return fmt.Errorf("set up the transaction: %w", translate(err))
	}
	return nil
}

// serializationKey names what one event's processing is serialized on: its
// customer or, without one, the event itself. Its advisory lock is
// lockKeyOf's.
func serializationKey(ev Event) string {
	if ev.CustomerID != "" {
		return "customer:" + ev.CustomerID
	}
	return "event:" + ev.ID
}

// serializationKeySQL is serializationKey in SQL, over webhook_events'
// columns.
const serializationKeySQL = `CASE WHEN customer_id <> '' THEN 'customer:' || customer_id ELSE 'event:' || event_id END`

// lockKeyOf and lockKeyEnd enclose an SQL expression of a serialization
// key to give its advisory lock key (a bigint). Advisory locks are the
// database's, not a schema's: the key names the schema, so that deployments
// in separate schemas of one database never hold or wait for each other's
// customers. In the public schema it names none, as before schemas were
// named: replicas of an earlier build and of this one, side by side during
// a rolling upgrade, still serialize on the same keys.
const (
	lockKeyOf  = `hashtextextended('orderhook:' || CASE current_schema() WHEN 'public' THEN '' ELSE current_schema() || ':' END || `
	lockKeyEnd = `, 0)`
)

// lockKeys waits for the transaction-scoped advisory locks of events' keys
// (PostgreSQL), taking them in sorted order so that two waiting transactions
// never wait for each other in a cycle (a hash collision that breaks the
// order ends in a deadlock error, and a retry). On SQLite every write
// transaction is already exclusive.
func (db *DB) lockKeys(ctx context.Context, tx *sqlx.Tx, events []Event) error {
	if db.dialect != Postgres {
		return nil
	}
	keys := make([]string, 0, len(events))
	for _, ev := range events {
		keys = append(keys, serializationKey(ev))
	}
	slices.Sort(keys)
	keys = slices.Compact(keys)
	if _, err := db.txExec(ctx, tx, `SELECT pg_advisory_xact_lock(`+lockKeyOf+`k`+lockKeyEnd+`) FROM unnest($1::text[]) AS k`, pq.Array(keys)); err != nil {
		return fmt.Errorf("lock %d serialization keys: %w", len(keys), translate(err))
	}
	return nil
}

// stillClaimed locks the rows of events and returns, in the order of events,
// those still pending under worker's lease, as locked.
func (db *DB) stillClaimed(ctx context.Context, tx *sqlx.Tx, events []Event, worker string) ([]Event, error) {
	current, err := db.lockEvents(ctx, tx, events)
	if err != nil {
		return nil, err
	}
	claimed := make([]Event, 0, len(events))
	for _, ev := range events {
		if cur, ok := current[ev.ID]; ok && cur.Status == StatusPending && cur.LeaseOwner == worker {
			claimed = append(claimed, cur)
		}
	}
	return claimed, nil
}

// lockEvents reads the rows of events by id, locking them on PostgreSQL.
func (db *DB) lockEvents(ctx context.Context, tx *sqlx.Tx, events []Event) (map[string]Event, error) {
	query := `SELECT ` + eventColumns + ` FROM webhook_events WHERE event_id IN (?)`
	if db.dialect == Postgres {
		query += ` FOR UPDATE`
	}
	return db.rowsByID(ctx, tx, "lock", events, query)
}

// rowsByID runs query in tx, its last `IN (?)` taking the ids of events and
// its other `?` args, and returns the rows it returns by id. what names it
// in errors.
func (db *DB) rowsByID(ctx context.Context, tx *sqlx.Tx, what string, events []Event, query string, args ...any) (map[string]Event, error) {
	if len(events) == 0 {
		return nil, nil
	}
	ids := eventIDs(events)
	query, args, err := db.in(query, append(args, ids)...)
	if err != nil {
		return nil, fmt.Errorf("%s events: %w", what, err)
	}
	var rows []Event
	if err := tx.SelectContext(ctx, &rows, query, args...); err != nil {
		return nil, fmt.Errorf("%s %d events: %w", what, len(ids), translate(err))
	}
	byID := make(map[string]Event, len(rows))
	for _, ev := range rows {
		byID[ev.ID] = ev
	}
	return byID, nil
}

// eventIDs returns the ids of events, in order.
func eventIDs(events []Event) []string {
	ids := make([]string, len(events))
	for i, ev := range events {
		ids[i] = ev.ID
	}
	return ids
}

// in expands the slice arguments of query's `IN (?)` (sqlx.In) and returns
// it in the dialect's placeholders.
func (db *DB) in(query string, args ...any) (string, []any, error) {
	query, args, err := sqlx.In(query, args...)
	if err != nil {
		return "", nil, err
	}
	if db.dialect == Postgres {
		query = sqlx.Rebind(sqlx.DOLLAR, query)
	}
	return query, args, nil
}

// Event returns the event being processed, as locked at the start of the
// transaction.
func (tx *Tx) Event() Event { return tx.event }

// SQLX returns the underlying transaction, for registered handlers whose own
// writes must commit together with the event's status. On PostgreSQL the
// transaction's mirror writes reach it only at Flush.
func (tx *Tx) SQLX() *sqlx.Tx { return tx.tx }

// Usable returns an error when the transaction can run no more statements:
// on PostgreSQL, one in which a statement failed (a handler that swallowed
// its SQL error) is aborted until it ends. The error wraps ErrUnavailable
// when the connection itself is gone.
func (tx *Tx) Usable(ctx context.Context) error {
	if tx.db.dialect != Postgres {
		return nil
	}
	_, err := tx.tx.ExecContext(ctx, `SELECT 1`)
	return translate(err)
}

// Dialect reports the engine behind the transaction.
func (tx *Tx) Dialect() Dialect { return tx.db.dialect }

// MarkApplied records that the event was applied, counting the attempt, with
// an optional note for the history (for example why the mirror kept a newer
// state). On PostgreSQL the status and history row are written together with
// those of the rest of the transaction's events, just before it commits.
func (tx *Tx) MarkApplied(ctx context.Context, note string) error {
	return tx.finish(ctx, StatusApplied, OutcomeApplied, note, true)
}

// MarkIgnored records that nothing in orderhook handles the event's type;
// like MarkApplied, at the end of the transaction on PostgreSQL.
func (tx *Tx) MarkIgnored(ctx context.Context) error {
	return tx.finish(ctx, StatusIgnored, OutcomeIgnored, "", false)
}

// MarkDeferred parks the event until the dependency waitingFor (for example
// "customer:cus_123") is released, or until deadline, when it becomes dead.
// On PostgreSQL it is written with the transaction's other transitions,
// before a Release or Flush if one comes first.
func (tx *Tx) MarkDeferred(ctx context.Context, waitingFor string, deadline time.Time) error {
	if tx.held != nil {
		until := ts(deadline)
		tx.held.add(transition{id: tx.event.ID, status: StatusDeferred, outcome: OutcomeDeferred,
			attempt: tx.event.Attempts, detail: waitingFor, waitingFor: waitingFor, until: &until})
		return nil
	}
	return tx.updateAndRecord(ctx, "defer", `
		UPDATE webhook_events SET status = 'deferred', waiting_for = $2, next_attempt_at = $3,
			lease_owner = NULL, lease_expires_at = NULL
		WHERE event_id = $1`, []any{tx.event.ID, waitingFor, ts(deadline)},
		attemptRow{eventID: tx.event.ID, outcome: OutcomeDeferred, attempt: tx.event.Attempts, detail: waitingFor})
}

func (tx *Tx) finish(ctx context.Context, status Status, outcome string, detail string, counts bool) error {
	attempt := tx.event.Attempts
	if counts {
		attempt++
	}
	if tx.held != nil {
		tx.held.add(transition{id: tx.event.ID, status: status, outcome: outcome, attempt: attempt, detail: detail})
		return nil
	}
	return tx.updateAndRecord(ctx, "mark "+string(status), `
		UPDATE webhook_events SET status = $2, attempts = $3, applied_at = $4, waiting_for = NULL,
			lease_owner = NULL, lease_expires_at = NULL
		WHERE event_id = $1`, []any{tx.event.ID, status, attempt, tx.now},
		attemptRow{eventID: tx.event.ID, outcome: outcome, attempt: attempt, detail: detail})
}

// updateAndRecord runs update, which changes the event's row (its id is $1),
// and records the attempt a: on PostgreSQL in one statement, one round trip.
func (tx *Tx) updateAndRecord(ctx context.Context, what, update string, args []any, a attemptRow) error {
	what += " " + tx.event.ID
	if tx.db.dialect != Postgres {
		if err := tx.exec(ctx, what, update, args...); err != nil {
			return err
		}
		return tx.record(ctx, a)
	}
	n := len(args)
	query := `WITH updated AS (` + update + ` RETURNING event_id)
		INSERT INTO event_attempts (event_id, at, outcome, attempt, worker, actor, error, detail)
		SELECT event_id, ` + placeholders(n+1, 7) + ` FROM updated`
	return tx.exec(ctx, what, query, append(args, a.values(tx.now, tx.worker)[1:]...)...)
}

// Released is an event that a Release made due again.
type Released struct {
	ID   string `db:"event_id"`
	Type string `db:"type"`
}

// Release makes every event deferred on dependency due now, stamping its
// released_at and recording a `released` attempt for each, and returns them.
// In a ProcessDue batch that holds their customer, the released events are
// processed in the same transaction. Workers, this process's and every
// replica's, are woken at its commit if it leaves any of them due.
func (tx *Tx) Release(ctx context.Context, dependency string) ([]Released, error) {
	detail := dependency + " applied by " + tx.event.ID
	var events []Event
	var err error
	if tx.held != nil {
		events, err = tx.releaseHeld(ctx, dependency, detail)
	} else {
		events, err = tx.releaseThenRecord(ctx, dependency, detail)
	}
	if err != nil {
		return nil, fmt.Errorf("release %s: %w", dependency, translate(err))
	}
	// Processed, when chained, in the order they were received.
	slices.SortFunc(events, func(a, b Event) int {
		return cmp.Or(a.ReceivedAt.Compare(b.ReceivedAt), cmp.Compare(a.ID, b.ID))
	})
	tx.released = append(tx.released, events...)
	released := make([]Released, len(events))
	for i, ev := range events {
		released[i] = Released{ID: ev.ID, Type: ev.Type}
	}
	return released, nil
}

// releaseQuery makes the events deferred on $1 due from when they were
// received (ahead of the backlog), released at $2, and returns them.
const releaseQuery = `UPDATE webhook_events SET status = 'pending', waiting_for = NULL, next_attempt_at = received_at, released_at = $2
	WHERE status = 'deferred' AND waiting_for = $1
	RETURNING ` + eventColumns

// releaseThenRecord runs releaseQuery and records a released attempt for
// each row it returns, one statement each, all prepared once per connection
// (SQLite).
func (tx *Tx) releaseThenRecord(ctx context.Context, dependency, detail string) ([]Event, error) {
	var events []Event
	if err := tx.db.txSelect(ctx, tx.tx, &events, releaseQuery, dependency, tx.now); err != nil {
		return nil, err
	}
	for _, ev := range events {
		if err := tx.record(ctx, attemptRow{eventID: ev.ID, outcome: OutcomeReleased, attempt: ev.Attempts, detail: detail}); err != nil {
			return nil, err
		}
	}
	return events, nil
}

// releaseHeld releases on PostgreSQL: it locks the events deferred on
// dependency, read with those of the batch's other dependencies
// (ClaimParams.Releases) when it can, and holds their released attempts
// until the transitions are written (writeHeld). The row of an event that
// the transaction processes itself is written once, with its transition,
// just before the commit (held); writing it released first would update
// the row, and every index on status and next_attempt_at, twice. The
// others it writes released at once. Until its row is written, an event
// released in the transaction is left out of a later release of the same
// dependency.
func (tx *Tx) releaseHeld(ctx context.Context, dependency, detail string) ([]Event, error) {
	h := tx.held
	if err := h.writeDeferrals(ctx, tx); err != nil {
		return nil, err
	}
	events, err := h.deferredOn(ctx, tx, dependency)
	if err != nil {
		return nil, err
	}
	// Those an earlier Release of dependency released still read deferred.
	events = slices.DeleteFunc(events, func(ev Event) bool { return h.releasedUnwritten(ev.ID) })
	var now []string
	for i := range events {
		ev := &events[i]
		h.releasedRows = append(h.releasedRows, attemptRow{eventID: ev.ID, outcome: OutcomeReleased, attempt: ev.Attempts, detail: detail})
		releasedAt := tx.now
		ev.Status, ev.WaitingFor, ev.NextAttemptAt, ev.ReleasedAt = StatusPending, "", ev.ReceivedAt, &releasedAt
		if tx.chains(*ev) {
			h.unwritten[ev.ID] = true
			continue
		}
		now = append(now, ev.ID)
	}
	return events, writeReleased(ctx, tx.db, tx.tx, now, tx.now)
}

// deferredQuery locks and reads the events deferred on any of $1.
const deferredQuery = `SELECT ` + eventColumns + ` FROM webhook_events WHERE status = 'deferred' AND waiting_for = ANY($1) FOR UPDATE`

// deferredOn returns the events deferred on dependency, locked: from what
// the batch read for all its dependencies, reading that, and the mirror
// rows of those events, at the first call, unless the transaction has
// deferred an event, whose deferral the read could miss.
func (h *held) deferredOn(ctx context.Context, tx *Tx, dependency string) ([]Event, error) {
	var events []Event
	if h.deferred || !h.deps[dependency] {
		return events, tx.db.txSelect(ctx, tx.tx, &events, deferredQuery, pq.Array([]string{dependency}))
	}
	if h.prefetched == nil {
		if err := tx.db.txSelect(ctx, tx.tx, &events, deferredQuery, pq.Array(slices.Sorted(maps.Keys(h.deps)))); err != nil {
			return nil, err
		}
		// The batch processes them: read their mirror rows with them.
		if err := tx.mirror.load(ctx, tx.db, tx.tx, events); err != nil {
			return nil, err
		}
		h.prefetched = make(map[string][]Event, len(h.deps))
		for _, ev := range events {
			h.prefetched[ev.WaitingFor] = append(h.prefetched[ev.WaitingFor], ev)
		}
	}
	events = h.prefetched[dependency]
	delete(h.prefetched, dependency)
	delete(h.deps, dependency)
	return events, nil
}

// writeReleased writes the events ids released at releasedAt, as
// releaseQuery does (PostgreSQL).
func writeReleased(ctx context.Context, db *DB, tx *sqlx.Tx, ids []string, releasedAt time.Time) error {
	if len(ids) == 0 {
		return nil
	}
	_, err := db.txExec(ctx, tx, `UPDATE webhook_events SET status = 'pending', waiting_for = NULL,
		next_attempt_at = received_at, released_at = $2 WHERE event_id = ANY($1)`, pq.Array(ids), releasedAt)
	return err
}

// attemptRow is one event_attempts row to write.
type attemptRow struct {
	eventID, outcome string
	attempt          int
	actor, errText   string
	detail           string
}

func (tx *Tx) record(ctx context.Context, a attemptRow) error {
	return tx.exec(ctx, a.outcome+" attempt of "+a.eventID, insertAttemptQuery, a.values(tx.now, tx.worker)...)
}

const insertAttemptQuery = `
		INSERT INTO event_attempts (event_id, at, outcome, attempt, worker, actor, error, detail)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`

func insertAttempt(ctx context.Context, e sqlx.ExecerContext, db *DB, at time.Time, worker string, a attemptRow) error {
	_, err := e.ExecContext(ctx, db.rebind(insertAttemptQuery), a.values(at, worker)...)
	if err != nil {
		return fmt.Errorf("record %s attempt of %s: %w", a.outcome, a.eventID, translate(err))
	}
	return nil
}

// values returns the event_attempts columns of a, in insertAttempt's order.
func (a attemptRow) values(at time.Time, worker string) []any {
	return []any{a.eventID, ts(at), a.outcome, a.attempt, nullable(worker), nullable(a.actor), nullable(a.errText), nullable(a.detail)}
}

// Failure describes a failed attempt to process an event.
type Failure struct {
	EventID       string
	Worker        string    // the worker whose lease the event is under
	Err           string    // the cause, kept as last_error
	Now           time.Time // when it failed
	NextAttemptAt time.Time // when to retry, ignored when Dead
	Dead          bool      // give up: the row stays dead until an operator acts
}

// Fail records a failed attempt in its own transaction: attempts+1, the error,
// and either the next attempt time or the dead status. It returns the new
// attempt count, or ErrNotClaimed when the row is no longer under f.Worker's
// lease.
func (db *DB) Fail(ctx context.Context, f Failure) (int, error) {
	status, outcome := StatusPending, OutcomeFailed
	if f.Dead {
		status, outcome = StatusDead, OutcomeDead
	}
	var attempts int
	err := db.withTx(ctx, func(tx *sqlx.Tx) error {
		err := tx.GetContext(ctx, &attempts, db.rebind(`
			UPDATE webhook_events SET attempts = attempts + 1, last_error = $3, next_attempt_at = $4,
				status = $5, lease_owner = NULL, lease_expires_at = NULL
			WHERE event_id = $1 AND status = 'pending' AND lease_owner = $2
			RETURNING attempts`), f.EventID, f.Worker, f.Err, ts(f.NextAttemptAt), status)
		if err != nil {
			if errors.Is(translate(err), ErrNotFound) {
				return fmt.Errorf("fail %s: %w", f.EventID, ErrNotClaimed)
			}
			return fmt.Errorf("fail %s: %w", f.EventID, translate(err))
		}
		return insertAttempt(ctx, tx, db, f.Now, f.Worker, attemptRow{eventID: f.EventID, outcome: outcome, attempt: attempts, errText: f.Err})
	})
	return attempts, err
}

// Unlease gives up worker's lease on those of events still pending under
// it, and returns how many. They were due when leased, and are due again at
// once: at their received_at, ahead of the backlog. A worker that stops
// before processing what it leased calls it, so that another worker need not
// wait for the lease to expire.
func (db *DB) Unlease(ctx context.Context, worker string, events []Event) (int, error) {
	if len(events) == 0 {
		return 0, nil
	}
	query, args, err := db.in(`UPDATE webhook_events SET lease_owner = NULL, lease_expires_at = NULL, next_attempt_at = received_at
		WHERE status = 'pending' AND lease_owner = ? AND event_id IN (?)`, worker, eventIDs(events))
	if err != nil {
		return 0, fmt.Errorf("unlease %d events: %w", len(events), err)
	}
	res, err := db.db.ExecContext(ctx, query, args...)
	if err != nil {
		return 0, fmt.Errorf("unlease %d events: %w", len(events), translate(err))
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("unlease %d events: %w", len(events), err)
	}
	return int(n), nil
}

// ExpireDeferred moves deferred events whose deadline has passed to dead, at
// most limit of them, with a last_error naming the dependency they waited
// for, and returns them. Rows locked by a concurrent transaction are skipped
// and expire on a later call.
func (db *DB) ExpireDeferred(ctx context.Context, now time.Time, limit int, worker string) ([]Event, error) {
	var expired []Event
	err := db.withTx(ctx, func(tx *sqlx.Tx) error {
		query := `SELECT ` + eventColumns + ` FROM webhook_events
			WHERE status = 'deferred' AND next_attempt_at <= $1 ORDER BY next_attempt_at LIMIT $2`
		if db.dialect == Postgres {
			query += ` FOR UPDATE SKIP LOCKED`
		}
		if err := tx.SelectContext(ctx, &expired, db.rebind(query), ts(now), limit); err != nil {
			return fmt.Errorf("find expired deferrals: %w", translate(err))
		}
		for i := range expired {
			ev := &expired[i]
			ev.LastError = fmt.Sprintf("dependency timeout: %s was still not applied at %s", ev.WaitingFor, ev.NextAttemptAt.Format(time.RFC3339))
			ev.Status = StatusDead
			if _, err := tx.ExecContext(ctx, db.rebind(`
				UPDATE webhook_events SET status = 'dead', last_error = $2 WHERE event_id = $1`), ev.ID, ev.LastError); err != nil {
				return fmt.Errorf("expire %s: %w", ev.ID, translate(err))
			}
			if err := insertAttempt(ctx, tx, db, now, worker, attemptRow{eventID: ev.ID, outcome: OutcomeDead, attempt: ev.Attempts, errText: ev.LastError, detail: ev.WaitingFor}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return expired, nil
}
