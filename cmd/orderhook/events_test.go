package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orderhook/orderhook/store"
	"github.com/orderhook/orderhook/store/storetest"
)

// eventsCLI seeds the fixed fixtures, with one failed attempt on evt_5.
func eventsCLI(t *testing.T, url string) opsCLI {
	t.Helper()
	c := newOpsCLI(t, url)
	storetest.Seed(t, c.db, statusRows(opsT)...)
	ctx := context.Background()
	storetest.Lease(t, c.db, "w/0", opsT.Add(time.Minute), "evt_5")
	_, err := c.db.Fail(ctx, store.Failure{EventID: "evt_5", Worker: "w/0", Err: "handler for x: boom", Now: opsT, NextAttemptAt: opsT.Add(time.Minute)})
	require.NoError(t, err)
	return c
}

func TestEventsList(t *testing.T) {
	t.Parallel()
	storetest.Dialects(t, func(t *testing.T, url string) {
		c := eventsCLI(t, url)
		out, stderr, err := c.run("", "events", "list")
		require.NoError(t, err)
		require.Empty(t, stderr)
		require.Equal(t, `EVENT  TYPE                           CUSTOMER  STATUS    ATTEMPTS  RECEIVED              WAITING FOR / LAST ERROR
evt_7  invoice.paid                   cus_e     deferred  0         2026-03-01T11:30:00Z  waiting for customer:cus_e
evt_6  product.created                -         ignored   0         2026-03-01T11:00:00Z  -
evt_5  customer.subscription.created  cus_d     pending   1         2026-03-01T10:00:00Z  handler for x: boom
evt_4  invoice.paid                   cus_c     dead      12        2026-03-01T09:00:00Z  handler: boom
evt_3  invoice.payment_failed         cus_b     deferred  0         2026-03-01T08:00:00Z  waiting for customer:cus_b
evt_2  invoice.paid                   cus_b     deferred  0         2026-03-01T07:00:00Z  waiting for customer:cus_b
evt_1  customer.created               cus_a     applied   0         2026-03-01T06:00:00Z  -
evt_0  customer.created               cus_z     applied   0         2026-02-27T12:00:00Z  -
`, out)

		out, _, err = c.run("", "events", "list", "--type", "invoice.*", "--customer", "cus_e", "--since", "2026-03-01T11:00:00Z", "--json")
		require.NoError(t, err)
		require.Equal(t, `{
  "events": [
    {
      "event_id": "evt_7",
      "type": "invoice.paid",
      "api_version": "2025-03-31.basil",
      "livemode": false,
      "created": "2026-03-01T11:29:59Z",
      "customer_id": "cus_e",
      "received_at": "2026-03-01T11:30:00Z",
      "status": "deferred",
      "attempts": 0,
      "next_attempt_at": "2026-03-01T11:30:00Z",
      "waiting_for": "customer:cus_e",
      "secret_index": 0
    }
  ]
}
`, out)

		out, _, err = c.run("", "events", "list", "--status", "deferred,dead", "--until", "2026-03-01T11:00:00Z", "--limit", "2")
		require.NoError(t, err)
		lines := strings.Split(strings.TrimSpace(out), "\n")
		require.Len(t, lines, 4)
		require.True(t, strings.HasPrefix(lines[1], "evt_4 "), out)
		require.True(t, strings.HasPrefix(lines[2], "evt_3 "), out)
		cursor, ok := strings.CutPrefix(lines[3], "more: repeat with --cursor ")
		require.True(t, ok, out)
		out, _, err = c.run("", "events", "list", "--status", "deferred,dead", "--until", "2026-03-01T11:00:00Z", "--limit", "2", "--cursor", cursor)
		require.NoError(t, err)
		require.Equal(t, `EVENT  TYPE          CUSTOMER  STATUS    ATTEMPTS  RECEIVED              WAITING FOR / LAST ERROR
evt_2  invoice.paid  cus_b     deferred  0         2026-03-01T07:00:00Z  waiting for customer:cus_b
`, out)

		out, _, err = c.run("", "events", "list", "--customer", "cus_nobody")
		require.NoError(t, err)
		require.Equal(t, "no events match\n", out)

		// Spaces around a type or customer, as around a status, are trimmed.
		out, _, err = c.run("", "events", "list", "--type", " invoice.payment_failed, customer.created ", "--customer", " cus_b ")
		require.NoError(t, err)
		require.Contains(t, out, "evt_3 ")
		require.Len(t, strings.Split(strings.TrimSpace(out), "\n"), 2, out)
	})
}

func TestEventsListUsageErrors(t *testing.T) {
	t.Parallel()
	c := newOpsCLI(t, storetest.SQLiteURL(t))
	for _, args := range [][]string{
		{"events", "list", "--limit", "0"},
		{"events", "list", "--limit", "1001"},
		{"events", "list", "--since", "yesterday"},
		{"events", "list", "--since", "-24h"},
		{"events", "list", "--status", "stuck"},
		{"events", "list", "--cursor", "garbage"},
		{"events", "list", "--frobnicate"},
		{"events", "show"},
		{"events", "replay"},
		{"events"},
		{"dead", "list", "--status", "applied"},
	} {
		_, _, err := c.run("", args...)
		requireExit(t, 2, err)
	}
}

