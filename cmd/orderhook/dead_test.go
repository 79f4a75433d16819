package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/orderhook/orderhook/store"
	"github.com/orderhook/orderhook/store/storetest"
)

func TestDeadList(t *testing.T) {
	t.Parallel()
	c := eventsCLI(t, storetest.SQLiteURL(t))
	out, _, err := c.run("", "dead", "list", "--type", "invoice.*")
	require.NoError(t, err)
	require.Equal(t, `EVENT  TYPE          CUSTOMER  STATUS  ATTEMPTS  RECEIVED              LAST ERROR
evt_4  invoice.paid  cus_c     dead    12        2026-03-01T09:00:00Z  handler: boom
`, out)
	out, _, err = c.run("", "dead", "list", "--customer", "cus_a", "--json")
	require.NoError(t, err)
	require.Equal(t, "{\n  \"events\": []\n}\n", out)
}

// Bulk replay of a few thousand dead rows: dry run first, a refusal without
// --yes off a terminal, a filtered replay, then the rest.
func TestDeadReplayBulk(t *testing.T) {
	t.Parallel()
	storetest.Dialects(t, func(t *testing.T, url string) {
		c := newOpsCLI(t, url)
		start := opsT.Add(-24 * time.Hour)
		storetest.SeedDead(t, c.db, "evt_paid", "invoice.paid", 1500, start, func(int) string { return "cus_bulk" })
		storetest.SeedDead(t, c.db, "evt_sub", "customer.subscription.updated", 500, start, func(int) string { return "cus_bulk" })
		ctx := context.Background()
		dead := func() int {
			s, err := c.db.Stats(ctx, opsT, 1)
			require.NoError(t, err)
			return s.Dead
		}

		out, stderr, err := c.run("", "dead", "replay", "--all", "--type", "invoice.paid", "--dry-run")
		require.NoError(t, err)
		require.Equal(t, "dry run: 1500 dead events would be replayed\n", out)
		require.Empty(t, stderr)

		out, stderr, err = c.run("", "dead", "replay", "--all", "--type", "invoice.paid")
		requireExit(t, 2, err)
		require.Contains(t, err.Error(), "pass --yes")
		require.Equal(t, "1500 dead events match.\n", stderr)
		require.Empty(t, out)
		require.Equal(t, 2000, dead(), "nothing changes without confirmation")

		since := start.Add(1000 * time.Second).Format(time.RFC3339)
		out, stderr, err = c.run("", "dead", "replay", "--all", "--type", "invoice.paid", "--since", since, "--yes", "--reason", "fixed in v2", "--json")
		require.NoError(t, err)
		require.Equal(t, "500 dead events match.\n", stderr)
		require.Equal(t, `{
  "dry_run": false,
  "matched": 500,
  "eligible": 500,
  "replayed": 500,
  "refused": []
}
`, out)
		require.Equal(t, 1500, dead())
		page, err := c.db.ListEvents(ctx, store.EventFilter{Statuses: []store.Status{store.StatusPending}, Limit: 1000})
		require.NoError(t, err)
		require.Len(t, page.Events, 500)
		require.Equal(t, "evt_paid_01499", page.Events[0].ID)
		require.Equal(t, "evt_paid_01000", page.Events[499].ID)

		out, _, err = c.run("", "dead", "replay", "--all", "-y")
		require.NoError(t, err)
		require.Equal(t, "replayed 1500 dead events; workers pick them up now, dependencies still apply\n", out)
		require.Zero(t, dead())
		var n int
		require.NoError(t, c.db.SQLX().GetContext(ctx, &n, `SELECT count(*) FROM event_attempts WHERE outcome = 'replayed' AND actor = 'cli:ops'`))
		require.Equal(t, 2000, n)

		out, _, err = c.run("", "dead", "replay", "--all", "--yes")
		require.NoError(t, err)
		require.Equal(t, "no dead event matches: nothing to replay\n", out, "nothing left: no confirmation needed")
	})
}

