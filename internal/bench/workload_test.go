package bench

import (
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/orderhook/orderhook/internal/stripeevent"
	"github.com/orderhook/orderhook/reconcile"
)

// The order is adversarial: every event of a customer is delivered before
// the customer's own customer.created, and customers are interleaved.
func TestWorkloadIsAdversarial(t *testing.T) {
	t.Parallel()
	w, err := NewWorkload(WorkloadConfig{Customers: 50, PayloadBytes: 2000, Interleave: 8, Seed: 42, Prefix: "t1"})
	require.NoError(t, err)
	require.Equal(t, uint64(42), w.Seed)
	require.Equal(t, "evt_t1", w.IDPrefix())
	require.Zero(t, w.Duplicates())
	require.InDelta(t, 2000, w.PayloadBytes, 200)

	first := map[string]int{} // event id → position
	envs := map[string]stripeevent.Envelope{}
	for i, d := range w.Deliveries {
		require.Regexp(t, `^evt_t1\d+$`, d.ID)
		env, err := stripeevent.Parse(d.Body)
		require.NoError(t, err)
		first[d.ID], envs[d.ID] = i, env
	}
	require.Len(t, first, w.Distinct)
	require.NotEqual(t, envs[w.Deliveries[0].ID].CustomerID, envs[w.Deliveries[1].ID].CustomerID, "customers are interleaved")

	created := map[string]int{} // customer → position of customer.created
	for id, env := range envs {
		if env.Type == "customer.created" {
			created[env.CustomerID] = first[id]
		}
	}
	require.Len(t, created, 50)
	for id, env := range envs {
		if env.Type != "customer.created" {
			require.Less(t, first[id], created[env.CustomerID], "%s %s comes before its customer", id, env.Type)
		}
	}
}

// With LateCustomers every delivery of an event that creates a customer,
// duplicates included, comes after all others; each part keeps its order.
func TestWorkloadLateCustomers(t *testing.T) {
	t.Parallel()
	cfg := WorkloadConfig{Customers: 30, Duplicates: 0.3, Seed: 9, Prefix: "t3"}
	plain, err := NewWorkload(cfg)
	require.NoError(t, err)
	cfg.LateCustomers = true
	w, err := NewWorkload(cfg)
	require.NoError(t, err)
	require.Zero(t, plain.Late)
	require.Equal(t, plain.Distinct, w.Distinct)
	require.ElementsMatch(t, plain.Deliveries, w.Deliveries)

	var early, late []string
	for _, d := range plain.Deliveries {
		env, err := stripeevent.Parse(d.Body)
		require.NoError(t, err)
		if slices.Contains(reconcile.DefaultCustomerEvents, env.Type) {
			late = append(late, d.ID)
		} else {
			early = append(early, d.ID)
		}
	}
	require.Greater(t, len(late), 2*30, "customer.created and customer.subscription.created at least, and duplicates")
	require.Equal(t, len(late), w.Late)
	var got []string
	for _, d := range w.Deliveries {
		got = append(got, d.ID)
	}
	require.Equal(t, slices.Concat(early, late), got)
}

// Duplicates are extra deliveries of the same bytes, at random places; the
// same seed and prefix give the same workload.
func TestWorkloadDuplicates(t *testing.T) {
	t.Parallel()
	cfg := WorkloadConfig{Customers: 40, Duplicates: 0.2, Seed: 7, Prefix: "t2"}
	w, err := NewWorkload(cfg)
	require.NoError(t, err)
	plain, err := NewWorkload(WorkloadConfig{Customers: 40, Seed: 7, Prefix: "t2"})
	require.NoError(t, err)
	require.Equal(t, plain.Distinct, w.Distinct)
	require.InDelta(t, 0.2*float64(w.Distinct), w.Duplicates(), 0.5)

	bodies := map[string][]byte{}
	for _, d := range plain.Deliveries {
		bodies[d.ID] = d.Body
	}
	seen := map[string]int{}
	for _, d := range w.Deliveries {
		require.Equal(t, bodies[d.ID], d.Body, "a duplicate is the same bytes")
		seen[d.ID]++
	}
	require.Len(t, seen, w.Distinct, "every event is delivered")

	again, err := NewWorkload(cfg)
	require.NoError(t, err)
	require.Equal(t, w, again)
}

func TestWorkloadDefaultsAndErrors(t *testing.T) {
	t.Parallel()
	w, err := NewWorkload(WorkloadConfig{Customers: 3})
	require.NoError(t, err)
	require.NotZero(t, w.Seed)
	require.Regexp(t, `^b[0-9a-f]{8}$`, w.Prefix)
	require.Zero(t, w.Duplicates(), "Duplicates 0 means none")
	require.InDelta(t, DefaultPayloadBytes, w.PayloadBytes, 300)
	other, err := NewWorkload(WorkloadConfig{Customers: 3})
	require.NoError(t, err)
	require.NotEqual(t, w.Prefix, other.Prefix, "each run has its own ids")

	for _, cfg := range []WorkloadConfig{{Customers: -1}, {Duplicates: 1.5}, {Duplicates: -0.1}, {PayloadBytes: -1}, {Interleave: -2}} {
		_, err := NewWorkload(cfg)
		require.Error(t, err, "%+v", cfg)
	}
}
