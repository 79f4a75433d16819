package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/orderhook/orderhook/internal/metrics"
	"github.com/orderhook/orderhook/internal/trace"
	"github.com/orderhook/orderhook/reconcile"
	"github.com/orderhook/orderhook/store"
	"github.com/orderhook/orderhook/store/storetest"
)

// server is an orderhook serve process run in-process through run().
type server struct {
	url    string // the webhook endpoint
	banner []string
	stop   func() error
}

// startServe runs `orderhook serve args…` until the test ends and returns
// once it listens.
func startServe(t *testing.T, getenv func(string) string, args ...string) *server {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	outR, outW := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := run(ctx, append([]string{"serve", "--addr", "127.0.0.1:0", "--log-level", "warn", "--log-format", "console"}, args...), getenv, strings.NewReader(""), outW, testLog{t})
		_ = outW.CloseWithError(io.EOF)
		done <- err
	}()
	s := &server{}
	lines := bufio.NewScanner(outR)
	for lines.Scan() {
		s.banner = append(s.banner, lines.Text())
		if url, ok := strings.CutPrefix(lines.Text(), "orderhook listening on "); ok {
			s.url = strings.Fields(url)[0]
			break
		}
	}
	require.NotEmpty(t, s.url, "serve did not start: %q %v", s.banner, lines.Err())
	go func() { _, _ = io.Copy(io.Discard, outR) }()
	var stopped bool
	var stopErr error
	s.stop = func() error {
		if !stopped {
			cancel()
			stopErr, stopped = <-done, true
		}
		return stopErr
	}
	t.Cleanup(func() { require.NoError(t, s.stop()) })
	return s
}

func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

// serve and send end to end, in-process: every real Stripe fixture is signed,
// posted, stored, and applied or ignored; shutdown is clean.
func TestServeAndSendEndToEnd(t *testing.T) {
	t.Parallel()
	storetest.Dialects(t, func(t *testing.T, dbURL string) {
		const secret = "whsec_endtoend"
		srv := startServe(t, env(map[string]string{"ORDERHOOK_DB": dbURL, "ORDERHOOK_STRIPE_SECRETS": secret}))

		var out, errOut bytes.Buffer
		err := run(context.Background(), []string{"send", "--url", srv.url, "--secret", secret, "--concurrency", "4", "--fresh-ids", "../../testdata/events"},
			env(nil), strings.NewReader(""), &out, &errOut)
		require.NoError(t, err, "send: %s %s", out.String(), errOut.String())
		require.Contains(t, out.String(), "200")

		db := storetest.Open(t, dbURL)
		waitSettled(t, db)
		require.NoError(t, srv.stop(), "serve exits cleanly on shutdown")
	})
}

// waitSettled waits until no event is pending, polling the database: the
// server runs in-process but its worker's signals are internal.
func waitSettled(t *testing.T, db *store.DB) {
	t.Helper()
	require.Eventually(t, func() bool {
		var n int
		require.NoError(t, db.SQLX().Get(&n, `SELECT count(*) FROM webhook_events WHERE status IN ('pending', 'deferred')`))
		return n == 0
	}, 30*time.Second, 20*time.Millisecond)
	var total int
	require.NoError(t, db.SQLX().Get(&total, `SELECT count(*) FROM webhook_events`))
	require.Positive(t, total)
}

