package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	stripewebhook "github.com/stripe/stripe-go/v76/webhook"

	"github.com/orderhook/orderhook/internal/cutproxy"
	"github.com/orderhook/orderhook/store"
	"github.com/orderhook/orderhook/store/storetest"
)

// post signs payload and posts it, returning the status and Retry-After.
func post(t *testing.T, endpoint, secret string, payload []byte) (int, string) {
	t.Helper()
	sp := stripewebhook.GenerateTestSignedPayload(&stripewebhook.UnsignedPayload{Payload: payload, Secret: secret})
	req, err := http.NewRequest(http.MethodPost, endpoint, bytes.NewReader(payload))
	require.NoError(t, err)
	req.Header.Set("Stripe-Signature", sp.Header)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, resp.Header.Get("Retry-After")
}

// While the database is unreachable the receiver answers 503 with
// Retry-After and never 2xx; when it returns, the receiver recovers by itself
// and the retried event is stored once and applied.
func TestDatabaseOutageIsNeverAcknowledged(t *testing.T) {
	t.Parallel()
	const secret = "whsec_outage"
	srv, proxy, dbURL := serveBehindProxy(t, secret)
	status, _ := post(t, srv.url, secret, outageEvent("evt_before"))
	require.Equal(t, 200, status)

	proxy.Cut()
	for i := range 5 {
		status, retryAfter := post(t, srv.url, secret, outageEvent("evt_during"))
		require.Equal(t, 503, status, "delivery %d during the outage", i)
		require.NotEmpty(t, retryAfter)
	}

	proxy.Restore()
	redeliver(t, srv.url, secret, outageEvent("evt_during"))

	db := storetest.Open(t, dbURL)
	waitSettled(t, db)
	requireAllApplied(t, db, 2)
	require.NoError(t, srv.stop())
}

// hungFor is how long frozenAfterOne holds the database: far longer than
// any of the server's timeouts, so that a call that waited for the database
// instead fails the test by its duration.
const hungFor = 40 * time.Second

// A database that stops answering, rather than refusing, is not waited on:
// /readyz answers 503 within its 2 s, a delivery is answered 503 with
// Retry-After once its batch times out (10 s), and when the database
// answers again the redelivered event is stored once and applied.
func TestAHungDatabaseIsAnsweredNotAwaited(t *testing.T) {
	t.Parallel()
	const secret = "whsec_hung"
	srv, proxy, db := frozenAfterOne(t, secret)
	start := time.Now()
	resp, err := http.Get(strings.TrimSuffix(srv.url, "/webhooks/stripe") + "/readyz")
	require.NoError(t, err)
	_ = resp.Body.Close()
	require.Equal(t, 503, resp.StatusCode)
	require.Less(t, time.Since(start), 5*time.Second, "/readyz waited for the database")

	start = time.Now()
	status, retryAfter := post(t, srv.url, secret, outageEvent("evt_during"))
	require.Equal(t, 503, status)
	require.NotEmpty(t, retryAfter)
	require.Less(t, time.Since(start), hungFor/2, "the delivery waited for the database")

	proxy.Thaw()
	redeliver(t, srv.url, secret, outageEvent("evt_during")) // stored once, whether or not the held INSERT ran at the thaw
	waitSettled(t, db)
	requireAllApplied(t, db, 2)
	require.NoError(t, srv.stop())
}

// A stop while the database does not answer ends anyway: the reconciler's
// transactions in flight get ten seconds, then are cut short and roll back.
func TestAStopDoesNotWaitForAHungDatabase(t *testing.T) {
	t.Parallel()
	srv, _, _ := frozenAfterOne(t, "whsec_hungstop")
	time.Sleep(2 * time.Second) // the loops poll every second: their claims now wait on the database
	start := time.Now()
	require.NoError(t, srv.stop())
	require.Less(t, time.Since(start), hungFor/2, "the stop waited for the database")
}

// frozenAfterOne starts serve behind a proxy, has it store and apply one
// event, and freezes the proxy until hungFor has passed or the test ends.
// It returns the server, the proxy and the database reached directly.
func frozenAfterOne(t *testing.T, secret string) (*server, *cutproxy.Proxy, *store.DB) {
	t.Helper()
	srv, proxy, dbURL := serveBehindProxy(t, secret)
	db := storetest.Open(t, dbURL)
	status, _ := post(t, srv.url, secret, outageEvent("evt_before"))
	require.Equal(t, 200, status)
	waitSettled(t, db)
	proxy.FreezeFor(t, hungFor)
	return srv, proxy, db
}

