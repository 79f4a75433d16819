package webhook_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/orderhook/orderhook/store"
	"github.com/orderhook/orderhook/webhook"
)

// receiver is a handler served over HTTP whose deliveries are reported on a
// channel, so that a test waits for the one whose client gave up.
type receiver struct {
	srv  *httptest.Server
	logs *syncBuffer
	seen chan observation
}

// newReceiver serves a handler storing into inbox, with the server's read
// timeout (0: none).
func newReceiver(t *testing.T, inbox webhook.Inbox, readTimeout time.Duration) receiver {
	t.Helper()
	rc := receiver{logs: &syncBuffer{}, seen: make(chan observation, 8)}
	h, err := webhook.NewHandler(webhook.Config{
		Secrets: []string{secret0},
		Now:     func() time.Time { return now },
		Observe: func(outcome string, status int, _ time.Duration) { rc.seen <- observation{outcome, status} },
	}, inbox, nil, zerolog.New(rc.logs))
	require.NoError(t, err)
	rc.srv = httptest.NewUnstartedServer(h)
	rc.srv.Config.ReadTimeout = readTimeout
	rc.srv.Start()
	t.Cleanup(rc.srv.Close)
	return rc
}

// send opens a connection and writes a POST of a delivery signed for
// payload, with the framing header given ("Content-Length: …" or
// "Transfer-Encoding: chunked"), followed by body.
func (rc receiver) send(t *testing.T, payload []byte, framing string, body []byte) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", rc.srv.Listener.Addr().String())
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	head := "POST /webhooks/stripe HTTP/1.1\r\nHost: orderhook\r\nStripe-Signature: " + sign(payload, secret0, now) + "\r\n" + framing + "\r\n\r\n"
	_, err = conn.Write(append([]byte(head), body...))
	require.NoError(t, err)
	return conn
}

// next waits for the next delivery the handler reports.
func (rc receiver) next(t *testing.T) observation {
	t.Helper()
	select {
	case o := <-rc.seen:
		return o
	case <-time.After(10 * time.Second):
		t.Fatal("no delivery reported within 10 s")
		return observation{}
	}
}

// finalLogs closes the server, which waits for its handlers to return,
// and returns what they logged: a handler reports its delivery before it
// logs it.
func (rc receiver) finalLogs() string {
	rc.srv.Close()
	return rc.logs.String()
}

// readAnswer reads the answer the server wrote on conn.
func readAnswer(t *testing.T, conn net.Conn) answer {
	t.Helper()
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	require.NoError(t, err)
	defer resp.Body.Close()
	var body bytes.Buffer
	_, err = body.ReadFrom(resp.Body)
	require.NoError(t, err)
	return answer{status: resp.StatusCode, header: resp.Header, body: body.Bytes()}
}

// hangingInbox holds every insert until its context ends, as the store
// does while a batch commits, and then returns the context's error as the
// store does; entered receives each event as its insert starts.
type hangingInbox struct{ entered chan string }

func (h hangingInbox) InsertEvent(ctx context.Context, ev store.Event) (bool, error) {
	h.entered <- ev.ID
	<-ctx.Done()
	return false, fmt.Errorf("insert event %s: %w", ev.ID, context.Cause(ctx))
}

// A sender that closes its connection after a whole, signed body, while the
// event is being stored, is no store failure: the delivery is abandoned
// (499, at warn), and the log says the event may or may not be stored.
func TestClientGoneWhileStoring(t *testing.T) {
	t.Parallel()
	inbox := hangingInbox{entered: make(chan string, 1)}
	rc := newReceiver(t, inbox, 0)
	payload := event("evt_gone")
	conn := rc.send(t, payload, fmt.Sprintf("Content-Length: %d", len(payload)), payload)
	select {
	case <-inbox.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the insert did not start within 10 s")
	}

	require.NoError(t, conn.Close())

	require.Equal(t, observation{"abandoned", 499}, rc.next(t))
	logs := rc.finalLogs()
	for _, want := range []string{`"level":"warn"`, `"outcome":"abandoned"`, `"status":499`, `"event_id":"evt_gone"`, "may or may not be stored", "context canceled"} {
		require.Contains(t, logs, want)
	}
	require.NotContains(t, logs, `"level":"error"`)
	require.NotContains(t, logs, "store_unavailable")
}