// The routes of the contract: health, readiness, metrics, and the admin API
// only with a token.
func TestServeRoutes(t *testing.T) {
	t.Parallel()
	base := func(s *server) string { return strings.TrimSuffix(s.url, "/webhooks/stripe") }
	get := func(url, token string) int {
		req, err := http.NewRequest(http.MethodGet, url, nil)
		require.NoError(t, err)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	open := startServe(t, env(nil), "--db", storetest.SQLiteURL(t), "--secret", "whsec_routes")
	require.Equal(t, 200, get(base(open)+"/healthz", ""))
	require.Equal(t, 200, get(base(open)+"/readyz", ""))
	require.Equal(t, 200, get(base(open)+"/metrics", ""))
	require.Equal(t, 404, get(base(open)+"/admin/api/status", ""), "no admin API without a token")
	require.Equal(t, 405, get(open.url, ""))

	guarded := startServe(t, env(map[string]string{"ORDERHOOK_ADMIN_TOKEN": "s3cret-token"}), "--db", storetest.SQLiteURL(t), "--secret", "whsec_routes")
	require.Equal(t, 401, get(base(guarded)+"/admin/api/status", ""))
	require.Equal(t, 401, get(base(guarded)+"/admin/api/status", "wrong"))
	require.Equal(t, 200, get(base(guarded)+"/admin/api/status", "s3cret-token"))

	worker := startServe(t, env(nil), "--db", storetest.SQLiteURL(t), "--secret", "whsec_routes", "--role", "worker")
	require.Equal(t, 404, get(base(worker)+"/webhooks/stripe", ""), "a worker does not receive")
	require.Equal(t, 200, get(base(worker)+"/readyz", ""))

	// Without a secret, a worker generates none and offers no endpoint to send to.
	worker = startServe(t, env(nil), "--db", storetest.SQLiteURL(t), "--role", "worker")
	banner := strings.Join(worker.banner, "\n")
	require.NotContains(t, banner, "webhooks/stripe")
	require.NotContains(t, banner, "whsec_")
	require.Contains(t, banner, "role worker: no webhook endpoint")
	require.Equal(t, 200, get(base(worker)+"/healthz", ""))
}

// A path no route serves (the endpoint with a trailing slash or capitals,
// the admin API of a server without a token, the endpoint of a worker) and
// a method a route does not take are answered problems, like every other
// error; the routes answer as before.
func TestServeUnknownRoutesAreProblems(t *testing.T) {
	t.Parallel()
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	do := func(method, url string) (*http.Response, []byte) {
		req, err := http.NewRequest(method, url, nil)
		require.NoError(t, err)
		resp, err := client.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp, body
	}
	requireProblem := func(method, url string, status int, name, allow string) {
		t.Helper()
		resp, body := do(method, url)
		require.Equal(t, status, resp.StatusCode, "%s %s: %s", method, url, body)
		require.Equal(t, "application/problem+json", resp.Header.Get("Content-Type"), "%s %s", method, url)
		require.Equal(t, allow, resp.Header.Get("Allow"), "%s %s", method, url)
		var p struct {
			Type   string `json:"type"`
			Status int    `json:"status"`
			Detail string `json:"detail"`
		}
		require.NoError(t, json.Unmarshal(body, &p), string(body))
		require.Equal(t, "urn:orderhook:problem:"+name, p.Type)
		require.Equal(t, status, p.Status)
		require.NotEmpty(t, p.Detail)
	}

	open := startServe(t, env(nil), "--db", storetest.SQLiteURL(t), "--secret", "whsec_routes", "--admin-token", "s3cret-token")
	root := strings.TrimSuffix(open.url, "/webhooks/stripe")
	requireProblem(http.MethodPost, root+"/webhooks/stripe/", 404, "not-found", "")
	requireProblem(http.MethodPost, root+"/Webhooks/Stripe", 404, "not-found", "")
	requireProblem(http.MethodGet, root+"/", 404, "not-found", "")
	requireProblem(http.MethodGet, root+"/healthz/", 404, "not-found", "")
	requireProblem(http.MethodPost, root+"/healthz", 405, "method-not-allowed", "GET, HEAD")
	requireProblem(http.MethodPut, root+"/readyz", 405, "method-not-allowed", "GET, HEAD")
	requireProblem(http.MethodDelete, root+"/metrics", 405, "method-not-allowed", "GET, HEAD")
	requireProblem(http.MethodGet, open.url, 405, "method-not-allowed", "POST")

	for _, path := range []string{"/healthz", "/readyz"} {
		resp, _ := do(http.MethodGet, root+path)
		require.Equal(t, 200, resp.StatusCode, path)
		require.Equal(t, "application/json", resp.Header.Get("Content-Type"), path)
		resp, _ = do(http.MethodHead, root+path)
		require.Equal(t, 200, resp.StatusCode, path)
	}
	resp, body := do(http.MethodGet, root+"/metrics")
	require.Equal(t, 200, resp.StatusCode)
	require.Contains(t, string(body), "orderhook_receiver_requests_total")
	resp, _ = do(http.MethodGet, root+"/admin")
	require.Equal(t, http.StatusTemporaryRedirect, resp.StatusCode, "the mux still redirects to the admin page")
	require.Equal(t, "/admin/", resp.Header.Get("Location"))
	resp, _ = do(http.MethodGet, root+"/admin/")
	require.Equal(t, 200, resp.StatusCode)

	worker := startServe(t, env(nil), "--db", storetest.SQLiteURL(t), "--secret", "whsec_routes", "--role", "worker")
	root = strings.TrimRight(worker.url, "/")
	requireProblem(http.MethodPost, root+"/webhooks/stripe", 404, "not-found", "")
	requireProblem(http.MethodGet, root+"/admin/api/status", 404, "not-found", "")
}

func TestServeGeneratesAnEphemeralSecret(t *testing.T) {
	t.Parallel()
	srv := startServe(t, env(nil), "--db", storetest.SQLiteURL(t))
	banner := strings.Join(srv.banner, "\n")
	require.Contains(t, banner, "generated an ephemeral signing secret")
	require.Regexp(t, `send --url http://127\.0\.0\.1:\d+/webhooks/stripe --secret whsec_[0-9a-f]{48} testdata/events`, banner)
}

func TestServeRejectsBadConfiguration(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"db url", []string{"--db", "mysql://x"}, nil, "use sqlite:PATH or postgres://"},
		{"db url from env", nil, map[string]string{"DATABASE_URL": "redis://x"}, "use sqlite:PATH or postgres://"},
		{"sqlite url without path", []string{"--db", "sqlite:"}, nil, `"sqlite:" has no path`},
		{"postgres url without host", []string{"--db", "postgres://"}, nil, "names no host and no database"},
		{"secret prefix", []string{"--secret", "sk_test_123"}, nil, "starts with whsec_"},
		{"secret prefix from env", nil, map[string]string{"ORDERHOOK_STRIPE_SECRETS": "whsec_ok, oops"}, "starts with whsec_"},
		{"comma-separated secret prefix", []string{"--secret", "whsec_ok,oops"}, nil, "starts with whsec_"},
		{"blank comma-separated secret", []string{"--secret", "whsec_ok,"}, nil, "--secret has a blank secret"},
		{"blank secret", []string{"--secret", " "}, nil, "--secret has a blank secret"},
		{"port out of range", []string{"--addr", "127.0.0.1:99999"}, nil, "the port must be 0 to 65535"},
		{"negative port", []string{"--addr", ":-1"}, nil, "the port must be 0 to 65535"},
		{"zero tolerance", []string{"--tolerance", "0s"}, nil, "--tolerance 0s: must be positive"},
		{"bad tolerance env", nil, map[string]string{"ORDERHOOK_TOLERANCE": "five minutes"}, "ORDERHOOK_TOLERANCE"},
		{"mode", []string{"--mode", "sleep"}, nil, "use defer or reject"},
		{"addr without port", []string{"--addr", "localhost"}, nil, "--addr \"localhost\": use HOST:PORT"},
		{"addr from env", nil, map[string]string{"ORDERHOOK_ADDR": "127.0.0.1:80:80"}, "--addr \"127.0.0.1:80:80\""},
		{"role", []string{"--role", "both"}, nil, "use all, receiver or worker"},
		{"max body", []string{"--max-body", "lots"}, nil, "--max-body"},
		{"workers", []string{"--workers", "0"}, nil, "at least 1"},
		{"batch size from env", nil, map[string]string{"ORDERHOOK_BATCH_SIZE": "0"}, "--batch-size \"0\": use auto or a number of events"},
		{"ingest yield", []string{"--ingest-yield", "soon"}, nil, "--ingest-yield \"soon\": use auto, 0 or a duration"},
		{"negative ingest yield from env", nil, map[string]string{"ORDERHOOK_INGEST_YIELD": "-1s"}, "--ingest-yield \"-1s\""},
		{"ingest loops", []string{"--ingest-loops", "half"}, nil, "--ingest-loops \"half\": use auto, 0 or a number of loops"},
		{"negative ingest loops from env", nil, map[string]string{"ORDERHOOK_INGEST_LOOPS": "-2"}, "--ingest-loops \"-2\""},
		{"zero ingest max lag", []string{"--ingest-max-lag", "0s"}, nil, "--ingest-max-lag 0s: must be positive"},
		{"ingest max lag from env", nil, map[string]string{"ORDERHOOK_INGEST_MAX_LAG": "a while"}, "ORDERHOOK_INGEST_MAX_LAG"},
		{"log format", []string{"--log-format", "xml"}, nil, "use json or console"},
		{"blank admin token", []string{"--admin-token", " "}, nil, "--admin-token is blank"},
		{"tracing protocol", nil, map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, "only http/protobuf"},
		{"unknown flag", []string{"--colour"}, nil, "unknown flag"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var stdout, stderr bytes.Buffer
			args := []string{"serve"}
			db := storetest.SQLiteURL(t)
			if tc.env["DATABASE_URL"] == "" {
				args = append(args, "--db", db)
			}
			args = append(args, tc.args...)
			err := run(context.Background(), args, env(tc.env), strings.NewReader(""), &stdout, &stderr)
			require.ErrorContains(t, err, tc.want)
			require.Equal(t, exitUsage, exitCode(err))
			require.Empty(t, stdout.String(), "refused before it listened")
			require.NoFileExists(t, strings.TrimPrefix(db, "sqlite:"), "refused before the database was created")
		})
	}
}

