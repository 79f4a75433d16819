package store

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
)

// The checks replay and discard share: lock the named rows without waiting
// for a worker, and say why one cannot be changed.

// lockRows reads the state of the rows with the given ids and returns them
// by id. On PostgreSQL it locks them without ever waiting: a row another
// transaction holds (a worker applying it right now) is returned as busy.
// SQLite transactions already exclude each other.
func (db *DB) lockRows(ctx context.Context, tx *sqlx.Tx, ids []string) (map[string]rowState, error) {
	out := make(map[string]rowState, len(ids))
	lock := ""
	if db.dialect == Postgres {
		lock = ` FOR UPDATE SKIP LOCKED`
	}
	if err := db.readRows(ctx, tx, ids, lock, out, false); err != nil {
		return nil, err
	}
	if db.dialect != Postgres || len(out) == len(ids) {
		return out, nil
	}
	var rest []string
	for _, id := range ids {
		if _, ok := out[id]; !ok {
			rest = append(rest, id)
		}
	}
	return out, db.readRows(ctx, tx, rest, "", out, true)
}

// readRows adds the rows among ids to out, marked busy or not.
func (db *DB) readRows(ctx context.Context, tx *sqlx.Tx, ids []string, lock string, out map[string]rowState, busy bool) error {
	w := &where{db: db}
	query := `SELECT event_id, status, COALESCE(lease_owner, '') AS lease_owner, lease_expires_at
		FROM webhook_events WHERE ` + w.in("event_id", ids) + lock
	var rows []rowState
	if err := tx.SelectContext(ctx, &rows, db.rebind(query), w.args...); err != nil {
		return fmt.Errorf("lock events: %w", translate(err))
	}
	for _, r := range rows {
		r.busy = busy
		out[r.ID] = r
	}
	return nil
}

// rowState is what deciding on a replay or discard needs of a row.
type rowState struct {
	ID             string     `db:"event_id"`
	Status         Status     `db:"status"`
	LeaseOwner     string     `db:"lease_owner"`
	LeaseExpiresAt *time.Time `db:"lease_expires_at"`
	busy           bool       // locked by another transaction
}

// leased reports whether a worker holds r under an unexpired lease at now.
func (r rowState) leased(now time.Time) bool {
	return r.Status == StatusPending && r.LeaseExpiresAt != nil && r.LeaseExpiresAt.After(now)
}

// Refusal says why one named event was not replayed or discarded: Reason in
// words, for people; Err wraps ErrNotFound, ErrLeased or ErrConflict and
// names the event, for code.
type Refusal struct {
	EventID string `json:"event_id"`
	Status  Status `json:"status,omitempty"`
	Reason  string `json:"reason"`
	Err     error  `json:"-"`
}

// refuse checks row r (ok false: missing) against the accepted statuses and
// the lease; it returns nil when the row may be changed.
func refuse(id string, r rowState, ok bool, accepted []Status, now time.Time, hint func(Status) string) *Refusal {
	var sentinel error
	var reason string
	switch {
	case !ok:
		sentinel, reason = ErrNotFound, "no such event in the inbox"
	case r.busy:
		sentinel, reason = ErrLeased, "a worker is applying it right now; try again in a moment"
	case r.leased(now):
		sentinel, reason = ErrLeased, fmt.Sprintf("a worker (%s) is processing it until %s; try again after that",
			r.LeaseOwner, r.LeaseExpiresAt.UTC().Format(time.RFC3339))
	case !slices.Contains(accepted, r.Status):
		sentinel, reason = ErrConflict, "it is "+string(r.Status)+hint(r.Status)
	default:
		return nil
	}
	return &Refusal{EventID: id, Status: r.Status, Reason: reason, Err: fmt.Errorf("%w: %s: %s", sentinel, id, reason)}
}

// notLeased is the SQL guard that keeps operators off rows under a lease; its
// argument is now.
func notLeased(now string) string {
	return "NOT (status = 'pending' AND lease_expires_at IS NOT NULL AND lease_expires_at > " + now + ")"
}

// dedupe returns ids without repeats or blanks, in first-seen order.
func dedupe(ids []string) []string {
	seen := make(map[string]bool, len(ids))
	out := make([]string, 0, len(ids))
	for _, id := range ids {
		if id = strings.TrimSpace(id); id != "" && !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}

// chunks splits ids into slices of at most n.
func chunks(ids []string, n int) [][]string {
	var out [][]string
	for len(ids) > n {
		out = append(out, ids[:n])
		ids = ids[n:]
	}
	if len(ids) > 0 {
		out = append(out, ids)
	}
	return out
}

// withRetry runs a transaction, rerunning it when it lost a deadlock.
func (db *DB) withRetry(ctx context.Context, fn func(tx *sqlx.Tx) error) error {
	var err error
	for range 3 {
		if err = db.withTx(ctx, fn); !isRetryable(err) {
			return err
		}
	}
	return err
}
