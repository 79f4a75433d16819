package reconcile_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orderhook/orderhook/internal/scenario"
	"github.com/orderhook/orderhook/reconcile"
	"github.com/orderhook/orderhook/store"
	"github.com/orderhook/orderhook/store/storetest"
)

// ingestingStore is a store whose deliveries are being stored for as long
// as the test says, and which records how many of its batches run at once.
type ingestingStore struct {
	*store.DB
	mu     sync.Mutex
	idle   chan struct{}
	active int
	peak   int
	starts []time.Time // of every ProcessDue
	limits []int       // of every ProcessDue
}

func newIngestingStore(db *store.DB) *ingestingStore {
	return &ingestingStore{DB: db, idle: make(chan struct{})}
}

func (s *ingestingStore) IngestIdle() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.idle
}

// stopIngesting closes IngestIdle: nothing is being stored any more.
func (s *ingestingStore) stopIngesting() {
	s.mu.Lock()
	defer s.mu.Unlock()
	close(s.idle)
}

func (s *ingestingStore) enter(limit int) func() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.active++
	s.peak = max(s.peak, s.active)
	s.starts = append(s.starts, time.Now())
	s.limits = append(s.limits, limit)
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.active--
	}
}

func (s *ingestingStore) ProcessDue(ctx context.Context, p store.ClaimParams, fn func(ctx context.Context, tx *store.Tx) error) (store.Batch, error) {
	defer s.enter(p.Limit)()
	return s.DB.ProcessDue(ctx, p, fn)
}

func (s *ingestingStore) batchStarts() []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.starts)
}

func (s *ingestingStore) batchLimits() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.limits)
}

func (s *ingestingStore) peakActive() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peak
}

// storedCustomer returns a SQLite store, its ingestingStore, and the
// customer.created event stored in it, pending.
func storedCustomer(t *testing.T, prefix string) (*store.DB, *ingestingStore, scenario.Event) {
	t.Helper()
	db := storetest.SQLite(t)
	created := find(t, scenario.Generate(scenario.Config{Customers: 1, Prefix: prefix}), "customer.created")
	insert(t, db, created, time.Now())
	return db, newIngestingStore(db), created
}

// TestLoopsLetIngestGoFirst: while deliveries are being stored, no loop
// starts a batch before IngestYield is up; once they are stored, the
// waiting event is applied at once.
func TestLoopsLetIngestGoFirst(t *testing.T) {
	t.Parallel()
	db, st, created := storedCustomer(t, "first")

	h := startWorkerOn(t, db, st, reconcile.Config{IngestYield: time.Hour, PollInterval: 10 * time.Millisecond})
	select {
	case tr := <-h.transitions:
		t.Fatalf("%s %s while deliveries were being stored", tr.Outcome, tr.EventID)
	case <-time.After(300 * time.Millisecond):
	}
	got, err := db.Event(context.Background(), created.ID)
	require.NoError(t, err)
	require.Equal(t, store.StatusPending, got.Status)

	st.stopIngesting()
	h.waitOutcome(t, created.ID, store.OutcomeApplied)
}

// TestIngestTurnsAreBounded: deliveries that never stop coming do not
// starve the reconciler. The loops take turns, as many batches at a time as
// the configuration allows: one with IngestYield (each after at most
// IngestYield), IngestLoops with it; and still one when they are behind by
// more than IngestMaxLag and no longer wait.
func TestIngestTurnsAreBounded(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		cfg      reconcile.Config
		age      time.Duration // of the stored events
		maxTurns int
	}{
		"ingest yield":  {reconcile.Config{IngestYield: 20 * time.Millisecond}, 0, 1},
		"ingest loops":  {reconcile.Config{IngestLoops: 2, Workers: 4}, 0, 2},
		"behind, yield": {reconcile.Config{IngestYield: 200 * time.Millisecond, IngestMaxLag: time.Second}, time.Minute, 1},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			db := storetest.SQLite(t)
			st := newIngestingStore(db)
			s := scenario.Generate(scenario.Config{Customers: 12, Prefix: "bounded"})
			var ids []string
			for _, ev := range s.Events {
				if ev.Type == "customer.created" {
					insert(t, db, ev, time.Now().Add(-tc.age))
					ids = append(ids, ev.ID)
				}
			}
			require.Len(t, ids, 12)

			tc.cfg.BatchSize, tc.cfg.PollInterval = 2, 10*time.Millisecond
			h := startWorkerOn(t, db, st, tc.cfg)
			applied := map[string]bool{}
			for len(applied) < len(ids) {
				tr := h.waitFor(t, fmt.Sprintf("%d more applications", len(ids)-len(applied)), func(tr reconcile.Transition) bool {
					return tr.Outcome == store.OutcomeApplied
				})
				applied[tr.EventID] = true
			}
			require.LessOrEqual(t, st.peakActive(), tc.maxTurns, "while deliveries are stored, at most %d loops claim and apply at once", tc.maxTurns)
		})
	}
}

