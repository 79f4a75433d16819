package main

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/orderhook/orderhook/store"
	"github.com/orderhook/orderhook/store/storetest"
)

// inboxCommands are the commands that read or change an existing inbox.
var inboxCommands = [][]string{
	{"status"},
	{"events", "list"},
	{"events", "show", "evt_1"},
	{"events", "replay", "evt_1"},
	{"dead", "list"},
	{"dead", "replay", "evt_1", "--yes"},
	{"dead", "discard", "evt_1", "--reason", "test"},
}

func TestInboxCommandsDoNotCreateAMissingSQLiteFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "typo.db")
	for _, args := range inboxCommands {
		_, _, err := opsCLI{url: "sqlite:" + path}.run("", args...)
		requireExit(t, 2, err)
		require.ErrorContains(t, err, "sqlite:"+path+": no such file", "%v", args)
		require.NoFileExists(t, path, "%v", args)
	}
}

func TestInboxCommandsRefuseAnUnmigratedDatabase(t *testing.T) {
	t.Parallel()
	storetest.Dialects(t, func(t *testing.T, url string) {
		db, err := store.Open(context.Background(), url) // creates the SQLite file, migrates nothing
		require.NoError(t, err)
		require.NoError(t, db.Close())
		for _, args := range inboxCommands {
			_, _, err := opsCLI{url: url}.run("", args...)
			requireExit(t, 1, err)
			require.ErrorIs(t, err, store.ErrMigrationsPending, "%v", args)
			require.ErrorContains(t, err, "00001_inbox.sql", "%v", args)
		}
	})
}
