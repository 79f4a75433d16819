package admin_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/orderhook/orderhook/internal/admin"
	"github.com/orderhook/orderhook/store"
	"github.com/orderhook/orderhook/store/storetest"
	"github.com/orderhook/orderhook/webhook"
)

var _ admin.Store = (*store.DB)(nil)

const token = "s3cret-admin-token"

var now = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

type bundle struct {
	db  *store.DB
	h   http.Handler
	log *bytes.Buffer // the handler's log
}

func setup(t *testing.T, db *store.DB) bundle {
	t.Helper()
	var log bytes.Buffer
	h, err := admin.NewHandler(admin.Config{Token: token, Now: func() time.Time { return now }}, db, zerolog.New(&log))
	require.NoError(t, err)
	ctx := context.Background()
	for i, r := range []struct {
		id, typ, customer string
		status            store.Status
	}{
		{"evt_1", "customer.created", "cus_a", store.StatusApplied},
		{"evt_2", "invoice.paid", "cus_b", store.StatusDeferred},
		{"evt_3", "invoice.paid", "cus_c", store.StatusDead},
		{"evt_4", "invoice.payment_failed", "cus_c", store.StatusDead},
		{"evt_5", "invoice.paid", "cus_d", store.StatusPending},
	} {
		at := now.Add(time.Duration(i-10) * time.Minute)
		_, err := db.InsertEvent(ctx, store.Event{ID: r.id, Type: r.typ, CustomerID: r.customer, Created: at, ReceivedAt: at, Payload: []byte(`{"id": "` + r.id + `"}`)})
		require.NoError(t, err)
		_, err = db.SQLX().ExecContext(ctx, `UPDATE webhook_events SET status = $2, last_error = 'boom' WHERE event_id = $1`, r.id, r.status)
		require.NoError(t, err)
	}
	return bundle{db: db, h: h, log: &log}
}

// do sends a request with the token and returns the answer.
func (b bundle) do(t *testing.T, method, path, body string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	rec := httptest.NewRecorder()
	b.h.ServeHTTP(rec, req)
	return rec
}

func decode[T any](t *testing.T, rec *httptest.ResponseRecorder) T {
	t.Helper()
	var v T
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &v), rec.Body.String())
	return v
}

func requireProblem(t *testing.T, rec *httptest.ResponseRecorder, status int, typ string) webhook.Problem {
	t.Helper()
	require.Equal(t, status, rec.Code, rec.Body.String())
	require.Equal(t, "application/problem+json", rec.Header().Get("Content-Type"))
	p := decode[webhook.Problem](t, rec)
	require.Equal(t, "urn:orderhook:problem:"+typ, p.Type)
	return p
}

func TestNewHandlerNeedsAToken(t *testing.T) {
	t.Parallel()
	for _, tok := range []string{"", "  "} {
		_, err := admin.NewHandler(admin.Config{Token: tok}, nil, zerolog.Nop())
		require.ErrorIs(t, err, admin.ErrNoToken)
	}
	// A browser cannot send these in a header: the page could never log in.
	for _, tok := range []string{"tok€", "tök", "two words", "tab\there"} {
		_, err := admin.NewHandler(admin.Config{Token: tok}, nil, zerolog.Nop())
		require.ErrorIs(t, err, admin.ErrBadToken, tok)
	}
}