func TestServeIngestSettingsDependOnTheDatabase(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		yield, loops, batch string
		dialect             store.Dialect
		wantYield           time.Duration
		wantLoops           int
		wantBatch           int
		wantIngestBatch     int
	}{
		{"auto", "auto", "auto", store.SQLite, sqliteIngestYield, 0, sqliteBatchSize, sqliteIngestBatchSize},
		{"auto", "auto", "auto", store.Postgres, 7 * time.Second, 1, postgresBatchSize, postgresBatchSize}, // --ingest-max-lag
		{"0", "0", "128", store.SQLite, 0, 0, 128, 128},
		{"250ms", "3", "1", store.Postgres, 250 * time.Millisecond, 3, 1, 1},
	} {
		f := serveFlags{addr: "127.0.0.1:0", tolerance: time.Minute, mode: "defer", role: roleAll, maxBody: "1MiB", workers: 4, batchSize: tc.batch, maxAttempts: 1,
			dependencyTimeout: time.Hour, customerEvents: []string{"customer.created"}, ingestYield: tc.yield, ingestLoops: tc.loops,
			ingestMaxLag: 7 * time.Second}
		cfg, err := f.validate()
		require.NoError(t, err)
		require.Equal(t, tc.wantBatch, cfg.reconcileBatchSize(tc.dialect), "--batch-size %s on %s", tc.batch, tc.dialect)
		require.Equal(t, tc.wantIngestBatch, cfg.reconcileIngestBatchSize(tc.dialect), "--batch-size %s on %s, during a burst", tc.batch, tc.dialect)
		require.Equal(t, tc.wantYield, cfg.reconcileIngestYield(tc.dialect), "--ingest-yield %s on %s", tc.yield, tc.dialect)
		require.Equal(t, tc.wantLoops, cfg.reconcileIngestLoops(tc.dialect), "--ingest-loops %s on %s", tc.loops, tc.dialect)
	}
}

