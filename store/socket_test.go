package store_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orderhook/orderhook/internal/cutproxy"
	"github.com/orderhook/orderhook/store"
	"github.com/orderhook/orderhook/store/storetest"
)

// hangBound is how long a frozen proxy stays frozen when a test does not
// thaw it first: a call that ignored its context returns only then, and
// fails the test by its duration instead of hanging it.
const hangBound = 10 * time.Second

// behindProxy returns the URL of a migrated PostgreSQL database reached
// through a proxy the test can freeze.
func behindProxy(t *testing.T) (string, *cutproxy.Proxy) {
	t.Helper()
	direct := storetest.PostgresDatabaseURL(t)
	storetest.Open(t, direct) // migrates
	return storetest.ThroughProxy(t, direct)
}

// freeze stops the database answering until hangBound has passed or the
// test ends.
func freeze(t *testing.T, proxy *cutproxy.Proxy) {
	t.Helper()
	proxy.FreezeFor(t, hangBound)
}

// within runs fn and returns its error, failing t unless it returned well
// before hangBound.
func within(t *testing.T, fn func() error) error {
	t.Helper()
	start := time.Now()
	err := fn()
	require.Less(t, time.Since(start), hangBound/2, "returned only when the database answered again")
	return err
}

// prepareInsert inserts two events with ids prefix1 and prefix2, so that
// the INSERT of one row is prepared, and waits for the NOTIFYs they owe.
func prepareInsert(t *testing.T, db *store.DB, prefix string) {
	t.Helper()
	for _, id := range []string{prefix + "1", prefix + "2"} { // the second INSERT is prepared
		_, err := db.InsertEvent(context.Background(), newEvent(id, "cus_"+prefix, t0))
		require.NoError(t, err)
	}
	require.True(t, store.InsertPrepared(db, 1))
	time.Sleep(2 * store.NotifyGap)
}

// A statement the database never answers ends at its context's deadline:
// lib/pq alone would only send a cancel request, which a silent database
// does not answer either, and wait on.
func TestADeadlineEndsAStatementTheDatabaseNeverAnswers(t *testing.T) {
	t.Parallel()
	rawURL, proxy := behindProxy(t)
	db := storetest.Open(t, rawURL)
	ctx := context.Background()
	require.NoError(t, db.Ping(ctx)) // a connection in the pool

	freeze(t, proxy)
	err := within(t, func() error {
		ctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
		return db.Ping(ctx)
	})
	require.ErrorIs(t, err, store.ErrUnavailable)

	proxy.Thaw()
	require.NoError(t, db.Ping(ctx), "the broken connection was dropped, a new one answers")
}

// A context cancelled without a deadline ends the statement as well.
func TestCancellingEndsAStatementTheDatabaseNeverAnswers(t *testing.T) {
	t.Parallel()
	rawURL, proxy := behindProxy(t)
	db := storetest.Open(t, rawURL)
	ctx := context.Background()
	require.NoError(t, db.Ping(ctx))

	freeze(t, proxy)
	err := within(t, func() error {
		ctx, cancel := context.WithCancel(ctx)
		defer time.AfterFunc(200*time.Millisecond, cancel).Stop()
		return db.Ping(ctx)
	})
	require.Error(t, err)

	proxy.Thaw()
	require.NoError(t, db.Ping(ctx))
}

// A commit ends at its transaction's deadline: database/sql passes the
// driver no context for it.
func TestADeadlineEndsACommitTheDatabaseNeverAnswers(t *testing.T) {
	t.Parallel()
	rawURL, proxy := behindProxy(t)
	db := storetest.Open(t, rawURL)
	ctx, cancel := context.WithTimeout(context.Background(), hangBound/4)
	defer cancel()
	tx, err := db.SQLX().BeginTxx(ctx, nil)
	require.NoError(t, err)
	_, err = tx.ExecContext(ctx, `SELECT 1`)
	require.NoError(t, err)

	freeze(t, proxy)
	err = within(t, tx.Commit)
	require.Error(t, err)
}

// A prepared statement's call ends soon after its deadline too: lib/pq
// returns from it only once the cancel request it sends is over, which a
// silent database would otherwise hold for lib/pq's 10 s.
func TestADeadlineEndsAPreparedStatementTheDatabaseNeverAnswers(t *testing.T) {
	t.Parallel()
	rawURL, proxy := behindProxy(t)
	db := storetest.Open(t, rawURL)
	db.SQLX().SetMaxOpenConns(1) // the INSERT runs where it was prepared
	store.SetBatchTimeout(db, 200*time.Millisecond)
	ctx := context.Background()
	prepareInsert(t, db, "evt_prep")

	freeze(t, proxy)
	start := time.Now()
	_, err := db.InsertEvent(ctx, newEvent("evt_prep3", "cus_prep", t0))
	require.ErrorIs(t, err, store.ErrUnavailable)
	require.Less(t, time.Since(start), 3*time.Second, "waited for lib/pq's cancel request")
}

// A cancel request to a database that never answers gives up after its
// own timeout: lib/pq would wait 10 s for the server to close the
// connection, and a prepared statement's call waits for its cancel request.
// The test above catches a missing bound only when the cancel request wins
// its race with the socket's deadline; this one always does.
func TestACancelRequestToAHungDatabaseEndsAtItsTimeout(t *testing.T) {
	t.Parallel()
	_, proxy := behindProxy(t)
	freeze(t, proxy)

	start := time.Now()
	nc, err := store.DialCancel(context.Background(), "tcp", proxy.Addr())
	require.NoError(t, err, "the proxy accepts while frozen")
	defer func() { _ = nc.Close() }()
	request := binary.BigEndian.AppendUint32(nil, 16)
	request = binary.BigEndian.AppendUint32(request, 80877102) // CancelRequest
	request = binary.BigEndian.AppendUint64(request, 0)        // no such backend
	_, err = nc.Write(request)
	require.NoError(t, err)
	_, err = nc.Read(make([]byte, 1))
	require.ErrorIs(t, err, os.ErrDeadlineExceeded, "the server closed the connection only after the thaw")
	require.Less(t, time.Since(start), 3*time.Second)
}

