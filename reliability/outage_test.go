//go:build reliability

package reliability

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sync/errgroup"

	"github.com/orderhook/orderhook/internal/cutproxy"
	"github.com/orderhook/orderhook/internal/scenario"
)

// recoveryLimit is what "recovers by itself within a few seconds of the
// database returning" allows, for /readyz and for the first 2xx.
const recoveryLimit = 10 * time.Second

// Scenario 2, database outage: while a scenario is delivered, the server's
// database becomes unreachable for several seconds (a TCP proxy in front of
// PostgreSQL drops every connection and refuses new ones), then returns.
//
// Claims and mechanisms: while the database is gone every delivery is
// answered 503 store-unavailable with Retry-After and never 2xx (the 2xx only
// after the commit), /readyz answers 503 (the readiness ping); once it
// returns, /readyz and the first 2xx come back within recoveryLimit without a
// restart (the connection pool discards the dead connections); nothing is
// lost or doubled (the sender's retries of the 503s, ON CONFLICT DO NOTHING,
// the worker's retry of its failed transactions).
func TestDatabaseOutage(t *testing.T) {
	t.Parallel()
	sz := currentSize(t)
	d := newDatabase(t)
	u, err := url.Parse(d.url)
	require.NoError(t, err)
	proxy := cutproxy.Start(t, u.Host)
	u.Host = proxy.Addr()
	appName := fmt.Sprintf("reliability_outage_%d", time.Now().UnixNano())
	q := u.Query()
	q.Set("application_name", appName) // names this server's backends for pg_terminate_backend
	u.RawQuery = q.Encode()
	srv := startServer(t, "outage", u.String())

	rng := rand.New(rand.NewPCG(2, uint64(time.Now().UnixNano())))
	s := scenario.Generate(scenario.Config{Customers: sz.outageCustomers, Seed: 2, Prefix: "outage"})
	deliveries := s.Shuffled(rng, 0.25, 1)
	led := newLedger()
	led.keep = true
	cl := newClient(led, srv.url())
	cl.backoffMax = 500 * time.Millisecond
	defer cl.close()

	ctx, cancel := context.WithTimeout(context.Background(), sz.deadline)
	defer cancel()
	var o outage
	var k killedBackends
	// The last sixth is held back until the kills have ended, so that some
	// deliveries are sent after them however soon a fast machine is
	// through the rest.
	split := len(deliveries) - len(deliveries)/6
	early, late := deliveries[:split], deliveries[split:]
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return cl.deliverAll(gctx, early, 8) })
	g.Go(func() error {
		// Under load: once a third of the deliveries are acknowledged, cut
		// the database; once two thirds are, kill its backends; then
		// deliver the rest.
		if err := waitAcked(gctx, led, len(deliveries)/3); err != nil {
			return err
		}
		if err := o.run(gctx, proxy, srv, sz.outage); err != nil {
			return err
		}
		if err := waitAcked(gctx, led, 2*len(deliveries)/3); err != nil {
			return err
		}
		if err := k.run(gctx, d, appName, srv, sz.outage/2); err != nil {
			return err
		}
		return cl.deliverAll(gctx, late, 8)
	})
	require.NoError(t, g.Wait())

	w := o.classify(led.kept())
	require.Empty(t, w.wrong, "answers to deliveries sent while the database was gone that are not 503 with Retry-After")
	require.NotZero(t, w.unavailable, "no delivery was answered while the database was gone: no load during the outage")
	require.Empty(t, o.readyWrong, "/readyz answers while the database was gone that are not 503")
	require.NotZero(t, o.readyAfter, "/readyz never answered 200 after the database returned")
	require.Less(t, o.readyAfter, recoveryLimit, "/readyz recovery")
	require.NotZero(t, w.first2xx, "no 2xx after the database returned")
	require.Less(t, w.first2xx, recoveryLimit, "first 2xx after the database returned")

	kw := k.classify(led.kept())
	require.NotZero(t, k.terminated, "no backend of the server was terminated")
	require.NotZero(t, kw.answered, "no delivery was answered while its backends were terminated: no load")
	require.Empty(t, kw.wrong, "answers while the backends were terminated that are neither 2xx nor 503 with Retry-After")
	require.Less(t, k.readyAfter, recoveryLimit, "/readyz recovery after the terminations")
	require.NotZero(t, kw.first2xx, "no 2xx after the terminations")
	require.Less(t, kw.first2xx, recoveryLimit, "first 2xx after the terminations")

	settle := d.settle(t, len(s.Events), settleAfterKill)
	v := d.requireExactlyOnce(t, s.Events, led.ackedIDs())
	d.requireMirror(t, s.Want)
	t.Logf("SUMMARY outage: %s deliveries=%d duplicates=%d outages=2; cut=%s during: 503-with-retry-after=%d other=%d readyz-503=%d; straddling the cut: %s; recovery: readyz=%s first-2xx=%s; backend-kills=%s terminated=%d answers: %s recovery: readyz=%s first-2xx=%s; %s settle=%s history: %s",
		v, len(deliveries), len(deliveries)-len(s.Events), o.restoreAt.Sub(o.cutAt).Round(time.Millisecond),
		w.unavailable, len(w.wrong), o.ready503, formatCounts(w.straddling),
		o.readyAfter.Round(time.Millisecond), w.first2xx.Round(time.Millisecond),
		k.end.Sub(k.start).Round(time.Millisecond), k.terminated, formatCounts(kw.statuses),
		k.readyAfter.Round(time.Millisecond), kw.first2xx.Round(time.Millisecond), led, settle.Round(time.Millisecond), formatCounts(d.outcomes(t)))
}

