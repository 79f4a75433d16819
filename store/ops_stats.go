package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"
)

// Stats is the state of the inbox at a moment, for `orderhook status`.
type Stats struct {
	Now    time.Time      `json:"now"`
	Counts map[Status]int `json:"counts"` // every status, zeros included
	Total  int            `json:"total"`
	Dead   int            `json:"dead"`
	Leased int            `json:"leased"` // pending rows a worker holds right now
	// OldestPending and OldestDeferred are nil when no row has the status.
	OldestPending  *OldestEvent `json:"oldest_pending"`
	OldestDeferred *OldestEvent `json:"oldest_deferred"`
	// Waiting groups deferred rows by what they wait for, largest first, at
	// most the requested number; WaitingKeys counts every distinct key.
	Waiting     []WaitingGroup `json:"waiting"`
	WaitingKeys int            `json:"waiting_keys"`
	// Secrets counts the events each configured secret verified in the last
	// 24 hours, by secret index.
	Secrets []SecretUse `json:"secrets_24h"`
}

// OldestEvent names the oldest row of a status and its age.
type OldestEvent struct {
	EventID    string    `json:"event_id"`
	ReceivedAt time.Time `json:"received_at"`
	AgeSeconds int64     `json:"age_seconds"`
}

// Age is how long the event has been in the inbox.
func (o OldestEvent) Age() time.Duration { return time.Duration(o.AgeSeconds) * time.Second }

// WaitingGroup is the number of deferred rows waiting for one dependency.
type WaitingGroup struct {
	WaitingFor       string    `json:"waiting_for"`
	Events           int       `json:"events"`
	OldestReceivedAt time.Time `json:"oldest_received_at"`
}

// SecretUse is how many events one signing secret verified in a window.
type SecretUse struct {
	Index          int       `json:"index"`
	Events         int       `json:"events"`
	LastReceivedAt time.Time `json:"last_received_at"`
}

// Stats summarizes the inbox at now, with at most top waiting groups
// (default 10). It returns an error wrapping ErrUnavailable when the database
// cannot be reached.
func (db *DB) Stats(ctx context.Context, now time.Time, top int) (Stats, error) {
	now = now.UTC()
	if top <= 0 {
		top = 10
	}
	s := Stats{Now: now, Counts: make(map[Status]int, len(Statuses)), Waiting: []WaitingGroup{}, Secrets: []SecretUse{}}
	err := db.withTx(ctx, func(tx *sqlx.Tx) error {
		steps := []func(context.Context, *sqlx.Tx, *Stats, int) error{db.statsCounts, db.statsOldest, db.statsWaiting, db.statsSecrets}
		for _, step := range steps {
			if err := step(ctx, tx, &s, top); err != nil {
				return fmt.Errorf("stats: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return Stats{}, err
	}
	return s, nil
}

func (db *DB) statsCounts(ctx context.Context, tx *sqlx.Tx, s *Stats, _ int) error {
	var rows []struct {
		Status Status `db:"status"`
		N      int    `db:"n"`
	}
	if err := tx.SelectContext(ctx, &rows, `SELECT status, count(*) AS n FROM webhook_events GROUP BY status`); err != nil {
		return translate(err)
	}
	for _, st := range Statuses {
		s.Counts[st] = 0
	}
	for _, r := range rows {
		s.Counts[r.Status] = r.N
		s.Total += r.N
	}
	s.Dead = s.Counts[StatusDead]
	return translate(tx.GetContext(ctx, &s.Leased, db.rebind(`SELECT count(*) FROM webhook_events
		WHERE status = 'pending' AND lease_expires_at IS NOT NULL AND lease_expires_at > $1`), s.Now))
}

func (db *DB) statsOldest(ctx context.Context, tx *sqlx.Tx, s *Stats, _ int) error {
	for _, o := range []struct {
		status Status
		dst    **OldestEvent
	}{{StatusPending, &s.OldestPending}, {StatusDeferred, &s.OldestDeferred}} {
		var row struct {
			ID         string `db:"event_id"`
			ReceivedAt dbTime `db:"received_at"`
		}
		err := tx.GetContext(ctx, &row, db.rebind(`SELECT event_id, received_at FROM webhook_events
			WHERE status = $1 ORDER BY received_at, event_id LIMIT 1`), o.status)
		if errors.Is(err, sql.ErrNoRows) {
			continue
		}
		if err != nil {
			return translate(err)
		}
		age := int64(max(s.Now.Sub(row.ReceivedAt.Time), 0) / time.Second)
		*o.dst = &OldestEvent{EventID: row.ID, ReceivedAt: row.ReceivedAt.Time, AgeSeconds: age}
	}
	return nil
}

func (db *DB) statsWaiting(ctx context.Context, tx *sqlx.Tx, s *Stats, top int) error {
	var rows []struct {
		WaitingFor string `db:"waiting_for"`
		N          int    `db:"n"`
		Oldest     dbTime `db:"oldest"`
	}
	err := tx.SelectContext(ctx, &rows, db.rebind(`
		SELECT COALESCE(waiting_for, '') AS waiting_for, count(*) AS n, min(received_at) AS oldest
		FROM webhook_events WHERE status = 'deferred'
		GROUP BY waiting_for ORDER BY n DESC, waiting_for LIMIT $1`), top)
	if err != nil {
		return translate(err)
	}
	for _, r := range rows {
		s.Waiting = append(s.Waiting, WaitingGroup{WaitingFor: r.WaitingFor, Events: r.N, OldestReceivedAt: r.Oldest.Time})
	}
	return translate(tx.GetContext(ctx, &s.WaitingKeys,
		`SELECT count(DISTINCT waiting_for) FROM webhook_events WHERE status = 'deferred'`))
}

func (db *DB) statsSecrets(ctx context.Context, tx *sqlx.Tx, s *Stats, _ int) error {
	var rows []struct {
		Index int    `db:"secret_index"`
		N     int    `db:"n"`
		Last  dbTime `db:"last"`
	}
	err := tx.SelectContext(ctx, &rows, db.rebind(`
		SELECT secret_index, count(*) AS n, max(received_at) AS last FROM webhook_events
		WHERE received_at >= $1 GROUP BY secret_index ORDER BY secret_index`), s.Now.Add(-24*time.Hour))
	if err != nil {
		return translate(err)
	}
	for _, r := range rows {
		s.Secrets = append(s.Secrets, SecretUse{Index: r.Index, Events: r.N, LastReceivedAt: r.Last.Time})
	}
	return nil
}

// dbTime scans a time that SQLite returns as text from an aggregate such as
// min(received_at), where the driver cannot know the column's type.
type dbTime struct{ time.Time }

// Scan implements sql.Scanner.
func (t *dbTime) Scan(v any) error {
	switch v := v.(type) {
	case time.Time:
		t.Time = v.UTC()
		return nil
	case string:
		return t.parse(v)
	case []byte:
		return t.parse(string(v))
	case nil:
		t.Time = time.Time{}
		return nil
	}
	return fmt.Errorf("scan time from %T", v)
}

func (t *dbTime) parse(s string) error {
	for _, layout := range []string{"2006-01-02 15:04:05.999999999-07:00", "2006-01-02 15:04:05.999999999Z07:00", time.RFC3339Nano} {
		if p, err := time.Parse(layout, s); err == nil {
			t.Time = p.UTC()
			return nil
		}
	}
	return fmt.Errorf("scan time from %q", s)
}

var _ sql.Scanner = (*dbTime)(nil)
