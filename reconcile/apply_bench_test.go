package reconcile_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/orderhook/orderhook/internal/scenario"
	"github.com/orderhook/orderhook/reconcile"
	"github.com/orderhook/orderhook/store"
	"github.com/orderhook/orderhook/store/storetest"
)

// BenchmarkClaimApply measures the reconciler's throughput: a backlog of
// whole customer lifecycles, stored in order, claimed and applied by one
// Worker with its default four goroutines. Each op is one event reaching
// applied or ignored; ev/s is the apply rate.
func BenchmarkClaimApply(b *testing.B) {
	storetest.EachBenchmark(b, func(b *testing.B, db *store.DB) {
		s := scenario.Generate(scenario.Config{Customers: b.N/10 + 1, Prefix: fmt.Sprintf("ca%d", b.N)})
		events := s.Events[:min(b.N, len(s.Events))]
		for _, ev := range events {
			insert(b, db, ev, time.Now())
		}
		done := make(chan struct{}, len(events))
		w, err := reconcile.NewWorker(reconcile.Config{OnTransition: func(tr reconcile.Transition) {
			if tr.Outcome == store.OutcomeApplied || tr.Outcome == store.OutcomeIgnored {
				done <- struct{}{}
			}
		}}, db, zerolog.Nop())
		require.NoError(b, err)
		ctx, cancel := context.WithCancel(context.Background())
		stopped := make(chan error, 1)
		b.ResetTimer()
		start := time.Now()
		go func() { stopped <- w.Run(ctx) }()
		for range events {
			<-done
		}
		b.StopTimer()
		b.ReportMetric(float64(len(events))/time.Since(start).Seconds(), "ev/s")
		cancel()
		require.NoError(b, <-stopped)
	})
}