// A token read from a file keeps its final newline; the request's cannot
// carry one, and still authenticates.
func TestATokenIsTrimmed(t *testing.T) {
	t.Parallel()
	h, err := admin.NewHandler(admin.Config{Token: token + "\n"}, storetest.SQLite(t), zerolog.Nop())
	require.NoError(t, err)
	req := httptest.NewRequest(http.MethodGet, "/admin/api/status", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
}

func TestEveryRouteNeedsTheToken(t *testing.T) {
	t.Parallel()
	b := setup(t, storetest.SQLite(t))
	for _, path := range []string{"/admin/api/status", "/admin/api/events", "/admin/api/events/evt_3", "/admin/api/dead", "/admin/api/nope"} {
		for _, auth := range []string{"", "Bearer", "Bearer wrong", "Bearer " + token + "x", "Basic " + token, "Bearer  " + token + " x"} {
			req := httptest.NewRequest(http.MethodGet, path, nil)
			if auth != "" {
				req.Header.Set("Authorization", auth)
			}
			rec := httptest.NewRecorder()
			b.h.ServeHTTP(rec, req)
			requireProblem(t, rec, http.StatusUnauthorized, "unauthorized")
			require.Equal(t, `Bearer realm="orderhook-admin"`, rec.Header().Get("WWW-Authenticate"))
			require.NotContains(t, rec.Body.String(), "evt_", "nothing leaks without the token")
		}
	}
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodPost, "/admin/api/dead/replay", strings.NewReader(`{"all":true}`))
	b.h.ServeHTTP(rec, req)
	requireProblem(t, rec, http.StatusUnauthorized, "unauthorized")
	s, err := b.db.Stats(context.Background(), now, 0)
	require.NoError(t, err)
	require.Equal(t, 2, s.Dead, "an unauthenticated replay changes nothing")

	requireProblem(t, b.do(t, http.MethodGet, "/admin/api/nope", ""), http.StatusNotFound, "not-found")
	// A route asked with another method is a 405 that names the one it takes.
	for _, tc := range []struct{ method, path, allow string }{
		{http.MethodGet, "/admin/api/dead/replay", "POST"},
		{http.MethodGet, "/admin/api/events/evt_1/replay", "POST"},
		{http.MethodDelete, "/admin/api/events/evt_1", "GET"},
		{http.MethodPost, "/admin/api/status", "GET"},
	} {
		rec := b.do(t, tc.method, tc.path, "")
		requireProblem(t, rec, http.StatusMethodNotAllowed, "method-not-allowed")
		require.Equal(t, tc.allow, rec.Header().Get("Allow"), tc.path)
	}
	req = httptest.NewRequest(http.MethodGet, "/admin/api/status", nil)
	req.Header.Set("Authorization", "bearer "+token)
	rec = httptest.NewRecorder()
	b.h.ServeHTTP(rec, req)
	require.Equal(t, http.StatusOK, rec.Code, "the scheme is case-insensitive")
}

func TestStatusAndListings(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		b := setup(t, db)
		rec := b.do(t, http.MethodGet, "/admin/api/status?top=5", "")
		require.Equal(t, http.StatusOK, rec.Code)
		s := decode[store.Stats](t, rec)
		require.Equal(t, 2, s.Dead)
		require.Equal(t, 5, s.Total)
		require.Equal(t, "evt_5", s.OldestPending.EventID)

		rec = b.do(t, http.MethodGet, "/admin/api/events?type=invoice.*&limit=2", "")
		require.Equal(t, http.StatusOK, rec.Code)
		page := decode[store.EventPage](t, rec)
		require.Equal(t, []string{"evt_5", "evt_4"}, ids(page.Events))
		require.NotEmpty(t, page.NextCursor)
		page = decode[store.EventPage](t, b.do(t, http.MethodGet, "/admin/api/events?type=invoice.*&limit=2&cursor="+page.NextCursor, ""))
		require.Equal(t, []string{"evt_3", "evt_2"}, ids(page.Events))
		require.Empty(t, page.NextCursor)

		page = decode[store.EventPage](t, b.do(t, http.MethodGet, "/admin/api/dead?customer=cus_c&since=1h", ""))
		require.Equal(t, []string{"evt_4", "evt_3"}, ids(page.Events))

		for _, q := range []string{"/admin/api/dead?status=applied", "/admin/api/events?since=yesterday", "/admin/api/events?since=-24h", "/admin/api/events?limit=-1", "/admin/api/events?limit=1001", "/admin/api/dead?limit=0", "/admin/api/events?limit=",
			"/admin/api/events?status=stuck", "/admin/api/events?cursor=garbage", "/admin/api/status?top=x",
			// Blank, each would list every event.
			"/admin/api/dead?customer=", "/admin/api/dead?type=", "/admin/api/dead?type=,%20", "/admin/api/events?status=",
			"/admin/api/events?since=", "/admin/api/events?until=%20"} {
			requireProblem(t, b.do(t, http.MethodGet, q, ""), http.StatusBadRequest, "invalid-request")
		}
	})
}

