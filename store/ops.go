package store

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/lib/pq"
)

// ErrInvalidInput is returned when an operator request cannot be run as
// given: a malformed cursor, a discard without a reason, a replay naming
// neither events nor a filter.
var ErrInvalidInput = errors.New("invalid input")

// Listing limits.
const (
	DefaultListLimit = 50
	MaxListLimit     = 1000
)

// EventFilter selects inbox rows for the operator listings and bulk replays.
// Zero fields do not filter.
type EventFilter struct {
	Statuses []Status `json:"statuses,omitempty"`
	// Types are exact event types, or prefixes ending in "*" ("invoice.*").
	Types      []string  `json:"types,omitempty"`
	CustomerID string    `json:"customer_id,omitempty"`
	Since      time.Time `json:"since,omitzero"`   // received_at >= Since
	Until      time.Time `json:"until,omitzero"`   // received_at < Until
	Limit      int       `json:"limit,omitempty"`  // page size of ListEvents; default 50, at most 1000
	Cursor     string    `json:"cursor,omitempty"` // EventPage.NextCursor of the previous page
}

// ParseTimeBound reads a bound of EventFilter.Since or Until as operators
// write it: an RFC 3339 time, a date (2006-01-02, UTC), or a duration before
// now (24h). "" is the zero time, no bound. It returns an error naming the
// accepted forms, and for a negative duration, which would be a time to come
// and match nothing yet.
func ParseTimeBound(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		if d < 0 {
			return time.Time{}, fmt.Errorf("%q is a duration to come: a duration counts back from now, so write %s", s, -d)
		}
		return now.Add(-d), nil
	}
	for _, layout := range []string{time.RFC3339, "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not an RFC 3339 time, a date (2006-01-02) or a duration (24h)", s)
}

// EventPage is one page of ListEvents, newest first. NextCursor is empty on
// the last page. Payloads are not loaded.
type EventPage struct {
	Events     []Event `json:"events"`
	NextCursor string  `json:"next_cursor,omitempty"`
}

// ListEvents returns the rows matching f, newest received first, one page at
// a time (keyset pagination on received_at and event_id, so pages stay stable
// while events arrive). It returns an error wrapping ErrInvalidInput for a
// malformed cursor or status.
func (db *DB) ListEvents(ctx context.Context, f EventFilter) (EventPage, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = DefaultListLimit
	}
	limit = min(limit, MaxListLimit)
	w, err := db.filterWhere(f)
	if err != nil {
		return EventPage{}, err
	}
	if f.Cursor != "" {
		c, err := decodeCursor(f.Cursor)
		if err != nil {
			return EventPage{}, err
		}
		t := w.arg(c.ReceivedAt)
		w.add("(received_at < " + t + " OR (received_at = " + t + " AND event_id < " + w.arg(c.EventID) + "))")
	}
	query := `SELECT ` + summaryColumns + ` FROM webhook_events` + w.sql() +
		` ORDER BY received_at DESC, event_id DESC LIMIT ` + w.arg(limit+1)
	page := EventPage{Events: []Event{}}
	if err := db.db.SelectContext(ctx, &page.Events, db.rebind(query), w.args...); err != nil {
		return EventPage{}, fmt.Errorf("list events: %w", translate(err))
	}
	if len(page.Events) > limit {
		page.Events = page.Events[:limit]
		last := page.Events[limit-1]
		page.NextCursor = encodeCursor(cursor{ReceivedAt: last.ReceivedAt, EventID: last.ID})
	}
	return page, nil
}

// summaryColumns selects an Event without its payload.
const summaryColumns = `event_id, type, api_version, livemode, created,
	COALESCE(customer_id, '') AS customer_id, COALESCE(object_id, '') AS object_id,
	received_at, status, attempts, next_attempt_at,
	COALESCE(waiting_for, '') AS waiting_for, COALESCE(last_error, '') AS last_error,
	applied_at, COALESCE(lease_owner, '') AS lease_owner, lease_expires_at, secret_index`