// The store's own error for a request whose client has gone is recognised,
// and so is the dependency check's in reject mode, after the event is
// stored.
func TestClientGoneBeforeAnswer(t *testing.T) {
	t.Parallel()
	gone, cancel := context.WithCancel(context.Background())
	cancel()
	serve := func(b bundle, payload []byte) answer {
		req := httptest.NewRequestWithContext(gone, http.MethodPost, "/webhooks/stripe", bytes.NewReader(payload))
		req.Header.Set("Stripe-Signature", sign(payload, secret0, now))
		rec := httptest.NewRecorder()
		b.h.ServeHTTP(rec, req)
		return answer{status: rec.Code, header: rec.Header(), body: rec.Body.Bytes()}
	}

	db := sqlite(t)
	b := setup(t, db, options{})
	p := requireProblem(t, serve(b, event("evt_gone")), 499, "client-closed-request")
	require.Contains(t, p.Detail, "may or may not be stored")
	require.Zero(t, countEvents(t, db))
	require.Contains(t, b.logs.String(), `"outcome":"abandoned"`)

	inbox := &fakeInbox{}
	b = setup(t, inbox, options{mode: webhook.ModeReject, deps: &fakeDeps{err: fmt.Errorf("lookup customer: %w", context.Canceled)}})
	p = requireProblem(t, serve(b, event("evt_stored")), 499, "client-closed-request")
	require.Contains(t, p.Detail, "is stored")
	require.Equal(t, 1, inbox.len())
}

// A store failure stays one when its error is not the request's
// cancellation.
func TestStoreCanceledOnItsOwn(t *testing.T) {
	t.Parallel()
	b := setup(t, &fakeInbox{err: fmt.Errorf("insert event: %w", context.Canceled)}, options{})
	requireProblem(t, b.deliver(t, event("evt_1"), secret0), 503, "store-unavailable")
}

// A sender that stops in the middle of its body sent no event: the body is
// unreadable, not malformed, and a sender that only stopped sending (its
// connection half closed) reads a 400 it understands, not a 499.
func TestBodyCutShort(t *testing.T) {
	t.Parallel()
	inbox := &fakeInbox{}
	rc := newReceiver(t, inbox, 0)
	payload := event("evt_half")
	conn := rc.send(t, payload, fmt.Sprintf("Content-Length: %d", len(payload)), payload[:len(payload)/2])

	require.NoError(t, conn.(*net.TCPConn).CloseWrite())

	require.Equal(t, observation{"unreadable_body", http.StatusBadRequest}, rc.next(t))
	p := requireProblem(t, readAnswer(t, conn), http.StatusBadRequest, "unreadable-body")
	require.Contains(t, p.Detail, "it ended before its length")
	require.Zero(t, inbox.len())
}

// A body that does not arrive within the server's read timeout is answered
// 408 body-timeout, not malformed.
func TestBodyTimeout(t *testing.T) {
	t.Parallel()
	inbox := &fakeInbox{}
	rc := newReceiver(t, inbox, 200*time.Millisecond)
	payload := event("evt_slow")
	conn := rc.send(t, payload, fmt.Sprintf("Content-Length: %d", len(payload)), payload[:10])

	require.Equal(t, observation{"body_timeout", http.StatusRequestTimeout}, rc.next(t))
	requireProblem(t, readAnswer(t, conn), http.StatusRequestTimeout, "body-timeout")
	require.Zero(t, inbox.len())
}

// A chunked body whose framing is broken is unreadable, not malformed: no
// body was received to be an event or not.
func TestBodyFramingBroken(t *testing.T) {
	t.Parallel()
	inbox := &fakeInbox{}
	rc := newReceiver(t, inbox, 0)
	payload := event("evt_chunks")
	conn := rc.send(t, payload, "Transfer-Encoding: chunked", []byte("zz\r\n{}\r\n0\r\n\r\n"))

	require.Equal(t, observation{"unreadable_body", http.StatusBadRequest}, rc.next(t))
	requireProblem(t, readAnswer(t, conn), http.StatusBadRequest, "unreadable-body")
	require.Zero(t, inbox.len())
}
