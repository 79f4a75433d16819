//go:build reliability

package reliability

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sync/errgroup"

	"github.com/orderhook/orderhook/internal/scenario"
)

// settleAfterKill bounds the wait for the last events after a SIGKILL: the
// events the dead process was applying in a batch are due again at once, but
// those it held alone under a lease are retaken only when their 1-minute
// lease expires.
const settleAfterKill = 150 * time.Second

// Scenario 1, crash: while a shuffled scenario with 25% duplicates is
// delivered and applied, the server is SIGKILLed at a random moment every
// 1–3 s and restarted. Afterwards every event is stored once and applied
// once, and the mirror is the in-order result.
//
// Mechanisms: the commit before the 2xx (an acknowledged event killed before
// its commit would be missing: "lost"); ON CONFLICT DO NOTHING (the retries
// of deliveries whose answer the kill swallowed store nothing twice); the
// claim inside the single apply transaction, the lease and the guarded status
// change of an event applied alone (a kill mid-apply rolls back, and the
// retaken event is applied once: "doubled" otherwise); the supersede rules
// (requireMirror).
func TestCrash(t *testing.T) {
	t.Parallel()
	sz := currentSize(t)
	d := newDatabase(t)
	rng := rand.New(rand.NewPCG(1, uint64(time.Now().UnixNano())))
	s := scenario.Generate(scenario.Config{Customers: sz.crashCustomers, Seed: 1, Prefix: "crash"})
	require.GreaterOrEqual(t, len(s.Events), sz.crashMinEvents)
	deliveries := s.Shuffled(rng, 0.25, 1)
	srv := startServer(t, "crash", d.url)

	led := newLedger()
	cl := newClient(led, srv.url())
	defer cl.close()
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), sz.deadline)
	defer cancel()
	delivered := make(chan struct{})
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		defer close(delivered)
		return cl.deliverAll(gctx, deliveries, 8)
	})
	g.Go(func() error { return killLoop(gctx, rng, srv, delivered, sz.crashMinKills) })
	require.NoError(t, g.Wait())
	sent := time.Since(start)

	settle := d.settle(t, len(s.Events), settleAfterKill)
	v := d.requireExactlyOnce(t, s.Events, led.ackedIDs())
	d.requireMirror(t, s.Want)
	t.Logf("SUMMARY crash: %s deliveries=%d duplicates=%d kills=%d %s deliver=%s settle=%s history: %s",
		v, len(deliveries), len(deliveries)-len(s.Events), srv.kills, led, sent.Round(time.Millisecond),
		settle.Round(time.Millisecond), formatCounts(d.outcomes(t)))
}

// killLoop SIGKILLs srv at a random moment 1–3 s after it became ready and
// restarts it, until the deliveries are done and at least minKills kills
// happened.
func killLoop(ctx context.Context, rng *rand.Rand, srv *server, delivered <-chan struct{}, minKills int) error {
	for kills := 0; ; kills++ {
		select {
		case <-delivered:
			if kills >= minKills {
				return nil
			}
		default:
		}
		wait := time.Second + time.Duration(rng.Int64N(int64(2*time.Second)))
		if err := sleepCtx(ctx, wait); err != nil {
			return nil // the deliveries failed; their error is the one to report
		}
		if err := srv.restart(ctx); err != nil {
			return fmt.Errorf("kill %d: %w", kills+1, err)
		}
	}
}
