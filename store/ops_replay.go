package store

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/jmoiron/sqlx"
)

// ReplayParams says which events an operator puts back to work, who does it
// and why.
type ReplayParams struct {
	// IDs names the events to replay. When empty, Filter selects them: it
	// must then name Statuses, and Limit and Cursor are ignored. With IDs,
	// only Filter.Statuses is honoured: it restricts which states are
	// accepted (for example only dead rows).
	IDs    []string
	Filter EventFilter
	// Force also replays applied, ignored and discarded rows: they run
	// through the appliers and handlers again.
	Force  bool
	DryRun bool // count and check, change nothing
	Actor  string
	Reason string
	Now    time.Time // default the current time
	// BatchSize is how many rows one transaction changes; default 500.
	BatchSize int
	// Progress, when set, is called after each committed batch.
	Progress func(done, total int)
}

// ReplayResult reports what Replay matched and did.
type ReplayResult struct {
	DryRun   bool      `json:"dry_run"`
	Matched  int       `json:"matched"`  // rows that exist and match
	Eligible int       `json:"eligible"` // of those, replayable now: with DryRun, what would be replayed
	Replayed int       `json:"replayed"`
	Refused  []Refusal `json:"refused"` // named events that were not replayed, with why
}

// replayable are the states an operator may replay without force.
var replayable = []Status{StatusDead, StatusDeferred, StatusPending}

// Replay puts the selected events back to pending, due at p.Now, with
// attempts reset to 0, waiting_for and last_error cleared and any expired
// lease dropped; workers then process them as new, dependencies included.
// Each replayed row gets a `replayed` attempt naming p.Actor, whose error
// column keeps the last_error the row had and whose detail says the former
// status and p.Reason. Rows under an unexpired lease are never touched: a
// named one is refused with ErrLeased. A named row in another state than
// accepted is refused with ErrConflict, a missing one with ErrNotFound; these
// refusals are reported in the result, not as an error. Replay returns an
// error wrapping ErrInvalidInput for a request that selects nothing, and
// ErrUnavailable when the database cannot be reached.
func (db *DB) Replay(ctx context.Context, p ReplayParams) (ReplayResult, error) {
	if err := checkReason(p.Reason); err != nil {
		return ReplayResult{}, err
	}
	p.Now = orNow(p.Now)
	if p.BatchSize <= 0 {
		p.BatchSize = 500
	}
	accepted, hint, err := replayStates(p)
	if err != nil {
		return ReplayResult{}, err
	}
	var res ReplayResult
	switch {
	case len(p.IDs) > 0:
		if len(dedupe(p.IDs)) == 0 {
			// Not a filter of nothing: that would replay every row.
			return ReplayResult{}, fmt.Errorf("%w: the event ids are blank", ErrInvalidInput)
		}
		if f := p.Filter; len(f.Types) > 0 || f.CustomerID != "" || !f.Since.IsZero() || !f.Until.IsZero() {
			return ReplayResult{}, fmt.Errorf("%w: name events or filter them, not both", ErrInvalidInput)
		}
		res, err = db.replayIDs(ctx, p, accepted, hint)
	case len(p.Filter.Statuses) > 0:
		res, err = db.replayFilter(ctx, p, accepted)
	default:
		return ReplayResult{}, fmt.Errorf("%w: replay needs event ids or a filter with statuses", ErrInvalidInput)
	}
	if res.Replayed > 0 {
		db.notify()
	}
	return res, err
}

// replayStates returns the states p may replay, and a function that says
// why a row in another state is refused.
func replayStates(p ReplayParams) ([]Status, func(Status) string, error) {
	accepted := slices.Clone(replayable)
	if p.Force {
		accepted = append(accepted, StatusApplied, StatusIgnored, StatusDiscarded)
	}
	restrict := p.Filter.Statuses
	for _, s := range restrict {
		if !slices.Contains(Statuses, s) {
			return nil, nil, fmt.Errorf("%w: status %q: use one of %s", ErrInvalidInput, s, statusList(Statuses))
		}
	}
	if len(restrict) > 0 {
		accepted = slices.DeleteFunc(accepted, func(s Status) bool { return !slices.Contains(restrict, s) })
	}
	hint := func(s Status) string {
		if len(restrict) > 0 && !slices.Contains(restrict, s) {
			return ", not " + statusList(restrict)
		}
		return "; replaying it again needs force"
	}
	return accepted, hint, nil
}