// testLog writes a server's log lines into the test's output.
type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// sampleEvent returns the body of one of testdata/events.
func sampleEvent(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("../../testdata/events", name))
	require.NoError(t, err)
	return b
}

// requireStatus asserts that the inbox holds event id in status.
func requireStatus(t *testing.T, db *store.DB, id string, status store.Status) {
	t.Helper()
	ev, err := db.Event(context.Background(), id)
	require.NoError(t, err)
	require.Equal(t, status, ev.Status, id)
}

// In reject mode an invoice whose customer is missing is stored but answered
// 409, so that the sender retries; once the customer is applied the retry is
// answered 200 and the invoice is applied once.
func TestServeRejectMode(t *testing.T) {
	t.Parallel()
	storetest.Dialects(t, func(t *testing.T, dbURL string) {
		const secret = "whsec_reject"
		srv := startServe(t, env(nil), "--db", dbURL, "--secret", secret, "--mode", "reject")
		paid, created := sampleEvent(t, "05_invoice.paid.json"), sampleEvent(t, "01_customer.created.json")

		status, _ := post(t, srv.url, secret, paid)
		require.Equal(t, http.StatusConflict, status)
		status, _ = post(t, srv.url, secret, created)
		require.Equal(t, http.StatusOK, status)

		db := storetest.Open(t, dbURL)
		waitSettled(t, db)
		status, _ = post(t, srv.url, secret, paid)
		require.Equal(t, http.StatusOK, status, "the retry after the customer arrived")
		requireStatus(t, db, "evt_Q7fx00000005", store.StatusApplied)
	})
}

