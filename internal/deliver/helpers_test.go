package deliver_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	stripewebhook "github.com/stripe/stripe-go/v76/webhook"

	"github.com/orderhook/orderhook/internal/deliver"
	"github.com/orderhook/orderhook/internal/stripeevent"
)

const (
	secretA = "whsec_test_primary"
	secretB = "whsec_test_rolled"
)

// testEvents are Stripe events in the shapes fixtures come in: pretty and
// compact, "id" first and last, nested "id" keys, escapes, no api_version.
var testEvents = []string{
	`{
  "id": "evt_1IlZRsJDPojXS6LN2AbFmnR4",
  "object": "event",
  "api_version": "2020-08-27",
  "created": 1648320107,
  "data": {
    "object": {"id": "cus_00000000000000", "object": "customer", "name": "Zo\u00eb", "metadata": {"id": "x"}}
  },
  "livemode": false,
  "type": "customer.created"
}
`,
	`{"object":"event","created":1326853478,"livemode":false,"type":"invoice.finalized","data":{"object":{"id":"in_0","object":"invoice","customer":"cus_00000000000000"}},"id":"invoice.finalized_00000000000000"}`,
	"{\r\n\t\"id\" : \"evt_000000000000000000000000\" ,\r\n\t\"object\": \"event\",\r\n\t\"created\": 1648320108,\r\n\t\"type\": \"invoice.paid\",\r\n\t\"data\": {\"object\": {\"id\": \"in_1\", \"object\": \"invoice\", \"customer\": {\"id\": \"cus_00000000000000\", \"object\": \"customer\"}}}\r\n}\r\n",
	`{"id":"evt_000000000000000000000000","object":"event","api_version":"2026-04-22.dahlia","created":1648320109,"type":"customer.subscription.created","data":{"object":{"id":"sub_1","object":"subscription","customer":"cus_00000000000000","note":"\"id\": \"evt_fake\""}}}`,
}

// writeEvents writes testEvents to a new directory and returns it.
func writeEvents(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for i, body := range testEvents {
		name := filepath.Join(dir, fmt.Sprintf("%02d.json", i))
		require.NoError(t, os.WriteFile(name, []byte(body), 0o600))
	}
	return dir
}

// loadEvents returns testEvents as Events.
func loadEvents(t *testing.T) []deliver.Event {
	t.Helper()
	events, err := deliver.Load(writeEvents(t))
	require.NoError(t, err)
	require.Len(t, events, len(testEvents))
	return events
}

// received is one request as the receiver saw it.
type received struct {
	body   []byte
	header http.Header
}

// receiver is a webhook endpoint that verifies every request's signature
// with each of its secrets, records what it got and answers with answer
// (200 when nil).
type receiver struct {
	srv     *httptest.Server
	secrets []string
	answer  func(n int, body []byte) int // n counts requests from 1

	mu  sync.Mutex
	got []received
}

func newReceiver(t *testing.T, answer func(n int, body []byte) int, secrets ...string) *receiver {
	t.Helper()
	rc := &receiver{secrets: secrets, answer: answer}
	rc.srv = httptest.NewServer(http.HandlerFunc(rc.serve))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if err := rc.verify(body, r.Header.Get("Stripe-Signature")); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	rc.mu.Lock()
	rc.got = append(rc.got, received{body: body, header: r.Header.Clone()})
	n := len(rc.got)
	rc.mu.Unlock()
	status := http.StatusOK
	if rc.answer != nil {
		status = rc.answer(n, body)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"status":%q}`, http.StatusText(status))
}

// verify checks that header carries one valid v1 signature per secret.
func (rc *receiver) verify(body []byte, header string) error {
	if n := strings.Count(header, ",v1="); n != len(rc.secrets) {
		return fmt.Errorf("want %d v1 signatures, got %d in %q", len(rc.secrets), n, header)
	}
	for _, s := range rc.secrets {
		if err := stripewebhook.ValidatePayload(body, header, s); err != nil {
			return fmt.Errorf("secret %s: %w", s, err)
		}
	}
	if _, err := stripeevent.Parse(body); err != nil {
		return err
	}
	return nil
}

// received returns what the receiver got, in arrival order.
func (rc *receiver) received() []received {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]received(nil), rc.got...)
}

// bodies returns the received bodies as strings, in arrival order.
func (rc *receiver) bodies() []string {
	var out []string
	for _, r := range rc.received() {
		out = append(out, string(r.body))
	}
	return out
}

// newSender returns a Sender posting to rc with its secrets; tune edits the
// Config first.
func newSender(t *testing.T, rc *receiver, tune func(*deliver.Config)) *deliver.Sender {
	t.Helper()
	cfg := deliver.Config{URL: rc.srv.URL + "/webhooks/stripe", Secrets: rc.secrets}
	if tune != nil {
		tune(&cfg)
	}
	s, err := deliver.New(cfg)
	require.NoError(t, err)
	t.Cleanup(s.CloseIdleConnections)
	return s
}

// send runs s over events to completion and requires that Run succeeded.
func send(t *testing.T, s *deliver.Sender, events []deliver.Event) deliver.Report {
	t.Helper()
	rep, err := s.Run(context.Background(), events, nil)
	require.NoError(t, err)
	return rep
}

// bodiesOf returns the events' payloads as strings.
func bodiesOf(events []deliver.Event) []string {
	var out []string
	for _, ev := range events {
		out = append(out, string(ev.Body))
	}
	return out
}
