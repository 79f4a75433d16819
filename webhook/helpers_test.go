package webhook_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"
	stripewebhook "github.com/stripe/stripe-go/v76/webhook"

	"github.com/orderhook/orderhook/store"
	"github.com/orderhook/orderhook/store/storetest"
	"github.com/orderhook/orderhook/webhook"
)

// The two configured secrets of every test handler: the current one and the
// one being rolled in.
const (
	secret0 = "whsec_test_current_0123456789abcdef"
	secret1 = "whsec_test_next_fedcba9876543210"
)

// tolerance is Stripe's: the handlers of the tests take the default.
const tolerance = 5 * time.Minute

// now is the handler's clock in every test.
var now = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// bundle is a handler served over HTTP, with what the tests inspect.
type bundle struct {
	h    *webhook.Handler
	srv  *httptest.Server
	logs *syncBuffer
}

// options adjust the handler of a test; the zero value is defer mode with
// both secrets.
type options struct {
	maxBody int64
	mode    webhook.Mode
	deps    webhook.DependencyChecker
}

func setup(t *testing.T, inbox webhook.Inbox, opts options) bundle {
	t.Helper()
	logs := &syncBuffer{}
	h, err := webhook.NewHandler(webhook.Config{
		Secrets: []string{secret0, secret1},
		MaxBody: opts.maxBody,
		Mode:    opts.mode,
		Now:     func() time.Time { return now },
	}, inbox, opts.deps, zerolog.New(logs))
	require.NoError(t, err)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return bundle{h: h, srv: srv, logs: logs}
}

// sign returns the Stripe-Signature header of payload, as Stripe computes it
// with secret at time at.
func sign(payload []byte, secret string, at time.Time) string {
	return stripewebhook.GenerateTestSignedPayload(&stripewebhook.UnsignedPayload{
		Payload: payload, Secret: secret, Timestamp: at,
	}).Header
}

// answer is a response, read to its end.
type answer struct {
	status int
	header http.Header
	body   []byte
}

// post sends body with the given Stripe-Signature header ("" for none).
func (b bundle) post(t *testing.T, body io.Reader, signature string) answer {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, b.srv.URL+"/webhooks/stripe", body)
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	if signature != "" {
		req.Header.Set("Stripe-Signature", signature)
	}
	return b.do(t, req)
}

// deliver posts payload signed with secret at now, as Stripe would.
func (b bundle) deliver(t *testing.T, payload []byte, secret string) answer {
	t.Helper()
	return b.post(t, bytes.NewReader(payload), sign(payload, secret, now))
}

func (b bundle) do(t *testing.T, req *http.Request) answer {
	t.Helper()
	resp, err := b.srv.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return answer{status: resp.StatusCode, header: resp.Header, body: body}
}

// requireAccepted checks a 200 answer with the given status field.
func requireAccepted(t *testing.T, a answer, status, eventID string) {
	t.Helper()
	require.Equal(t, http.StatusOK, a.status, string(a.body))
	require.Equal(t, "application/json", a.header.Get("Content-Type"))
	require.JSONEq(t, fmt.Sprintf(`{"status":%q,"event_id":%q}`, status, eventID), string(a.body))
}

// requireProblem checks a problem answer and returns it.
func requireProblem(t *testing.T, a answer, status int, name string) webhook.Problem {
	t.Helper()
	require.Equal(t, status, a.status, string(a.body))
	require.Equal(t, "application/problem+json", a.header.Get("Content-Type"))
	var p webhook.Problem
	require.NoError(t, json.Unmarshal(a.body, &p), string(a.body))
	require.Equal(t, webhook.ProblemTypePrefix+name, p.Type)
	require.Equal(t, status, p.Status)
	require.NotEmpty(t, p.Title)
	require.NotEmpty(t, p.Detail)
	return p
}

// event returns a small event in Stripe's shape: an invoice.paid of
// customer cus_1.
func event(id string) []byte {
	return []byte(fmt.Sprintf(`{
  "id": %q,
  "object": "event",
  "api_version": "2025-03-31.basil",
  "created": %d,
  "data": {
    "object": {
      "id": "in_1",
      "object": "invoice",
      "customer": "cus_1",
      "status": "paid"
    }
  },
  "livemode": false,
  "pending_webhooks": 1,
  "request": {"id": null, "idempotency_key": null},
  "type": "invoice.paid"
}`, id, now.Add(-time.Minute).Unix()))
}

// storedEvent returns the inbox row of id.
func storedEvent(t *testing.T, db *store.DB, id string) store.Event {
	t.Helper()
	ev, err := db.Event(context.Background(), id)
	require.NoError(t, err)
	return ev
}

// countEvents returns the number of inbox rows.
func countEvents(t *testing.T, db *store.DB) int {
	t.Helper()
	var n int
	require.NoError(t, db.SQLX().Get(&n, `SELECT count(*) FROM webhook_events`))
	return n
}

// sqlite returns a migrated SQLite store of its own.
func sqlite(t *testing.T) *store.DB {
	t.Helper()
	return storetest.SQLite(t)
}

// syncBuffer is a log sink that the server goroutines may write to while a
// test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

// fakeInbox is an inbox in memory, or a failing one when err is set. It
// stands in for the store where a real database cannot fail on demand.
type fakeInbox struct {
	mu     sync.Mutex
	err    error
	events map[string]store.Event
}

func (f *fakeInbox) InsertEvent(_ context.Context, ev store.Event) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return false, f.err
	}
	if f.events == nil {
		f.events = map[string]store.Event{}
	}
	if _, ok := f.events[ev.ID]; ok {
		return false, nil
	}
	f.events[ev.ID] = ev
	return true, nil
}

func (f *fakeInbox) len() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.events)
}

// fakeDeps answers MissingDependency with what a test sets.
type fakeDeps struct {
	mu      sync.Mutex
	missing string
	err     error
	calls   int
}

func (f *fakeDeps) MissingDependency(context.Context, store.Event) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	return f.missing, f.err
}

func (f *fakeDeps) set(missing string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.missing, f.err = missing, err
}

func (f *fakeDeps) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}