// `send --until-2xx` against reject mode, one delivery at a time: the
// invoice answered 409 waits for its retry while its customer's event goes
// out, as with Stripe, instead of spending its retries before it.
func TestSendUntil2xxAgainstRejectMode(t *testing.T) {
	t.Parallel()
	const secret = "whsec_reject_send"
	dbURL := storetest.SQLiteURL(t)
	srv := startServe(t, env(nil), "--db", dbURL, "--secret", secret, "--mode", "reject")

	stdout, _, err := runSend(t, nil, "--url", srv.url, "--secret", secret, "--until-2xx", "--concurrency", "1",
		"--backoff", "50ms", "--max-retries", "3",
		"../../testdata/events/05_invoice.paid.json", "../../testdata/events/01_customer.created.json")

	require.NoError(t, err, stdout)
	require.Regexp(t, `(?m)^200 OK +2$`, stdout)
	db := storetest.Open(t, dbURL)
	waitSettled(t, db)
	requireStatus(t, db, "evt_Q7fx00000005", store.StatusApplied)
}

// A SQLite inbox removed while serving: deliveries are answered 503, for
// the sender to retry, instead of 200 for a row in a file nothing can open
// again, and /readyz says so.
func TestServeSQLiteFileRemovedWhileServing(t *testing.T) {
	t.Parallel()
	const secret = "whsec_removed"
	path := strings.TrimPrefix(storetest.SQLiteURL(t), "sqlite:")
	srv := startServe(t, env(nil), "--db", "sqlite:"+path, "--secret", secret)
	status, _ := post(t, srv.url, secret, sampleEvent(t, "01_customer.created.json"))
	require.Equal(t, http.StatusOK, status)

	for _, suffix := range []string{"", "-wal", "-shm"} {
		require.NoError(t, os.RemoveAll(path+suffix))
	}

	status, retryAfter := post(t, srv.url, secret, sampleEvent(t, "02_customer.subscription.created.json"))
	require.Equal(t, http.StatusServiceUnavailable, status)
	require.NotEmpty(t, retryAfter)
	resp, err := http.Get(strings.TrimSuffix(srv.url, "/webhooks/stripe") + "/readyz")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
}

// A stop says so when it begins, not only when it ends: a request still
// under way can hold it for the whole grace.
func TestServeLogsTheStartOfAStop(t *testing.T) {
	t.Parallel()
	logR, logW := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"serve", "--addr", "127.0.0.1:0", "--db", storetest.SQLiteURL(t), "--secret", "whsec_stop"},
			env(nil), strings.NewReader(""), io.Discard, logW)
		_ = logW.Close()
	}()
	lines := bufio.NewScanner(logR)
	var messages []string
	for lines.Scan() {
		var entry struct{ Message string }
		require.NoError(t, json.Unmarshal(lines.Bytes(), &entry))
		messages = append(messages, entry.Message)
		if entry.Message == "orderhook serving" {
			cancel()
		}
	}
	require.NoError(t, <-done)
	require.Subset(t, messages, []string{"stopping: answering the requests under way, then ending the worker's transactions", "orderhook stopped"})
	stopping, stopped := slices.Index(messages, "stopping: answering the requests under way, then ending the worker's transactions"), slices.Index(messages, "orderhook stopped")
	require.Less(t, stopping, stopped)
}

// The write deadline starts with the request, as the read timeout does: it
// must outlast it by the store's commit, so that a body that times out is
// answered its 408 and one read just in time its commit (a deadline equal
// to the read timeout closed the connection before the 408).
func TestServeWriteDeadlineOutlastsTheReadTimeout(t *testing.T) {
	t.Parallel()
	m, err := metrics.New(metrics.Config{}, nil, zerolog.Nop())
	require.NoError(t, err)
	tr, err := trace.New(t.Context(), func(string) string { return "" }, zerolog.Nop())
	require.NoError(t, err)
	srv, err := newHTTPServer(serveConfig{serveFlags: serveFlags{role: roleWorker}}, reconcile.Config{},
		storetest.SQLite(t), observers{metrics: m, tracing: tr}, zerolog.Nop())
	require.NoError(t, err)
	require.GreaterOrEqual(t, srv.WriteTimeout, srv.ReadTimeout+10*time.Second)
}
