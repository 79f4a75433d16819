package deliver_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	stripewebhook "github.com/stripe/stripe-go/v76/webhook"

	"github.com/orderhook/orderhook/internal/deliver"
	"github.com/orderhook/orderhook/internal/stripeevent"
)

func TestSenderDeliversEveryEventByteExact(t *testing.T) {
	t.Parallel()
	events := loadEvents(t)
	rc := newReceiver(t, nil, secretA)
	s := newSender(t, rc, func(c *deliver.Config) { c.Concurrency = 3 })

	var progress atomic.Int64
	rep, err := s.Run(context.Background(), events, func() { progress.Add(1) })
	require.NoError(t, err)

	require.ElementsMatch(t, bodiesOf(events), rc.bodies())
	require.NoError(t, rep.Err())
	require.Equal(t, len(events), rep.Events)
	require.Equal(t, len(events), rep.Planned)
	require.Equal(t, len(events), rep.Delivered)
	require.Equal(t, len(events), rep.Requests)
	require.Equal(t, map[int]int{http.StatusOK: len(events)}, rep.Status)
	require.Zero(t, rep.Failed+rep.Unsent+rep.Retries+rep.TransportErrors)
	require.Equal(t, len(events), rep.Latency.Count)
	require.Positive(t, rep.Latency.Max)
	require.Positive(t, rep.Rate())
	require.EqualValues(t, len(events), progress.Load())
}

func TestSenderSendsStripeHeaders(t *testing.T) {
	t.Parallel()
	events := loadEvents(t)[:1]
	rc := newReceiver(t, nil, secretA, secretB) // verifies one v1 per secret
	s := newSender(t, rc, nil)

	rep := send(t, s, events)

	require.Empty(t, rep.Failures)
	got := rc.received()
	require.Len(t, got, 1)
	h := got[0].header
	require.Equal(t, "application/json; charset=utf-8", h.Get("Content-Type"))
	require.Equal(t, "Stripe/1.0 (+https://stripe.com/docs/webhooks)", h.Get("User-Agent"))
	require.Regexp(t, `^t=\d+,v1=[0-9a-f]{64},v1=[0-9a-f]{64}$`, h.Get("Stripe-Signature"))
}

func TestSenderSignsWithInjectedClock(t *testing.T) {
	t.Parallel()
	events := loadEvents(t)[:1]
	rc := newReceiver(t, nil, secretA)
	signedAt := time.Now().Add(-time.Hour) // outside Stripe's default tolerance
	s := newSender(t, rc, func(c *deliver.Config) { c.Now = func() time.Time { return signedAt } })

	rep := send(t, s, events)

	require.Equal(t, map[int]int{http.StatusBadRequest: 1}, rep.Status)
	require.Contains(t, rep.Failures[0].Error, "timestamp wasn't within tolerance")
}

func TestSenderRepeatSendsDuplicates(t *testing.T) {
	t.Parallel()
	events := loadEvents(t)
	rc := newReceiver(t, nil, secretA)
	s := newSender(t, rc, func(c *deliver.Config) { c.Repeat, c.Concurrency = 3, 4 })

	rep := send(t, s, events)

	want := append(append(bodiesOf(events), bodiesOf(events)...), bodiesOf(events)...)
	require.ElementsMatch(t, want, rc.bodies())
	require.Equal(t, 3*len(events), rep.Planned)
	require.Equal(t, 3*len(events), rep.Delivered)
	require.Equal(t, len(events), rep.Events)
}

func TestSenderShuffleWithSeedIsReproducible(t *testing.T) {
	t.Parallel()
	events := loadEvents(t)
	order := func(seed uint64) ([]string, deliver.Report) {
		rc := newReceiver(t, nil, secretA)
		s := newSender(t, rc, func(c *deliver.Config) { c.Shuffle, c.Seed, c.Repeat = true, seed, 5 })
		rep := send(t, s, events)
		return rc.bodies(), rep
	}

	first, rep := order(42)
	second, _ := order(42)

	require.Equal(t, first, second)
	require.EqualValues(t, 42, rep.Seed)
	var sorted []string
	for range 5 {
		sorted = append(sorted, bodiesOf(events)...)
	}
	require.ElementsMatch(t, sorted, first)
	require.NotEqual(t, sorted, first)
}

func TestSenderShuffleWithoutSeedReportsOne(t *testing.T) {
	t.Parallel()
	rc := newReceiver(t, nil, secretA)
	s := newSender(t, rc, func(c *deliver.Config) { c.Shuffle = true })

	rep := send(t, s, loadEvents(t))

	require.NotZero(t, rep.Seed)
}