func TestDeadReplayNamed(t *testing.T) {
	t.Parallel()
	storetest.Dialects(t, func(t *testing.T, url string) {
		c := eventsCLI(t, url)
		for _, args := range [][]string{
			{"dead", "replay"},
			{"dead", "replay", "evt_4", "--all"},
			{"dead", "replay", "evt_4", "--type", "invoice.paid"},
			{"dead", "replay", "--all", "--since", "tomorrow"},
			{"dead", "replay", "evt_4"}, // not a terminal, no --yes
			{"dead", "replay", "", " ", "--yes"},
			{"dead", "replay", "--all", "--type", "", "--yes"},
			{"dead", "replay", "--all", "--customer", " ", "--yes"},
			{"dead", "replay", "--all", "--type", " ", "--yes"}, // pflag quotes it: `[" "]`
			{"dead", "replay", "--all", "--type", " , ", "--status", "dead", "--yes"},
		} {
			_, _, err := c.run("", args...)
			requireExit(t, 2, err)
		}
		out, _, err := c.run("", "dead", "replay", "evt_4", "--dry-run")
		require.NoError(t, err)
		require.Equal(t, "would replay evt_4\n", out)

		out, _, err = c.run("", "dead", "replay", " evt_4", "evt_2 ", "--yes")
		requireExit(t, 1, err)
		require.Equal(t, "replayed evt_4\nrefused evt_2: it is deferred, not dead\n", out)
	})
}

func TestDeadDiscard(t *testing.T) {
	t.Parallel()
	storetest.Dialects(t, func(t *testing.T, url string) {
		c := eventsCLI(t, url)
		_, _, err := c.run("", "dead", "discard", "evt_4")
		requireExit(t, 2, err)
		require.Contains(t, err.Error(), "--reason is required")

		out, _, err := c.run("", "dead", "discard", "evt_4", "evt_1", "--reason", "test-mode customer")
		requireExit(t, 1, err)
		require.Equal(t, "discarded evt_4\nrefused evt_1: it is applied; only dead, deferred or pending events can be discarded\n", out)

		out, _, err = c.run("", "dead", "discard", "evt_3", "--reason", "duplicate", "--json")
		require.NoError(t, err)
		require.Equal(t, "{\n  \"discarded\": [\n    \"evt_3\"\n  ],\n  \"refused\": []\n}\n", out)

		d, err := c.db.EventDetail(context.Background(), "evt_4")
		require.NoError(t, err)
		require.Equal(t, store.StatusDiscarded, d.Event.Status)
		last := d.Attempts[len(d.Attempts)-1]
		require.Equal(t, []string{"discarded", "cli:ops", "test-mode customer"}, []string{last.Outcome, last.Actor, last.Detail})
	})
}

// On a terminal, dead replay asks first; only yes goes ahead.
func TestDeadReplayAsksOnATerminal(t *testing.T) {
	t.Parallel()
	c := eventsCLI(t, storetest.SQLiteURL(t))
	for _, tc := range []struct {
		answer string
		exit   int
		dead   int
	}{{"n\n", 1, 1}, {"\n", 1, 1}, {"yes\n", 0, 0}} {
		stdin := openPTY(t)
		_, err := stdin.master.WriteString(tc.answer)
		require.NoError(t, err)
		var out, errOut bytes.Buffer
		err = run(context.Background(), []string{"dead", "replay", "--all", "--db", c.url}, func(string) string { return "" }, stdin.tty, &out, &errOut)
		requireExit(t, tc.exit, err)
		require.Equal(t, "1 dead event matches.\nReplay 1 dead event? [y/N] ", errOut.String(), tc.answer)
		s, err := c.db.Stats(context.Background(), opsT, 1)
		require.NoError(t, err)
		require.Equal(t, tc.dead, s.Dead, tc.answer)
	}
}

// pty is a pseudo-terminal pair: tty is a terminal stdin, master feeds it.
type pty struct{ master, tty *os.File }

// openPTY opens a pseudo-terminal, skipping the test where there is none.
func openPTY(t *testing.T) pty {
	t.Helper()
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0)
	if err != nil {
		t.Skipf("no pseudo-terminal: %v", err)
	}
	t.Cleanup(func() { _ = master.Close() })
	fd := int(master.Fd())
	require.NoError(t, unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0))
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	require.NoError(t, err)
	tty, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	require.NoError(t, err)
	t.Cleanup(func() { _ = tty.Close() })
	return pty{master: master, tty: tty}
}
