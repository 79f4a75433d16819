//go:build reliability

package reliability

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	_ "github.com/lib/pq" // the checks read PostgreSQL directly
	"github.com/stretchr/testify/require"

	"github.com/orderhook/orderhook/internal/scenario"
	"github.com/orderhook/orderhook/store/storetest"
)

// database is a test's own PostgreSQL schema: the URL the servers get as
// --db, and a connection the checks read the contract tables through (the
// table and column names of the README, not the store package).
type database struct {
	url string
	db  *sqlx.DB
}

// newDatabase creates a schema for t (dropped when t ends) and connects to
// it. Like every PostgreSQL test it skips without ORDERHOOK_TEST_DATABASE_URL
// and fails instead when CI=true.
func newDatabase(t *testing.T) *database {
	t.Helper()
	url := storetest.PostgresURL(t)
	db, err := sqlx.Open("postgres", url)
	require.NoError(t, err)
	db.SetMaxOpenConns(4)
	t.Cleanup(func() { _ = db.Close() })
	return &database{url: url, db: db}
}

// settle waits until n events are stored and none is pending or deferred,
// for at most timeout, and returns how long it took. A timeout fails t but
// lets the test go on to the checks that name what is missing. The events a
// SIGKILLed worker held alone under a lease are retaken only when their
// 1-minute lease expires, so timeout must allow for that after a kill.
func (d *database) settle(t *testing.T, n int, timeout time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var open, total int
	err := poll(ctx, 250*time.Millisecond, func() (bool, error) {
		err := d.db.QueryRowContext(ctx, `SELECT count(*) FILTER (WHERE status IN ('pending', 'deferred')), count(*) FROM webhook_events`).Scan(&open, &total)
		if err != nil {
			return false, fmt.Errorf("count open events: %w", err)
		}
		return open == 0 && total >= n, nil
	})
	if err != nil {
		// The checks that follow name the lost or unapplied events.
		t.Errorf("not settled within %s: %d stored of %d, %d pending or deferred (%v); statuses %v",
			timeout, total, n, open, err, d.statuses(t))
	}
	return time.Since(start)
}

// statuses counts the events per status.
func (d *database) statuses(t *testing.T) map[string]int {
	t.Helper()
	return d.countBy(t, `SELECT status, count(*) FROM webhook_events GROUP BY status`)
}

// outcomes counts the history rows per outcome.
func (d *database) outcomes(t *testing.T) map[string]int {
	t.Helper()
	return d.countBy(t, `SELECT outcome, count(*) FROM event_attempts GROUP BY outcome`)
}

func (d *database) countBy(t *testing.T, query string) map[string]int {
	t.Helper()
	rows, err := d.db.Query(query)
	require.NoError(t, err)
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var k string
		var n int
		require.NoError(t, rows.Scan(&k, &n))
		out[k] = n
	}
	require.NoError(t, rows.Err())
	return out
}

// verdict is what the inbox says of a run: the figures a scenario reports.
type verdict struct {
	events, lost, doubled, unapplied, extra int
}

func (v verdict) String() string {
	return fmt.Sprintf("events=%d lost=%d doubled=%d unapplied=%d unexpected=%d", v.events, v.lost, v.doubled, v.unapplied, v.extra)
}

// requireExactlyOnce checks the inbox against what was sent:
//   - every acknowledged event is stored (commit before 2xx; an ack of an
//     event that is not there is a lost event),
//   - every sent event has exactly one row (the primary key and ON CONFLICT
//     DO NOTHING) and no other row exists,
//   - every event is applied, with exactly one `applied` history row (the
//     claim's row locks, or the lease, and the guarded status change in the
//     apply transaction; a re-apply after a crash or by a second replica
//     would add a second one).
func (d *database) requireExactlyOnce(t *testing.T, events []scenario.Event, acked []string) verdict {
	t.Helper()
	type row struct {
		ID      string `db:"event_id"`
		Status  string `db:"status"`
		Applied int    `db:"applied"`
	}
	var rows []row
	require.NoError(t, d.db.Select(&rows, `
		SELECT e.event_id, e.status,
			(SELECT count(*) FROM event_attempts a WHERE a.event_id = e.event_id AND a.outcome = 'applied') AS applied
		FROM webhook_events e`))
	stored := make(map[string]row, len(rows))
	for _, r := range rows {
		stored[r.ID] = r
	}
	want := map[string]bool{}
	for _, ev := range events {
		want[ev.ID] = true
	}
	v := verdict{events: len(want)}
	var lost, doubled, unapplied, extra []string
	for _, id := range acked {
		if _, ok := stored[id]; !ok {
			lost = append(lost, id)
		}
	}
	for id := range want {
		r, ok := stored[id]
		switch {
		case !ok:
			if !slices.Contains(lost, id) {
				lost = append(lost, id)
			}
		case r.Applied > 1:
			doubled = append(doubled, fmt.Sprintf("%s (%d applied)", id, r.Applied))
		case r.Applied == 0 || r.Status != "applied":
			unapplied = append(unapplied, fmt.Sprintf("%s (%s)", id, r.Status))
		}
	}
	for id := range stored {
		if !want[id] {
			extra = append(extra, id)
		}
	}
	v.lost, v.doubled, v.unapplied, v.extra = len(lost), len(doubled), len(unapplied), len(extra)
	require.Empty(t, lost, "acknowledged or sent but not stored")
	require.Empty(t, doubled, "applied more than once")
	require.Empty(t, unapplied, "not applied")
	require.Empty(t, extra, "stored but never sent")
	return v
}