func TestSenderFreshIDs(t *testing.T) {
	t.Parallel()
	events := loadEvents(t)
	rc := newReceiver(t, nil, secretA)
	s := newSender(t, rc, func(c *deliver.Config) { c.FreshIDs, c.Repeat = true, 2 })

	send(t, s, events)
	send(t, s, events)

	got := rc.received()
	require.Len(t, got, 4*len(events))
	seen := map[string]int{}
	for _, r := range got {
		env, err := stripeevent.Parse(r.body)
		require.NoError(t, err)
		require.Regexp(t, `^evt_[A-Za-z0-9]{24}$`, env.ID)
		seen[env.ID]++
		require.Contains(t, bodiesOf(events), restoreID(t, events, r.body, env.ID))
	}
	require.Len(t, seen, 2*len(events), "one id per event per run")
	for id, n := range seen {
		require.Equal(t, 2, n, "repeats of %s keep the id", id)
	}
}

// restoreID returns body with its new id swapped back for the original one
// of the event it was made from; it must then equal that event byte for byte.
func restoreID(t *testing.T, events []deliver.Event, body []byte, id string) string {
	t.Helper()
	for _, ev := range events {
		old, _ := json.Marshal(ev.ID)
		back := bytes.Replace(body, []byte(`"`+id+`"`), old, 1)
		if bytes.Equal(back, ev.Body) {
			return string(back)
		}
	}
	return string(body)
}

func TestSenderUntil2xxRetries(t *testing.T) {
	t.Parallel()
	rc := newReceiver(t, func(n int, _ []byte) int {
		if n <= 2 {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	}, secretA)
	s := newSender(t, rc, func(c *deliver.Config) { c.Until2xx, c.BackoffMin = true, time.Millisecond })

	rep := send(t, s, loadEvents(t)[:1])

	require.NoError(t, rep.Err())
	require.Equal(t, 1, rep.Delivered)
	require.Equal(t, 2, rep.Retries)
	require.Equal(t, 3, rep.Requests)
	require.Equal(t, map[int]int{http.StatusOK: 1}, rep.Status)
	require.Equal(t, 3, rep.Latency.Count)
	require.Len(t, rc.received(), 3)
}

// A delivery waiting for its retry does not hold back the ones after it, as
// with Stripe: here the first event is answered 409 (orderhook's reject
// mode) until the second, which it depends on, has arrived, and one worker
// sends both.
func TestSenderRetryDoesNotBlockLaterDeliveries(t *testing.T) {
	t.Parallel()
	events := loadEvents(t)[:2]
	var second atomic.Bool
	rc := newReceiver(t, func(_ int, body []byte) int {
		if bytes.Equal(body, events[1].Body) {
			second.Store(true)
			return http.StatusOK
		}
		if !second.Load() {
			return http.StatusConflict
		}
		return http.StatusOK
	}, secretA)
	s := newSender(t, rc, func(c *deliver.Config) {
		c.Until2xx, c.MaxRetries, c.BackoffMin, c.BackoffMax = true, 2, 20*time.Millisecond, 40*time.Millisecond
	})

	rep := send(t, s, events)

	require.NoError(t, rep.Err())
	require.Equal(t, 2, rep.Delivered)
	require.Equal(t, 1, rep.Retries)
	require.Equal(t, 3, rep.Requests)
	require.Equal(t, []string{string(events[0].Body), string(events[1].Body), string(events[0].Body)}, rc.bodies())
}

func TestSenderUntil2xxGivesUpAfterMaxRetries(t *testing.T) {
	t.Parallel()
	rc := newReceiver(t, func(int, []byte) int { return http.StatusServiceUnavailable }, secretA)
	s := newSender(t, rc, func(c *deliver.Config) {
		c.Until2xx, c.MaxRetries, c.BackoffMin, c.BackoffMax = true, 2, time.Millisecond, 2*time.Millisecond
	})

	rep := send(t, s, loadEvents(t)[:1])

	require.ErrorIs(t, rep.Err(), deliver.ErrUndelivered)
	require.Equal(t, 1, rep.Failed)
	require.Equal(t, 3, rep.Requests)
	require.Equal(t, 2, rep.Retries)
	require.Equal(t, 3, rep.Failures[0].Attempts)
	require.Equal(t, map[int]int{http.StatusServiceUnavailable: 1}, rep.Status)
}

func TestSenderReportsFailureWithoutUntil2xx(t *testing.T) {
	t.Parallel()
	events := loadEvents(t)
	rc := newReceiver(t, func(int, []byte) int { return http.StatusBadRequest }, secretA)
	s := newSender(t, rc, nil)

	rep := send(t, s, events)

	require.Len(t, rc.received(), len(events), "no retries")
	require.Equal(t, len(events), rep.Failed)
	require.Equal(t, map[int]int{http.StatusBadRequest: len(events)}, rep.Status)
	require.ErrorIs(t, rep.Err(), deliver.ErrUndelivered)
	require.EqualError(t, rep.Err(), "undelivered events: 4 of 4 deliveries failed")
	require.Equal(t, deliver.Failure{
		EventID:  events[0].ID,
		Name:     events[0].Name,
		Status:   http.StatusBadRequest,
		Error:    `{"status":"Bad Request"}`,
		Attempts: 1,
	}, rep.Failures[0])
}

func TestSenderReportsTransportErrors(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	url := "http://" + ln.Addr().String() + "/webhooks/stripe"
	require.NoError(t, ln.Close()) // nothing listens there now
	s, err := deliver.New(deliver.Config{URL: url, Secrets: []string{secretA}})
	require.NoError(t, err)
	t.Cleanup(s.CloseIdleConnections)

	rep := send(t, s, loadEvents(t)[:2])

	require.Equal(t, 2, rep.Failed)
	require.Equal(t, 2, rep.TransportErrors)
	require.Empty(t, rep.Status)
	require.Zero(t, rep.Failures[0].Status)
	require.Contains(t, rep.Failures[0].Error, "connection refused")
}

// blockingServer answers nothing until the client gives up; arrived gets a
// value per request.
func blockingServer(t *testing.T) (*httptest.Server, <-chan struct{}) {
	t.Helper()
	arrived := make(chan struct{}, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		readBody(r)
		arrived <- struct{}{}
		<-r.Context().Done()
	}))
	t.Cleanup(srv.Close)
	return srv, arrived
}

