package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/orderhook/orderhook/store"
	"github.com/orderhook/orderhook/store/storetest"
)

func TestMigrateAppliesOnceAndStatusLists(t *testing.T) {
	t.Parallel()
	storetest.Dialects(t, func(t *testing.T, url string) {
		c := opsCLI{url: url}
		out, _, err := c.run("", "migrate")
		require.NoError(t, err)
		lines := strings.Split(strings.TrimSpace(out), "\n")
		require.Greater(t, len(lines), 1)
		require.Equal(t, "applied 00001 00001_inbox.sql", lines[0])
		require.Regexp(t, `^\d+ migration\(s\) applied; schema is up to date$`, lines[len(lines)-1])

		out, _, err = c.run("", "migrate")
		require.NoError(t, err)
		require.Equal(t, "0 migration(s) applied; schema is up to date\n", out)

		out, _, err = c.run("", "migrate", "status", "--json")
		require.NoError(t, err)
		var list []store.Migration
		require.NoError(t, json.Unmarshal([]byte(out), &list))
		require.Len(t, list, len(lines)-1)
		for _, m := range list {
			require.True(t, m.Applied, "%s", m.Name)
		}
	})
}

func TestMigrateStatusDoesNotCreateAMissingSQLiteFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "typo.db")
	_, _, err := opsCLI{url: "sqlite:" + path}.run("", "migrate", "status")
	requireExit(t, 2, err)
	require.ErrorContains(t, err, "no such file")
	require.NoFileExists(t, path)
}

func TestMigrateRefusesAMalformedDatabaseURL(t *testing.T) {
	t.Parallel()
	for url, want := range map[string]string{
		"sqlite:":     `"sqlite:" has no path`,
		"postgres://": "names no host and no database",
	} {
		_, _, err := opsCLI{url: url}.run("", "migrate")
		requireExit(t, 2, err)
		require.ErrorContains(t, err, want)
	}
}
