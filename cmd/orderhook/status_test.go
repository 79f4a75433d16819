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
func statusRows(base time.Time) []opsRow {
	return []opsRow{
		{id: "evt_0", typ: "customer.created", customer: "cus_z", status: store.StatusApplied, received: base.Add(-48 * time.Hour), secret: 1},
		{id: "evt_1", typ: "customer.created", customer: "cus_a", status: store.StatusApplied, received: base.Add(-6 * time.Hour)},
		{id: "evt_2", typ: "invoice.paid", customer: "cus_b", status: store.StatusDeferred, waitingFor: "customer:cus_b", received: base.Add(-5 * time.Hour)},
		{id: "evt_3", typ: "invoice.payment_failed", customer: "cus_b", status: store.StatusDeferred, waitingFor: "customer:cus_b", received: base.Add(-4 * time.Hour)},
		{id: "evt_4", typ: "invoice.paid", customer: "cus_c", status: store.StatusDead, lastError: "handler: boom", attempts: 12, received: base.Add(-3 * time.Hour)},
		{id: "evt_5", typ: "customer.subscription.created", customer: "cus_d", status: store.StatusPending, received: base.Add(-2 * time.Hour)},
		{id: "evt_6", typ: "product.created", status: store.StatusIgnored, received: base.Add(-time.Hour), secret: 1},
		{id: "evt_7", typ: "invoice.paid", customer: "cus_e", status: store.StatusDeferred, waitingFor: "customer:cus_e", received: base.Add(-30 * time.Minute)},
	}
}

func TestStatusReportsAndExitsOneOnDeadEvents(t *testing.T) {
	t.Parallel()
	storetest.Dialects(t, func(t *testing.T, url string) {
		c := newOpsCLI(t, url)
		base := time.Now().UTC().Truncate(time.Second)
		c.seed(t, statusRows(base)...)

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
