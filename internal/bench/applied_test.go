package bench

import (
	"context"
	"net/http/httptest"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/orderhook/orderhook/reconcile"
	"github.com/orderhook/orderhook/store"
	"github.com/orderhook/orderhook/store/storetest"
	"github.com/orderhook/orderhook/webhook"
)

// The time until applied runs to the commit that applied the last event,
// not to the server's applied_at, which is the start of the transaction
// that applied it: here one transaction applies every event, once all are
// stored, and commits half a second after it starts.
func TestAppliedRunsToTheLastCommit(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		const secret, slow = "whsec_applied", 500 * time.Millisecond
		h, err := webhook.NewHandler(webhook.Config{Secrets: []string{secret}, Tolerance: 5 * time.Minute}, db, nil, zerolog.Nop())
		require.NoError(t, err)
		srv := httptest.NewServer(h)
		defer srv.Close()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		wcfg := WorkloadConfig{Customers: 3, Seed: 1, Prefix: "evt_applied"}
		w, err := NewWorkload(wcfg)
		require.NoError(t, err)
		done := make(chan error, 1)
		go func() { done <- applyOnceStored(ctx, db, w.Distinct, slow) }()

		res, err := Run(ctx, Config{URL: srv.URL, Secrets: []string{secret}, Workload: wcfg, SkipLimit: true, Timeout: time.Minute, PID: os.Getpid()}, db)
		require.NoError(t, err)
		require.NoError(t, res.Err())
		cancel()
		require.NoError(t, <-done)
		require.GreaterOrEqual(t, res.Applied, slow, "ended before the commit")
	})
}

// applyOnceStored waits until n events are stored, then applies them all
// with a worker whose one batch takes at least slow.
func applyOnceStored(ctx context.Context, db *store.DB, n int, slow time.Duration) error {
	_, err := pollUntilNone(ctx, func() (int, error) {
		var stored int
		err := db.SQLX().GetContext(ctx, &stored, `SELECT count(*) FROM webhook_events`)
		return n - stored, err
	}, func(int) {})
	if err != nil {
		return err
	}
	var once sync.Once
	wk, err := reconcile.NewWorker(reconcile.Config{Workers: 1, BatchSize: 1000, Handlers: map[string]reconcile.HandlerFunc{
		"customer.created": func(context.Context, *sqlx.Tx, reconcile.Event) error {
			once.Do(func() { time.Sleep(slow) })
			return nil
		},
	}}, db, zerolog.Nop())
	if err != nil {
		return err
	}
	if err := wk.Run(ctx); err != nil && ctx.Err() == nil {
		return err
	}
	return nil
}
