package store

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
)

// held gathers, on PostgreSQL, the writes of a processing transaction that
// nothing in it reads back from the database, to send them in one statement
// just before it commits: one round trip per batch instead of one or two per
// event. They are the transitions (applied, ignored, deferred) with their
// history rows, the mirror rows, which the transaction reads from its
// mirrorCache, and the wake-up of the other replicas. A release looks for
// deferred rows, which it reads from the database: the deferrals held so far
// are written first (writeDeferrals). The release of an event the
// transaction processes itself is written with its transition.
type held struct {
	heldTransitions
	deferred bool // the transaction has deferred an event
	// deps are the dependencies the batch may release
	// (ClaimParams.Releases); prefetched holds, once the first Release has
	// read them (deferredOn), the locked events deferred on those not
	// released yet.
	deps       map[string]bool
	prefetched map[string][]Event
	// releasedRows are the released attempts of the transaction's
	// releases, written before its transitions.
	releasedRows []attemptRow
	// unwritten holds the events released in the transaction whose rows
	// still read deferred: each is written with its transition, or by
	// writeUnwritten before the commit.
	unwritten map[string]bool
	notify    bool // wake every replica's workers at commit
	// bitmapOff records that the claim turned bitmap scans off for the
	// transaction; Flush turns them back on for registered handlers.
	bitmapOff bool
}

// heldTransitions are the transitions held and not written yet, one array
// per column of writeHeldQuery.
type heldTransitions struct {
	ids, statuses, outcomes, details []string
	attempts                         []int64
	released                         []bool // the event's release is written with its transition
	// waitingFor and until are a deferred event's dependency and deadline,
	// "" and nil for the other transitions.
	waitingFor []string
	until      []*time.Time
	deferrals  int // deferred transitions among them
	// releasedIDs are the events whose release is written with their
	// transition: until then their rows read deferred.
	releasedIDs map[string]bool
}

// transition is an event's held status change and its history row.
type transition struct {
	id      string
	status  Status
	outcome string
	attempt int
	detail  string
	// waitingFor and until are set for a deferral.
	waitingFor string
	until      *time.Time
}

func newHeld() *held { return &held{unwritten: make(map[string]bool)} }

// add holds t, with the release of its event when the transaction
// released it and has not written that yet.
func (h *held) add(t transition) {
	released := h.unwritten[t.id]
	if released {
		if h.releasedIDs == nil {
			h.releasedIDs = make(map[string]bool)
		}
		h.releasedIDs[t.id] = true
	}
	h.released = append(h.released, released)
	delete(h.unwritten, t.id)
	h.ids = append(h.ids, t.id)
	h.statuses = append(h.statuses, string(t.status))
	h.outcomes = append(h.outcomes, t.outcome)
	h.attempts = append(h.attempts, int64(t.attempt))
	h.details = append(h.details, t.detail)
	h.waitingFor = append(h.waitingFor, t.waitingFor)
	h.until = append(h.until, t.until)
	if t.until != nil {
		h.deferrals++
		h.deferred = true
	}
}

// releasedUnwritten reports whether the transaction released the event id
// and has not written its row since: the row still reads deferred.
func (h *held) releasedUnwritten(id string) bool { return h.unwritten[id] || h.releasedIDs[id] }

// writeDeferrals writes, when deferrals are among them, the transitions
// and mirror rows held so far, so that the transaction's next statements
// read those events deferred: a release must find them.
func (h *held) writeDeferrals(ctx context.Context, tx *Tx) error {
	if h.deferrals == 0 {
		return nil
	}
	if err := writeHeld(ctx, tx.db, tx.tx, h, tx.mirror, tx.worker, tx.now); err != nil {
		return err
	}
	h.heldTransitions = heldTransitions{}
	return nil
}

