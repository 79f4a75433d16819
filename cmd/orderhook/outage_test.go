package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	stripewebhook "github.com/stripe/stripe-go/v76/webhook"

	"github.com/orderhook/orderhook/internal/cutproxy"
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
	dbURL := storetest.PostgresURL(t)
	u, err := url.Parse(dbURL)
	require.NoError(t, err)
	proxy := cutproxy.Start(t, u.Host)
	u.Host = proxy.Addr()

	const secret = "whsec_outage"
	srv := startServe(t, env(nil), "--db", u.String(), "--secret", secret)
	event := func(id string) []byte {
		return []byte(`{"id":"` + id + `","object":"event","type":"customer.created","created":1772366400,` +
			`"data":{"object":{"id":"cus_` + id + `","object":"customer","email":"a@example.com"}}}`)
	}
	status, _ := post(t, srv.url, secret, event("evt_before"))
	require.Equal(t, 200, status)

	proxy.Cut()
	for i := range 5 {
		status, retryAfter := post(t, srv.url, secret, event("evt_during"))
		require.Equal(t, 503, status, "delivery %d during the outage", i)
		require.NotEmpty(t, retryAfter)
	}

	proxy.Restore()
	file := filepath.Join(t.TempDir(), "during.json")
	require.NoError(t, os.WriteFile(file, event("evt_during"), 0o600))
	var out bytes.Buffer
	err = run(context.Background(), []string{"send", "--url", srv.url, "--secret", secret, "--until-2xx", "--backoff", "50ms", "--deadline", "30s", file},
		env(nil), strings.NewReader(""), &out, io.Discard)
	require.NoError(t, err, "recovered after the database came back: %s", out.String())

	db := storetest.Open(t, dbURL)
	waitSettled(t, db)
	var rows []struct {
		ID     string `db:"event_id"`
		Status string `db:"status"`
	}
	require.NoError(t, db.SQLX().Select(&rows, `SELECT event_id, status FROM webhook_events ORDER BY event_id`))
	require.Len(t, rows, 2)
	for _, r := range rows {
		require.Equal(t, "applied", r.Status, r.ID)
	}
	require.NoError(t, srv.stop())
}
