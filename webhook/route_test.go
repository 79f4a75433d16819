package webhook_test

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/orderhook/orderhook/webhook"
)

func TestNotFoundAndMethodNotAllowed(t *testing.T) {
	t.Parallel()
	serve := func(h http.Handler, method, path string) answer {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
		return answer{status: rec.Code, header: rec.Header(), body: rec.Body.Bytes()}
	}

	p := requireProblem(t, serve(webhook.NotFound(), http.MethodPost, "/webhooks/stripe/"), 404, "not-found")
	require.Contains(t, p.Detail, `"/webhooks/stripe/"`)

	a := serve(webhook.MethodNotAllowed(http.MethodGet, http.MethodHead), http.MethodPost, "/healthz")
	p = requireProblem(t, a, 405, "method-not-allowed")
	require.Equal(t, "GET, HEAD", a.header.Get("Allow"))
	require.Contains(t, p.Detail, "POST is not accepted here")
}

// Outcomes names each delivery's outcome once: the metrics label them all.
func TestOutcomesAreDistinct(t *testing.T) {
	t.Parallel()
	outcomes := webhook.Outcomes()
	require.Contains(t, outcomes, "store_unavailable")
	require.Contains(t, outcomes, "abandoned")
	slices.Sort(outcomes)
	require.Equal(t, len(outcomes), len(slices.Compact(slices.Clone(outcomes))), "%v", outcomes)
}
