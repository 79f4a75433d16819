package webhook_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/lib/pq"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/orderhook/orderhook/store"
	"github.com/orderhook/orderhook/webhook"
)

// readiness answers Ready with err, after waiting for the deadline when
// block is set.
type readiness struct {
	err   error
	block bool
}

func (r readiness) Ready(ctx context.Context) error {
	if r.block {
		<-ctx.Done()
		return ctx.Err()
	}
	return r.err
}

func get(t *testing.T, h http.Handler) answer {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	return answer{status: rec.Code, header: rec.Header(), body: rec.Body.Bytes()}
}

func TestHealthz(t *testing.T) {
	t.Parallel()
	a := get(t, webhook.Healthz())
	require.Equal(t, 200, a.status)
	require.Equal(t, "application/json", a.header.Get("Content-Type"))
	require.JSONEq(t, `{"status":"ok"}`, string(a.body))
}

func TestReadyz(t *testing.T) {
	t.Parallel()
	t.Run("ready store", func(t *testing.T) {
		t.Parallel()
		var logs bytes.Buffer
		a := get(t, webhook.Readyz(sqlite(t), zerolog.New(&logs)))
		require.Equal(t, 200, a.status, string(a.body))
		require.JSONEq(t, `{"status":"ready"}`, string(a.body))
		require.Empty(t, logs.String())
	})
	for _, tc := range []struct {
		name   string
		r      webhook.Readiness
		detail string
		cause  string
	}{
		{"unreachable", readiness{err: fmt.Errorf("ping: %w: dial tcp 10.0.0.1:5432: connect: connection refused", store.ErrUnavailable)}, "the database cannot be reached", "10.0.0.1:5432: connect: connection refused"},
		{"not migrated", readiness{err: fmt.Errorf("%w: 00009_example.sql: run orderhook migrate", store.ErrMigrationsPending)}, "00009_example.sql: run orderhook migrate", "migrations pending"},
		{"refused", readiness{err: &pq.Error{Severity: "FATAL", Code: "28P01", Message: `password authentication failed for user "orderhook"`}}, "the server's log has the cause", "password authentication failed"},
		{"hung", readiness{block: true}, "did not answer within 2s", "context deadline exceeded"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var logs bytes.Buffer
			a := get(t, webhook.Readyz(tc.r, zerolog.New(&logs)))
			p := requireProblem(t, a, 503, "store-unavailable")
			require.Equal(t, "5", a.header.Get("Retry-After"))
			require.Contains(t, p.Detail, tc.detail)
			require.NotContains(t, p.Detail, "10.0.0.1")
			require.NotContains(t, p.Detail, "orderhook\"", "no driver internals in a public answer")

			var line struct{ Level, Error, Message string }
			require.NoError(t, json.Unmarshal(logs.Bytes(), &line), "one line: %s", logs.String())
			require.Equal(t, "warn", line.Level)
			require.Equal(t, "not ready", line.Message)
			require.Contains(t, line.Error, tc.cause, "the cause is logged")
		})
	}
}
