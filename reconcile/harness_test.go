package reconcile_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/orderhook/orderhook/internal/scenario"
	"github.com/orderhook/orderhook/internal/stripeevent"
	"github.com/orderhook/orderhook/reconcile"
	"github.com/orderhook/orderhook/store"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("database/sql.(*DB).connectionOpener"))
}

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// harness runs a Worker over a database and reports its transitions.
type harness struct {
	db          *store.DB
	transitions chan reconcile.Transition
}

// startWorker runs a worker with cfg until the test ends. Unless cfg has its
// own OnTransition, transitions are delivered on h.transitions (buffered;
// tests read what they wait for).
func startWorker(t *testing.T, db *store.DB, cfg reconcile.Config) *harness {
	t.Helper()
	return startWorkerOn(t, db, db, cfg)
}

// startWorkerOn is startWorker with the worker going through st, a wrapper
// of db.
func startWorkerOn(t *testing.T, db *store.DB, st reconcile.Store, cfg reconcile.Config) *harness {
	t.Helper()
	h := &harness{db: db, transitions: make(chan reconcile.Transition, 100000)}
	if cfg.OnTransition == nil {
		cfg.OnTransition = func(tr reconcile.Transition) { h.transitions <- tr }
	}
	w, err := reconcile.NewWorker(cfg, st, zerolog.Nop())
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	return h
}

// waitFor reads transitions until match returns true, failing after timeout.
func (h *harness) waitFor(t *testing.T, what string, match func(reconcile.Transition) bool) reconcile.Transition {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case tr := <-h.transitions:
			if match(tr) {
				return tr
			}
		case <-timeout:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// waitOutcome waits for the given outcome of the given event.
func (h *harness) waitOutcome(t *testing.T, eventID, outcome string) reconcile.Transition {
	t.Helper()
	return h.waitFor(t, outcome+" "+eventID, func(tr reconcile.Transition) bool {
		return tr.EventID == eventID && tr.Outcome == outcome
	})
}

// insert stores a generated event as the receiver would.
func insert(t testing.TB, db *store.DB, ev scenario.Event, now time.Time) bool {
	t.Helper()
	env, err := stripeevent.Parse(ev.Payload)
	require.NoError(t, err)
	ok, err := db.InsertEvent(context.Background(), store.Event{
		ID: env.ID, Type: env.Type, APIVersion: env.APIVersion, Livemode: env.Livemode, Created: env.Created,
		CustomerID: env.CustomerID, ObjectID: env.ObjectID, Payload: ev.Payload, ReceivedAt: now,
	})
	require.NoError(t, err)
	return ok
}

// find returns the first event of the given type in s.
func find(t testing.TB, s scenario.Scenario, eventType string) scenario.Event {
	t.Helper()
	for _, ev := range s.Events {
		if ev.Type == eventType {
			return ev
		}
	}
	t.Fatalf("no %s in scenario", eventType)
	return scenario.Event{}
}

// attemptOutcomes lists the outcomes recorded for an event, in order.
func attemptOutcomes(t testing.TB, db *store.DB, eventID string) []string {
	t.Helper()
	attempts, err := db.Attempts(context.Background(), eventID)
	require.NoError(t, err)
	out := make([]string, 0, len(attempts))
	for _, a := range attempts {
		out = append(out, a.Outcome)
	}
	return out
}

func event(t testing.TB, db *store.DB, id string) store.Event {
	t.Helper()
	ev, err := db.Event(context.Background(), id)
	require.NoError(t, err)
	return ev
}

// onlyCustomer returns the mirror's one customer row.
func onlyCustomer(t testing.TB, db *store.DB) store.Customer {
	t.Helper()
	m, err := db.Mirror(context.Background())
	require.NoError(t, err)
	require.Len(t, m.Customers, 1)
	return m.Customers[0]
}
