package store_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orderhook/orderhook/store"
	"github.com/orderhook/orderhook/store/storetest"
)

// opsT0 is the fixed "now" of the operator tests.
var opsT0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func opsIDs(events []store.Event) []string {
	out := make([]string, len(events))
	for i, ev := range events {
		out[i] = ev.ID
	}
	return out
}

func opsListSeed() []storetest.Row {
	return []storetest.Row{
		{ID: "evt_1", Type: "customer.created", CustomerID: "cus_a", Status: store.StatusApplied, Received: opsT0.Add(-6 * time.Hour)},
		{ID: "evt_2", Type: "invoice.paid", CustomerID: "cus_b", Status: store.StatusDeferred, WaitingFor: "customer:cus_b", Received: opsT0.Add(-5 * time.Hour)},
		{ID: "evt_3", Type: "invoice.payment_failed", CustomerID: "cus_b", Status: store.StatusDeferred, WaitingFor: "customer:cus_b", Received: opsT0.Add(-4 * time.Hour)},
		{ID: "evt_4", Type: "invoice.paid", CustomerID: "cus_c", Status: store.StatusDead, LastError: "handler: boom", Attempts: 12, Received: opsT0.Add(-3 * time.Hour)},
		{ID: "evt_5", Type: "customer.subscription.created", CustomerID: "cus_d", Status: store.StatusPending, Received: opsT0.Add(-2 * time.Hour), SecretIndex: 1},
		{ID: "evt_6", Type: "product.created", Status: store.StatusIgnored, Received: opsT0.Add(-time.Hour), SecretIndex: 1},
		{ID: "evt_7", Type: "invoice.paid", CustomerID: "cus_e", Status: store.StatusDeferred, WaitingFor: "customer:cus_e", Received: opsT0.Add(-30 * time.Minute)},
	}
}

func TestListEventsFilters(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		storetest.Seed(t, db, opsListSeed()...)
		for _, tc := range []struct {
			name string
			f    store.EventFilter
			want []string
		}{
			{"all newest first", store.EventFilter{}, []string{"evt_7", "evt_6", "evt_5", "evt_4", "evt_3", "evt_2", "evt_1"}},
			{"status", store.EventFilter{Statuses: []store.Status{store.StatusDeferred, store.StatusDead}}, []string{"evt_7", "evt_4", "evt_3", "evt_2"}},
			{"exact type", store.EventFilter{Types: []string{"invoice.paid"}}, []string{"evt_7", "evt_4", "evt_2"}},
			{"type prefix", store.EventFilter{Types: []string{"invoice.*", "product.created"}}, []string{"evt_7", "evt_6", "evt_4", "evt_3", "evt_2"}},
			{"underscore is literal", store.EventFilter{Types: []string{"invoice.payment_*"}}, []string{"evt_3"}},
			{"customer", store.EventFilter{CustomerID: "cus_b"}, []string{"evt_3", "evt_2"}},
			{"since until", store.EventFilter{Since: opsT0.Add(-4 * time.Hour), Until: opsT0.Add(-time.Hour)}, []string{"evt_5", "evt_4", "evt_3"}},
			{"nothing", store.EventFilter{CustomerID: "cus_zz"}, []string{}},
		} {
			page, err := db.ListEvents(ctx, tc.f)
			require.NoError(t, err, tc.name)
			require.Equal(t, tc.want, opsIDs(page.Events), tc.name)
			require.Empty(t, page.NextCursor, tc.name)
		}
		_, err := db.ListEvents(ctx, store.EventFilter{Cursor: "nope"})
		require.ErrorIs(t, err, store.ErrInvalidInput)
		_, err = db.ListEvents(ctx, store.EventFilter{Statuses: []store.Status{"stuck"}})
		require.ErrorIs(t, err, store.ErrInvalidInput)
	})
}

func TestListEventsPaginates(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		rows := opsListSeed()
		// Two rows received in the same instant are ordered by id.
		rows = append(rows, storetest.Row{ID: "evt_8", Type: "invoice.paid", CustomerID: "cus_f", Received: opsT0.Add(-4 * time.Hour)})
		storetest.Seed(t, db, rows...)
		var got []string
		f := store.EventFilter{Limit: 3}
		for range 10 {
			page, err := db.ListEvents(ctx, f)
			require.NoError(t, err)
			require.LessOrEqual(t, len(page.Events), 3)
			require.NotContains(t, opsIDs(page.Events), "evt_x")
			require.Empty(t, page.Events[0].Payload, "listings do not load payloads")
			got = append(got, opsIDs(page.Events)...)
			if page.NextCursor == "" {
				break
			}
			f.Cursor = page.NextCursor
		}
		require.Equal(t, []string{"evt_7", "evt_6", "evt_5", "evt_4", "evt_8", "evt_3", "evt_2", "evt_1"}, got)
	})
}

