package admin

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/orderhook/orderhook/store"
	"github.com/orderhook/orderhook/webhook"
)

func TestFailMapsErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		err    error
		status int
		typ    string
		logged bool
	}{
		{errUnauthorized, 401, "unauthorized", false},
		{errRoute, 404, "not-found", false},
		{badRequest{errors.New("limit")}, 400, "invalid-request", false},
		{fmt.Errorf("list: %w", store.ErrInvalidInput), 400, "invalid-request", false},
		{fmt.Errorf("get: %w", store.ErrNotFound), 404, "event-not-found", false},
		{fmt.Errorf("replay: %w", store.ErrLeased), 409, "event-leased", false},
		{fmt.Errorf("replay: %w", store.ErrConflict), 409, "event-state-conflict", false},
		{fmt.Errorf("stats: %w", store.ErrUnavailable), 503, "store-unavailable", true},
		{errors.New("disk on fire"), 500, "internal-error", true},
	} {
		var log bytes.Buffer
		h := &handler{logger: zerolog.New(&log)}
		rec := httptest.NewRecorder()
		h.fail(rec, httptest.NewRequest(http.MethodGet, "/admin/api/status", nil), tc.err, "evt_1")
		require.Equal(t, tc.status, rec.Code, tc.err)
		require.Equal(t, "application/problem+json", rec.Header().Get("Content-Type"))
		var p webhook.Problem
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &p))
		require.Equal(t, "urn:orderhook:problem:"+tc.typ, p.Type)
		require.Equal(t, tc.status, p.Status)
		require.Equal(t, "evt_1", p.EventID)
		require.NotEmpty(t, p.Title)
		require.NotEmpty(t, p.Detail)
		require.Equal(t, tc.logged, log.Len() > 0, tc.err)
		if tc.status == 500 {
			require.NotContains(t, p.Detail, "disk on fire", "causes stay in the log")
			require.Contains(t, log.String(), "disk on fire")
		}
	}
}
