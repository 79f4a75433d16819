package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
	stripewebhook "github.com/stripe/stripe-go/v76/webhook"

	"github.com/orderhook/orderhook/internal/deliver"
)

const sendSecret = "whsec_send_test"

// writeSendEvents writes two small Stripe events to a new directory and
// returns it.
func writeSendEvents(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for i, typ := range []string{"customer.created", "invoice.paid"} {
		body := fmt.Sprintf(`{"id": "evt_send_%d", "object": "event", "type": %q, "created": 1700000000,
  "data": {"object": {"id": "obj_%d", "object": "thing", "customer": "cus_send"}}}`, i, typ, i)
		require.NoError(t, os.WriteFile(filepath.Join(dir, fmt.Sprintf("%d.json", i)), []byte(body), 0o600))
	}
	return dir
}

// sendReceiver is a webhook endpoint that checks one v1 signature per secret
// and answers answer(n) to its n-th valid request (200 when nil); the
// counter holds the number of valid requests.
func sendReceiver(t *testing.T, answer func(n int64) int, secrets ...string) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		header := r.Header.Get("Stripe-Signature")
		for _, s := range secrets {
			if err := stripewebhook.ValidatePayload(body, header, s); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
		}
		if strings.Count(header, "v1=") != len(secrets) {
			http.Error(w, "wrong number of signatures: "+header, http.StatusBadRequest)
			return
		}
		status, i := http.StatusOK, n.Add(1)
		if answer != nil {
			status = answer(i)
		}
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(status)
		fmt.Fprintf(w, `{"title":%q}`, http.StatusText(status))
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

// runSend runs `orderhook send args…` with the variables in vars and returns
// what it printed.
func runSend(t *testing.T, vars map[string]string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	getenv := func(k string) string { return vars[k] }
	err = run(context.Background(), append([]string{"send"}, args...), getenv, strings.NewReader(""), &out, &errOut)
	return out.String(), errOut.String(), err
}

func TestSendPrintsTally(t *testing.T) {
	t.Parallel()
	srv, _ := sendReceiver(t, nil, sendSecret)

	stdout, stderr, err := runSend(t, nil, "--url", srv.URL, "--secret", sendSecret, "--concurrency", "2", writeSendEvents(t))

	require.NoError(t, err, stdout)
	require.Regexp(t, `(?m)^200 OK +2$`, stdout)
	require.Regexp(t, `(?m)^deliveries +2 \(2 events × 1\)$`, stdout)
	require.Regexp(t, `(?m)^requests +2 \(0 retries\)$`, stdout)
	require.Regexp(t, `(?m)^latency +p50 \S+  p95 \S+  p99 \S+  max \S+ \(per HTTP request, 2 answered\)$`, stdout)
	require.NotContains(t, stdout, "FAILED")
	require.Empty(t, stderr, "no progress bar when stderr is not a terminal")
}

func TestSendJSON(t *testing.T) {
	t.Parallel()
	srv, _ := sendReceiver(t, nil, sendSecret)

	stdout, _, err := runSend(t, nil, "--url", srv.URL, "--secret", sendSecret, "--repeat", "3", "--shuffle", "--seed", "7", "--fresh-ids", "--json", writeSendEvents(t))

	require.NoError(t, err)
	var rep sendJSON
	require.NoError(t, json.Unmarshal([]byte(stdout), &rep))
	require.True(t, rep.OK)
	require.Equal(t, srv.URL, rep.URL)
	require.Equal(t, 2, rep.Events)
	require.Equal(t, 6, rep.Deliveries)
	require.Equal(t, 6, rep.Delivered)
	require.Equal(t, map[int]int{200: 6}, rep.Status)
	require.EqualValues(t, 7, rep.Seed)
	require.Equal(t, "request", rep.LatencyMS.Basis)
	require.Equal(t, 6, rep.LatencyMS.Count)
	require.LessOrEqual(t, rep.LatencyMS.P50, rep.LatencyMS.Max)
	require.NotNil(t, rep.Failures)
	require.Empty(t, rep.Failures)
}

func TestSendFailuresExitOne(t *testing.T) {
	t.Parallel()
	srv, _ := sendReceiver(t, func(int64) int { return http.StatusBadRequest }, sendSecret)
	dir := writeSendEvents(t)

	stdout, _, err := runSend(t, nil, "--url", srv.URL, "--secret", sendSecret, dir)

	require.ErrorIs(t, err, deliver.ErrUndelivered)
	require.EqualError(t, err, "undelivered events: 2 of 2 deliveries failed")
	require.Equal(t, exitProblems, exitCode(err))
	require.Regexp(t, `(?m)^400 Bad Request +2$`, stdout)
	require.Regexp(t, `(?m)^evt_send_0 +`+filepath.Join(dir, "0.json")+` +1 +400 Bad Request: \{"title":"Bad Request"\}$`, stdout)
}