func TestEventDetail(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		storetest.Seed(t, db, opsListSeed()...)
		d, err := db.EventDetail(ctx, "evt_4")
		require.NoError(t, err)
		require.Equal(t, `{"id": "evt_4", "object": "event"}`, string(d.Event.Payload))
		require.Equal(t, "handler: boom", d.Event.LastError)
		require.Empty(t, d.Attempts)
		require.NotNil(t, d.Attempts)
		_, err = db.EventDetail(ctx, "evt_missing")
		require.ErrorIs(t, err, store.ErrNotFound)
	})
}

func TestStats(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		rows := append(opsListSeed(),
			storetest.Row{ID: "evt_old", Type: "invoice.paid", CustomerID: "cus_z", Status: store.StatusApplied, Received: opsT0.Add(-48 * time.Hour), SecretIndex: 2},
			storetest.Row{ID: "evt_9", Type: "invoice.paid", CustomerID: "cus_x", Status: store.StatusPending, Received: opsT0.Add(-10 * time.Minute)},
		)
		storetest.Seed(t, db, rows...)
		storetest.Lease(t, db, "w/0", opsT0.Add(time.Minute), "evt_5")

		s, err := db.Stats(ctx, opsT0, 1)
		require.NoError(t, err)
		require.Equal(t, map[store.Status]int{"pending": 2, "deferred": 3, "applied": 2, "ignored": 1, "dead": 1, "discarded": 0}, s.Counts)
		require.Equal(t, 9, s.Total)
		require.Equal(t, 1, s.Dead)
		require.Equal(t, 1, s.Leased)
		require.Equal(t, &store.OldestEvent{EventID: "evt_5", ReceivedAt: opsT0.Add(-2 * time.Hour), AgeSeconds: 7200}, s.OldestPending)
		require.Equal(t, &store.OldestEvent{EventID: "evt_2", ReceivedAt: opsT0.Add(-5 * time.Hour), AgeSeconds: 18000}, s.OldestDeferred)
		require.Equal(t, []store.WaitingGroup{{WaitingFor: "customer:cus_b", Events: 2, OldestReceivedAt: opsT0.Add(-5 * time.Hour)}}, s.Waiting)
		require.Equal(t, 2, s.WaitingKeys)
		require.Equal(t, []store.SecretUse{
			{Index: 0, Events: 6, LastReceivedAt: opsT0.Add(-10 * time.Minute)},
			{Index: 1, Events: 2, LastReceivedAt: opsT0.Add(-time.Hour)},
		}, s.Secrets)

		empty := storetest.Open(t, storetest.SQLiteURL(t))
		s, err = empty.Stats(ctx, opsT0, 0)
		require.NoError(t, err)
		require.Nil(t, s.OldestPending)
		require.Zero(t, s.Total)
		require.NotNil(t, s.Waiting)
	})
}