// Flush writes the mirror rows, releases and deferrals the transaction
// holds back (PostgreSQL; with a deferral, every transition held so far)
// and gives the planner back its defaults, so that a
// registered handler's statements, run through SQLX, see the mirror and
// the inbox as applied so far and are planned as anywhere else. The worker
// calls it before every handler.
func (tx *Tx) Flush(ctx context.Context) error {
	h := tx.held
	if h == nil {
		return nil
	}
	if h.bitmapOff {
		if _, err := tx.tx.ExecContext(ctx, `RESET enable_bitmapscan`); err != nil {
			return fmt.Errorf("reset enable_bitmapscan: %w", translate(err))
		}
		h.bitmapOff = false
	}
	if err := h.writeUnwritten(ctx, tx.db, tx.tx, tx.now); err != nil {
		return err
	}
	if err := h.writeReleasedRows(ctx, tx.db, tx.tx, tx.worker, tx.now); err != nil {
		return err
	}
	if h.deferrals > 0 {
		return h.writeDeferrals(ctx, tx)
	}
	return writeHeld(ctx, tx.db, tx.tx, newHeld(), tx.mirror, tx.worker, tx.now)
}

// write sends everything h and the mirror cache hold back, as worker, at
// now, in one statement.
func (h *held) write(ctx context.Context, db *DB, tx *sqlx.Tx, mirror *mirrorCache, worker string, now time.Time) error {
	if h == nil {
		return nil
	}
	// Released events the transaction processed without a transition.
	if err := h.writeUnwritten(ctx, db, tx, now); err != nil {
		return err
	}
	return writeHeld(ctx, db, tx, h, mirror, worker, now)
}

// writeUnwritten writes every release still unwritten, at releasedAt.
func (h *held) writeUnwritten(ctx context.Context, db *DB, tx *sqlx.Tx, releasedAt time.Time) error {
	if err := writeReleased(ctx, db, tx, slices.Sorted(maps.Keys(h.unwritten)), releasedAt); err != nil {
		return fmt.Errorf("write released events: %w", translate(err))
	}
	clear(h.unwritten)
	return nil
}

// writeReleasedRows writes the released attempts h holds, at now by
// worker: before the transitions, which may be the same events' next.
func (h *held) writeReleasedRows(ctx context.Context, db *DB, tx *sqlx.Tx, worker string, now time.Time) error {
	if len(h.releasedRows) == 0 {
		return nil
	}
	ids, attempts, details := make([]string, len(h.releasedRows)), make([]int64, len(h.releasedRows)), make([]string, len(h.releasedRows))
	for i, a := range h.releasedRows {
		ids[i], attempts[i], details[i] = a.eventID, int64(a.attempt), a.detail
	}
	if _, err := db.txExec(ctx, tx, `
		INSERT INTO event_attempts (event_id, at, outcome, attempt, worker, detail)
		SELECT event_id, $4, $5, attempt, $6, detail FROM unnest($1::text[], $2::bigint[], $3::text[]) AS r(event_id, attempt, detail)`,
		pq.Array(ids), pq.Array(attempts), pq.Array(details), now, OutcomeReleased, nullable(worker)); err != nil {
		return fmt.Errorf("record %d released attempts: %w", len(ids), translate(err))
	}
	h.releasedRows = nil
	return nil
}

// writeHeld writes the transitions and notification of h and the mirror
// rows held in mirror, which it then marks written.
func writeHeld(ctx context.Context, db *DB, tx *sqlx.Tx, h *held, mirror *mirrorCache, worker string, now time.Time) error {
	if err := h.writeReleasedRows(ctx, db, tx, worker, now); err != nil {
		return err
	}
	c, s, i := heldCustomers(mirror), heldSubscriptions(mirror), heldInvoices(mirror)
	rows := len(c.ids) + len(s.ids) + len(i.ids)
	if len(h.ids) == 0 && rows == 0 && !h.notify {
		return nil
	}
	args := slices.Concat(c.args(), s.args(), i.args(), []any{
		pq.Array(h.ids), pq.Array(h.statuses), pq.Array(h.outcomes), pq.Array(h.attempts), pq.Array(h.details),
		now, nullable(worker), h.notify, notifyChannel, pq.Array(h.released), pq.Array(h.waitingFor), pq.GenericArray{A: h.until},
	})
	var n struct {
		Mirror   int  `db:"mirror"`
		Recorded int  `db:"recorded"`
		Notified bool `db:"notified"`
	}
	err := db.txGet(ctx, tx, &n, writeHeldQuery, args...)
	switch {
	case err != nil:
		return fmt.Errorf("write %d events and %d mirror rows: %w", len(h.ids), rows, translate(err))
	case n.Recorded != len(h.ids) || n.Mirror != rows || n.Notified != h.notify:
		return fmt.Errorf("write %d events and %d mirror rows: %d and %d written (notified: %t)", len(h.ids), rows, n.Recorded, n.Mirror, n.Notified)
	}
	mirror.written()
	return nil
}

