package main

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orderhook/orderhook/store"
	"github.com/orderhook/orderhook/store/storetest"
)

func TestPurge(t *testing.T) {
	t.Parallel()
	storetest.Dialects(t, func(t *testing.T, url string) {
		c := newOpsCLI(t, url)
		old := time.Now().Add(-40 * 24 * time.Hour)
		storetest.Seed(t, c.db,
			storetest.Row{ID: "evt_old", Type: "invoice.paid", CustomerID: "cus_1", Status: store.StatusApplied, Received: old},
			storetest.Row{ID: "evt_dead", Type: "invoice.paid", CustomerID: "cus_1", Status: store.StatusDead, Received: old},
			storetest.Row{ID: "evt_new", Type: "invoice.paid", CustomerID: "cus_1", Status: store.StatusApplied, Received: time.Now()},
		)

		out, _, err := c.run("", "purge", "--older-than", "720h", "--dry-run")
		require.NoError(t, err)
		require.Regexp(t, `^would purge 1 event \(applied, ignored or discarded\) received before \S+Z\n$`, out)

		out, _, err = c.run("", "purge", "--older-than", "720h", "--json")
		require.NoError(t, err)
		var res store.PurgeResult
		require.NoError(t, json.Unmarshal([]byte(out), &res))
		require.EqualValues(t, 1, res.Purged)
		require.False(t, res.DryRun)
		_, err = c.db.Event(t.Context(), "evt_old")
		require.ErrorIs(t, err, store.ErrNotFound)
		for _, id := range []string{"evt_dead", "evt_new"} {
			_, err = c.db.Event(t.Context(), id)
			require.NoError(t, err, id)
		}
	})
}

func TestPurgeUsageErrors(t *testing.T) {
	t.Parallel()
	c := newOpsCLI(t, storetest.SQLiteURL(t))
	for _, args := range [][]string{
		{"purge"},
		{"purge", "--older-than", "24h"},
		{"purge", "--older-than", "-720h"},
		{"purge", "--older-than", "30d"},
		{"purge", "--older-than", "720h", "evt_1"},
	} {
		_, _, err := c.run("", args...)
		requireExit(t, 2, err)
	}
}