func TestEventsShow(t *testing.T) {
	t.Parallel()
	storetest.Dialects(t, func(t *testing.T, url string) {
		c := eventsCLI(t, url)
		out, _, err := c.run("", "events", "show", "evt_5")
		require.NoError(t, err)
		require.Equal(t, `event         evt_5
type          customer.subscription.created
status        pending
customer      cus_d
object        -
created       2026-03-01T09:59:59Z
received      2026-03-01T10:00:00Z
api version   2025-03-31.basil
livemode      false
secret        #0
attempts      1
next attempt  2026-03-01T12:01:00Z
waiting for   -
released at   -
last error    handler for x: boom
applied at    -
lease         -

AT                    OUTCOME  ATTEMPT  BY   ERROR / DETAIL
2026-03-01T12:00:00Z  failed   1        w/0  handler for x: boom
`, out)

		out, _, err = c.run("", "events", "show", "evt_5", "--json")
		require.NoError(t, err)
		require.Equal(t, `{
  "event": {
    "event_id": "evt_5",
    "type": "customer.subscription.created",
    "api_version": "2025-03-31.basil",
    "livemode": false,
    "created": "2026-03-01T09:59:59Z",
    "customer_id": "cus_d",
    "received_at": "2026-03-01T10:00:00Z",
    "status": "pending",
    "attempts": 1,
    "next_attempt_at": "2026-03-01T12:01:00Z",
    "last_error": "handler for x: boom",
    "secret_index": 0
  },
  "attempts": [
    {
      "id": 1,
      "event_id": "evt_5",
      "at": "2026-03-01T12:00:00Z",
      "outcome": "failed",
      "attempt": 1,
      "worker": "w/0",
      "error": "handler for x: boom"
    }
  ]
}
`, out)

		out, _, err = c.run("", "events", "show", "evt_4", "--payload")
		require.NoError(t, err)
		require.Equal(t, `{"id": "evt_4", "object": "event"}`, out, "the raw body, byte for byte")

		out, _, err = c.run("", "events", "show", "evt_nope")
		requireExit(t, 1, err)
		require.ErrorIs(t, err, store.ErrNotFound)
		require.Equal(t, "event evt_nope: not found in the inbox; `orderhook events list` shows what is there", err.Error())
		require.Empty(t, out)

		// A dependency released it: when, as the history's released row says.
		_, err = c.db.SQLX().ExecContext(context.Background(), c.db.SQLX().Rebind(`UPDATE webhook_events SET released_at = ? WHERE event_id = 'evt_5'`),
			time.Date(2026, 3, 1, 12, 0, 30, 0, time.UTC))
		require.NoError(t, err)
		out, _, err = c.run("", "events", "show", "evt_5")
		require.NoError(t, err)
		require.Contains(t, out, "\nreleased at   2026-03-01T12:00:30Z\n")
	})
}

func TestEventsReplay(t *testing.T) {
	t.Parallel()
	storetest.Dialects(t, func(t *testing.T, url string) {
		c := eventsCLI(t, url)
		out, _, err := c.run("", "events", "replay", "evt_1", "evt_4", "evt_nope", "evt_4", "--reason", "handler fixed")
		requireExit(t, 1, err)
		require.Equal(t, "2 events refused: problems found", err.Error())
		require.Equal(t, `refused evt_1: it is applied; replaying it again needs force
replayed evt_4
refused evt_nope: no such event in the inbox
`, out)
		d, err := c.db.EventDetail(context.Background(), "evt_4")
		require.NoError(t, err)
		require.Equal(t, store.StatusPending, d.Event.Status)
		require.Zero(t, d.Event.Attempts)
		last := d.Attempts[len(d.Attempts)-1]
		require.Equal(t, []string{"replayed", "cli:ops", "from dead: handler fixed", "handler: boom"}, []string{last.Outcome, last.Actor, last.Detail, last.Error})

		out, _, err = c.run("", "events", "replay", "evt_1", "--force", "--dry-run")
		require.NoError(t, err)
		require.Equal(t, "would replay evt_1\n", out)
		out, _, err = c.run("", "events", "replay", "evt_1", "--force", "--json")
		require.NoError(t, err)
		require.Equal(t, `{
  "dry_run": false,
  "matched": 1,
  "eligible": 1,
  "replayed": 1,
  "refused": []
}
`, out)
	})
}

// An event a worker holds under its lease is refused with a clear message,
// never reset under the worker's feet; once the worker is done, a forced
// replay goes through.
func TestEventsReplayWhileAWorkerHoldsTheLease(t *testing.T) {
	t.Parallel()
	storetest.Dialects(t, func(t *testing.T, url string) {
		c := newOpsCLI(t, url)
		now := time.Now().UTC().Truncate(time.Second)
		storetest.Seed(t, c.db, storetest.Row{ID: "evt_l", Type: "invoice.paid", CustomerID: "cus_a", Status: store.StatusPending, Received: now.Add(-time.Minute)})
		ctx := context.Background()
		claimed := storetest.Lease(t, c.db, "worker/3", now.Add(time.Hour), "evt_l")

		for _, args := range [][]string{{"events", "replay", "evt_l"}, {"events", "replay", "evt_l", "--force"}, {"dead", "discard", "evt_l", "--reason", "x"}} {
			out, _, err := c.run("", args...)
			requireExit(t, 1, err)
			require.Equal(t, "refused evt_l: a worker (worker/3) is processing it until "+fmtTime(now.Add(time.Hour))+"; try again after that\n", out, args)
		}
		ev, err := c.db.Event(ctx, "evt_l")
		require.NoError(t, err)
		require.Equal(t, "worker/3", ev.LeaseOwner)

		err = c.db.Process(ctx, claimed[0], "worker/3", now, func(ctx context.Context, tx *store.Tx) error { return tx.MarkApplied(ctx, "") })
		require.NoError(t, err)
		out, _, err := c.run("", "events", "replay", "evt_l", "--force")
		require.NoError(t, err)
		require.Equal(t, "replayed evt_l\n", out)
	})
}