func TestReplayNamedEvents(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		storetest.Seed(t, db, opsListSeed()...)
		res, err := db.Replay(ctx, store.ReplayParams{
			IDs: []string{"evt_4", "evt_1", "evt_missing", "evt_4"}, Actor: "cli:ops", Reason: "handler fixed", Now: opsT0,
		})
		require.NoError(t, err)
		require.Equal(t, 2, res.Matched)
		require.Equal(t, 1, res.Eligible)
		require.Equal(t, 1, res.Replayed)
		require.Len(t, res.Refused, 2)
		require.Equal(t, "evt_1", res.Refused[0].EventID)
		require.ErrorIs(t, res.Refused[0].Err, store.ErrConflict)
		require.Contains(t, res.Refused[0].Reason, "needs force")
		require.ErrorIs(t, res.Refused[1].Err, store.ErrNotFound)

		ev, err := db.Event(ctx, "evt_4")
		require.NoError(t, err)
		require.Equal(t, store.StatusPending, ev.Status)
		require.Zero(t, ev.Attempts)
		require.Empty(t, ev.LastError)
		require.Equal(t, opsT0, ev.NextAttemptAt)
		attempts, err := db.Attempts(ctx, "evt_4")
		require.NoError(t, err)
		require.Len(t, attempts, 1)
		a := attempts[0]
		require.Equal(t, []any{"replayed", "cli:ops", "handler: boom", "from dead: handler fixed", 12, opsT0},
			[]any{a.Outcome, a.Actor, a.Error, a.Detail, a.Attempt, a.At})

		// Forced, an applied event goes back through the appliers.
		res, err = db.Replay(ctx, store.ReplayParams{IDs: []string{"evt_1"}, Force: true, Actor: "admin-api", Now: opsT0})
		require.NoError(t, err)
		require.Equal(t, 1, res.Replayed)
		require.Empty(t, res.Refused)

		// Restricted to dead rows, a deferred one is refused.
		res, err = db.Replay(ctx, store.ReplayParams{IDs: []string{"evt_2"}, Filter: store.EventFilter{Statuses: []store.Status{store.StatusDead}}, Now: opsT0})
		require.NoError(t, err)
		require.Zero(t, res.Replayed)
		require.ErrorIs(t, res.Refused[0].Err, store.ErrConflict)
		require.Contains(t, res.Refused[0].Reason, "it is deferred, not dead")

		_, err = db.Replay(ctx, store.ReplayParams{Now: opsT0})
		require.ErrorIs(t, err, store.ErrInvalidInput)
		_, err = db.Replay(ctx, store.ReplayParams{IDs: []string{"evt_2"}, Filter: store.EventFilter{CustomerID: "cus_b"}, Now: opsT0})
		require.ErrorIs(t, err, store.ErrInvalidInput)

		// Blank ids name nothing: they are not a filter that selects every
		// dead row.
		storetest.Seed(t, db, storetest.Row{ID: "evt_dead9", Type: "invoice.paid", CustomerID: "cus_c", Status: store.StatusDead, Received: opsT0})
		_, err = db.Replay(ctx, store.ReplayParams{IDs: []string{"", " "}, Filter: store.EventFilter{Statuses: []store.Status{store.StatusDead}}, Now: opsT0})
		require.ErrorIs(t, err, store.ErrInvalidInput)
		ev, err = db.Event(ctx, "evt_dead9")
		require.NoError(t, err)
		require.Equal(t, store.StatusDead, ev.Status)
	})
}

// A row a worker holds under its lease is never replayed: named, it is
// refused with ErrLeased; filtered, it is skipped. Once the lease expired, it
// is replayed and the late worker can no longer record anything on it.
// An operation without a time is stamped now, not in year 1.
func TestReplayAndDiscardDefaultToNow(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		storetest.Seed(t, db, opsListSeed()...)
		before := time.Now().Add(-time.Second)
		_, err := db.Replay(ctx, store.ReplayParams{IDs: []string{"evt_4"}, Actor: "cli:ops"})
		require.NoError(t, err)
		_, err = db.Discard(ctx, store.DiscardParams{IDs: []string{"evt_4"}, Actor: "cli:ops", Reason: "test"})
		require.NoError(t, err)
		attempts, err := db.Attempts(ctx, "evt_4")
		require.NoError(t, err)
		require.Len(t, attempts, 2)
		for _, a := range attempts {
			require.WithinRange(t, a.At, before, time.Now().Add(time.Second), a.Outcome)
		}
	})
}