// requireMirror compares the mirror with the scenario's in-order result,
// field for field: the supersede rules ("an older update never overwrites
// newer state, a terminal state never regresses") under any delivery order,
// duplicates and crashes.
func (d *database) requireMirror(t *testing.T, want scenario.Want) {
	t.Helper()
	got := d.mirror(t)
	require.Equal(t, want.Customers, got.Customers, "stripe_customers")
	require.Equal(t, want.Subscriptions, got.Subscriptions, "stripe_subscriptions")
	require.Equal(t, want.Invoices, got.Invoices, "stripe_invoices")
}

// mirror reads the mirror tables into the scenario's shape.
func (d *database) mirror(t *testing.T) scenario.Want {
	t.Helper()
	got := scenario.Want{Customers: map[string]scenario.Customer{}, Subscriptions: map[string]scenario.Subscription{}, Invoices: map[string]scenario.Invoice{}}
	var customers []struct {
		ID          string `db:"id"`
		Email, Name string
		Deleted     bool
	}
	require.NoError(t, d.db.Select(&customers, `SELECT id, coalesce(email, '') AS email, coalesce(name, '') AS name, deleted FROM stripe_customers`))
	for _, c := range customers {
		got.Customers[c.ID] = scenario.Customer{Email: c.Email, Name: c.Name, Deleted: c.Deleted}
	}
	var subs []struct {
		ID                string `db:"id"`
		CustomerID        string `db:"customer_id"`
		Status            string `db:"status"`
		CancelAtPeriodEnd bool   `db:"cancel_at_period_end"`
	}
	require.NoError(t, d.db.Select(&subs, `SELECT id, customer_id, status, cancel_at_period_end FROM stripe_subscriptions`))
	for _, s := range subs {
		got.Subscriptions[s.ID] = scenario.Subscription{CustomerID: s.CustomerID, Status: s.Status, CancelAtPeriodEnd: s.CancelAtPeriodEnd}
	}
	var invoices []struct {
		ID             string `db:"id"`
		CustomerID     string `db:"customer_id"`
		SubscriptionID string `db:"subscription_id"`
		Status         string `db:"status"`
		AmountDue      int64  `db:"amount_due"`
		AmountPaid     int64  `db:"amount_paid"`
	}
	require.NoError(t, d.db.Select(&invoices, `SELECT id, customer_id, coalesce(subscription_id, '') AS subscription_id, status, amount_due, amount_paid FROM stripe_invoices`))
	for _, in := range invoices {
		got.Invoices[in.ID] = scenario.Invoice{CustomerID: in.CustomerID, SubscriptionID: in.SubscriptionID, Status: in.Status, AmountDue: in.AmountDue, AmountPaid: in.AmountPaid}
	}
	return got
}

// customerEvents are the event types that create a customer row
// (reconcile.DefaultCustomerEvents, the default of --customer-events).
var customerEvents = []string{"customer.created", "customer.updated", "customer.deleted", "customer.subscription.created"}

// requireCustomerOrder checks, per customer, that the first event applied
// was one that creates the customer: no invoice or subscription update was
// applied before its customer existed (the deferral on customer:cus_…). The
// order is that of the `applied` history rows' ids: the row is written
// while the customer's advisory lock is held, so one customer's ids are in
// the order its events were applied, whichever replica applied them.
func (d *database) requireCustomerOrder(t *testing.T) int {
	t.Helper()
	var first []struct {
		CustomerID string `db:"customer_id"`
		Type       string `db:"type"`
	}
	require.NoError(t, d.db.Select(&first, `
		SELECT DISTINCT ON (e.customer_id) e.customer_id, e.type
		FROM event_attempts a JOIN webhook_events e ON e.event_id = a.event_id
		WHERE a.outcome = 'applied' AND e.customer_id IS NOT NULL
		ORDER BY e.customer_id, a.id`))
	var wrong []string
	for _, f := range first {
		if !slices.Contains(customerEvents, f.Type) {
			wrong = append(wrong, f.CustomerID+": "+f.Type)
		}
	}
	require.Empty(t, wrong, "customers whose first applied event cannot create them")
	return len(first)
}

// formatCounts prints a map as "k=v k=v" in key order.
func formatCounts(m map[string]int) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s=%d", k, m[k]))
	}
	return strings.Join(parts, " ")
}

// appliedByWorker counts the `applied` history rows per process (the worker
// name without its loop number).
func (d *database) appliedByWorker(t *testing.T) map[string]int {
	t.Helper()
	return d.countBy(t, `SELECT split_part(coalesce(worker, ''), '/', 1), count(*) FROM event_attempts WHERE outcome = 'applied' GROUP BY 1`)
}
