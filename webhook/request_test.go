package webhook_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/orderhook/orderhook/webhook"
)

// observation is one call of Config.Observe.
type observation struct {
	outcome string
	status  int
}

// observed serves a handler behind RequestLog whose Observe calls are
// recorded, logging at debug level into logs.
func observed(t *testing.T, inbox webhook.Inbox) (*httptest.Server, *syncBuffer, func() []observation) {
	t.Helper()
	var (
		mu  sync.Mutex
		got []observation
	)
	logs := &syncBuffer{}
	logger := zerolog.New(logs).Level(zerolog.DebugLevel)
	h, err := webhook.NewHandler(webhook.Config{
		Secrets:   []string{secret0},
		Tolerance: tolerance,
		Now:       func() time.Time { return now },
		Observe: func(outcome string, status int, d time.Duration) {
			mu.Lock()
			defer mu.Unlock()
			require.GreaterOrEqual(t, d, time.Duration(0))
			got = append(got, observation{outcome, status})
		},
	}, inbox, nil, logger)
	require.NoError(t, err)
	srv := httptest.NewServer(webhook.RequestLog(h, logger))
	t.Cleanup(srv.Close)
	return srv, logs, func() []observation {
		mu.Lock()
		defer mu.Unlock()
		return append([]observation(nil), got...)
	}
}

func TestObserveEveryOutcome(t *testing.T) {
	t.Parallel()
	inbox := &fakeInbox{}
	srv, _, got := observed(t, inbox)
	post := func(body []byte, signature string) {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL, bytes.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Stripe-Signature", signature)
		resp, err := srv.Client().Do(req)
		require.NoError(t, err)
		require.NoError(t, resp.Body.Close())
	}
	body := event("evt_observe")
	post(body, sign(body, secret0, now))
	post(body, sign(body, secret0, now))
	post(body, sign(body, secret1, now))
	post(body, sign(body, secret0, now.Add(-time.Hour)))
	post([]byte(`{}`), sign([]byte(`{}`), secret0, now))
	require.Equal(t, []observation{
		{"accepted", http.StatusOK},
		{"duplicate", http.StatusOK},
		{"invalid_signature", http.StatusBadRequest},
		{"stale_signature", http.StatusBadRequest},
		{"malformed", http.StatusBadRequest},
	}, got())

	failing := &fakeInbox{err: errors.New("connection refused")}
	srv, _, got = observed(t, failing)
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL, bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Stripe-Signature", sign(body, secret0, now))
	resp, err := srv.Client().Do(req)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	require.Equal(t, []observation{{"store_unavailable", http.StatusServiceUnavailable}}, got())
}

func TestRequestIDHeaderAndLogs(t *testing.T) {
	t.Parallel()
	srv, logs, _ := observed(t, &fakeInbox{})
	body := event("evt_request_id")
	send := func(id string) string {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL+"/webhooks/stripe?secret=nope", bytes.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Stripe-Signature", sign(body, secret0, now))
		if id != "" {
			req.Header.Set(webhook.RequestIDHeader, id)
		}
		resp, err := srv.Client().Do(req)
		require.NoError(t, err)
		require.NoError(t, resp.Body.Close())
		return resp.Header.Get(webhook.RequestIDHeader)
	}
	generated := send("")
	require.Regexp(t, `^[0-9a-f]{16}$`, generated)
	require.Equal(t, "from-the-proxy.1", send("from-the-proxy.1"), "a sane caller id is kept")
	replaced := send("bad id {with} spaces")
	require.Regexp(t, `^[0-9a-f]{16}$`, replaced, "an unsafe caller id is replaced")

	var requests, deliveries int
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var entry map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &entry), line)
		require.NotEmpty(t, entry["request_id"], line)
		require.NotContains(t, line, secret0)
		require.NotContains(t, line, "secret=nope", "no query string in the logs")
		require.NotContains(t, line, `"amount_paid"`, "no payload in the logs")
		switch entry["message"] {
		case "http request":
			requests++
			require.Equal(t, "debug", entry["level"], "a delivery is logged once at info: by the handler")
			require.Equal(t, "POST", entry["method"])
			require.Equal(t, "/webhooks/stripe", entry["path"])
			require.EqualValues(t, http.StatusOK, entry["status"])
			require.Contains(t, entry, "duration")
		case "webhook delivery accepted", "webhook delivery duplicate":
			deliveries++
			require.Equal(t, "info", entry["level"])
		}
	}
	require.Equal(t, 3, requests)
	require.Equal(t, 3, deliveries)
	require.Contains(t, logs.String(), `"request_id":"from-the-proxy.1"`)
}

// RequestLog logs a request at info, a probe or a scrape at debug, and a
// webhook delivery, which its handler logs at info, at debug too.
func TestRequestLogLevels(t *testing.T) {
	t.Parallel()
	logs := &syncBuffer{}
	logger := zerolog.New(logs).Level(zerolog.DebugLevel)
	srv := httptest.NewServer(webhook.RequestLog(http.NotFoundHandler(), logger))
	t.Cleanup(srv.Close)
	for _, path := range []string{"/admin/api/events", "/healthz"} {
		resp, err := srv.Client().Get(srv.URL + path)
		require.NoError(t, err)
		require.NoError(t, resp.Body.Close())
	}
	levels := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var entry map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &entry), line)
		levels[entry["path"].(string)] = entry["level"].(string)
	}
	require.Equal(t, map[string]string{"/admin/api/events": "info", "/healthz": "debug"}, levels)
}
