package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orderhook/orderhook/store"
	"github.com/orderhook/orderhook/store/storetest"
)

// statusRows are received relative to base, since status measures ages
// against the real clock.
func statusRows(base time.Time) []storetest.Row {
	return []storetest.Row{
		{ID: "evt_0", Type: "customer.created", CustomerID: "cus_z", Status: store.StatusApplied, Received: base.Add(-48 * time.Hour), SecretIndex: 1},
		{ID: "evt_1", Type: "customer.created", CustomerID: "cus_a", Status: store.StatusApplied, Received: base.Add(-6 * time.Hour)},
		{ID: "evt_2", Type: "invoice.paid", CustomerID: "cus_b", Status: store.StatusDeferred, WaitingFor: "customer:cus_b", Received: base.Add(-5 * time.Hour)},
		{ID: "evt_3", Type: "invoice.payment_failed", CustomerID: "cus_b", Status: store.StatusDeferred, WaitingFor: "customer:cus_b", Received: base.Add(-4 * time.Hour)},
		{ID: "evt_4", Type: "invoice.paid", CustomerID: "cus_c", Status: store.StatusDead, LastError: "handler: boom", Attempts: 12, Received: base.Add(-3 * time.Hour)},
		{ID: "evt_5", Type: "customer.subscription.created", CustomerID: "cus_d", Status: store.StatusPending, Received: base.Add(-2 * time.Hour)},
		{ID: "evt_6", Type: "product.created", Status: store.StatusIgnored, Received: base.Add(-time.Hour), SecretIndex: 1},
		{ID: "evt_7", Type: "invoice.paid", CustomerID: "cus_e", Status: store.StatusDeferred, WaitingFor: "customer:cus_e", Received: base.Add(-30 * time.Minute)},
	}
}

func TestStatusReportsAndExitsOneOnDeadEvents(t *testing.T) {
	t.Parallel()
	storetest.Dialects(t, func(t *testing.T, url string) {
		c := newOpsCLI(t, url)
		base := time.Now().UTC().Truncate(time.Second)
		storetest.Seed(t, c.db, statusRows(base)...)

		out, stderr, err := c.run("", "status")
		require.ErrorIs(t, err, errProblemsFound)
		requireExit(t, 1, err)
		require.Empty(t, stderr)
		require.Equal(t, fmt.Sprintf(`STATUS     EVENTS
pending    1
deferred   3
applied    2
ignored    1
dead       1
discarded  0
total      8

oldest pending:  evt_5, received %s (2h00m ago)
oldest deferred: evt_2, received %s (5h00m ago)

deferred events by what they wait for (top 2 of 2):
WAITING FOR     EVENTS  OLDEST
customer:cus_b  2       5h00m ago
customer:cus_e  1       30m ago

events per signing secret, last 24h:
SECRET  EVENTS  LAST RECEIVED
#0      6       30m ago
#1      1       1h00m ago

1 dead event: see why with `+"`orderhook dead list`"+`, replay with `+"`orderhook dead replay --all`"+` once fixed.
`, fmtTime(base.Add(-2*time.Hour)), fmtTime(base.Add(-5*time.Hour))), out)

		out, _, err = c.run("", "status", "--json", "--top", "1")
		requireExit(t, 1, err)
		var got map[string]any
		require.NoError(t, json.Unmarshal([]byte(out), &got))
		now, err := time.Parse(time.RFC3339Nano, got["now"].(string))
		require.NoError(t, err)
		require.WithinDuration(t, base, now, time.Minute)
		pending := got["oldest_pending"].(map[string]any)
		require.InDelta(t, 7200, pending["age_seconds"], 60)
		delete(got, "now")
		delete(pending, "age_seconds")
		delete(got["oldest_deferred"].(map[string]any), "age_seconds")
		want := fmt.Sprintf(`{
			"counts": {"pending": 1, "deferred": 3, "applied": 2, "ignored": 1, "dead": 1, "discarded": 0},
			"total": 8, "dead": 1, "leased": 0,
			"oldest_pending": {"event_id": "evt_5", "received_at": %q},
			"oldest_deferred": {"event_id": "evt_2", "received_at": %q},
			"waiting": [{"waiting_for": "customer:cus_b", "events": 2, "oldest_received_at": %q}],
			"waiting_keys": 2,
			"secrets_24h": [{"index": 0, "events": 6, "last_received_at": %q}, {"index": 1, "events": 1, "last_received_at": %q}]
		}`, rfc(base.Add(-2*time.Hour)), rfc(base.Add(-5*time.Hour)), rfc(base.Add(-5*time.Hour)), rfc(base.Add(-30*time.Minute)), rfc(base.Add(-time.Hour)))
		gotJSON, err := json.Marshal(got)
		require.NoError(t, err)
		require.JSONEq(t, want, string(gotJSON))
	})
}

func rfc(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

func TestStatusOfAnEmptyInboxExitsZero(t *testing.T) {
	t.Parallel()
	c := newOpsCLI(t, storetest.SQLiteURL(t))
	out, _, err := c.run("", "status")
	require.NoError(t, err)
	require.Equal(t, `STATUS     EVENTS
pending    0
deferred   0
applied    0
ignored    0
dead       0
discarded  0
total      0

oldest pending:  none
oldest deferred: none

events per signing secret, last 24h:
none received
`, out)

	_, stderr, err := c.run("", "status", "--top", "0")
	requireExit(t, 2, err)
	require.Contains(t, err.Error(), "--top 0")
	require.Empty(t, stderr)

	err = run(t.Context(), []string{"status", "--db", "mysql://x"}, func(string) string { return "" }, nil, io.Discard, io.Discard)
	requireExit(t, 2, err)
	require.False(t, errors.Is(err, errProblemsFound))
}