func TestReplayRefusesLeasedRows(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		storetest.Seed(t, db, storetest.Row{ID: "evt_l", Type: "invoice.paid", CustomerID: "cus_a", Received: opsT0.Add(-time.Minute)},
			storetest.Row{ID: "evt_p", Type: "invoice.paid", CustomerID: "cus_b", Received: opsT0})
		storetest.Lease(t, db, "w/0", opsT0.Add(time.Minute), "evt_l")

		res, err := db.Replay(ctx, store.ReplayParams{IDs: []string{"evt_l"}, Now: opsT0.Add(time.Second)})
		require.NoError(t, err)
		require.Zero(t, res.Replayed)
		require.ErrorIs(t, res.Refused[0].Err, store.ErrLeased)
		require.Contains(t, res.Refused[0].Reason, "a worker (w/0) is processing it until 2026-03-01T12:01:00Z")

		res, err = db.Replay(ctx, store.ReplayParams{Filter: store.EventFilter{Statuses: []store.Status{store.StatusPending}}, Now: opsT0.Add(time.Second)})
		require.NoError(t, err)
		require.Equal(t, []int{2, 1, 1}, []int{res.Matched, res.Eligible, res.Replayed})
		ev, err := db.Event(ctx, "evt_l")
		require.NoError(t, err)
		require.Equal(t, "w/0", ev.LeaseOwner, "the leased row is untouched")

		res, err = db.Replay(ctx, store.ReplayParams{IDs: []string{"evt_l"}, Now: opsT0.Add(2 * time.Minute)})
		require.NoError(t, err)
		require.Equal(t, 1, res.Replayed)
		_, err = db.Fail(ctx, store.Failure{EventID: "evt_l", Worker: "w/0", Err: "late", Now: opsT0.Add(2 * time.Minute), NextAttemptAt: opsT0.Add(3 * time.Minute)})
		require.ErrorIs(t, err, store.ErrNotClaimed)
	})
}

// Bulk replay of a few thousand dead rows: a dry run counts, a filter
// narrows, progress is reported, every row gets its history entry, and rows
// a worker claims meanwhile are never reset.
func TestReplayBulkDeadRows(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		storetest.SeedDead(t, db, "evt_paid", "invoice.paid", 1500, opsT0.Add(-24*time.Hour), func(i int) string { return fmt.Sprintf("cus_%d", i%7) })
		storetest.SeedDead(t, db, "evt_sub", "customer.subscription.updated", 500, opsT0.Add(-24*time.Hour), func(i int) string { return fmt.Sprintf("cus_%d", i%7) })
		dead := store.EventFilter{Statuses: []store.Status{store.StatusDead}, Types: []string{"invoice.*"}}

		res, err := db.Replay(ctx, store.ReplayParams{Filter: dead, DryRun: true, Now: opsT0})
		require.NoError(t, err)
		require.Equal(t, store.ReplayResult{DryRun: true, Matched: 1500, Eligible: 1500, Refused: []store.Refusal{}}, res)
		s, err := db.Stats(ctx, opsT0, 10)
		require.NoError(t, err)
		require.Equal(t, 2000, s.Dead, "a dry run changes nothing")

		var mu sync.Mutex
		var progress [][2]int
		res, err = db.Replay(ctx, store.ReplayParams{
			Filter: dead, Actor: "cli:ops", Reason: "bulk", Now: opsT0, BatchSize: 600,
			Progress: func(done, total int) { mu.Lock(); progress = append(progress, [2]int{done, total}); mu.Unlock() },
		})
		require.NoError(t, err)
		require.Equal(t, 1500, res.Replayed)
		require.Equal(t, [][2]int{{600, 1500}, {1200, 1500}, {1500, 1500}}, progress)

		s, err = db.Stats(ctx, opsT0, 10)
		require.NoError(t, err)
		require.Equal(t, 500, s.Dead)
		require.Equal(t, 1500, s.Counts[store.StatusPending])
		var replayed int
		require.NoError(t, db.SQLX().GetContext(ctx, &replayed, `SELECT count(*) FROM event_attempts WHERE outcome = 'replayed' AND actor = 'cli:ops'`))
		require.Equal(t, 1500, replayed)

		// Replaying the pending rows again while a worker claims some: the
		// claimed ones are skipped, the others reset.
		var ids []string
		for i := range 300 {
			ids = append(ids, fmt.Sprintf("evt_paid_%05d", i))
		}
		claimed := storetest.Lease(t, db, "w/1", opsT0.Add(time.Minute), ids...)
		res, err = db.Replay(ctx, store.ReplayParams{Filter: store.EventFilter{Statuses: []store.Status{store.StatusPending}}, Now: opsT0})
		require.NoError(t, err)
		require.Equal(t, []int{1500, 1200, 1200}, []int{res.Matched, res.Eligible, res.Replayed})
		for _, ev := range claimed[:5] {
			got, err := db.Event(ctx, ev.ID)
			require.NoError(t, err)
			require.Equal(t, "w/1", got.LeaseOwner)
		}
	})
}