// replayIDs replays named events, batch by batch, each batch locked first.
func (db *DB) replayIDs(ctx context.Context, p ReplayParams, accepted []Status, hint func(Status) string) (ReplayResult, error) {
	ids := dedupe(p.IDs)
	res := ReplayResult{DryRun: p.DryRun, Refused: []Refusal{}}
	done := 0
	for _, batch := range chunks(ids, p.BatchSize) {
		var b ReplayResult
		err := db.withRetry(ctx, func(tx *sqlx.Tx) error {
			b = ReplayResult{}
			ok, err := db.checkRows(ctx, tx, batch, accepted, p.Now, hint, &b.Matched, &b.Refused)
			b.Eligible = len(ok)
			if err != nil || p.DryRun || len(ok) == 0 {
				return err
			}
			b.Replayed, err = db.replayRows(ctx, tx, ok, accepted, p)
			return err
		})
		if err != nil {
			return res, err
		}
		res.Matched += b.Matched
		res.Eligible += b.Eligible
		res.Replayed += b.Replayed
		res.Refused = append(res.Refused, b.Refused...)
		done += len(batch)
		if p.Progress != nil {
			p.Progress(done, len(ids))
		}
	}
	return res, nil
}

// checkRows locks the rows named by ids and returns those that may change;
// it counts the ones that exist and records why the others are refused.
func (db *DB) checkRows(ctx context.Context, tx *sqlx.Tx, ids []string, accepted []Status, now time.Time,
	hint func(Status) string, matched *int, refused *[]Refusal,
) ([]string, error) {
	rows, err := db.lockRows(ctx, tx, ids)
	if err != nil {
		return nil, err
	}
	var ok []string
	for _, id := range ids {
		r, found := rows[id]
		if found {
			*matched++
		}
		if ref := refuse(id, r, found, accepted, now, hint); ref != nil {
			*refused = append(*refused, *ref)
			continue
		}
		ok = append(ok, id)
	}
	return ok, nil
}

// replayFilter counts the rows matching p.Filter, then replays the eligible
// ones oldest first, one transaction per batch. On PostgreSQL rows locked by
// a concurrent transaction are skipped (Replayed < Eligible), never waited
// for.
func (db *DB) replayFilter(ctx context.Context, p ReplayParams, accepted []Status) (ReplayResult, error) {
	res := ReplayResult{DryRun: p.DryRun, Refused: []Refusal{}}
	if err := db.countReplayable(ctx, p.Filter, accepted, p.Now, &res); err != nil || p.DryRun || res.Eligible == 0 {
		return res, err
	}
	var after *cursor
	for {
		var selected, replayed int
		err := db.withTx(ctx, func(tx *sqlx.Tx) error {
			ids, last, err := db.nextBatch(ctx, tx, p, accepted, after)
			if err != nil || len(ids) == 0 {
				return err
			}
			selected, after = len(ids), &last
			replayed, err = db.replayRows(ctx, tx, ids, accepted, p)
			return err
		})
		if err != nil || selected == 0 {
			return res, err
		}
		res.Replayed += replayed
		if p.Progress != nil {
			p.Progress(min(res.Replayed, res.Eligible), res.Eligible)
		}
	}
}

// countReplayable fills res.Matched and res.Eligible for a filter replay.
func (db *DB) countReplayable(ctx context.Context, f EventFilter, accepted []Status, now time.Time, res *ReplayResult) error {
	w, err := db.filterWhere(f)
	if err != nil {
		return err
	}
	var counts struct {
		Matched  int `db:"matched"`
		Eligible int `db:"eligible"`
	}
	guard := w.in("status", statusStrings(accepted)) + " AND " + notLeased(w.arg(now))
	query := `SELECT count(*) AS matched, COALESCE(sum(CASE WHEN ` + guard + ` THEN 1 ELSE 0 END), 0) AS eligible
		FROM webhook_events` + w.sql()
	if err := db.db.GetContext(ctx, &counts, db.rebind(query), w.args...); err != nil {
		return fmt.Errorf("count events to replay: %w", translate(err))
	}
	res.Matched, res.Eligible = counts.Matched, counts.Eligible
	return nil
}

