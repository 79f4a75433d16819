package webhook_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/orderhook/orderhook/store"
	"github.com/orderhook/orderhook/webhook"
)

var (
	_ webhook.Inbox     = (*store.DB)(nil)
	_ webhook.Readiness = (*store.DB)(nil)
)

func TestSignature(t *testing.T) {
	t.Parallel()
	const wrong = "whsec_not_configured"
	good := func(secret string, at time.Time) func([]byte) string {
		return func(p []byte) string { return sign(p, secret, at) }
	}
	// v1 returns only the v1=… part of a header signed with secret.
	v1 := func(p []byte, secret string) string {
		_, sig, _ := strings.Cut(sign(p, secret, now), ",")
		return sig
	}
	ts := fmt.Sprintf("t=%d", now.Unix())
	for _, tc := range []struct {
		name   string
		header func(payload []byte) string
		tamper bool // change one byte of the body after signing
		status int
		// problem is the problem name, or "" for 200 with the secret index.
		problem string
		index   int
		detail  string
	}{
		{name: "first secret", header: good(secret0, now), status: 200, index: 0},
		{name: "second secret", header: good(secret1, now), status: 200, index: 1},
		{name: "rolling header, wrong v1 first", status: 200, index: 1,
			header: func(p []byte) string { return ts + "," + v1(p, wrong) + "," + v1(p, secret1) }},
		{name: "unknown schemes ignored", status: 200, index: 0,
			header: func(p []byte) string { return ts + ",v0=abcdef," + v1(p, secret0) + ",x=y" }},
		{name: "wrong secret", header: good(wrong, now), status: 400, problem: "invalid-signature", detail: "no configured signing secret matches"},
		{name: "wrong secret, old timestamp", header: good(wrong, now.Add(-time.Hour)), status: 400, problem: "invalid-signature", detail: "no configured signing secret matches"},
		{name: "body changed by one byte", header: good(secret0, now), tamper: true, status: 400, problem: "invalid-signature"},
		{name: "past, at the tolerance", header: good(secret0, now.Add(-tolerance)), status: 200, index: 0},
		{name: "past, beyond the tolerance", header: good(secret0, now.Add(-tolerance-time.Second)), status: 400, problem: "stale-signature", detail: "5m1s in the past"},
		{name: "future, within the tolerance", header: good(secret1, now.Add(tolerance)), status: 200, index: 1},
		{name: "future, beyond the tolerance", header: good(secret0, now.Add(tolerance+time.Second)), status: 400, problem: "stale-signature", detail: "5m1s in the future"},
		{name: "future, far beyond", header: good(secret0, time.Unix(999999999999999999, 0)), status: 400, problem: "stale-signature", detail: "is more than 100 years in the future"},
		{name: "missing header", header: func([]byte) string { return "" }, status: 400, problem: "invalid-signature", detail: "no Stripe-Signature header"},
		{name: "blank header", header: func([]byte) string { return " " }, status: 400, problem: "invalid-signature", detail: "malformed: it is empty"},
		{name: "no t", header: func(p []byte) string { return v1(p, secret0) }, status: 400, problem: "invalid-signature", detail: "malformed: it has no t="},
		{name: "t not an integer", header: func(p []byte) string { return "t=soon," + v1(p, secret0) }, status: 400, problem: "invalid-signature", detail: "malformed: it has a t= that is not a Unix time"},
		{name: "t twice", header: func(p []byte) string { return ts + "," + ts + "," + v1(p, secret0) }, status: 400, problem: "invalid-signature", detail: "malformed: it has more than one t="},
		{name: "no v1", header: func([]byte) string { return ts + ",v0=abcdef" }, status: 400, problem: "invalid-signature", detail: "malformed: it has no v1="},
		{name: "garbage", header: func([]byte) string { return "garbage" }, status: 400, problem: "invalid-signature", detail: "malformed: it has an element 1 that is not key=value"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			db := sqlite(t)
			b := setup(t, db, options{})
			payload := event("evt_sig")
			header := tc.header(payload)
			if tc.tamper {
				payload = bytes.Replace(payload, []byte(`"cus_1"`), []byte(`"cus_2"`), 1)
			}
			a := b.post(t, bytes.NewReader(payload), header)
			if tc.problem == "" {
				requireAccepted(t, a, "accepted", "evt_sig")
				ev := storedEvent(t, db, "evt_sig")
				require.Equal(t, tc.index, ev.SecretIndex)
				require.Equal(t, payload, ev.Payload)
				return
			}
			p := requireProblem(t, a, tc.status, tc.problem)
			require.Contains(t, p.Detail, tc.detail)
			require.Empty(t, p.EventID, "the body of an unverified request is not read for its id")
			require.Zero(t, countEvents(t, db), "nothing stored")
			if len(header) > 8 {
				require.NotContains(t, string(a.body), header)
				require.NotContains(t, b.logs.String(), header, "the signature is never logged")
			}
		})
	}
}