func TestDiscard(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		storetest.Seed(t, db, opsListSeed()...)
		storetest.Lease(t, db, "w/0", opsT0.Add(time.Minute), "evt_5")

		_, err := db.Discard(ctx, store.DiscardParams{IDs: []string{"evt_4"}, Now: opsT0})
		require.ErrorIs(t, err, store.ErrInvalidInput)
		// A reason is a sentence kept in the history and the log, not a document.
		long := strings.Repeat("y", store.MaxReasonLength+1)
		_, err = db.Discard(ctx, store.DiscardParams{IDs: []string{"evt_4"}, Reason: long, Now: opsT0})
		require.ErrorIs(t, err, store.ErrInvalidInput)
		_, err = db.Replay(ctx, store.ReplayParams{IDs: []string{"evt_4"}, Reason: long, Now: opsT0})
		require.ErrorIs(t, err, store.ErrInvalidInput)
		ev, err := db.Event(ctx, "evt_4")
		require.NoError(t, err)
		require.Equal(t, store.StatusDead, ev.Status, "refused, not half done")

		res, err := db.Discard(ctx, store.DiscardParams{IDs: []string{"evt_4", "evt_2", "evt_1", "evt_5", "evt_nope"}, Reason: "test customer", Actor: "cli:ops", Now: opsT0})
		require.NoError(t, err)
		require.Equal(t, []string{"evt_4", "evt_2"}, res.Discarded)
		require.Len(t, res.Refused, 3)
		require.ErrorIs(t, res.Refused[0].Err, store.ErrConflict)
		require.ErrorIs(t, res.Refused[1].Err, store.ErrLeased)
		require.ErrorIs(t, res.Refused[2].Err, store.ErrNotFound)

		ev, err = db.Event(ctx, "evt_4")
		require.NoError(t, err)
		require.Equal(t, store.StatusDiscarded, ev.Status)
		require.Equal(t, "handler: boom", ev.LastError)
		ev, err = db.Event(ctx, "evt_2")
		require.NoError(t, err)
		require.Empty(t, ev.WaitingFor)
		attempts, err := db.Attempts(ctx, "evt_4")
		require.NoError(t, err)
		require.Equal(t, []any{"discarded", "cli:ops", "test customer"}, []any{attempts[0].Outcome, attempts[0].Actor, attempts[0].Detail})

		// A discarded event can be brought back only with force.
		rr, err := db.Replay(ctx, store.ReplayParams{IDs: []string{"evt_4"}, Now: opsT0})
		require.NoError(t, err)
		require.ErrorIs(t, rr.Refused[0].Err, store.ErrConflict)
		rr, err = db.Replay(ctx, store.ReplayParams{IDs: []string{"evt_4"}, Force: true, Now: opsT0})
		require.NoError(t, err)
		require.Equal(t, 1, rr.Replayed)
	})
}

// On PostgreSQL an operator never waits for a worker's transaction: a row a
// worker is applying right now is refused at once, even past its lease.
func TestReplayNeverWaitsForAWorkersTransaction(t *testing.T) {
	t.Parallel()
	db := storetest.Postgres(t)
	ctx := context.Background()
	storetest.Seed(t, db, storetest.Row{ID: "evt_busy", Type: "customer.created", CustomerID: "cus_a", Received: opsT0})
	claimed := storetest.Lease(t, db, "w/0", opsT0.Add(time.Minute), "evt_busy")

	started, release, done := make(chan struct{}), make(chan struct{}), make(chan error, 1)
	go func() {
		done <- db.Process(ctx, claimed[0], "w/0", opsT0, func(ctx context.Context, tx *store.Tx) error {
			close(started)
			<-release
			return tx.MarkApplied(ctx, "")
		})
	}()
	<-started
	quick, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	res, err := db.Replay(quick, store.ReplayParams{IDs: []string{"evt_busy"}, Now: opsT0.Add(2 * time.Minute)})
	require.NoError(t, err)
	require.Zero(t, res.Replayed)
	require.ErrorIs(t, res.Refused[0].Err, store.ErrLeased)
	require.Contains(t, res.Refused[0].Reason, "applying it right now")
	dres, err := db.Discard(quick, store.DiscardParams{IDs: []string{"evt_busy"}, Reason: "x", Now: opsT0.Add(2 * time.Minute)})
	require.NoError(t, err)
	require.ErrorIs(t, dres.Refused[0].Err, store.ErrLeased)

	close(release)
	require.NoError(t, <-done)
	ev, err := db.Event(ctx, "evt_busy")
	require.NoError(t, err)
	require.Equal(t, store.StatusApplied, ev.Status)
}
