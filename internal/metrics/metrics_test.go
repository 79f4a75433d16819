package metrics_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"
	stripewebhook "github.com/stripe/stripe-go/v76/webhook"

	"github.com/orderhook/orderhook/internal/metrics"
	"github.com/orderhook/orderhook/reconcile"
	"github.com/orderhook/orderhook/store"
	"github.com/orderhook/orderhook/store/storetest"
	"github.com/orderhook/orderhook/webhook"
)

const secret = "whsec_metrics_test"

// bundle is a receiver and a worker over one database, reporting to m.
type bundle struct {
	m      *metrics.Metrics
	server *httptest.Server
	worker *reconcile.Worker
}

func setup(t *testing.T, db *store.DB) bundle {
	t.Helper()
	m, err := metrics.New(metrics.Config{InboxTTL: time.Nanosecond}, db, zerolog.Nop())
	require.NoError(t, err)
	h, err := webhook.NewHandler(webhook.Config{Secrets: []string{secret}, Tolerance: 5 * time.Minute, Observe: m.ObserveDelivery}, db, nil, zerolog.Nop())
	require.NoError(t, err)
	srv := httptest.NewServer(webhook.RequestLog(h, zerolog.Nop()))
	t.Cleanup(srv.Close)
	w, err := reconcile.NewWorker(reconcile.Config{
		MaxAttempts:  1,
		OnTransition: m.ObserveTransition,
		Handlers: map[string]reconcile.HandlerFunc{
			"test.fail": func(context.Context, *sqlx.Tx, reconcile.Event) error { return errors.New("always fails") },
		},
	}, db, zerolog.Nop())
	require.NoError(t, err)
	return bundle{m: m, server: srv, worker: w}
}

// deliver posts payload signed with sig's secret and returns the status and
// the request id header.
func (b bundle) deliver(t *testing.T, payload, sigSecret string) (int, string) {
	t.Helper()
	sig := stripewebhook.GenerateTestSignedPayload(&stripewebhook.UnsignedPayload{
		Payload: []byte(payload), Secret: sigSecret, Timestamp: time.Now(),
	}).Header
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, b.server.URL, bytes.NewReader([]byte(payload)))
	require.NoError(t, err)
	req.Header.Set("Stripe-Signature", sig)
	resp, err := b.server.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	return resp.StatusCode, resp.Header.Get(webhook.RequestIDHeader)
}

// runOnce processes one batch and requires it to hold n events.
func (b bundle) runOnce(t *testing.T, n int) {
	t.Helper()
	got, err := b.worker.RunOnce(t.Context(), "test")
	require.NoError(t, err)
	require.Equal(t, n, got)
}

func event(id, typ, objectJSON string) string {
	return fmt.Sprintf(`{"id":%q,"object":"event","type":%q,"created":%d,"data":{"object":%s}}`, id, typ, time.Now().Unix(), objectJSON)
}

var (
	invoicePaid     = event("evt_inv", "invoice.paid", `{"id":"in_1","object":"invoice","customer":"cus_1","status":"paid","amount_paid":2000}`)
	customerCreated = event("evt_cus", "customer.created", `{"id":"cus_1","object":"customer","email":"jenny@example.com"}`)
	failing         = event("evt_fail", "test.fail", `{"id":"obj_1","object":"thing","customer":"cus_1"}`)
	unhandled       = event("evt_ign", "charge.succeeded", `{"id":"ch_1","object":"charge"}`)
)

