package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"
)

// MinPurgeAge is the youngest an event may be for Purge to delete it. Stripe
// retries an event for up to three days, and its API lists, so an operator
// can resend, the events of the last 30; the stored id is what answers a
// resend "duplicate" instead of applying the event again.
const MinPurgeAge = 30 * 24 * time.Hour

// purgeBatch is how many rows one DELETE removes, so that a large purge
// holds its locks, and SQLite's one writer, only briefly at a time.
const purgeBatch = 1000

// purgeable are the final states, which nothing changes again: applied,
// ignored and discarded. Dead events wait for an operator, pending and
// deferred ones for the reconciler, and are never purged.
var purgeable = []Status{StatusApplied, StatusIgnored, StatusDiscarded}

// PurgeParams says which final events Purge deletes: those created by Stripe
// and received by orderhook more than OlderThan before Now.
type PurgeParams struct {
	OlderThan time.Duration // at least MinPurgeAge
	DryRun    bool          // count, delete nothing
	Now       time.Time     // default the current time
}

// PurgeResult reports a Purge: the cut-off and how many events it deleted,
// or with DryRun would delete.
type PurgeResult struct {
	Before time.Time `json:"before"`
	Purged int64     `json:"purged"`
	DryRun bool      `json:"dry_run"`
}

// Purge deletes the applied, ignored and discarded events older than
// p.OlderThan, with their attempts and history, in batches of purgeBatch
// rows, each its own transaction: an interrupted purge leaves whole rows
// and can be run again. A row replayed meanwhile is pending, and kept. It
// returns an error wrapping ErrInvalidInput when p.OlderThan is under
// MinPurgeAge.
func (db *DB) Purge(ctx context.Context, p PurgeParams) (PurgeResult, error) {
	if p.OlderThan < MinPurgeAge {
		return PurgeResult{}, fmt.Errorf("%w: purge keeps at least %s of events (Stripe's API keeps events, to be resent, for 30 days), not %s", ErrInvalidInput, MinPurgeAge, p.OlderThan)
	}
	res := PurgeResult{Before: orNow(p.Now).Add(-p.OlderThan).UTC(), DryRun: p.DryRun}
	cond := `status IN ($1, $2, $3) AND received_at < $4 AND created < $5`
	args := []any{string(purgeable[0]), string(purgeable[1]), string(purgeable[2]), res.Before, res.Before}
	if p.DryRun {
		err := db.db.GetContext(ctx, &res.Purged, db.rebind(`SELECT count(*) FROM webhook_events WHERE `+cond), args...)
		return res, translate(err)
	}
	// The condition is repeated on the DELETE itself: PostgreSQL, having
	// waited for a row's lock (a replay under way), checks again only the
	// outer statement's, and would delete a row that became pending.
	del := fmt.Sprintf(`DELETE FROM webhook_events WHERE event_id IN (SELECT event_id FROM webhook_events WHERE %[1]s LIMIT %[2]d) AND %[1]s`, cond, purgeBatch)
	for {
		var n int64
		err := db.withRetry(ctx, func(tx *sqlx.Tx) error {
			var err error
			n, err = db.execCount(ctx, tx, del, args)
			return err
		})
		res.Purged += n
		if err != nil || n == 0 {
			return res, err
		}
	}
}