// TestBatchesAreSmallWhileDeliveriesAreStored: a loop that takes its turn
// while deliveries are being stored claims IngestBatchSize events; once they
// are stored, BatchSize.
func TestBatchesAreSmallWhileDeliveriesAreStored(t *testing.T) {
	t.Parallel()
	db := storetest.SQLite(t)
	st := newIngestingStore(db)
	var created []scenario.Event
	for _, ev := range scenario.Generate(scenario.Config{Customers: 8, Prefix: "small"}).Events {
		if ev.Type == "customer.created" {
			created = append(created, ev)
		}
	}
	for _, ev := range created[:4] {
		insert(t, db, ev, time.Now())
	}
	h := startWorkerOn(t, db, st, reconcile.Config{
		Workers: 1, BatchSize: 8, IngestBatchSize: 2, IngestYield: 10 * time.Millisecond, PollInterval: 10 * time.Millisecond,
	})
	for range 4 {
		h.waitFor(t, "an application while deliveries are stored", func(tr reconcile.Transition) bool { return tr.Outcome == store.OutcomeApplied })
	}
	during := len(st.batchLimits())

	st.stopIngesting()
	for _, ev := range created[4:] {
		insert(t, db, ev, time.Now())
	}
	for range 4 {
		h.waitFor(t, "an application once they are stored", func(tr reconcile.Transition) bool { return tr.Outcome == store.OutcomeApplied })
	}
	limits := st.batchLimits()
	require.GreaterOrEqual(t, during, 2, "four events in batches of two")
	for i, limit := range limits[:during] {
		require.Equal(t, 2, limit, "batch %d, while deliveries were stored", i)
	}
	// The one loop may have taken its turn, and so its limit, just before
	// the deliveries stopped: every batch after that one claims BatchSize.
	require.Equal(t, 8, limits[len(limits)-1], "the last batch, once the deliveries were stored")
	for i, limit := range limits[min(during+1, len(limits)):] {
		require.Equal(t, 8, limit, "batch %d, once the deliveries were stored", during+1+i)
	}
}

// TestALoopBehindStopsWaitingForTheDeliveries: deliveries that never stop
// coming hold the reconciler back only so far. A loop whose full batch had
// been due for longer than IngestMaxLag runs its next batch at once, without
// the yield; a loop that is not that far behind waits for it.
func TestALoopBehindStopsWaitingForTheDeliveries(t *testing.T) {
	t.Parallel()
	const yield = time.Second
	for name, tc := range map[string]struct {
		received time.Duration // before now
		behind   bool
	}{
		"behind":     {received: time.Minute, behind: true},
		"not behind": {received: 0, behind: false},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			db := storetest.SQLite(t)
			st := newIngestingStore(db)
			for _, ev := range scenario.Generate(scenario.Config{Customers: 3, Prefix: "lag"}).Events {
				if ev.Type == "customer.created" {
					insert(t, db, ev, time.Now().Add(-tc.received))
				}
			}
			h := startWorkerOn(t, db, st, reconcile.Config{
				Workers: 1, BatchSize: 1, IngestYield: yield, IngestMaxLag: 10 * time.Second, PollInterval: 10 * time.Millisecond,
			})
			for range 2 {
				h.waitFor(t, "an application", func(tr reconcile.Transition) bool { return tr.Outcome == store.OutcomeApplied })
			}
			starts := st.batchStarts()
			require.GreaterOrEqual(t, len(starts), 2)
			gap := starts[1].Sub(starts[0])
			if tc.behind {
				require.Less(t, gap, yield/2, "a loop behind does not wait for the deliveries")
			} else {
				require.GreaterOrEqual(t, gap, yield, "a loop not behind waits for the deliveries")
			}
		})
	}
}

// TestNoIngestYieldByDefault: with IngestYield zero the loops never wait for
// the deliveries being stored.
func TestNoIngestYieldByDefault(t *testing.T) {
	t.Parallel()
	db, st, created := storedCustomer(t, "nowait")

	h := startWorkerOn(t, db, st, reconcile.Config{})
	h.waitOutcome(t, created.ID, store.OutcomeApplied)
}