func TestMetricsScriptedDeliveries(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		b := setup(t, db)
		reg := b.m.Registry()
		requests := func(code, outcome string) float64 {
			return sample(t, reg, "orderhook_receiver_requests_total", map[string]string{"code": code, "outcome": outcome})
		}
		events := func(outcome, typ string) float64 {
			return sample(t, reg, "orderhook_reconciler_events_total", map[string]string{"outcome": outcome, "type": typ})
		}
		inbox := func(status string) float64 {
			return sample(t, reg, "orderhook_inbox_rows", map[string]string{"status": status})
		}

		status, id := b.deliver(t, invoicePaid, secret)
		require.Equal(t, http.StatusOK, status)
		require.Len(t, id, 16, "a request id is returned")
		status, _ = b.deliver(t, invoicePaid, secret)
		require.Equal(t, http.StatusOK, status)
		status, _ = b.deliver(t, invoicePaid, "whsec_someone_else")
		require.Equal(t, http.StatusBadRequest, status)
		require.Equal(t, 1.0, requests("200", "accepted"))
		require.Equal(t, 1.0, requests("200", "duplicate"))
		require.Equal(t, 1.0, requests("400", "invalid_signature"))
		require.Equal(t, 3.0, sample(t, reg, "orderhook_receiver_request_duration_seconds", nil))
		require.Equal(t, 1.0, inbox("pending"))

		b.runOnce(t, 1) // the invoice waits for its customer
		require.Equal(t, 1.0, events("deferred", "invoice.paid"))
		require.Equal(t, 1.0, inbox("deferred"))
		require.Equal(t, 1.0, sample(t, reg, "orderhook_inbox_deferred_rows", nil))
		require.Equal(t, 0.0, inbox("pending"))

		status, _ = b.deliver(t, customerCreated, secret)
		require.Equal(t, http.StatusOK, status)
		b.runOnce(t, 1) // the customer, which releases the invoice and applies it in the same transaction
		require.Equal(t, 1.0, events("applied", "customer.created"))
		require.Equal(t, 1.0, events("released", "invoice.paid"))
		require.Equal(t, 1.0, events("applied", "invoice.paid"))
		require.Equal(t, 1.0, sample(t, reg, "orderhook_reconciler_release_latency_seconds", nil))
		require.Equal(t, 1.0, sample(t, reg, "orderhook_reconciler_end_to_end_lag_seconds", map[string]string{"type": "invoice.paid"}))

		for _, p := range []string{failing, unhandled} {
			status, _ = b.deliver(t, p, secret)
			require.Equal(t, http.StatusOK, status)
		}
		b.runOnce(t, 2)
		require.Equal(t, 1.0, events("dead", metrics.OtherType), "an unknown type is labelled other")
		require.Equal(t, 1.0, events("ignored", metrics.OtherType))
		require.Equal(t, 1.0, sample(t, reg, "orderhook_inbox_dead_rows", nil))
		require.Equal(t, 1.0, inbox("dead"))
		require.Equal(t, 2.0, inbox("applied"))
		require.Equal(t, 1.0, inbox("ignored"))
		require.Equal(t, 1.0, sample(t, reg, "orderhook_inbox_stats_up", nil))
		require.Equal(t, 5.0, sample(t, reg, "orderhook_reconciler_apply_duration_seconds", nil), "one per attempt")
	})
}

// Every outcome the receiver logs has a label of its own: none is "other".
func TestMetricsLabelEveryReceiverOutcome(t *testing.T) {
	t.Parallel()
	m, err := metrics.New(metrics.Config{}, nil, zerolog.Nop())
	require.NoError(t, err)
	for _, o := range webhook.Outcomes() {
		m.ObserveDelivery(o, http.StatusOK, time.Millisecond)
	}
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	require.NotContains(t, rec.Body.String(), `outcome="other"`)
	for _, o := range webhook.Outcomes() {
		require.Contains(t, rec.Body.String(), `outcome="`+o+`"`)
	}
}

