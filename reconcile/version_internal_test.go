package reconcile

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestSupersedes(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	t1 := t0.Add(time.Second)
	for _, tc := range []struct {
		name      string
		cur, next version
		want      bool
	}{
		{"newer wins", invoiceVersion("open", t0, "invoice.finalized"), invoiceVersion("open", t1, "invoice.updated"), true},
		{"older loses", invoiceVersion("open", t1, "invoice.updated"), invoiceVersion("open", t0, "invoice.finalized"), false},
		{"finalized after paid keeps paid", invoiceVersion("paid", t0, "invoice.paid"), invoiceVersion("open", t1, "invoice.finalized"), false},
		{"paid beats open in its second", invoiceVersion("open", t0, "invoice.finalized"), invoiceVersion("paid", t0, "invoice.paid"), true},
		{"uncollectible then paid later", invoiceVersion("uncollectible", t0, "invoice.marked_uncollectible"), invoiceVersion("paid", t1, "invoice.paid"), true},
		{"paid then older uncollectible", invoiceVersion("paid", t1, "invoice.paid"), invoiceVersion("uncollectible", t0, "invoice.marked_uncollectible"), false},
		{"same state same second: later applied wins", invoiceVersion("paid", t0, "invoice.paid"), invoiceVersion("paid", t0, "invoice.payment_succeeded"), true},
		{"draft after open in one second loses", invoiceVersion("open", t0, "invoice.finalized"), invoiceVersion("draft", t0, "invoice.created"), false},
		{"active beats incomplete in one second", subscriptionVersion("incomplete", t0, "customer.subscription.created"), subscriptionVersion("active", t0, "customer.subscription.updated"), true},
		{"incomplete after active in one second loses", subscriptionVersion("active", t0, "customer.subscription.updated"), subscriptionVersion("incomplete", t0, "customer.subscription.created"), false},
		{"updated beats created at equal state", subscriptionVersion("active", t0, "customer.subscription.created"), subscriptionVersion("active", t0, "customer.subscription.updated"), true},
		{"created loses to updated at equal state", subscriptionVersion("active", t0, "customer.subscription.updated"), subscriptionVersion("active", t0, "customer.subscription.created"), false},
		{"canceled never regresses", subscriptionVersion("canceled", t0, "customer.subscription.deleted"), subscriptionVersion("active", t1, "customer.subscription.updated"), false},
		{"canceled wins its second", subscriptionVersion("active", t0, "customer.subscription.updated"), subscriptionVersion("canceled", t0, "customer.subscription.deleted"), true},
		{"deleted customer is not resurrected", customerVersion(true, t0, "customer.deleted"), customerVersion(false, t1, "customer.updated"), false},
		{"deletion beats an update in its second", customerVersion(false, t0, "customer.updated"), customerVersion(true, t0, "customer.deleted"), true},
		{"update after create", customerVersion(false, t0, "customer.created"), customerVersion(false, t1, "customer.updated"), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tc.want, supersedes(tc.cur, tc.next))
		})
	}
}

func TestBackoff(t *testing.T) {
	t.Parallel()
	for attempt, ceiling := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 4: 8 * time.Second, 20: time.Minute} {
		for range 200 {
			d := backoff(attempt, time.Second, time.Minute)
			require.GreaterOrEqual(t, d, time.Duration(0))
			require.Less(t, d, ceiling, "attempt %d", attempt)
		}
	}
	require.Zero(t, backoff(3, 0, time.Minute))
}