// serveBehindProxy starts serve on a fresh PostgreSQL database reached
// through a proxy the test can cut or freeze, and returns the database's
// direct URL too.
func serveBehindProxy(t *testing.T, secret string) (*server, *cutproxy.Proxy, string) {
	t.Helper()
	dbURL := storetest.PostgresURL(t)
	proxied, proxy := storetest.ThroughProxy(t, dbURL)
	return startServe(t, env(nil), "--db", proxied, "--secret", secret), proxy, dbURL
}

// outageEvent is a customer.created event with id.
func outageEvent(id string) []byte {
	return []byte(`{"id":"` + id + `","object":"event","type":"customer.created","created":1772366400,` +
		`"data":{"object":{"id":"cus_` + id + `","object":"customer","email":"a@example.com"}}}`)
}

// redeliver sends payload with orderhook send until it is answered 2xx.
func redeliver(t *testing.T, endpoint, secret string, payload []byte) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "event.json")
	require.NoError(t, os.WriteFile(file, payload, 0o600))
	var out bytes.Buffer
	err := run(context.Background(), []string{"send", "--url", endpoint, "--secret", secret, "--until-2xx", "--backoff", "50ms", "--deadline", "30s", file},
		env(nil), strings.NewReader(""), &out, io.Discard)
	require.NoError(t, err, "recovered after the database came back: %s", out.String())
}

// requireAllApplied checks that db holds n events, each applied.
func requireAllApplied(t *testing.T, db *store.DB, n int) {
	t.Helper()
	var rows []struct {
		ID     string `db:"event_id"`
		Status string `db:"status"`
	}
	require.NoError(t, db.SQLX().Select(&rows, `SELECT event_id, status FROM webhook_events ORDER BY event_id`))
	require.Len(t, rows, n)
	for _, r := range rows {
		require.Equal(t, "applied", r.Status, r.ID)
	}
}

// A database that accepts connections and never answers ends serve at
// start, within openTimeout and with a message, instead of holding it for
// ever without a word.
func TestAHungDatabaseAtStartEndsServe(t *testing.T) {
	t.Parallel()
	proxied, proxy := storetest.ThroughProxy(t, storetest.PostgresURL(t))
	proxy.FreezeFor(t, hungFor)
	ctx, cancel := context.WithTimeout(context.Background(), hungFor/2) // without the bound, run ends here
	defer cancel()
	err := run(ctx, []string{"serve", "--db", proxied, "--addr", "127.0.0.1:0", "--secret", "whsec_hungstart"},
		env(nil), strings.NewReader(""), io.Discard, io.Discard)
	require.ErrorContains(t, err, "open database: no answer within 10s")
}

// A stop does not wait longer than its grace for a client that is still
// sending its body, and is not a failure because of it.
func TestAStopClosesTheConnectionsOfSlowClients(t *testing.T) {
	t.Parallel()
	srv := startServe(t, env(nil), "--db", storetest.SQLiteURL(t), "--secret", "whsec_slowclient")
	u, err := url.Parse(srv.url)
	require.NoError(t, err)
	conn, err := net.Dial("tcp", u.Host)
	require.NoError(t, err)
	defer func() { _ = conn.Close() }()
	_, err = fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"+
		"Stripe-Signature: t=1700000000,v1=%s\r\nContent-Length: 1000\r\n\r\n{", u.Path, u.Host, strings.Repeat("0", 64))
	require.NoError(t, err)
	drip := time.NewTicker(500 * time.Millisecond) // a byte now and then, never the whole body
	defer drip.Stop()
	stopped := make(chan error, 1)
	go func() {
		time.Sleep(200 * time.Millisecond) // the request is under way
		stopped <- srv.stop()
	}()
	start := time.Now()
	for {
		select {
		case err := <-stopped:
			require.NoError(t, err)
			require.Less(t, time.Since(start), httpStopGrace+5*time.Second)
			return
		case <-drip.C:
			_, _ = conn.Write([]byte(" "))
		}
	}
}