// Several Stripe-Signature headers are refused rather than guessed between.
func TestSignatureHeaderRepeated(t *testing.T) {
	t.Parallel()
	b := setup(t, &fakeInbox{}, options{})
	payload := event("evt_1")
	req, err := http.NewRequest(http.MethodPost, b.srv.URL, bytes.NewReader(payload))
	require.NoError(t, err)
	req.Header.Add("Stripe-Signature", sign(payload, secret0, now))
	req.Header.Add("Stripe-Signature", sign(payload, secret1, now))
	p := requireProblem(t, b.do(t, req), 400, "invalid-signature")
	require.Contains(t, p.Detail, "2 Stripe-Signature headers")
}

func TestBodyLimit(t *testing.T) {
	t.Parallel()
	payload := event("evt_big")
	for _, tc := range []struct {
		name    string
		maxBody int64
		body    func() io.Reader
		status  int
	}{
		{"over the limit, with Content-Length", int64(len(payload)) - 1, func() io.Reader { return bytes.NewReader(payload) }, 413},
		{"over the limit, chunked", int64(len(payload)) - 1, func() io.Reader { return io.MultiReader(bytes.NewReader(payload)) }, 413},
		{"at the limit, with Content-Length", int64(len(payload)), func() io.Reader { return bytes.NewReader(payload) }, 200},
		{"at the limit, chunked", int64(len(payload)), func() io.Reader { return io.MultiReader(bytes.NewReader(payload)) }, 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			inbox := &fakeInbox{}
			b := setup(t, inbox, options{maxBody: tc.maxBody})
			a := b.post(t, tc.body(), sign(payload, secret0, now))
			if tc.status == 200 {
				requireAccepted(t, a, "accepted", "evt_big")
				require.Equal(t, payload, inbox.events["evt_big"].Payload)
				return
			}
			p := requireProblem(t, a, 413, "payload-too-large")
			require.Contains(t, p.Detail, fmt.Sprintf("limit of %d bytes", tc.maxBody))
			require.Zero(t, inbox.len())
		})
	}
}

func TestMethodNotAllowed(t *testing.T) {
	t.Parallel()
	inbox := &fakeInbox{}
	b := setup(t, inbox, options{})
	for _, method := range []string{http.MethodGet, http.MethodPut, http.MethodDelete} {
		req, err := http.NewRequest(method, b.srv.URL+"/webhooks/stripe", nil)
		require.NoError(t, err)
		a := b.do(t, req)
		requireProblem(t, a, 405, "method-not-allowed")
		require.Equal(t, "POST", a.header.Get("Allow"))
	}
	require.Zero(t, inbox.len())
}

func TestMalformedEvent(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct{ body, detail, eventID string }{
		"not JSON":         {`{"id": "evt_1", "type": `, "invalid JSON", ""},
		"an array":         {`[{"id": "evt_1"}]`, "not an object", ""},
		"no id":            {`{"object":"event","type":"invoice.paid","created":1,"data":{"object":{}}}`, "no id", ""},
		"no type":          {`{"id":"evt_1","created":1,"data":{"object":{}}}`, "no type", "evt_1"},
		"not an event":     {`{"id":"cus_1","object":"customer","type":"x","created":1,"data":{"object":{}}}`, `not "event"`, "cus_1"},
		"object not an {}": {`{"id":"evt_1","type":"x","created":1,"data":{"object":"in_1"}}`, "data.object is not an object", ""},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			inbox := &fakeInbox{}
			b := setup(t, inbox, options{})
			a := b.deliver(t, []byte(tc.body), secret0)
			p := requireProblem(t, a, 400, "malformed-event")
			require.Contains(t, p.Detail, tc.detail)
			require.NotContains(t, p.Detail, tc.body, "the body is never echoed")
			require.Equal(t, tc.eventID, p.EventID, "named when its id is readable")
			require.Zero(t, inbox.len())
		})
	}
}

