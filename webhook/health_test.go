package webhook_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

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
		a := get(t, webhook.Readyz(sqlite(t)))
		require.Equal(t, 200, a.status, string(a.body))
		require.JSONEq(t, `{"status":"ready"}`, string(a.body))
	})
	for _, tc := range []struct {
		name   string
		r      webhook.Readiness
		detail string
	}{
		{"unreachable", readiness{err: fmt.Errorf("ping: %w: dial tcp 10.0.0.1:5432: connect: connection refused", store.ErrUnavailable)}, "the database cannot be reached"},
		{"not migrated", readiness{err: errors.New("migrations pending: run orderhook migrate")}, "run orderhook migrate"},
		{"hung", readiness{block: true}, "did not answer within 2s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a := get(t, webhook.Readyz(tc.r))
			p := requireProblem(t, a, 503, "store-unavailable")
			require.Equal(t, "5", a.header.Get("Retry-After"))
			require.Contains(t, p.Detail, tc.detail)
			require.NotContains(t, p.Detail, "10.0.0.1")
		})
	}
}