// Connecting ends at the deadline too: lib/pq bounds only the dial by it,
// not the startup that follows.
func TestADeadlineEndsAConnectTheDatabaseNeverAnswers(t *testing.T) {
	t.Parallel()
	rawURL, proxy := behindProxy(t)

	freeze(t, proxy)
	err := within(t, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		db, err := store.Open(ctx, rawURL)
		if err == nil {
			_ = db.Close()
		}
		return err
	})
	require.ErrorIs(t, err, store.ErrUnavailable)
}

// A delivery waiting on a database that stopped answering is answered with
// an error once its batch times out, so that the sender retries, and its
// redelivery is stored once, whether or not the held INSERT ran when the
// database came back.
func TestAHungDatabaseFailsTheBatchAtItsTimeout(t *testing.T) {
	t.Parallel()
	rawURL, proxy := behindProxy(t)
	db := storetest.Open(t, rawURL)
	store.SetBatchTimeout(db, 200*time.Millisecond)
	ctx := context.Background()
	ev := newEvent("evt_hung_batch", "cus_hung", t0)

	freeze(t, proxy)
	err := within(t, func() error {
		_, err := db.InsertEvent(ctx, ev)
		return err
	})
	require.ErrorIs(t, err, store.ErrUnavailable)

	proxy.Thaw()
	_, err = db.InsertEvent(ctx, ev)
	require.NoError(t, err)
	var n int
	require.NoError(t, db.SQLX().GetContext(ctx, &n, `SELECT count(*) FROM webhook_events WHERE event_id = $1`, ev.ID))
	require.Equal(t, 1, n)
}

// Deliveries queued behind a batch that the database does not answer are
// answered by the same timeout, not one batch timeout after another: with
// three batches' worth queued, the last would wait three timeouts.
func TestAHungDatabaseAnswersEveryQueuedDeliveryWithinTheBatchTimeout(t *testing.T) {
	t.Parallel()
	rawURL, proxy := behindProxy(t)
	db := storetest.Open(t, rawURL)
	const timeout = time.Second
	store.SetBatchTimeout(db, timeout)
	prepareInsert(t, db, "evt_queued")

	freeze(t, proxy)
	n := 3 * store.MaxBatch
	errs, took := make([]error, n), make([]time.Duration, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			start := time.Now()
			_, errs[i] = db.InsertEvent(context.Background(), newEvent(fmt.Sprintf("evt_queued%d", i+3), "cus_queued", t0))
			took[i] = time.Since(start)
		})
	}
	wg.Wait()
	for i, err := range errs {
		require.ErrorIs(t, err, store.ErrUnavailable, "delivery %d", i)
	}
	require.Less(t, slices.Max(took), 2*timeout, "a delivery waited for the batches queued before it")
}

// Closing does not wait for a database that stopped answering.
func TestCloseDoesNotWaitForAHungDatabase(t *testing.T) {
	t.Parallel()
	rawURL, proxy := behindProxy(t)
	ctx := context.Background()
	db, err := store.Open(ctx, rawURL)
	require.NoError(t, err)
	prepareInsert(t, db, "evt_hung_close")

	freeze(t, proxy)
	_ = within(t, db.Close)
}

// Close waits for the NOTIFY under way and the one it owes no longer than
// one NOTIFY's timeout in all, not once for each.
func TestCloseWaitsForTheNotifiesOfAHungDatabaseOnce(t *testing.T) {
	t.Parallel()
	rawURL, proxy := behindProxy(t)
	ctx := context.Background()
	db, err := store.Open(ctx, rawURL)
	require.NoError(t, err)
	const timeout = time.Second
	store.SetNotifyTimeout(db, timeout)
	require.NoError(t, db.Ping(ctx))

	freeze(t, proxy)
	store.Notify(db) // sent at once, and held
	time.Sleep(timeout / 10)
	store.Notify(db) // owed
	start := time.Now()
	require.NoError(t, db.Close())
	require.Less(t, time.Since(start), timeout*3/2)
}

// A COPY FROM STDIN, whose statement lib/pq runs without contexts, still
// works through the connector: the pool is the one store.DB.SQLX returns to
// handlers. (The connector refused it at first.)
func TestCopyInWorksThroughTheConnector(t *testing.T) {
	t.Parallel()
	db := storetest.Postgres(t)
	ctx := context.Background()
	tx, err := db.SQLX().BeginTx(ctx, nil)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback() }()
	_, err = tx.ExecContext(ctx, `CREATE TEMP TABLE copied (n int) ON COMMIT DROP`)
	require.NoError(t, err)
	stmt, err := tx.PrepareContext(ctx, `COPY copied (n) FROM STDIN`)
	require.NoError(t, err)
	for n := range 3 {
		_, err = stmt.ExecContext(ctx, n)
		require.NoError(t, err)
	}
	_, err = stmt.ExecContext(ctx)
	require.NoError(t, err)
	require.NoError(t, stmt.Close())
	var count int
	require.NoError(t, tx.QueryRowContext(ctx, `SELECT count(*) FROM copied`).Scan(&count))
	require.Equal(t, 3, count)
}