func TestMetricsExposition(t *testing.T) {
	t.Parallel()
	m, err := metrics.New(metrics.Config{}, nil, zerolog.Nop())
	require.NoError(t, err)
	m.ObserveDelivery("accepted", http.StatusOK, time.Millisecond)
	m.ObserveDelivery("something_new", http.StatusTeapot, time.Millisecond)
	m.ObserveDelivery("abandoned", 499, time.Millisecond)
	m.ObserveDelivery("body_timeout", http.StatusRequestTimeout, time.Millisecond)
	m.ObserveDelivery("unreadable_body", http.StatusBadRequest, time.Millisecond)
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	require.Equal(t, http.StatusOK, rec.Code)
	body := rec.Body.String()
	for _, want := range []string{
		`orderhook_receiver_requests_total{code="200",outcome="accepted"} 1`,
		`orderhook_receiver_requests_total{code="418",outcome="other"} 1`,
		`orderhook_receiver_requests_total{code="499",outcome="abandoned"} 1`,
		`orderhook_receiver_requests_total{code="408",outcome="body_timeout"} 1`,
		`orderhook_receiver_requests_total{code="400",outcome="unreadable_body"} 1`,
		`go_goroutines`,
	} {
		require.Contains(t, body, want)
	}
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(line, "#") || line == "" || strings.HasPrefix(line, "go_") || strings.HasPrefix(line, "process_") || strings.HasPrefix(line, "promhttp_") {
			continue
		}
		require.True(t, strings.HasPrefix(line, "orderhook_"), "unprefixed series %q", line)
	}
}

func TestMetricsInboxGaugesTwoReplicas(t *testing.T) {
	t.Parallel()
	url := storetest.PostgresURL(t)
	first, second := storetest.Open(t, url), storetest.Open(t, url)
	now := time.Now().UTC()
	storetest.Seed(t, first,
		storetest.Row{ID: "evt_p1", Type: "invoice.paid", CustomerID: "cus_1", Received: now.Add(-10 * time.Minute)},
		storetest.Row{ID: "evt_p2", Type: "invoice.paid", CustomerID: "cus_1", Received: now.Add(-time.Minute)},
		storetest.Row{ID: "evt_d1", Type: "invoice.paid", CustomerID: "cus_2", Status: store.StatusDeferred, WaitingFor: "customer:cus_2", Received: now.Add(-time.Hour)},
		storetest.Row{ID: "evt_x1", Type: "invoice.paid", CustomerID: "cus_3", Status: store.StatusDead, LastError: "boom", Received: now},
		storetest.Row{ID: "evt_a1", Type: "customer.created", CustomerID: "cus_4", Status: store.StatusApplied, Received: now},
	)
	for _, db := range []*store.DB{first, second} {
		m, err := metrics.New(metrics.Config{}, db, zerolog.Nop())
		require.NoError(t, err)
		reg := m.Registry()
		for status, n := range map[string]float64{"pending": 2, "deferred": 1, "dead": 1, "applied": 1, "ignored": 0, "discarded": 0} {
			require.Equal(t, n, sample(t, reg, "orderhook_inbox_rows", map[string]string{"status": status}), status)
		}
		require.Equal(t, 1.0, sample(t, reg, "orderhook_inbox_deferred_rows", nil))
		require.Equal(t, 1.0, sample(t, reg, "orderhook_inbox_dead_rows", nil))
		require.InDelta(t, 600, sample(t, reg, "orderhook_inbox_oldest_pending_age_seconds", nil), 30)
		require.InDelta(t, 3600, sample(t, reg, "orderhook_inbox_oldest_deferred_age_seconds", nil), 30)
	}
}

// unavailable is an inbox whose database is down.
type unavailable struct{ calls int }

func (u *unavailable) Stats(context.Context, time.Time, int) (store.Stats, error) {
	u.calls++
	return store.Stats{}, fmt.Errorf("stats: %w", store.ErrUnavailable)
}

func TestMetricsInboxCachedWhileDown(t *testing.T) {
	t.Parallel()
	inbox := &unavailable{}
	m, err := metrics.New(metrics.Config{InboxTTL: time.Hour}, inbox, zerolog.Nop())
	require.NoError(t, err)
	for range 3 {
		require.Equal(t, 0.0, sample(t, m.Registry(), "orderhook_inbox_stats_up", nil))
	}
	require.Equal(t, 1, inbox.calls, "one query per TTL, however often it is scraped")
}