// readBody reads the request body: only then does the server notice that
// the client closed the connection, and end r.Context().
func readBody(r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
}

func TestSenderTimeoutIsATransportError(t *testing.T) {
	t.Parallel()
	srv, _ := blockingServer(t)
	s, err := deliver.New(deliver.Config{URL: srv.URL, Secrets: []string{secretA}, Timeout: 20 * time.Millisecond})
	require.NoError(t, err)
	t.Cleanup(s.CloseIdleConnections)

	rep := send(t, s, loadEvents(t)[:1])

	require.Equal(t, 1, rep.TransportErrors)
	require.Contains(t, rep.Failures[0].Error, "context deadline exceeded")
}

func TestSenderStopsOnCancel(t *testing.T) {
	t.Parallel()
	srv, arrived := blockingServer(t)
	s, err := deliver.New(deliver.Config{URL: srv.URL, Secrets: []string{secretA}})
	require.NoError(t, err)
	t.Cleanup(s.CloseIdleConnections)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-arrived
		cancel()
	}()

	rep, err := s.Run(ctx, loadEvents(t), nil)

	require.ErrorIs(t, err, context.Canceled)
	require.Equal(t, len(testEvents), rep.Unsent)
	require.Zero(t, rep.Delivered+rep.Failed)
	require.Equal(t, 1, rep.Requests)
	require.ErrorIs(t, rep.Err(), deliver.ErrUndelivered)
}

func TestSenderCancelDuringRetryKeepsLastAnswer(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	var requests atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if requests.Add(1) == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		readBody(r)
		cancel() // during the retry
		<-r.Context().Done()
	}))
	t.Cleanup(srv.Close)
	s, err := deliver.New(deliver.Config{URL: srv.URL, Secrets: []string{secretA}, Until2xx: true, BackoffMin: time.Millisecond})
	require.NoError(t, err)
	t.Cleanup(s.CloseIdleConnections)

	rep, err := s.Run(ctx, loadEvents(t)[:1], nil)

	require.ErrorIs(t, err, context.Canceled)
	require.Equal(t, 1, rep.Failed)
	require.Equal(t, map[int]int{http.StatusServiceUnavailable: 1}, rep.Status)
	require.Equal(t, 1, rep.Failures[0].Attempts)
	require.Equal(t, "retry interrupted: context canceled", rep.Failures[0].Error)
}

func TestSenderCancelWhileRetryWaitsKeepsLastAnswer(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	rc := newReceiver(t, func(int, []byte) int {
		time.AfterFunc(20*time.Millisecond, cancel) // while the retry waits its hour
		return http.StatusServiceUnavailable
	}, secretA)
	s := newSender(t, rc, func(c *deliver.Config) { c.Until2xx, c.BackoffMin, c.BackoffMax = true, time.Hour, time.Hour })

	rep, err := s.Run(ctx, loadEvents(t)[:1], nil)

	require.ErrorIs(t, err, context.Canceled)
	require.Equal(t, 1, rep.Failed)
	require.Equal(t, 1, rep.Requests)
	require.Equal(t, map[int]int{http.StatusServiceUnavailable: 1}, rep.Status)
	require.Equal(t, "retry interrupted: context canceled", rep.Failures[0].Error)
}