// nextBatch selects (and on PostgreSQL locks) the next eligible ids after
// the cursor, oldest first, and returns them with the new cursor.
func (db *DB) nextBatch(ctx context.Context, tx *sqlx.Tx, p ReplayParams, accepted []Status, after *cursor) ([]string, cursor, error) {
	w, err := db.filterWhere(p.Filter)
	if err != nil {
		return nil, cursor{}, err
	}
	w.add(w.in("status", statusStrings(accepted)))
	w.add(notLeased(w.arg(p.Now)))
	if after != nil {
		t := w.arg(after.ReceivedAt)
		w.add("(received_at > " + t + " OR (received_at = " + t + " AND event_id > " + w.arg(after.EventID) + "))")
	}
	query := `SELECT event_id, received_at FROM webhook_events` + w.sql() +
		` ORDER BY received_at, event_id LIMIT ` + w.arg(p.BatchSize)
	if db.dialect == Postgres {
		query += ` FOR UPDATE SKIP LOCKED`
	}
	var rows []struct {
		ID         string    `db:"event_id"`
		ReceivedAt time.Time `db:"received_at"`
	}
	if err := tx.SelectContext(ctx, &rows, db.rebind(query), w.args...); err != nil {
		return nil, cursor{}, fmt.Errorf("select events to replay: %w", translate(err))
	}
	if len(rows) == 0 {
		return nil, cursor{}, nil
	}
	ids := make([]string, len(rows))
	for i, r := range rows {
		ids[i] = r.ID
	}
	last := rows[len(rows)-1]
	return ids, cursor{ReceivedAt: last.ReceivedAt.UTC(), EventID: last.ID}, nil
}

// replayRows records a `replayed` attempt for, then resets, the rows among
// ids still in an accepted state and not leased: two guarded statements in
// the caller's transaction. It returns how many rows it replayed.
func (db *DB) replayRows(ctx context.Context, tx *sqlx.Tx, ids []string, accepted []Status, p ReplayParams) (int, error) {
	detail := ""
	if p.Reason != "" {
		detail = ": " + p.Reason
	}
	ins, now, guard := db.guard(ids, accepted, p.Now)
	recorded, err := db.execCount(ctx, tx, `
		INSERT INTO event_attempts (event_id, at, outcome, attempt, actor, error, detail)
		SELECT event_id, `+now+`, 'replayed', attempts, `+ins.arg(nullable(p.Actor))+`, last_error,
			'from ' || status || `+ins.arg(detail)+`
		FROM webhook_events WHERE `+guard, ins.args)
	if err != nil {
		return 0, fmt.Errorf("record replays: %w", err)
	}
	upd, now, guard := db.guard(ids, accepted, p.Now)
	updated, err := db.execCount(ctx, tx, `
		UPDATE webhook_events SET status = 'pending', attempts = 0, last_error = NULL, waiting_for = NULL, released_at = NULL,
			next_attempt_at = `+now+`, lease_owner = NULL, lease_expires_at = NULL
		WHERE `+guard, upd.args)
	if err != nil {
		return 0, fmt.Errorf("replay events: %w", err)
	}
	if updated != recorded {
		return 0, fmt.Errorf("replay events: %w: %d rows recorded but %d reset", ErrConflict, recorded, updated)
	}
	return int(updated), nil
}

// guard starts the arguments of a guarded statement over ids: rows in an
// accepted state and not under a lease at now. It returns the arguments, the
// placeholder of now and the condition.
func (db *DB) guard(ids []string, accepted []Status, now time.Time) (*where, string, string) {
	w := &where{db: db}
	at := w.arg(now)
	cond := w.in("event_id", ids) + " AND " + w.in("status", statusStrings(accepted)) + " AND " + notLeased(at)
	return w, at, cond
}

// execCount runs a statement and returns how many rows it changed.
func (db *DB) execCount(ctx context.Context, tx *sqlx.Tx, query string, args []any) (int64, error) {
	res, err := tx.ExecContext(ctx, db.rebind(query), args...)
	if err != nil {
		return 0, translate(err)
	}
	n, err := res.RowsAffected()
	return n, translate(err)
}