func TestSendUntil2xxRetries(t *testing.T) {
	t.Parallel()
	srv, requests := sendReceiver(t, func(n int64) int {
		if n == 1 {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	}, sendSecret)

	stdout, _, err := runSend(t, nil, "--url", srv.URL, "--secret", sendSecret, "--until-2xx", "--backoff", "1ms", writeSendEvents(t))

	require.NoError(t, err, stdout)
	require.EqualValues(t, 3, requests.Load())
	require.Regexp(t, `(?m)^200 OK +2$`, stdout)
	require.Regexp(t, `(?m)^requests +3 \(1 retries\)$`, stdout)
}

func TestSendDeadlineReportsWhatWasSent(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body) // then the server notices the client leave
		<-r.Context().Done()
	}))
	t.Cleanup(srv.Close)

	stdout, _, err := runSend(t, nil, "--url", srv.URL, "--secret", sendSecret, "--deadline", "50ms", writeSendEvents(t))

	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Equal(t, exitProblems, exitCode(err))
	require.Regexp(t, `(?m)^not sent +2$`, stdout)
	require.Contains(t, stdout, "none: no request was answered")
}

func TestSendSecretsAndURLFromEnvironment(t *testing.T) {
	t.Parallel()
	srv, requests := sendReceiver(t, nil, "whsec_old", "whsec_new")
	vars := map[string]string{
		"ORDERHOOK_STRIPE_SECRETS": "whsec_old, whsec_new",
		"ORDERHOOK_SEND_URL":       srv.URL + "/webhooks/stripe",
	}

	stdout, _, err := runSend(t, vars, writeSendEvents(t))

	require.NoError(t, err, stdout)
	require.EqualValues(t, 2, requests.Load())
	require.Contains(t, stdout, srv.URL+"/webhooks/stripe")
}

func TestSendSignsWithEverySecret(t *testing.T) {
	t.Parallel()
	srv, requests := sendReceiver(t, nil, "whsec_old", "whsec_new") // wants both v1s

	stdout, _, err := runSend(t, nil, "--url", srv.URL, "--secret", "whsec_old", "--secret", "whsec_new", writeSendEvents(t))
	require.NoError(t, err, stdout)
	require.EqualValues(t, 2, requests.Load())

	// Comma-separated, as in ORDERHOOK_STRIPE_SECRETS: two secrets, not one.
	stdout, _, err = runSend(t, nil, "--url", srv.URL, "--secret", "whsec_old, whsec_new", writeSendEvents(t))
	require.NoError(t, err, stdout)
	require.EqualValues(t, 4, requests.Load())
}

func TestSendFlagsOverrideEnvironment(t *testing.T) {
	t.Parallel()
	srv, _ := sendReceiver(t, nil, sendSecret)
	vars := map[string]string{"ORDERHOOK_STRIPE_SECRETS": "whsec_wrong", "ORDERHOOK_SEND_URL": "http://127.0.0.1:1/nowhere"}

	stdout, _, err := runSend(t, vars, "--url", srv.URL, "--secret", sendSecret, writeSendEvents(t))

	require.NoError(t, err, stdout)
}

func TestSendUsageErrors(t *testing.T) {
	t.Parallel()
	dir := writeSendEvents(t)
	malformed := filepath.Join(t.TempDir(), "bad.json")
	require.NoError(t, os.WriteFile(malformed, []byte(`{"object":"event"}`), 0o600))
	ok := []string{"--url", "http://127.0.0.1:1/webhooks/stripe", "--secret", sendSecret}
	tests := []struct {
		name string
		args []string
		vars map[string]string
		want string
	}{
		{"no files", ok, nil, "name at least one event FILE or DIR"},
		{"no secret", []string{dir}, nil, "no signing secret"},
		{"blank secret list", []string{dir}, map[string]string{"ORDERHOOK_STRIPE_SECRETS": " , "}, "no signing secret"},
		{"blank secret", []string{"--url", "http://127.0.0.1:1/webhooks/stripe", "--secret", "", dir}, nil, "--secret has a blank secret"},
		{"blank comma-separated secret", []string{"--url", "http://127.0.0.1:1/webhooks/stripe", "--secret", sendSecret + ",", dir}, nil, "--secret has a blank secret"},
		{"unknown flag", append([]string{"--colour", dir}, ok...), nil, "unknown flag"},
		{"bad number", append([]string{"--concurrency", "many", dir}, ok...), nil, "invalid argument"},
		{"zero concurrency", append([]string{"--concurrency", "0", dir}, ok...), nil, "--concurrency 0"},
		{"zero repeat", append([]string{"--repeat", "0", dir}, ok...), nil, "--repeat 0"},
		{"seed without shuffle", append([]string{"--seed", "3", dir}, ok...), nil, "--seed needs --shuffle"},
		{"bad url", []string{"--url", "localhost:8080", "--secret", sendSecret, dir}, nil, "url"},
		{"missing file", append([]string{filepath.Join(dir, "nope.json")}, ok...), nil, "nope.json"},
		{"malformed file", append([]string{malformed}, ok...), nil, malformed + ": malformed event"},
		{"empty dir", append([]string{t.TempDir()}, ok...), nil, "no *.json file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, _, err := runSend(t, tt.vars, tt.args...)
			require.ErrorContains(t, err, tt.want)
			require.Equal(t, exitUsage, exitCode(err), "%v", err)
		})
	}
}

func TestShorten(t *testing.T) {
	t.Parallel()
	require.Equal(t, "abc", shorten("abc", 3))
	require.Equal(t, "ab…", shorten("abcd", 3))
	require.Equal(t, "Zö…", shorten("Zöë!", 3))
}