func TestShowEvent(t *testing.T) {
	t.Parallel()
	b := setup(t, storetest.SQLite(t))
	rec := b.do(t, http.MethodGet, "/admin/api/events/evt_3", "")
	require.Equal(t, http.StatusOK, rec.Code)
	d := decode[store.EventDetail](t, rec)
	require.Equal(t, "evt_3", d.Event.ID)
	require.Equal(t, "boom", d.Event.LastError)
	require.NotNil(t, d.Attempts)

	rec = b.do(t, http.MethodGet, "/admin/api/events/evt_3/payload", "")
	require.Equal(t, http.StatusOK, rec.Code)
	require.Equal(t, `{"id": "evt_3"}`, rec.Body.String(), "the payload is byte-exact")

	p := requireProblem(t, b.do(t, http.MethodGet, "/admin/api/events/evt_nope", ""), http.StatusNotFound, "event-not-found")
	require.Equal(t, "evt_nope", p.EventID)
	require.Equal(t, "no event evt_nope in the inbox", p.Detail, "in its own words, not the driver's")
}

func TestReplayEvent(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		b := setup(t, db)
		ctx := context.Background()
		p := requireProblem(t, b.do(t, http.MethodPost, "/admin/api/events/evt_1/replay", ""), http.StatusConflict, "event-state-conflict")
		require.Contains(t, p.Detail, "needs force")
		require.Equal(t, "evt_1", p.EventID)

		rec := b.do(t, http.MethodPost, "/admin/api/events/evt_1/replay?force=true", `{"reason":"handler fixed"}`)
		require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
		require.Equal(t, 1, decode[store.ReplayResult](t, rec).Replayed)
		attempts, err := db.Attempts(ctx, "evt_1")
		require.NoError(t, err)
		require.Equal(t, "admin-api", attempts[len(attempts)-1].Actor)
		require.Equal(t, "from applied: handler fixed", attempts[len(attempts)-1].Detail)

		// evt_5 and the just replayed evt_1 are pending: a worker claims them.
		storetest.Lease(t, db, "w/0", now.Add(time.Minute), "evt_5", "evt_1")
		p = requireProblem(t, b.do(t, http.MethodPost, "/admin/api/events/evt_5/replay", ""), http.StatusConflict, "event-leased")
		require.Contains(t, p.Detail, "a worker (w/0) is processing it")

		p = requireProblem(t, b.do(t, http.MethodPost, "/admin/api/events/evt_nope/replay", ""), http.StatusNotFound, "event-not-found")
		require.Equal(t, "no event evt_nope in the inbox", p.Detail)
		requireProblem(t, b.do(t, http.MethodPost, "/admin/api/events/evt_3/replay", `{"forse":true}`), http.StatusBadRequest, "invalid-request")
		requireProblem(t, b.do(t, http.MethodPost, "/admin/api/events/evt_3/replay?force=maybe", ""), http.StatusBadRequest, "invalid-request")
	})
}