// Any api_version is accepted, including none and ones newer than stripe-go.
func TestAnyAPIVersion(t *testing.T) {
	t.Parallel()
	db := sqlite(t)
	b := setup(t, db, options{})
	for i, version := range []string{`"2099-01-01.future"`, `"2016-07-06"`, `"2025-09-30.clover"`, `null`} {
		id := fmt.Sprintf("evt_v%d", i)
		payload := bytes.Replace(event(id), []byte(`"2025-03-31.basil"`), []byte(version), 1)
		requireAccepted(t, b.deliver(t, payload, secret0), "accepted", id)
		want := strings.Trim(version, `"`)
		if version == "null" {
			want = ""
		}
		require.Equal(t, want, storedEvent(t, db, id).APIVersion)
	}
}

func TestStoredRow(t *testing.T) {
	t.Parallel()
	db := sqlite(t)
	b := setup(t, db, options{})
	payload := event("evt_row")
	requireAccepted(t, b.deliver(t, payload, secret1), "accepted", "evt_row")
	ev := storedEvent(t, db, "evt_row")
	require.Equal(t, payload, ev.Payload, "byte-exact")
	require.Equal(t, "invoice.paid", ev.Type)
	require.Equal(t, "2025-03-31.basil", ev.APIVersion)
	require.Equal(t, "cus_1", ev.CustomerID)
	require.Equal(t, "in_1", ev.ObjectID)
	require.Equal(t, now.Add(-time.Minute), ev.Created)
	require.Equal(t, now, ev.ReceivedAt, "received_at comes from the injected clock")
	require.Equal(t, 1, ev.SecretIndex)
	require.Equal(t, store.StatusPending, ev.Status)
}

func TestDuplicate(t *testing.T) {
	t.Parallel()
	db := sqlite(t)
	b := setup(t, db, options{})
	payload := event("evt_dup")
	requireAccepted(t, b.deliver(t, payload, secret0), "accepted", "evt_dup")
	requireAccepted(t, b.deliver(t, payload, secret1), "duplicate", "evt_dup")
	require.Equal(t, 1, countEvents(t, db))
	require.Equal(t, 0, storedEvent(t, db, "evt_dup").SecretIndex, "the first delivery's row is kept")
}

func TestStoreUnavailable(t *testing.T) {
	t.Parallel()
	inbox := &fakeInbox{err: fmt.Errorf("insert event evt_1: %w: dial tcp: connection refused", store.ErrUnavailable)}
	b := setup(t, inbox, options{})
	a := b.deliver(t, event("evt_1"), secret0)
	p := requireProblem(t, a, 503, "store-unavailable")
	require.Equal(t, "5", a.header.Get("Retry-After"))
	require.Equal(t, "evt_1", p.EventID)
	require.Contains(t, p.Detail, "not acknowledged")
	require.NotContains(t, string(a.body), "accepted")
	require.NotContains(t, p.Detail, "connection refused", "driver errors stay in the log")
	require.Contains(t, b.logs.String(), `"level":"error"`)
	require.Contains(t, b.logs.String(), "connection refused", "the cause is logged")
}

