package reconcile_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/orderhook/orderhook/internal/scenario"
	"github.com/orderhook/orderhook/reconcile"
	"github.com/orderhook/orderhook/store"
	"github.com/orderhook/orderhook/store/storetest"
)

// BenchmarkReleaseLatency measures how long a deferred invoice.paid waits
// after its customer is applied: from the report of the commit that creates
// the customer to the report of the commit that applies the invoice. The
// poll interval is an hour, so no poll can release it; the batch that
// applies the customer applies the released invoice in the same
// transaction, so both are reported after one commit. Reports p50 and p99.
func BenchmarkReleaseLatency(b *testing.B) {
	storetest.EachBenchmark(b, func(b *testing.B, db *store.DB) {
		type stamped struct {
			reconcile.Transition
			at time.Time
		}
		seen := make(chan stamped, 1024)
		w, err := reconcile.NewWorker(reconcile.Config{PollInterval: time.Hour, OnTransition: func(tr reconcile.Transition) {
			seen <- stamped{tr, time.Now()}
		}}, db, zerolog.Nop())
		require.NoError(b, err)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- w.Run(ctx) }()
		defer func() { cancel(); require.NoError(b, <-done) }()

		wait := func(id, outcome string) time.Time {
			for tr := range seen {
				if tr.EventID == id && tr.Outcome == outcome {
					return tr.at
				}
			}
			return time.Time{}
		}
		latencies := make([]time.Duration, 0, b.N)
		b.ResetTimer()
		for i := range b.N {
			s := scenario.Generate(scenario.Config{Customers: 1, Prefix: fmt.Sprintf("b%d", i)})
			paid, created := find(b, s, "invoice.paid"), find(b, s, "customer.created")
			insert(b, db, paid, time.Now())
			wait(paid.ID, store.OutcomeDeferred)
			insert(b, db, created, time.Now())
			applied := wait(created.ID, store.OutcomeApplied)
			latencies = append(latencies, wait(paid.ID, store.OutcomeApplied).Sub(applied))
		}
		b.StopTimer()
		slices.Sort(latencies)
		b.ReportMetric(float64(latencies[len(latencies)/2].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(latencies[len(latencies)*99/100].Microseconds())/1000, "p99-ms")
	})
}
