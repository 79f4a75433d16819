package store_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/orderhook/orderhook/store"
)

// openSQLite opens and migrates the SQLite database at path.
func openSQLite(t *testing.T, path string) *store.DB {
	t.Helper()
	db, err := store.Open(context.Background(), "sqlite:"+path)
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	_, err = db.Migrate(context.Background())
	require.NoError(t, err)
	return db
}

// A process writes on to the file it opened after the path is removed or
// replaced, into a file nothing can open again: from then on it must not
// acknowledge an event as stored, nor say it is ready.
func TestSQLiteFileRemovedOrReplacedWhileOpen(t *testing.T) {
	t.Parallel()
	for name, swap := range map[string]func(t *testing.T, path string){
		"removed": func(t *testing.T, path string) {
			for _, suffix := range []string{"", "-wal", "-shm"} {
				require.NoError(t, os.RemoveAll(path+suffix))
			}
		},
		"replaced": func(t *testing.T, path string) {
			other := filepath.Join(filepath.Dir(path), "restored.db")
			require.NoError(t, os.WriteFile(other, nil, 0o600))
			require.NoError(t, os.Rename(other, path))
		},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			path := filepath.Join(t.TempDir(), "orderhook.db")
			db := openSQLite(t, path)
			_, err := db.InsertEvent(ctx, newEvent("evt_before", "cus_1", t0))
			require.NoError(t, err)
			require.NoError(t, db.Ready(ctx))

			swap(t, path)

			_, err = db.InsertEvent(ctx, newEvent("evt_after", "cus_1", t0))
			require.ErrorIs(t, err, store.ErrUnavailable)
			require.ErrorContains(t, err, "no longer the one this process opened")
			require.ErrorIs(t, db.Ready(ctx), store.ErrUnavailable)
		})
	}
}

// "?", "#" and "%" are a URI's; in a SQLite path they name the file.
func TestSQLitePathWithURICharacters(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "in box?mode=ro#1%41.db")
	db := openSQLite(t, path)
	_, err := db.InsertEvent(context.Background(), newEvent("evt_1", "cus_1", t0))
	require.NoError(t, err)

	require.FileExists(t, path)
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	for _, e := range entries {
		require.Contains(t, []string{"in box?mode=ro#1%41.db", "in box?mode=ro#1%41.db-wal", "in box?mode=ro#1%41.db-shm"}, e.Name())
	}
}