func TestRejectMode(t *testing.T) {
	t.Parallel()
	db := sqlite(t)
	deps := &fakeDeps{missing: "customer:cus_1"}
	b := setup(t, db, options{mode: webhook.ModeReject, deps: deps})
	payload := event("evt_wait")

	a := b.deliver(t, payload, secret0)
	p := requireProblem(t, a, 409, "dependency-missing")
	require.Equal(t, "evt_wait", p.EventID)
	require.Contains(t, p.Detail, "customer:cus_1")
	require.Contains(t, p.Detail, "is stored")
	require.Contains(t, p.Detail, "retry later")
	require.Equal(t, payload, storedEvent(t, db, "evt_wait").Payload, "stored before the 409")

	deps.set("", nil)
	requireAccepted(t, b.deliver(t, payload, secret0), "duplicate", "evt_wait")
	requireAccepted(t, b.deliver(t, event("evt_free"), secret0), "accepted", "evt_free")

	deps.set("", errors.New("lookup customer: boom"))
	a = b.deliver(t, event("evt_err"), secret0)
	requireProblem(t, a, 503, "store-unavailable")
	require.Equal(t, "5", a.header.Get("Retry-After"))
	require.Equal(t, 4, deps.count())
}

func TestDeferModeNeverChecksDependencies(t *testing.T) {
	t.Parallel()
	deps := &fakeDeps{missing: "customer:cus_1"}
	b := setup(t, &fakeInbox{}, options{deps: deps})
	requireAccepted(t, b.deliver(t, event("evt_1"), secret0), "accepted", "evt_1")
	require.Zero(t, deps.count())
}

// errReader fails with err, like a connection that breaks mid-body.
type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

// A body that cannot be read to its end is never a malformed event: the
// problem says why it ended.
func TestBodyReadError(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		err     error
		status  int
		problem string
	}{
		{"body ended before its length", io.ErrUnexpectedEOF, 400, "unreadable-body"},
		{"connection reset", &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}, 499, "client-closed-request"},
		{"connection closed by a stop", &net.OpError{Op: "read", Net: "tcp", Err: net.ErrClosed}, 499, "client-closed-request"},
		{"read timeout", &net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded}, 408, "body-timeout"},
		{"broken chunks", errors.New("invalid byte in chunk length"), 400, "unreadable-body"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			inbox := &fakeInbox{}
			b := setup(t, inbox, options{})
			req := httptest.NewRequest(http.MethodPost, "/webhooks/stripe", errReader{tc.err})
			req.Header.Set("Stripe-Signature", sign(nil, secret0, now))
			rec := httptest.NewRecorder()
			b.h.ServeHTTP(rec, req)
			p := requireProblem(t, answer{status: rec.Code, header: rec.Header(), body: rec.Body.Bytes()}, tc.status, tc.problem)
			require.Contains(t, p.Detail, "nothing was stored")
			require.Zero(t, inbox.len())
		})
	}
}

// Every delivery is logged exactly once, with its outcome and what is known
// of the event, and never with the payload, the signature or a secret.
func TestLogLine(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		inbox   *fakeInbox
		secret  string
		level   string
		outcome string
		status  int
		fields  []string
	}{
		{"accepted", &fakeInbox{}, secret1, "info", "accepted", 200, []string{`"event_id":"evt_log"`, `"type":"invoice.paid"`, `"customer_id":"cus_1"`, `"secret_index":1`}},
		{"invalid", &fakeInbox{}, "whsec_other", "warn", "invalid_signature", 400, []string{`"error":"invalid-signature: `}},
		{"store down", &fakeInbox{err: store.ErrUnavailable}, secret0, "error", "store_unavailable", 503, []string{`"event_id":"evt_log"`, `store unavailable`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var logs bytes.Buffer
			h, err := webhook.NewHandler(webhook.Config{Secrets: []string{secret0, secret1}, Tolerance: tolerance, Now: func() time.Time { return now }},
				tc.inbox, nil, zerolog.New(&logs))
			require.NoError(t, err)
			payload := event("evt_log")
			signature := sign(payload, tc.secret, now)
			req := httptest.NewRequest(http.MethodPost, "/webhooks/stripe", bytes.NewReader(payload))
			req.Header.Set("Stripe-Signature", signature)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			require.Equal(t, tc.status, rec.Code)

			line := logs.String()
			require.Equal(t, 1, strings.Count(line, "\n"), line)
			for _, f := range append(tc.fields, `"component":"webhook"`, `"level":"`+tc.level+`"`, `"outcome":"`+tc.outcome+`"`, fmt.Sprintf(`"status":%d`, tc.status), `"duration":`) {
				require.Contains(t, line, f)
			}
			for _, secret := range []string{secret0, secret1, signature, `"data"`, `in_1`} {
				require.NotContains(t, line, secret)
			}
		})
	}
}