// waitAcked waits until n deliveries got a 200.
func waitAcked(ctx context.Context, led *ledger, n int) error {
	return poll(ctx, 10*time.Millisecond, func() (bool, error) { return led.count(200) >= n, nil })
}

// outage is one cut of the database and what /readyz answered meanwhile.
type outage struct {
	cutAt, restoreAt time.Time
	readyWrong       []string      // /readyz answers during the cut other than 503
	ready503         int           // /readyz answered 503 during the cut
	readyAfter       time.Duration // from restoreAt to the first /readyz 200
}

// run cuts the database for d, probing /readyz all along, restores it and
// waits for /readyz to answer 200 again.
func (o *outage) run(ctx context.Context, proxy *cutproxy.Proxy, srv *server, d time.Duration) error {
	proxy.Cut()
	o.cutAt = time.Now() // every request sent after this finds the database gone
	probeCtx, stop := context.WithTimeout(ctx, d)
	var wg sync.WaitGroup
	wg.Go(func() { o.probeDuring(probeCtx, srv) })
	<-probeCtx.Done()
	stop()
	wg.Wait()
	o.restoreAt = time.Now() // every answer received before this came while it was gone
	proxy.Restore()
	if err := srv.waitReady(ctx, 2*recoveryLimit); err != nil {
		return fmt.Errorf("/readyz after the database returned: %w", err)
	}
	o.readyAfter = time.Since(o.restoreAt)
	return nil
}

// probeDuring asks /readyz every 100 ms until ctx ends.
func (o *outage) probeDuring(ctx context.Context, srv *server) {
	_ = poll(ctx, 100*time.Millisecond, func() (bool, error) {
		status, err := srv.status(ctx, "/readyz")
		switch {
		case ctx.Err() != nil: // cut short at the end of the outage
		case err != nil:
			o.readyWrong = append(o.readyWrong, err.Error())
		case status != http.StatusServiceUnavailable:
			o.readyWrong = append(o.readyWrong, fmt.Sprintf("status %d", status))
		default:
			o.ready503++
		}
		return false, nil
	})
}

// window is what the deliveries got around the outage.
type window struct {
	unavailable int            // sent and answered during the cut: 503 with Retry-After
	wrong       []string       // sent and answered during the cut, otherwise
	straddling  map[string]int // sent before the cut, answered during it, by status
	first2xx    time.Duration  // from restoreAt to the first 2xx of a request sent after it
}

// classify sorts the answers by when they were sent and received relative
// to the cut.
func (o *outage) classify(answers []answer) window {
	w := window{straddling: map[string]int{}}
	for _, a := range answers {
		switch {
		case !a.sent.Before(o.cutAt) && a.done.Before(o.restoreAt):
			if a.status == http.StatusServiceUnavailable && a.retryAfter != "" {
				w.unavailable++
			} else {
				w.wrong = append(w.wrong, fmt.Sprintf("%s: status %d Retry-After %q", a.eventID, a.status, a.retryAfter))
			}
		case a.sent.Before(o.cutAt) && !a.done.Before(o.cutAt):
			w.straddling[fmt.Sprint(a.status)]++
		case !a.sent.Before(o.restoreAt) && a.status/100 == 2:
			if d := a.done.Sub(o.restoreAt); w.first2xx == 0 || d < w.first2xx {
				w.first2xx = d
			}
		}
	}
	return w
}

// killedBackends is the second outage: every backend of the server is
// terminated (pg_terminate_backend, by its application_name) every 20 ms for
// a while, as a database restart or a failover does to open connections.
type killedBackends struct {
	start, end time.Time
	terminated int
	readyAfter time.Duration // from end to the first /readyz 200
}

// run terminates the server's backends for d, then waits for /readyz.
func (k *killedBackends) run(ctx context.Context, db *database, appName string, srv *server, d time.Duration) error {
	k.start = time.Now()
	killCtx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	err := poll(killCtx, 20*time.Millisecond, func() (bool, error) {
		var n int
		err := db.db.QueryRowContext(killCtx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1`, appName).Scan(&n)
		if err != nil && killCtx.Err() == nil {
			return false, fmt.Errorf("terminate backends: %w", err)
		}
		k.terminated += n
		return false, nil
	})
	if ctx.Err() != nil || (err != nil && killCtx.Err() == nil) {
		return fmt.Errorf("terminate backends: %w", errors.Join(err, ctx.Err()))
	}
	k.end = time.Now()
	if err := srv.waitReady(ctx, 2*recoveryLimit); err != nil {
		return fmt.Errorf("/readyz after the terminations: %w", err)
	}
	k.readyAfter = time.Since(k.end)
	return nil
}

// killWindow is what the deliveries got while the backends were killed.
type killWindow struct {
	answered int
	statuses map[string]int
	wrong    []string
	first2xx time.Duration // from the end of the kills to the first 2xx sent after it
}

// classify checks the answers sent while backends were being killed: a
// delivery may be stored (2xx) or not (503 with Retry-After), never anything
// else — no 500, no dropped connection.
func (k *killedBackends) classify(answers []answer) killWindow {
	w := killWindow{statuses: map[string]int{}}
	for _, a := range answers {
		switch {
		case !a.sent.Before(k.start) && a.done.Before(k.end):
			w.answered++
			w.statuses[fmt.Sprint(a.status)]++
			if a.status/100 != 2 && (a.status != http.StatusServiceUnavailable || a.retryAfter == "") {
				w.wrong = append(w.wrong, fmt.Sprintf("%s: status %d Retry-After %q", a.eventID, a.status, a.retryAfter))
			}
		case !a.sent.Before(k.end) && a.status/100 == 2:
			if d := a.done.Sub(k.end); w.first2xx == 0 || d < w.first2xx {
				w.first2xx = d
			}
		}
	}
	return w
}
