package store_test

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"testing"
	"time"

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

// The write-ahead log removed while serving holds the transactions not yet
// copied into the file: the store stops acknowledging, and copies what the
// log held, through its open handle, into the file, so that the events it
// acknowledged before survive the process.
func TestSQLiteWriteAheadLogRemovedWhileOpen(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, path := oneEventInTheLog(t)

	require.NoError(t, os.Remove(path+"-wal"))

	_, err := db.InsertEvent(ctx, newEvent("evt_after", "cus_1", t0))
	require.ErrorIs(t, err, store.ErrUnavailable)
	require.ErrorContains(t, err, "write-ahead log "+path+"-wal was removed while this process had it open; what it held is copied into "+path)
	require.ErrorIs(t, db.Ready(ctx), store.ErrUnavailable)
	require.Equal(t, 2, inFileAlone(t, path), "both in the file: the one acknowledged, and the one answered unavailable")
}

// The log removed and created again by another process (an `orderhook
// status` opening the file, say) is still noticed: this process writes on
// to the removed one. And with no delivery at all after the removal, what
// was acknowledged before is copied into the file within a second or so.
func TestSQLiteWriteAheadLogRemovedAndCreatedAgain(t *testing.T) {
	t.Parallel()
	needProcFD(t)
	ctx := context.Background()
	db, path := oneEventInTheLog(t)

	require.NoError(t, os.Remove(path+"-wal"))
	require.NoError(t, os.WriteFile(path+"-wal", nil, 0o600))
	require.Eventually(t, func() bool { return inFileAlone(t, path) == 1 }, 10*time.Second, 50*time.Millisecond,
		"copied into the file with no delivery to notice the removal")

	_, err := db.InsertEvent(ctx, newEvent("evt_after", "cus_1", t0))
	require.ErrorIs(t, err, store.ErrUnavailable)
	require.ErrorContains(t, err, "was removed while this process had it open")
	require.ErrorIs(t, db.Ready(ctx), store.ErrUnavailable)
}

// A connection that database/sql closes and opens again makes SQLite
// remove the log and create a new one: no removal to report.
func TestSQLiteConnectionOpenedAgainIsNoRemoval(t *testing.T) {
	t.Parallel()
	needProcFD(t)
	ctx := context.Background()
	db := openSQLite(t, filepath.Join(t.TempDir(), "orderhook.db"))
	_, err := db.InsertEvent(ctx, newEvent("evt_1", "cus_1", t0))
	require.NoError(t, err)
	require.NoError(t, db.Ready(ctx))
	db.SQLX().SetMaxIdleConns(0) // closes the pool's one connection, and SQLite its log
	require.NoError(t, db.Ready(ctx))
	db.SQLX().SetMaxIdleConns(2)
	_, err = db.InsertEvent(ctx, newEvent("evt_2", "cus_1", t0))
	require.NoError(t, err)
	require.NoError(t, db.Ready(ctx))
}

// oneEventInTheLog opens a SQLite database in a new file, its migrations
// copied into the file, and stores evt_before, which is then in the
// write-ahead log only.
func oneEventInTheLog(t *testing.T) (*store.DB, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "orderhook.db")
	db := openSQLite(t, path)
	_, err := db.SQLX().Exec(`PRAGMA wal_checkpoint(FULL)`)
	require.NoError(t, err)
	_, err = db.InsertEvent(context.Background(), newEvent("evt_before", "cus_1", t0))
	require.NoError(t, err)
	require.Equal(t, 0, inFileAlone(t, path), "committed to the log only")
	return db, path
}

// needProcFD skips t where the process cannot read which files it has
// open (/proc/self/fd, Linux): there only a missing log is noticed.
func needProcFD(t *testing.T) {
	t.Helper()
	if _, err := os.ReadDir("/proc/self/fd"); err != nil {
		t.Skipf("no /proc/self/fd here (%v): only a missing write-ahead log is noticed", err)
	}
}

// The file opened through a symbolic link has its log beside the file the
// link leads to: its removal is noticed there.
func TestSQLiteWriteAheadLogOfALinkedFile(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	target, link := filepath.Join(dir, "target.db"), filepath.Join(dir, "link.db")
	openSQLite(t, target).Close()
	require.NoError(t, os.Symlink(target, link))
	db := openSQLite(t, link)
	_, err := db.InsertEvent(ctx, newEvent("evt_before", "cus_1", t0))
	require.NoError(t, err)
	require.NoError(t, db.Ready(ctx))

	require.NoError(t, os.Remove(target+"-wal"))

	_, err = db.InsertEvent(ctx, newEvent("evt_after", "cus_1", t0))
	require.ErrorIs(t, err, store.ErrUnavailable)
	require.ErrorContains(t, err, "write-ahead log "+target+"-wal was removed")
}

// inFileAlone counts the inbox rows of the SQLite file at path read as it is
// on disk, without its write-ahead log (SQLite's immutable mode).
func inFileAlone(t *testing.T, path string) int {
	t.Helper()
	ro, err := sql.Open("sqlite", "file:"+path+"?mode=ro&immutable=1")
	require.NoError(t, err)
	defer ro.Close()
	var n int
	require.NoError(t, ro.QueryRow(`SELECT count(*) FROM webhook_events`).Scan(&n))
	return n
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