func TestNewHandlerValidates(t *testing.T) {
	t.Parallel()
	valid := webhook.Config{Secrets: []string{secret0}, Tolerance: time.Minute}
	for _, tc := range []struct {
		name   string
		edit   func(*webhook.Config)
		inbox  webhook.Inbox
		deps   webhook.DependencyChecker
		errors []string
	}{
		{"valid with defaults", func(*webhook.Config) {}, &fakeInbox{}, nil, nil},
		{"reject with a checker", func(c *webhook.Config) { c.Mode = webhook.ModeReject }, &fakeInbox{}, &fakeDeps{}, nil},
		{"no secret", func(c *webhook.Config) { c.Secrets = nil }, &fakeInbox{}, nil, []string{"no signing secret"}},
		{"an API key", func(c *webhook.Config) { c.Secrets = []string{secret0, "sk_test_leak"} }, &fakeInbox{}, nil, []string{"signing secret at index 1 does not start with whsec_"}},
		{"prefix only", func(c *webhook.Config) { c.Secrets = []string{"whsec_"} }, &fakeInbox{}, nil, []string{"only the whsec_ prefix"}},
		{"trailing newline", func(c *webhook.Config) { c.Secrets = []string{"whsec_leak\n"} }, &fakeInbox{}, nil, []string{"white space"}},
		{"negative tolerance", func(c *webhook.Config) { c.Tolerance = -time.Minute }, &fakeInbox{}, nil, []string{"tolerance is -1m0s"}},
		{"negative body limit", func(c *webhook.Config) { c.MaxBody = -1 }, &fakeInbox{}, nil, []string{"max body is -1 bytes"}},
		{"unknown mode", func(c *webhook.Config) { c.Mode = "drop" }, &fakeInbox{}, nil, []string{`mode "drop" is unknown`}},
		{"reject without a checker", func(c *webhook.Config) { c.Mode = webhook.ModeReject }, &fakeInbox{}, nil, []string{"reject mode needs a DependencyChecker"}},
		{"no inbox", func(*webhook.Config) {}, nil, nil, []string{"no inbox"}},
		{"everything wrong at once", func(c *webhook.Config) { c.Secrets, c.Tolerance = nil, -time.Second }, nil, nil,
			[]string{"no signing secret", "tolerance is -1s", "no inbox"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := valid
			tc.edit(&cfg)
			h, err := webhook.NewHandler(cfg, tc.inbox, tc.deps, zerolog.Nop())
			if tc.errors == nil {
				require.NoError(t, err)
				require.NotNil(t, h)
				return
			}
			require.Error(t, err)
			require.Nil(t, h)
			for _, e := range tc.errors {
				require.ErrorContains(t, err, e)
			}
			require.NotContains(t, err.Error(), "leak", "a secret is never quoted")
		})
	}
}

func TestWriteProblem(t *testing.T) {
	t.Parallel()
	rec := httptest.NewRecorder()
	webhook.WriteProblem(rec, webhook.Problem{Type: webhook.ProblemTypePrefix + "event-not-found", Title: "Event not found", Status: 404, Detail: "no event evt_1", EventID: "evt_1"})
	require.Equal(t, 404, rec.Code)
	require.Equal(t, "application/problem+json", rec.Header().Get("Content-Type"))
	require.JSONEq(t, `{"type":"urn:orderhook:problem:event-not-found","title":"Event not found","status":404,"detail":"no event evt_1","event_id":"evt_1"}`, rec.Body.String())

	rec = httptest.NewRecorder()
	webhook.WriteProblem(rec, webhook.Problem{})
	require.Equal(t, 500, rec.Code)
	require.JSONEq(t, `{"type":"about:blank","title":"Internal Server Error","status":500}`, rec.Body.String())
}