// writeHeldQuery upserts the held mirror rows ($1–$29), writes the held
// transitions ($30–$34; released in the transaction, $39: their release
// too; deferred, $40 and $41: on what and until when) and records their
// history, at $35 by worker $36, and notifies channel $38 when $37.
const writeHeldQuery = `
	WITH customers AS (
		INSERT INTO stripe_customers (id, email, name, deleted, livemode, last_event_id, last_event_type, last_event_created, updated_at)
		SELECT id, NULLIF(email, ''), NULLIF(name, ''), deleted, livemode, NULLIF(event_id, ''), NULLIF(event_type, ''), event_created, $35
		FROM unnest($1::text[], $2::text[], $3::text[], $4::boolean[], $5::boolean[], $6::text[], $7::text[], $8::timestamptz[])
			AS v(id, email, name, deleted, livemode, event_id, event_type, event_created)
		ON CONFLICT (id) DO UPDATE SET email = excluded.email, name = excluded.name, deleted = excluded.deleted,
			livemode = excluded.livemode, last_event_id = excluded.last_event_id, last_event_type = excluded.last_event_type,
			last_event_created = excluded.last_event_created, updated_at = excluded.updated_at
		RETURNING 1
	), subscriptions AS (
		INSERT INTO stripe_subscriptions (id, customer_id, status, cancel_at_period_end, current_period_end, canceled_at,
			livemode, last_event_id, last_event_type, last_event_created, updated_at)
		SELECT *, $35 FROM unnest($9::text[], $10::text[], $11::text[], $12::boolean[], $13::timestamptz[], $14::timestamptz[],
			$15::boolean[], $16::text[], $17::text[], $18::timestamptz[])
		ON CONFLICT (id) DO UPDATE SET customer_id = excluded.customer_id, status = excluded.status,
			cancel_at_period_end = excluded.cancel_at_period_end, current_period_end = excluded.current_period_end,
			canceled_at = excluded.canceled_at, livemode = excluded.livemode, last_event_id = excluded.last_event_id,
			last_event_type = excluded.last_event_type, last_event_created = excluded.last_event_created,
			updated_at = excluded.updated_at
		RETURNING 1
	), invoices AS (
		INSERT INTO stripe_invoices (id, customer_id, subscription_id, status, amount_due, amount_paid, currency,
			livemode, last_event_id, last_event_type, last_event_created, updated_at)
		SELECT id, customer_id, NULLIF(subscription_id, ''), status, amount_due, amount_paid, currency,
			livemode, event_id, event_type, event_created, $35
		FROM unnest($19::text[], $20::text[], $21::text[], $22::text[], $23::bigint[], $24::bigint[], $25::text[],
			$26::boolean[], $27::text[], $28::text[], $29::timestamptz[])
			AS v(id, customer_id, subscription_id, status, amount_due, amount_paid, currency, livemode, event_id, event_type, event_created)
		ON CONFLICT (id) DO UPDATE SET customer_id = excluded.customer_id, subscription_id = excluded.subscription_id,
			status = excluded.status, amount_due = excluded.amount_due, amount_paid = excluded.amount_paid,
			currency = excluded.currency, livemode = excluded.livemode, last_event_id = excluded.last_event_id,
			last_event_type = excluded.last_event_type, last_event_created = excluded.last_event_created,
			updated_at = excluded.updated_at
		RETURNING 1
	), v AS (
		SELECT * FROM unnest($30::text[], $31::text[], $32::text[], $33::bigint[], $34::text[], $39::boolean[],
			$40::text[], $41::timestamptz[])
			AS v(event_id, status, outcome, attempt, detail, released, waiting_for, until)
	), updated AS (
		UPDATE webhook_events e SET status = v.status, attempts = v.attempt,
			applied_at = CASE WHEN v.until IS NULL THEN $35 ELSE e.applied_at END,
			waiting_for = NULLIF(v.waiting_for, ''), lease_owner = NULL, lease_expires_at = NULL,
			released_at = CASE WHEN v.released THEN $35 ELSE e.released_at END,
			next_attempt_at = CASE WHEN v.until IS NOT NULL THEN v.until
				WHEN v.released THEN e.received_at ELSE e.next_attempt_at END
		FROM v WHERE e.event_id = v.event_id
		RETURNING e.event_id
	), recorded AS (
		INSERT INTO event_attempts (event_id, at, outcome, attempt, worker, detail)
		SELECT v.event_id, $35, v.outcome, v.attempt, $36, NULLIF(v.detail, '') FROM v JOIN updated USING (event_id)
		RETURNING 1
	), notified AS (
		-- Delivered at commit to every replica's listener.
		SELECT pg_notify($38, '') WHERE $37
	)
	SELECT (SELECT count(*) FROM customers) + (SELECT count(*) FROM subscriptions) + (SELECT count(*) FROM invoices) AS mirror,
		(SELECT count(*) FROM recorded) AS recorded, EXISTS (SELECT FROM notified) AS notified`