func TestSenderConcurrency(t *testing.T) {
	t.Parallel()
	const conc = 4
	var (
		mu       sync.Mutex
		inFlight int
		peak     int
		all      = make(chan struct{})
	)
	allOnce := sync.OnceFunc(func() { close(all) })
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		inFlight++
		if inFlight > peak {
			peak = inFlight
		}
		if inFlight == conc {
			allOnce() // every worker is in a request at once
		}
		mu.Unlock()
		readBody(r)
		select {
		case <-all:
		case <-r.Context().Done():
		}
		mu.Lock()
		inFlight--
		mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	s, err := deliver.New(deliver.Config{URL: srv.URL, Secrets: []string{secretA}, Concurrency: conc, Repeat: 5, Timeout: 10 * time.Second})
	require.NoError(t, err)
	t.Cleanup(s.CloseIdleConnections)

	rep := send(t, s, loadEvents(t))

	require.NoError(t, rep.Err())
	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, conc, peak)
}

func TestSenderReusesConnections(t *testing.T) {
	t.Parallel()
	const conc = 16
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	s, err := deliver.New(deliver.Config{URL: srv.URL, Secrets: []string{secretA}, Concurrency: conc, Repeat: 500})
	require.NoError(t, err)
	t.Cleanup(s.CloseIdleConnections)

	rep := send(t, s, loadEvents(t))

	require.Equal(t, 500*len(testEvents), rep.Delivered)
	// A connection returns to the pool just after its answer is read, so a
	// worker may now and then dial another; without a pool of conc idle
	// connections it is hundreds.
	require.LessOrEqual(t, conns.Load(), int64(2*conc))
}

func TestSenderWithoutEvents(t *testing.T) {
	t.Parallel()
	rc := newReceiver(t, nil, secretA)
	s := newSender(t, rc, nil)

	_, err := s.Run(context.Background(), nil, nil)

	require.ErrorIs(t, err, deliver.ErrNoEvents)
}

func TestNewSenderRejectsBadConfig(t *testing.T) {
	t.Parallel()
	ok := deliver.Config{URL: "http://127.0.0.1:8080/webhooks/stripe", Secrets: []string{secretA}}
	tests := map[string]func(*deliver.Config){
		"no secret":            func(c *deliver.Config) { c.Secrets = nil },
		"empty secret":         func(c *deliver.Config) { c.Secrets = []string{secretA, " "} },
		"relative url":         func(c *deliver.Config) { c.URL = "/webhooks/stripe" },
		"no scheme":            func(c *deliver.Config) { c.URL = "127.0.0.1:8080/webhooks/stripe" },
		"ftp url":              func(c *deliver.Config) { c.URL = "ftp://example.com/x" },
		"bad url":              func(c *deliver.Config) { c.URL = "http://%zz" },
		"negative concurrency": func(c *deliver.Config) { c.Concurrency = -1 },
		"negative repeat":      func(c *deliver.Config) { c.Repeat = -1 },
		"negative timeout":     func(c *deliver.Config) { c.Timeout = -time.Second },
		"backoff min over max": func(c *deliver.Config) { c.BackoffMin, c.BackoffMax = time.Second, time.Millisecond },
	}
	for name, tune := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			cfg := ok
			tune(&cfg)
			_, err := deliver.New(cfg)
			require.ErrorIs(t, err, deliver.ErrConfig)
		})
	}
	s, err := deliver.New(ok)
	require.NoError(t, err)
	s.CloseIdleConnections()
}

func TestSignatureVerifiesWithEachSecret(t *testing.T) {
	t.Parallel()
	payload := []byte(testEvents[0])
	at := time.Unix(1700000000, 0)

	header := deliver.Signature(at, payload, secretA, secretB)

	require.True(t, strings.HasPrefix(header, "t=1700000000,v1="))
	for _, secret := range []string{secretA, secretB} {
		require.NoError(t, stripewebhook.ValidatePayloadIgnoringTolerance(payload, header, secret))
	}
	require.ErrorIs(t, stripewebhook.ValidatePayloadIgnoringTolerance(payload, header, "whsec_other"), stripewebhook.ErrNoValidSignature)
}

// BenchmarkSenderRun measures the sender alone, against a receiver that
// does nothing: b.N deliveries, 16 at a time.
func BenchmarkSenderRun(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
	}))
	defer srv.Close()
	s, err := deliver.New(deliver.Config{URL: srv.URL, Secrets: []string{secretA}, Concurrency: 16})
	require.NoError(b, err)
	defer s.CloseIdleConnections()
	events := make([]deliver.Event, b.N)
	for i := range events {
		events[i], err = deliver.NewEvent("bench", []byte(testEvents[i%len(testEvents)]))
		require.NoError(b, err)
	}
	b.ReportAllocs()
	b.ResetTimer()

	rep, err := s.Run(context.Background(), events, nil)

	require.NoError(b, err)
	require.NoError(b, rep.Err())
	b.ReportMetric(rep.Rate(), "events/s")
	b.ReportMetric(float64(rep.Latency.P99.Microseconds()), "p99-us")
}
