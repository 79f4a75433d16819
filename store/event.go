package store

import (
	"context"
	"fmt"
	"time"
)

// Status is the processing state of an inbox row.
type Status string

// The states of an inbox row.
const (
	StatusPending   Status = "pending"   // due for a worker at next_attempt_at
	StatusDeferred  Status = "deferred"  // waiting for the dependency in waiting_for
	StatusApplied   Status = "applied"   // applied exactly once
	StatusIgnored   Status = "ignored"   // no applier or handler for its type
	StatusDead      Status = "dead"      // gave up; waits for an operator
	StatusDiscarded Status = "discarded" // an operator discarded it
)

// Statuses lists every status in display order.
var Statuses = []Status{StatusPending, StatusDeferred, StatusApplied, StatusIgnored, StatusDead, StatusDiscarded}

// Event is one row of the inbox, webhook_events.
type Event struct {
	ID             string     `db:"event_id" json:"event_id"`
	Type           string     `db:"type" json:"type"`
	APIVersion     string     `db:"api_version" json:"api_version"`
	Livemode       bool       `db:"livemode" json:"livemode"`
	Created        time.Time  `db:"created" json:"created"`
	CustomerID     string     `db:"customer_id" json:"customer_id,omitempty"`
	ObjectID       string     `db:"object_id" json:"object_id,omitempty"`
	Payload        []byte     `db:"payload" json:"-"`
	ReceivedAt     time.Time  `db:"received_at" json:"received_at"`
	Status         Status     `db:"status" json:"status"`
	Attempts       int        `db:"attempts" json:"attempts"`
	NextAttemptAt  time.Time  `db:"next_attempt_at" json:"next_attempt_at"`
	WaitingFor     string     `db:"waiting_for" json:"waiting_for,omitempty"`
	LastError      string     `db:"last_error" json:"last_error,omitempty"`
	AppliedAt      *time.Time `db:"applied_at" json:"applied_at,omitempty"`
	ReleasedAt     *time.Time `db:"released_at" json:"released_at,omitempty"` // when its dependency released it
	LeaseOwner     string     `db:"lease_owner" json:"lease_owner,omitempty"`
	LeaseExpiresAt *time.Time `db:"lease_expires_at" json:"lease_expires_at,omitempty"`
	SecretIndex    int        `db:"secret_index" json:"secret_index"`
}

// eventColumns selects an Event; nullable text reads as "".
const eventColumns = `payload, ` + stateColumns

// stateColumns selects an Event without its payload.
const stateColumns = `event_id, type, api_version, livemode, created,
	COALESCE(customer_id, '') AS customer_id, COALESCE(object_id, '') AS object_id,
	received_at, status, attempts, next_attempt_at,
	COALESCE(waiting_for, '') AS waiting_for, COALESCE(last_error, '') AS last_error,
	applied_at, released_at, COALESCE(lease_owner, '') AS lease_owner, lease_expires_at, secret_index`

// InsertEvent stores ev as a pending inbox row unless a row with its id
// exists. It reports whether the row was inserted (false: a duplicate). The row
// is committed when InsertEvent returns nil. Concurrent calls share one
// statement and one commit (group commit), which is what lets a burst of
// deliveries ingest at the database's commit rate rather than one fsync per
// event. It returns an error wrapping ErrUnavailable when the database cannot
// be reached or does not commit within a batch timeout (10 s), ctx's error
// when ctx ends first, and ErrClosed once the DB is closing. An error does
// not mean the row is absent: its statement may commit after the call gave
// up waiting. Call again to be sure; the id makes it a duplicate.
//
// It stores every field of ev but the states (Status, Attempts and the
// others are those of a new pending row, due at ReceivedAt): set ID, Type,
// Created, ReceivedAt and Payload; webhook.ParseEvent fills them from a
// Stripe event. An event without an id, type, receipt time or payload is
// refused with an error wrapping ErrInvalidInput.
func (db *DB) InsertEvent(ctx context.Context, ev Event) (inserted bool, err error) {
	if ev.ID == "" || ev.Type == "" || ev.ReceivedAt.IsZero() || len(ev.Payload) == 0 {
		return false, fmt.Errorf("insert event %q: %w: an inbox row needs an id, a type, a receipt time and the payload", ev.ID, ErrInvalidInput)
	}
	return db.ingest.insert(ctx, ev)
}

// IngestIdle returns a channel that is closed once no InsertEvent call of
// this process has been under way for 5 ms: at once when none has been.
// The pause is what tells the end of a burst from the gap between one
// group commit's answers and the senders' next requests. A reconciler with IngestYield set waits on it, for a bounded
// time, so that during a burst the deliveries waiting for their
// acknowledgement go first.
func (db *DB) IngestIdle() <-chan struct{} {
	return db.ingest.inFlight.idle()
}

// Event returns the inbox row with the given id, or an error wrapping
// ErrNotFound.
func (db *DB) Event(ctx context.Context, id string) (Event, error) {
	var ev Event
	err := db.db.GetContext(ctx, &ev, db.rebind(`SELECT `+eventColumns+` FROM webhook_events WHERE event_id = $1`), id)
	if err != nil {
		return Event{}, fmt.Errorf("get event %s: %w", id, translate(err))
	}
	return ev, nil
}

// Attempt is one row of event_attempts: an attempt or a transition of an
// event, and who made it.
type Attempt struct {
	ID      int64     `db:"id" json:"id"`
	EventID string    `db:"event_id" json:"event_id"`
	At      time.Time `db:"at" json:"at"`
	Outcome string    `db:"outcome" json:"outcome"`
	Attempt int       `db:"attempt" json:"attempt"`
	Worker  string    `db:"worker" json:"worker,omitempty"`
	Actor   string    `db:"actor" json:"actor,omitempty"`
	Error   string    `db:"error" json:"error,omitempty"`
	Detail  string    `db:"detail" json:"detail,omitempty"`
}

// The outcomes recorded in event_attempts.
const (
	OutcomeApplied   = "applied"
	OutcomeDeferred  = "deferred"
	OutcomeReleased  = "released"
	OutcomeFailed    = "failed"
	OutcomeDead      = "dead"
	OutcomeIgnored   = "ignored"
	OutcomeReplayed  = "replayed"
	OutcomeDiscarded = "discarded"
)

// Attempts returns the history of the event with the given id, oldest first.
func (db *DB) Attempts(ctx context.Context, eventID string) ([]Attempt, error) {
	var out []Attempt
	err := db.db.SelectContext(ctx, &out, db.rebind(`
		SELECT id, event_id, at, outcome, attempt, COALESCE(worker, '') AS worker,
			COALESCE(actor, '') AS actor, COALESCE(error, '') AS error, COALESCE(detail, '') AS detail
		FROM event_attempts WHERE event_id = $1 ORDER BY id`), eventID)
	if err != nil {
		return nil, fmt.Errorf("list attempts of %s: %w", eventID, translate(err))
	}
	return out, nil
}
