//go:build reliability

package reliability

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sync/errgroup"

	"github.com/orderhook/orderhook/internal/scenario"
)

// Scenario 3, several replicas: three `serve` processes on one database
// behind a round-robin sender; one of them is SIGKILLed when half of the
// deliveries are acknowledged and stays dead. Exactly once still holds, per
// customer order still holds and the mirror is the in-order result.
//
// Mechanisms: FOR UPDATE SKIP LOCKED claims in the apply transaction, leases
// for the events applied alone, and the guarded status change (no event
// applied by two replicas: "doubled"); a dead replica's batches roll back
// and lease expiry frees what it held alone ("unapplied" otherwise); the
// per-customer advisory lock and the deferral on customer:cus_…
// (requireCustomerOrder, requireMirror); LISTEN/NOTIFY across replicas is
// exercised by releases applied on another replica than the one that
// received the event.
func TestReplicas(t *testing.T) {
	t.Parallel()
	sz := currentSize(t)
	d := newDatabase(t)
	rng := rand.New(rand.NewPCG(3, uint64(time.Now().UnixNano())))
	s := scenario.Generate(scenario.Config{Customers: sz.replicaCustomer, Seed: 3, Prefix: "replica"})
	deliveries := s.Shuffled(rng, 0.25, 2)
	replicas := []*server{
		startServer(t, "replica-a", d.url), startServer(t, "replica-b", d.url), startServer(t, "replica-c", d.url),
	}
	led := newLedger()
	cl := newClient(led, replicas[0].url(), replicas[1].url(), replicas[2].url())
	defer cl.close()

	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), sz.deadline)
	defer cancel()
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return cl.deliverAll(gctx, deliveries, 9) })
	g.Go(func() error {
		// Mid-run: once half of the deliveries are acknowledged.
		err := poll(gctx, 10*time.Millisecond, func() (bool, error) {
			return led.count(200) >= len(deliveries)/2, nil
		})
		replicas[1].kill()
		return err
	})
	require.NoError(t, g.Wait())
	sent := time.Since(start)

	settle := d.settle(t, len(s.Events), settleAfterKill)
	v := d.requireExactlyOnce(t, s.Events, led.ackedIDs())
	customers := d.requireCustomerOrder(t)
	d.requireMirror(t, s.Want)
	t.Logf("SUMMARY replicas: %s replicas=3 killed=1 deliveries=%d duplicates=%d customers-in-order=%d %s deliver=%s settle=%s applied-by-worker: %s history: %s",
		v, len(deliveries), len(deliveries)-len(s.Events), customers, led, sent.Round(time.Millisecond),
		settle.Round(time.Millisecond), formatCounts(d.appliedByWorker(t)), formatCounts(d.outcomes(t)))
}
