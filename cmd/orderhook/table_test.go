package main

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orderhook/orderhook/store"
	"github.com/orderhook/orderhook/store/storetest"
)

func TestFmtAge(t *testing.T) {
	t.Parallel()
	for d, want := range map[time.Duration]string{
		-time.Second:                     "0s",
		59 * time.Second:                 "59s",
		time.Minute + 30*time.Second:     "1m",
		2*time.Hour + 5*time.Minute:      "2h05m",
		47*time.Hour + 59*time.Minute:    "47h59m",
		3*24*time.Hour + 4*time.Hour + 1: "3d04h",
	} {
		require.Equal(t, want, fmtAge(d), d)
	}
}

func TestClipAndTable(t *testing.T) {
	t.Parallel()
	require.Equal(t, "abc", clip("abc", 3))
	require.Equal(t, "ab…", clip("abcd", 3))
	var b bytes.Buffer
	tb := newTable(&b, "A", "LONGER")
	tb.row("x\ty", "multi\nline")
	require.NoError(t, tb.flush())
	require.Equal(t, "A    LONGER\nx y  multi line\n", b.String())
}

// opsT is the fixed time of the CLI fixtures.
var opsT = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// opsCLI runs orderhook in-process against one migrated database.
type opsCLI struct {
	url string
	db  *store.DB
}

func newOpsCLI(t *testing.T, url string) opsCLI {
	t.Helper()
	return opsCLI{url: url, db: storetest.Open(t, url)}
}

// run runs `orderhook args… --db URL` with stdin and USER=ops, and returns
// what it printed.
func (c opsCLI) run(stdin string, args ...string) (stdout, stderr string, err error) {
	var out, errOut bytes.Buffer
	getenv := func(k string) string { return map[string]string{"USER": "ops"}[k] }
	err = run(context.Background(), append(args, "--db", c.url), getenv, strings.NewReader(stdin), &out, &errOut)
	return out.String(), errOut.String(), err
}

// opsRow is one seeded inbox row.
type opsRow struct {
	id, typ, customer string
	status            store.Status
	received          time.Time
	waitingFor        string
	lastError         string
	attempts          int
	secret            int
}

// seed inserts rows as the receiver would, then sets their state directly,
// as workers would have.
func (c opsCLI) seed(t *testing.T, rows ...opsRow) {
	t.Helper()
	ctx := context.Background()
	for _, r := range rows {
		_, err := c.db.InsertEvent(ctx, store.Event{
			ID: r.id, Type: r.typ, APIVersion: "2025-03-31.basil", Created: r.received.Add(-time.Second), CustomerID: r.customer,
			Payload: []byte(`{"id": "` + r.id + `", "object": "event"}`), ReceivedAt: r.received, SecretIndex: r.secret,
		})
		require.NoError(t, err)
		_, err = c.db.SQLX().ExecContext(ctx, `UPDATE webhook_events SET status = $2, waiting_for = NULLIF($3, ''),
			last_error = NULLIF($4, ''), attempts = $5 WHERE event_id = $1`, r.id, string(r.status), r.waitingFor, r.lastError, r.attempts)
		require.NoError(t, err)
	}
}

// bulkDead inserts n dead rows of type typ, one second apart from start, in
// one transaction of multi-row INSERTs.
func (c opsCLI) bulkDead(t *testing.T, prefix, typ string, n int, start time.Time) {
	t.Helper()
	ctx := context.Background()
	tx, err := c.db.SQLX().BeginTxx(ctx, nil)
	require.NoError(t, err)
	for first := 0; first < n; first += 200 {
		var values []string
		var args []any
		for i := first; i < min(first+200, n); i++ {
			k := len(args)
			values = append(values, fmt.Sprintf("($%d, $%d, $%d, $%d, '{}', $%d, 'dead', 12, $%d, 'boom')", k+1, k+2, k+3, k+4, k+3, k+3))
			args = append(args, fmt.Sprintf("%s_%05d", prefix, i), typ, start.Add(time.Duration(i)*time.Second), "cus_bulk")
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO webhook_events (event_id, type, created, customer_id, payload,
			received_at, status, attempts, next_attempt_at, last_error) VALUES `+strings.Join(values, ", "), args...)
		require.NoError(t, err)
	}
	require.NoError(t, tx.Commit())
}

// requireExit checks the exit code run's error maps to.
func requireExit(t *testing.T, want int, err error) {
	t.Helper()
	require.Equal(t, want, exitCode(err), "error: %v", err)
}
