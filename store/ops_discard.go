package store

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
)

// DiscardParams names the events an operator gives up on, who and why.
type DiscardParams struct {
	IDs    []string
	Reason string // required: kept in the history
	Actor  string
	Now    time.Time // default the current time
}

// DiscardResult reports which named events were discarded and which were
// refused, with why.
type DiscardResult struct {
	Discarded []string  `json:"discarded"`
	Refused   []Refusal `json:"refused"`
}

// discardable are the states an operator may discard: what has not been
// applied yet. Applied and ignored rows are history; discarding them would
// misstate what happened.
var discardable = []Status{StatusDead, StatusDeferred, StatusPending}

// Discard moves the named dead, deferred or pending events to discarded, for
// good, and records a `discarded` attempt with p.Actor and p.Reason for each;
// last_error is kept. Rows under an unexpired lease are refused with
// ErrLeased, rows in another state with ErrConflict, missing ones with
// ErrNotFound; refusals are reported in the result, not as an error. It
// returns an error wrapping ErrInvalidInput without ids or a reason.
func (db *DB) Discard(ctx context.Context, p DiscardParams) (DiscardResult, error) {
	ids := dedupe(p.IDs)
	if len(ids) == 0 || strings.TrimSpace(p.Reason) == "" {
		return DiscardResult{}, fmt.Errorf("%w: discard needs event ids and a reason", ErrInvalidInput)
	}
	if err := checkReason(p.Reason); err != nil {
		return DiscardResult{}, err
	}
	p.Now = orNow(p.Now)
	hint := func(Status) string { return "; only dead, deferred or pending events can be discarded" }
	res := DiscardResult{Discarded: []string{}, Refused: []Refusal{}}
	for _, batch := range chunks(ids, 500) {
		var ok []string
		var refused []Refusal
		err := db.withRetry(ctx, func(tx *sqlx.Tx) error {
			var matched int
			refused = nil
			var err error
			if ok, err = db.checkRows(ctx, tx, batch, discardable, p.Now, hint, &matched, &refused); err != nil || len(ok) == 0 {
				return err
			}
			return db.discardRows(ctx, tx, ok, p)
		})
		if err != nil {
			return res, err
		}
		res.Discarded = append(res.Discarded, ok...)
		res.Refused = append(res.Refused, refused...)
	}
	return res, nil
}

// MaxReasonLength is the longest reason, in bytes, a replay or discard
// keeps in an event's history (and in its log line): a sentence or a
// ticket link, not a document.
const MaxReasonLength = 1000

// checkReason returns an error wrapping ErrInvalidInput for a reason over
// MaxReasonLength.
func checkReason(reason string) error {
	if len(reason) > MaxReasonLength {
		return fmt.Errorf("%w: the reason is %d bytes; keep it to %d (a sentence, or a link to the ticket)", ErrInvalidInput, len(reason), MaxReasonLength)
	}
	return nil
}

// discardRows records a `discarded` attempt for, then discards, the rows
// among ids that are locked and checked by the caller.
func (db *DB) discardRows(ctx context.Context, tx *sqlx.Tx, ids []string, p DiscardParams) error {
	ins, now, guard := db.guard(ids, discardable, p.Now)
	recorded, err := db.execCount(ctx, tx, `
		INSERT INTO event_attempts (event_id, at, outcome, attempt, actor, detail)
		SELECT event_id, `+now+`, 'discarded', attempts, `+ins.arg(nullable(p.Actor))+`, `+ins.arg(p.Reason)+`
		FROM webhook_events WHERE `+guard, ins.args)
	if err != nil {
		return fmt.Errorf("record discards: %w", err)
	}
	upd, _, guard := db.guard(ids, discardable, p.Now)
	updated, err := db.execCount(ctx, tx, `
		UPDATE webhook_events SET status = 'discarded', waiting_for = NULL, lease_owner = NULL, lease_expires_at = NULL
		WHERE `+guard, upd.args)
	if err != nil {
		return fmt.Errorf("discard events: %w", err)
	}
	if recorded != updated || int(updated) != len(ids) {
		return fmt.Errorf("discard events: %w: %d of %d rows changed under the lock", ErrConflict, updated, len(ids))
	}
	return nil
}