// columns holds the ids of held mirror rows and their other columns, one
// array per column, in writeHeldQuery's order.
type columns struct {
	ids  []string
	more []any
}

func (c columns) args() []any { return append([]any{pq.Array(c.ids)}, c.more...) }

func heldCustomers(m *mirrorCache) columns {
	ids := m.unwrittenIDs(kindCustomer)
	var email, name, eventID, eventType []string
	var deleted, livemode []bool
	var created []*time.Time
	for _, id := range ids {
		r := m.customers[id]
		email, name = append(email, r.Email), append(name, r.Name)
		deleted, livemode = append(deleted, r.Deleted), append(livemode, r.Livemode)
		eventID, eventType, created = append(eventID, r.EventID), append(eventType, r.Type), append(created, utc(r.Created))
	}
	return columns{ids, []any{pq.Array(email), pq.Array(name), pq.Array(deleted), pq.Array(livemode),
		pq.Array(eventID), pq.Array(eventType), pq.GenericArray{A: created}}}
}

func heldSubscriptions(m *mirrorCache) columns {
	ids := m.unwrittenIDs(kindSubscription)
	var customer, status, eventID, eventType []string
	var cancelAtEnd, livemode []bool
	var periodEnd, canceledAt, created []*time.Time
	for _, id := range ids {
		r := m.subscriptions[id]
		customer, status = append(customer, r.CustomerID), append(status, r.Status)
		cancelAtEnd, livemode = append(cancelAtEnd, r.CancelAtPeriodEnd), append(livemode, r.Livemode)
		periodEnd, canceledAt = append(periodEnd, utc(r.CurrentPeriodEnd)), append(canceledAt, utc(r.CanceledAt))
		eventID, eventType, created = append(eventID, r.EventID), append(eventType, r.Type), append(created, utc(r.Created))
	}
	return columns{ids, []any{pq.Array(customer), pq.Array(status), pq.Array(cancelAtEnd), pq.GenericArray{A: periodEnd},
		pq.GenericArray{A: canceledAt}, pq.Array(livemode), pq.Array(eventID), pq.Array(eventType), pq.GenericArray{A: created}}}
}

func heldInvoices(m *mirrorCache) columns {
	ids := m.unwrittenIDs(kindInvoice)
	var customer, subscription, status, currency, eventID, eventType []string
	var due, paid []int64
	var livemode []bool
	var created []*time.Time
	for _, id := range ids {
		r := m.invoices[id]
		customer, subscription, status = append(customer, r.CustomerID), append(subscription, r.SubscriptionID), append(status, r.Status)
		due, paid, currency = append(due, r.AmountDue), append(paid, r.AmountPaid), append(currency, r.Currency)
		livemode = append(livemode, r.Livemode)
		eventID, eventType, created = append(eventID, r.EventID), append(eventType, r.Type), append(created, utc(r.Created))
	}
	return columns{ids, []any{pq.Array(customer), pq.Array(subscription), pq.Array(status), pq.Array(due), pq.Array(paid),
		pq.Array(currency), pq.Array(livemode), pq.Array(eventID), pq.Array(eventType), pq.GenericArray{A: created}}}
}