func TestDeadReplayAndDiscard(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		b := setup(t, db)
		ctx := context.Background()
		rec := b.do(t, http.MethodPost, "/admin/api/dead/replay", `{"all":true,"types":["invoice.paid"],"dry_run":true}`)
		require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
		require.Equal(t, store.ReplayResult{DryRun: true, Matched: 1, Eligible: 1, Refused: []store.Refusal{}}, decode[store.ReplayResult](t, rec))

		for _, body := range []string{`{}`, `{"ids":["evt_3"],"all":true}`, `{"ids":["evt_3"],"types":["x"]}`, `{"all":true,"since":"soon"}`, `not json`,
			`{"ids":["evt_3"],"customer_id":"cus_c"}`,
			// Blank, each would replay every dead event.
			`{"all":true,"types":[""]}`, `{"all":true,"types":["invoice.paid"," "]}`, `{"all":true,"types":[","]}`, `{"all":true,"types":[]}`,
			`{"all":true,"customer_id":""}`, `{"all":true,"customer_id":" "}`, `{"all":true,"since":""}`, `{"all":true,"until":""}`,
			// Null, as from {"customer_id": os.environ.get("CUST")} with CUST unset.
			`{"all":true,"customer_id":null}`, `{"all":true,"types":null}`, `{"all":true,"since":null}`, `{"all":true,"until":null}`,
			// A second object, or garbage, after the first.
			`{"all":true,"dry_run":true} {"dry_run":false}`, `{"ids":["evt_3"]} garbage`} {
			p := requireProblem(t, b.do(t, http.MethodPost, "/admin/api/dead/replay", body), http.StatusBadRequest, "invalid-request")
			require.NotEmpty(t, p.Detail, body)
		}
		rec = b.do(t, http.MethodPost, "/admin/api/dead/replay", `{"all":true,"customer_id":"cus_c","since":"1h","dry_run":true}`)
		require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
		require.Equal(t, 2, decode[store.ReplayResult](t, rec).Matched)

		rec = b.do(t, http.MethodPost, "/admin/api/dead/replay", `{"ids":["evt_3","evt_2"],"reason":"fixed"}`)
		require.Equal(t, http.StatusOK, rec.Code)
		res := decode[store.ReplayResult](t, rec)
		require.Equal(t, 1, res.Replayed)
		require.Equal(t, "evt_2", res.Refused[0].EventID)
		require.Contains(t, res.Refused[0].Reason, "deferred, not dead")
		require.Contains(t, b.log.String(), `"event_ids":["evt_3","evt_2"]`, "the audit line names the ids asked for")

		requireProblem(t, b.do(t, http.MethodPost, "/admin/api/dead/discard", `{"ids":["evt_4"]}`), http.StatusBadRequest, "invalid-request")
		rec = b.do(t, http.MethodPost, "/admin/api/dead/discard", `{"ids":["evt_4","evt_1"],"reason":"test data"}`)
		require.Equal(t, http.StatusOK, rec.Code)
		dr := decode[store.DiscardResult](t, rec)
		require.Equal(t, []string{"evt_4"}, dr.Discarded)
		require.Equal(t, "evt_1", dr.Refused[0].EventID)
		ev, err := db.Event(ctx, "evt_4")
		require.NoError(t, err)
		require.Equal(t, store.StatusDiscarded, ev.Status)
	})
}

func ids(events []store.Event) []string {
	out := make([]string, len(events))
	for i, ev := range events {
		out[i] = ev.ID
	}
	return out
}

// The page is a shell: it is served without the token, holds no data, and
// reads the API with the token the operator types in.
func TestPage(t *testing.T) {
	t.Parallel()
	b := setup(t, storetest.SQLite(t))
	for path, ctype := range map[string]string{
		"/admin/":         "text/html; charset=utf-8",
		"/admin/page.js":  "text/javascript; charset=utf-8",
		"/admin/page.css": "text/css; charset=utf-8",
	} {
		rec := httptest.NewRecorder()
		b.h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		require.Equal(t, http.StatusOK, rec.Code, path)
		require.Equal(t, ctype, rec.Header().Get("Content-Type"))
		require.Contains(t, rec.Header().Get("Content-Security-Policy"), "default-src 'self'")
		require.NotContains(t, rec.Body.String(), "evt_")
	}
	rec := httptest.NewRecorder()
	b.h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/admin/secret.txt", nil))
	requireProblem(t, rec, http.StatusNotFound, "not-found")
	rec = httptest.NewRecorder()
	b.h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/admin/", nil))
	requireProblem(t, rec, http.StatusMethodNotAllowed, "method-not-allowed")
	require.Equal(t, "GET", rec.Header().Get("Allow"))
}
