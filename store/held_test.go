package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orderhook/orderhook/store"
	"github.com/orderhook/orderhook/store/storetest"
)

// Mirror rows, held until the end of the transaction on PostgreSQL, reach
// the tables whole: every column, NULLs included, and only the last write of
// a row.
func TestMirrorWritesOfABatchReachTheTables(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		insertAll(t, db, newEvent("evt_h1", "cus_h1", t0))
		created := t0.Add(-time.Hour).Truncate(time.Second).UTC()
		periodEnd, canceled := created.Add(30*24*time.Hour), created.Add(time.Minute)
		last := store.LastEvent{EventID: "evt_h1", Type: "invoice.paid", Created: &created}
		want := store.Mirror{
			Customers: []store.Customer{
				{ID: "cus_h1", Email: "a@example.com", Name: "Zoë", Livemode: true, LastEvent: last},
				{ID: "cus_h2"}, // a stub
				{ID: "cus_h3", Deleted: true, LastEvent: last},
			},
			Subscriptions: []store.Subscription{
				{ID: "sub_h1", CustomerID: "cus_h1", Status: "canceled", CancelAtPeriodEnd: true, CurrentPeriodEnd: &periodEnd, CanceledAt: &canceled, LastEvent: last},
				{ID: "sub_h2", CustomerID: "cus_h1", Status: "active", Livemode: true, LastEvent: last},
			},
			Invoices: []store.Invoice{
				{ID: "in_h1", CustomerID: "cus_h1", SubscriptionID: "sub_h1", Status: "paid", AmountDue: 1999, AmountPaid: 1999, Currency: "eur", LastEvent: last},
				{ID: "in_h2", CustomerID: "cus_h1", Status: "draft", Currency: "usd", Livemode: true, LastEvent: last},
			},
		}
		_, err := db.ProcessDue(ctx, store.ClaimParams{Worker: "w", Limit: 1, Now: t0.Add(time.Second), Lease: time.Minute},
			func(ctx context.Context, tx *store.Tx) error {
				first := want.Customers[0]
				first.Name = "overwritten in the same transaction"
				require.NoError(t, tx.PutCustomer(ctx, first))
				require.NoError(t, tx.PutCustomer(ctx, want.Customers[0]))
				require.NoError(t, tx.EnsureCustomer(ctx, "cus_h2"))
				require.NoError(t, tx.EnsureCustomer(ctx, "cus_h1"), "exists: nothing to do")
				require.NoError(t, tx.PutCustomer(ctx, want.Customers[2]))
				for _, s := range want.Subscriptions {
					require.NoError(t, tx.PutSubscription(ctx, s))
				}
				for _, in := range want.Invoices {
					require.NoError(t, tx.PutInvoice(ctx, in))
				}
				return tx.MarkApplied(ctx, "")
			})
		require.NoError(t, err)
		got, err := db.Mirror(ctx)
		require.NoError(t, err)
		normalize(&want)
		normalize(&got)
		require.Equal(t, want, got)
	})
}

// normalize drops the location of every time of m, for require.Equal.
func normalize(m *store.Mirror) {
	utc := func(t *time.Time) *time.Time {
		if t == nil {
			return nil
		}
		u := t.UTC()
		return &u
	}
	for i := range m.Customers {
		m.Customers[i].Created = utc(m.Customers[i].Created)
	}
	for i := range m.Subscriptions {
		s := &m.Subscriptions[i]
		s.Created, s.CurrentPeriodEnd, s.CanceledAt = utc(s.Created), utc(s.CurrentPeriodEnd), utc(s.CanceledAt)
	}
	for i := range m.Invoices {
		m.Invoices[i].Created = utc(m.Invoices[i].Created)
	}
}

// On PostgreSQL the batch's mirror writes reach its transaction at Flush,
// which the worker calls before a registered handler, and Flush gives the
// handler the planner's defaults back; what is written after it is written
// at the end.
func TestFlushWritesTheHeldMirrorRowsForHandlers(t *testing.T) {
	t.Parallel()
	db := storetest.Postgres(t)
	ctx := context.Background()
	insertAll(t, db, newEvent("evt_f1", "cus_f1", t0))
	created := t0.UTC()
	inv := store.Invoice{ID: "in_f1", CustomerID: "cus_f1", Status: "open", Currency: "eur",
		LastEvent: store.LastEvent{EventID: "evt_f1", Type: "invoice.finalized", Created: &created}}
	_, err := db.ProcessDue(ctx, store.ClaimParams{Worker: "w", Limit: 1, Now: t0.Add(time.Second), Lease: time.Minute},
		func(ctx context.Context, tx *store.Tx) error {
			status := func() string {
				var s string
				require.NoError(t, tx.SQLX().GetContext(ctx, &s, `SELECT COALESCE((SELECT status FROM stripe_invoices WHERE id = 'in_f1'), 'none')`))
				return s
			}
			bitmapScans := func() string {
				var s string
				require.NoError(t, tx.SQLX().GetContext(ctx, &s, `SHOW enable_bitmapscan`))
				return s
			}
			require.NoError(t, tx.PutInvoice(ctx, inv))
			require.Equal(t, "none", status(), "held")
			require.Equal(t, "off", bitmapScans(), "for the claim")
			require.NoError(t, tx.Flush(ctx))
			require.Equal(t, "open", status())
			require.Equal(t, "on", bitmapScans())
			require.NoError(t, tx.Flush(ctx), "nothing left to write")
			inv.Status = "paid"
			require.NoError(t, tx.PutInvoice(ctx, inv))
			return tx.MarkApplied(ctx, "")
		})
	require.NoError(t, err)
	got, err := db.Mirror(ctx)
	require.NoError(t, err)
	require.Len(t, got.Invoices, 1)
	require.Equal(t, "paid", got.Invoices[0].Status)
}

// A batch reads the mirror rows of its events with one probe of the primary
// key per id, under the plan a prepared statement keeps: generic, without
// bitmap scans (the claim turns them off), for a guessed number of ids. A
// `WHERE id = ANY($1)` got a scan of the whole table there, on every batch.
func TestMirrorReadsProbeThePrimaryKey(t *testing.T) {
	t.Parallel()
	db := storetest.Postgres(t)
	for _, q := range []string{
		`INSERT INTO stripe_customers (id, updated_at) SELECT 'cus_' || g, now() FROM generate_series(1, 2000) AS g`,
		`INSERT INTO stripe_subscriptions (id, customer_id, status, last_event_id, last_event_type, last_event_created, updated_at)
			SELECT 'sub_' || g, 'cus_' || g, 'active', 'evt_' || g, 'customer.subscription.created', now(), now() FROM generate_series(1, 2000) AS g`,
		`INSERT INTO stripe_invoices (id, customer_id, status, last_event_id, last_event_type, last_event_created, updated_at)
			SELECT 'in_' || g, 'cus_' || g, 'paid', 'evt_' || g, 'invoice.paid', now(), now() FROM generate_series(1, 2000) AS g`,
		`ANALYZE stripe_customers, stripe_subscriptions, stripe_invoices`,
	} {
		_, err := db.SQLX().Exec(q)
		require.NoError(t, err, q)
	}
	for table, query := range store.MirrorLoadQueries() {
		plan := genericPlan(t, db, query, "text[]", `'{cus_1,sub_2,in_3}'`)
		require.Contains(t, plan, "Index Scan using "+table+"_pkey", plan)
		require.NotContains(t, plan, "Seq Scan on "+table, plan)
	}
}