// EventDetail is an inbox row, payload included, with its history.
type EventDetail struct {
	Event    Event     `json:"event"`
	Attempts []Attempt `json:"attempts"`
}

// EventDetail returns the event with the given id and its attempts, oldest
// first, or an error wrapping ErrNotFound.
func (db *DB) EventDetail(ctx context.Context, id string) (EventDetail, error) {
	ev, err := db.Event(ctx, id)
	if err != nil {
		return EventDetail{}, err
	}
	attempts, err := db.Attempts(ctx, id)
	if err != nil {
		return EventDetail{}, err
	}
	return EventDetail{Event: ev, Attempts: append([]Attempt{}, attempts...)}, nil
}

// cursor is the position after which the next page starts.
type cursor struct {
	ReceivedAt time.Time `json:"r"`
	EventID    string    `json:"i"`
}

func encodeCursor(c cursor) string {
	c.ReceivedAt = c.ReceivedAt.UTC()
	b, _ := json.Marshal(c) // a time and a string always marshal
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeCursor(s string) (cursor, error) {
	var c cursor
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err == nil {
		err = json.Unmarshal(b, &c)
	}
	if err != nil || c.EventID == "" {
		return cursor{}, fmt.Errorf("%w: cursor %q is not one this server returned", ErrInvalidInput, s)
	}
	c.ReceivedAt = c.ReceivedAt.UTC()
	return c, nil
}

// where builds a WHERE clause with numbered placeholders; values only ever
// travel as arguments.
type where struct {
	db    *DB
	conds []string
	args  []any
}

// arg appends v and returns its placeholder.
func (w *where) arg(v any) string {
	if t, ok := v.(time.Time); ok {
		v = t.UTC()
	}
	w.args = append(w.args, v)
	return fmt.Sprintf("$%d", len(w.args))
}

func (w *where) add(cond string) { w.conds = append(w.conds, cond) }

// in returns "col IN list", the list travelling as one argument.
func (w *where) in(col string, values []string) string {
	if w.db.dialect == Postgres {
		return col + " = ANY(" + w.arg(pq.StringArray(values)) + ")"
	}
	b, _ := json.Marshal(values) // strings always marshal
	return col + " IN (SELECT value FROM json_each(" + w.arg(string(b)) + "))"
}

func (w *where) sql() string {
	if len(w.conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(w.conds, " AND ")
}

// filterWhere turns f (but not its cursor) into conditions.
func (db *DB) filterWhere(f EventFilter) (*where, error) {
	w := &where{db: db}
	if len(f.Statuses) > 0 {
		for _, s := range f.Statuses {
			if !slices.Contains(Statuses, s) {
				return nil, fmt.Errorf("%w: status %q: use one of %s", ErrInvalidInput, s, statusList(Statuses))
			}
		}
		w.add(w.in("status", statusStrings(f.Statuses)))
	}
	if len(f.Types) > 0 {
		var or []string
		for _, t := range f.Types {
			if prefix, ok := strings.CutSuffix(t, "*"); ok {
				or = append(or, "substr(type, 1, "+w.arg(len(prefix))+") = "+w.arg(prefix))
			} else {
				or = append(or, "type = "+w.arg(t))
			}
		}
		w.add("(" + strings.Join(or, " OR ") + ")")
	}
	if f.CustomerID != "" {
		w.add("customer_id = " + w.arg(f.CustomerID))
	}
	if !f.Since.IsZero() {
		w.add("received_at >= " + w.arg(f.Since))
	}
	if !f.Until.IsZero() {
		w.add("received_at < " + w.arg(f.Until))
	}
	return w, nil
}

func statusStrings(ss []Status) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = string(s)
	}
	return out
}

func statusList(ss []Status) string { return strings.Join(statusStrings(ss), ", ") }

// orNow returns t in UTC, or the current time when t is zero: an operation
// stamped in year 1 would refuse every leased row and date its history
// wrong.
func orNow(t time.Time) time.Time {
	if t.IsZero() {
		return time.Now().UTC()
	}
	return t.UTC()
}
