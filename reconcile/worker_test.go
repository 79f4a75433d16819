package reconcile_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orderhook/orderhook/internal/scenario"
	"github.com/orderhook/orderhook/reconcile"
	"github.com/orderhook/orderhook/store"
	"github.com/orderhook/orderhook/store/storetest"
)

// An invoice that arrives before its customer waits on a named dependency and
// is applied when the customer is, through a wake-up: the poll interval is an
// hour, so a poll cannot be what releases it.
func TestDeferredEventIsReleasedByItsDependency(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		s := scenario.Generate(scenario.Config{Customers: 1, Prefix: "rel"})
		paid, created := find(t, s, "invoice.paid"), find(t, s, "customer.created")
		h := startWorker(t, db, reconcile.Config{PollInterval: time.Hour})

		insert(t, db, paid, time.Now())
		tr := h.waitOutcome(t, paid.ID, store.OutcomeDeferred)
		require.Equal(t, "customer:"+paid.CustomerID, tr.WaitingFor)
		ev := event(t, db, paid.ID)
		require.Equal(t, store.StatusDeferred, ev.Status)
		require.Equal(t, "customer:"+paid.CustomerID, ev.WaitingFor)

		insert(t, db, created, time.Now())
		require.Equal(t, 1, h.waitOutcome(t, created.ID, store.OutcomeApplied).Released)
		require.Equal(t, "customer:"+paid.CustomerID, h.waitOutcome(t, paid.ID, store.OutcomeReleased).WaitingFor)
		applied := h.waitOutcome(t, paid.ID, store.OutcomeApplied)
		require.NotNil(t, applied.ReleasedAt, "the application knows when the event was released")
		require.Equal(t, []string{"deferred", "released", "applied"}, attemptOutcomes(t, db, paid.ID))
		require.Equal(t, store.StatusApplied, event(t, db, paid.ID).Status)
	})
}

// An invoice claimed in one batch with the event that creates its customer is
// applied after it, in the same transaction, without waiting: it was
// received first, but the batch applies the customer first.
func TestABatchAppliesTheCustomerBeforeItsEvents(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		s := scenario.Generate(scenario.Config{Customers: 1, Prefix: "first"})
		paid, created := find(t, s, "invoice.paid"), find(t, s, "customer.created")
		now := time.Now()
		insert(t, db, paid, now.Add(-time.Second))
		insert(t, db, created, now)

		h := startWorker(t, db, reconcile.Config{Workers: 1, PollInterval: time.Hour})
		require.Zero(t, h.waitOutcome(t, created.ID, store.OutcomeApplied).Released, "nothing waited")
		h.waitOutcome(t, paid.ID, store.OutcomeApplied)
		require.Equal(t, []string{"applied"}, attemptOutcomes(t, db, paid.ID))
		require.Equal(t, event(t, db, paid.ID).AppliedAt, event(t, db, created.ID).AppliedAt, "one transaction")
	})
}

// Only the event that creates the customer releases what waits for it, and
// that need not be customer.created: here customer.updated arrives first and
// creates it. The customer events after it release nothing.
func TestTheEventThatCreatesTheCustomerReleases(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		s := scenario.Generate(scenario.Config{Customers: 1, Prefix: "creator"})
		paid, updated, created := find(t, s, "invoice.paid"), find(t, s, "customer.updated"), find(t, s, "customer.created")
		h := startWorker(t, db, reconcile.Config{PollInterval: time.Hour})

		insert(t, db, paid, time.Now())
		h.waitOutcome(t, paid.ID, store.OutcomeDeferred)
		insert(t, db, updated, time.Now())
		require.Equal(t, 1, h.waitOutcome(t, updated.ID, store.OutcomeApplied).Released, "customer.updated created the customer")
		h.waitOutcome(t, paid.ID, store.OutcomeApplied)

		insert(t, db, created, time.Now())
		tr := h.waitFor(t, "customer.created", func(tr reconcile.Transition) bool { return tr.EventID == created.ID })
		require.Zero(t, tr.Released)
	})
}

// A released event is applied in the transaction that applied its
// dependency. When it fails there, the failure is its own: the dependency is
// still applied once, without a failed attempt, and the dependent is retried.
func TestReleasedEventFailureIsItsOwn(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		s := scenario.Generate(scenario.Config{Customers: 1, Prefix: "relfail"})
		paid, created := find(t, s, "invoice.paid"), find(t, s, "customer.created")
		h := startWorker(t, db, reconcile.Config{
			PollInterval: 5 * time.Millisecond, BackoffBase: time.Millisecond, BackoffMax: 5 * time.Millisecond,
			Handlers: map[string]reconcile.HandlerFunc{
				"invoice.paid": func(_ context.Context, _ *sqlx.Tx, ev reconcile.Event) error {
					if ev.Attempt == 1 {
						return errors.New("ledger unavailable")
					}
					return nil
				},
			},
		})
		insert(t, db, paid, time.Now())
		h.waitOutcome(t, paid.ID, store.OutcomeDeferred)
		insert(t, db, created, time.Now())
		h.waitOutcome(t, paid.ID, store.OutcomeApplied)
		require.Equal(t, []string{"applied"}, attemptOutcomes(t, db, created.ID))
		require.Equal(t, []string{"deferred", "released", "failed", "applied"}, attemptOutcomes(t, db, paid.ID))
	})
}

// A released event that fails in its dependency's transaction is not
// leased to the worker, which has no attempt to record for it: its failure
// is logged, with its cause, and it is due again.
func TestAReleasedEventsFailureInItsDependencysTransactionIsLogged(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		s := scenario.Generate(scenario.Config{Customers: 1, Prefix: "rellog"})
		paid, created := find(t, s, "invoice.paid"), find(t, s, "customer.created")
		var logs bytes.Buffer
		w, err := reconcile.NewWorker(reconcile.Config{Handlers: map[string]reconcile.HandlerFunc{
			"invoice.paid": func(context.Context, *sqlx.Tx, reconcile.Event) error { return errors.New("ledger unavailable") },
		}}, db, zerolog.New(&logs))
		require.NoError(t, err)
		ctx := context.Background()
		insert(t, db, paid, time.Now())
		_, err = w.RunOnce(ctx, "w")
		require.NoError(t, err)
		insert(t, db, created, time.Now())
		_, err = w.RunOnce(ctx, "w")
		require.NoError(t, err)

		require.Equal(t, []string{"applied"}, attemptOutcomes(t, db, created.ID))
		require.Equal(t, store.StatusPending, event(t, db, paid.ID).Status, "released again")
		var lines []map[string]any
		for line := range strings.Lines(logs.String()) {
			var l map[string]any
			require.NoError(t, json.Unmarshal([]byte(line), &l))
			if l["event_id"] == paid.ID && l["level"] == "warn" {
				lines = append(lines, l)
			}
		}
		require.Len(t, lines, 1, "the failure is logged once: %s", logs.String())
		require.Equal(t, "handler for invoice.paid: ledger unavailable", lines[0]["error"])
		require.Equal(t, paid.CustomerID, lines[0]["customer_id"])
	})
}

// A batch that fails for the store blames none of its events, and RunOnce
// returns the failure: when its transaction failed outside every event's
// processing though an earlier run of it (retried after a deadlock, say)
// failed on one, and when it rolled back on an event but could not be
// leased again (its events are then due again). No attempt counts.
func TestABatchThatFailsForTheStoreBlamesNoEvent(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		noLease bool
	}{{"outside its events", false}, {"not leased again", true}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			storetest.Each(t, func(t *testing.T, db *store.DB) {
				prefix := "blame" + strconv.FormatBool(tc.noLease)
				created := find(t, scenario.Generate(scenario.Config{Customers: 1, Prefix: prefix}), "customer.created")
				lost := errors.New("store lost")
				w, err := reconcile.NewWorker(reconcile.Config{Handlers: map[string]reconcile.HandlerFunc{
					"customer.created": func(context.Context, *sqlx.Tx, reconcile.Event) error { return errors.New("ledger unavailable") },
				}}, failingAfter{DB: db, err: lost, noLease: tc.noLease}, zerolog.Nop())
				require.NoError(t, err)
				insert(t, db, created, time.Now())

				_, err = w.RunOnce(context.Background(), "w")
				require.ErrorIs(t, err, lost)
				require.Zero(t, event(t, db, created.ID).Attempts, "an attempt was counted against the event")
				require.Empty(t, attemptOutcomes(t, db, created.ID))
			})
		})
	}
}

// failingAfter processes every batch and then fails it with err, as a
// transaction whose run failed on an event, and whose retry failed outside
// them all, does; with noLease, as one that rolled back and could not be
// leased again, which ProcessDue reports with no batch.
type failingAfter struct {
	*store.DB
	err     error
	noLease bool
}

func (s failingAfter) ProcessDue(ctx context.Context, p store.ClaimParams, fn func(ctx context.Context, tx *store.Tx) error) (store.Batch, error) {
	batch, err := s.DB.ProcessDue(ctx, p, fn)
	if s.noLease {
		return store.Batch{}, fmt.Errorf("%w (and leasing the batch again failed: %w)", err, s.err)
	}
	return batch, s.err
}

func TestUnknownTypesAreIgnored(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		h := startWorker(t, db, reconcile.Config{PollInterval: time.Hour})
		payload := []byte(`{"id":"evt_prod","object":"event","type":"product.created","created":1700000000,"data":{"object":{"id":"prod_1","object":"product"}}}`)
		insert(t, db, scenario.Event{Payload: payload}, time.Now())
		h.waitOutcome(t, "evt_prod", store.OutcomeIgnored)
		require.Equal(t, store.StatusIgnored, event(t, db, "evt_prod").Status)
		require.Equal(t, []string{"ignored"}, attemptOutcomes(t, db, "evt_prod"))
	})
}

func TestDependencyTimeoutMakesEventDead(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		clk := newClock()
		s := scenario.Generate(scenario.Config{Customers: 1, Prefix: "dto"})
		paid := find(t, s, "invoice.paid")
		h := startWorker(t, db, reconcile.Config{Now: clk.Now, PollInterval: 5 * time.Millisecond, DependencyTimeout: time.Hour})

		insert(t, db, paid, clk.Now())
		h.waitOutcome(t, paid.ID, store.OutcomeDeferred)
		clk.Advance(time.Hour + time.Second)
		tr := h.waitOutcome(t, paid.ID, store.OutcomeDead)
		require.Contains(t, tr.Err.Error(), "customer:"+paid.CustomerID)

		ev := event(t, db, paid.ID)
		require.Equal(t, store.StatusDead, ev.Status)
		require.Contains(t, ev.LastError, "dependency timeout")
		require.Contains(t, ev.LastError, "customer:"+paid.CustomerID)
		require.Equal(t, []string{"deferred", "dead"}, attemptOutcomes(t, db, paid.ID))
	})
}

// A failing handler is retried with backoff and then dead-lettered, while
// other customers' events keep being applied; also when its error's cause
// is a network error of its own (an HTTP call's), which is not the store's.
func TestHandlerErrorsAreRetriedThenDead(t *testing.T) {
	t.Parallel()
	causes := map[string]error{
		"plain":   errors.New("invalid email"),
		"network": &url.Error{Op: "Post", URL: "https://crm.example/customers", Err: &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}},
	}
	for name, cause := range causes {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			handlerFailsThenDead(t, "fail"+name, cause)
		})
	}
}

func handlerFailsThenDead(t *testing.T, prefix string, cause error) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		s := scenario.Generate(scenario.Config{Customers: 2, Prefix: prefix})
		poisoned := s.Events[0].CustomerID
		h := startWorker(t, db, reconcile.Config{
			PollInterval: 5 * time.Millisecond, BackoffBase: time.Millisecond, BackoffMax: 5 * time.Millisecond, MaxAttempts: 3,
			Handlers: map[string]reconcile.HandlerFunc{
				"customer.created": func(_ context.Context, _ *sqlx.Tx, ev reconcile.Event) error {
					if ev.CustomerID == poisoned {
						return fmt.Errorf("crm rejected %s (attempt %d): %w", ev.CustomerID, ev.Attempt, cause)
					}
					return nil
				},
			},
		})
		var healthy []scenario.Event
		for _, ev := range s.Events {
			insert(t, db, ev, time.Now())
			if ev.CustomerID != poisoned {
				healthy = append(healthy, ev)
			}
		}
		dead := h.waitFor(t, "poisoned event dead", func(tr reconcile.Transition) bool {
			return tr.Outcome == store.OutcomeDead && tr.CustomerID == poisoned
		})
		require.Equal(t, 3, dead.Attempt)
		require.ErrorContains(t, dead.Err, "crm rejected")
		require.Equal(t, []string{"failed", "failed", "dead"}, attemptOutcomes(t, db, dead.EventID))
		ev := event(t, db, dead.EventID)
		require.Equal(t, store.StatusDead, ev.Status)
		require.Equal(t, 3, ev.Attempts)
		require.Contains(t, ev.LastError, "attempt 3")

		for _, want := range healthy {
			got := event(t, db, want.ID)
			for got.Status != store.StatusApplied {
				h.waitFor(t, "healthy events applied", func(tr reconcile.Transition) bool { return tr.EventID == want.ID })
				got = event(t, db, want.ID)
			}
		}
	})
}

// A worker keeps the handlers it was built with: the caller's map may
// change after, without racing the loops or changing what they run.
func TestAWorkerKeepsItsHandlers(t *testing.T) {
	t.Parallel()
	db := storetest.SQLite(t)
	s := scenario.Generate(scenario.Config{Customers: 1, Prefix: "keep"})
	ran := make(chan string, len(s.Events))
	handlers := map[string]reconcile.HandlerFunc{
		"customer.created": func(_ context.Context, _ *sqlx.Tx, ev reconcile.Event) error {
			ran <- ev.ID
			return nil
		},
	}
	h := startWorker(t, db, reconcile.Config{PollInterval: 5 * time.Millisecond, Handlers: handlers})
	delete(handlers, "customer.created")
	for _, ev := range s.Events {
		insert(t, db, ev, time.Now())
	}
	applied := h.waitFor(t, "the customer event applied", func(tr reconcile.Transition) bool {
		return tr.Outcome == store.OutcomeApplied && tr.Type == "customer.created"
	})
	select {
	case id := <-ran: // before the transition: it runs in the transaction
		require.Equal(t, applied.EventID, id)
	default:
		t.Fatal("its handler did not run")
	}
}

// A handler's error that wraps ErrPermanent dead-letters its event at the
// first attempt, without the retries.
func TestAPermanentErrorDeadLettersAtOnce(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		s := scenario.Generate(scenario.Config{Customers: 1, Prefix: "perm"})
		h := startWorker(t, db, reconcile.Config{
			PollInterval: 5 * time.Millisecond, BackoffBase: time.Millisecond, BackoffMax: 5 * time.Millisecond, MaxAttempts: 5,
			Handlers: map[string]reconcile.HandlerFunc{
				"customer.created": func(_ context.Context, _ *sqlx.Tx, ev reconcile.Event) error {
					return fmt.Errorf("customer %s has no email to bill: %w", ev.CustomerID, reconcile.ErrPermanent)
				},
			},
		})
		for _, ev := range s.Events {
			insert(t, db, ev, time.Now())
		}
		dead := h.waitFor(t, "the customer event dead", func(tr reconcile.Transition) bool {
			return tr.Outcome == store.OutcomeDead && tr.Type == "customer.created"
		})
		require.Equal(t, 1, dead.Attempt, "no retry")
		require.Equal(t, []string{"dead"}, attemptOutcomes(t, db, dead.EventID))
	})
}

// A handler that panics fails its event, which is retried and then
// dead-lettered with the panic in its error: the process, and the other
// customers' events, go on.
func TestAPanickingHandlerFailsItsEvent(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		s := scenario.Generate(scenario.Config{Customers: 2, Prefix: "panic"})
		poisoned := s.Events[0].CustomerID
		h := startWorker(t, db, reconcile.Config{
			PollInterval: 5 * time.Millisecond, BackoffBase: time.Millisecond, BackoffMax: 5 * time.Millisecond, MaxAttempts: 2,
			Handlers: map[string]reconcile.HandlerFunc{
				"customer.created": func(_ context.Context, _ *sqlx.Tx, ev reconcile.Event) error {
					if ev.CustomerID == poisoned {
						panic("crm client is not configured")
					}
					return nil
				},
			},
		})
		for _, ev := range s.Events {
			insert(t, db, ev, time.Now())
		}
		dead := h.waitFor(t, "the panicking event dead", func(tr reconcile.Transition) bool {
			return tr.Outcome == store.OutcomeDead && tr.CustomerID == poisoned
		})
		require.ErrorIs(t, dead.Err, reconcile.ErrPanic)
		require.ErrorContains(t, dead.Err, "crm client is not configured")
		require.Contains(t, event(t, db, dead.EventID).LastError, "worker_test.go", "the stack, to find it by")
		for _, ev := range s.Events {
			if ev.CustomerID == poisoned {
				continue
			}
			for got := event(t, db, ev.ID); got.Status != store.StatusApplied; got = event(t, db, ev.ID) {
				h.waitFor(t, "the other customer's events applied", func(tr reconcile.Transition) bool { return tr.EventID == ev.ID })
			}
		}
	})
}

// A handler reads the mirror as applied so far, and its writes commit with
// the status change: a failure after the write rolls it back, and the retry
// writes once.
func TestHandlerWritesCommitExactlyOnce(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		_, err := db.SQLX().Exec(`CREATE TABLE credits (invoice_id text PRIMARY KEY, amount bigint NOT NULL)`)
		require.NoError(t, err)
		s := scenario.Generate(scenario.Config{Customers: 1, Prefix: "once"})
		failOnce := true
		h := startWorker(t, db, reconcile.Config{
			Workers: 1, PollInterval: 5 * time.Millisecond, BackoffBase: time.Millisecond,
			Handlers: map[string]reconcile.HandlerFunc{
				"invoice.paid": func(ctx context.Context, tx *sqlx.Tx, ev reconcile.Event) error {
					var inv struct {
						AmountPaid int64 `json:"amount_paid"`
					}
					if err := ev.DecodeObject(&inv); err != nil {
						return err
					}
					// The mirror, as applied so far, is there to read.
					var mirrored int64
					if err := tx.GetContext(ctx, &mirrored, tx.Rebind(`SELECT amount_paid FROM stripe_invoices WHERE id = ?`), ev.ObjectID); err != nil {
						return fmt.Errorf("read the mirror: %w", err)
					}
					if mirrored != inv.AmountPaid {
						return fmt.Errorf("the mirror holds %d paid, the event %d", mirrored, inv.AmountPaid)
					}
					if _, err := tx.ExecContext(ctx, tx.Rebind(`INSERT INTO credits (invoice_id, amount) VALUES (?, ?)`), ev.ObjectID, inv.AmountPaid); err != nil {
						return err
					}
					if failOnce {
						failOnce = false
						return errors.New("downstream timeout after the write")
					}
					return nil
				},
			},
		})
		for _, ev := range s.Events {
			insert(t, db, ev, time.Now())
		}
		paid := find(t, s, "invoice.paid")
		h.waitOutcome(t, paid.ID, store.OutcomeApplied)
		var n int
		require.NoError(t, db.SQLX().Get(&n, `SELECT count(*) FROM credits`))
		require.Equal(t, 1, n)
		require.Equal(t, []string{"failed", "applied"}, attemptOutcomes(t, db, paid.ID))
	})
}

// A worker that leased an event to process it alone (its customer was busy,
// or its batch failed) and died inside the apply transaction leaves it to
// another worker once the lease expires; it is applied exactly once.
func TestExpiredLeaseIsTakenOverOnce(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		clk := newClock()
		s := scenario.Generate(scenario.Config{Customers: 1, Prefix: "lease"})
		created := find(t, s, "customer.created")
		insert(t, db, created, clk.Now())

		claimed := storetest.Lease(t, db, "doomed", clk.Now().Add(time.Minute), created.ID)
		// The doomed worker's transaction fails after its mirror write
		// (held in memory on PostgreSQL) and rolls back, as a crash's would;
		// a connection that dies under a transaction is
		// TestProcessDueLeavesNothingBehindWhenItsConnectionDies.
		dying, die := context.WithCancel(ctx)
		err := db.Process(dying, claimed[0], "doomed", clk.Now(), func(ctx context.Context, tx *store.Tx) error {
			require.NoError(t, tx.EnsureCustomer(ctx, created.CustomerID))
			die()
			return ctx.Err()
		})
		require.Error(t, err)

		w, err := reconcile.NewWorker(reconcile.Config{Now: clk.Now}, db, zerologNop())
		require.NoError(t, err)
		n, err := w.RunOnce(ctx, "heir")
		require.NoError(t, err)
		require.Zero(t, n, "the lease still holds")

		clk.Advance(time.Minute + time.Second)
		// The doomed transaction ended with its context, and database/sql
		// closed its connection instead of rolling it back: until the
		// backend notices, on PostgreSQL, the row stays locked and the
		// claim skips it, as it would a crashed worker's.
		require.EventuallyWithT(t, func(c *assert.CollectT) {
			n, err := w.RunOnce(ctx, "heir")
			require.NoError(c, err)
			require.Equal(c, 1, n)
		}, 5*time.Second, 10*time.Millisecond)
		require.Equal(t, []string{"applied"}, attemptOutcomes(t, db, created.ID))
		attempts, err := db.Attempts(ctx, created.ID)
		require.NoError(t, err)
		require.Equal(t, "heir", attempts[0].Worker)

		// The doomed worker's late commit is refused.
		err = db.Process(ctx, claimed[0], "doomed", clk.Now(), func(context.Context, *store.Tx) error { return nil })
		require.ErrorIs(t, err, store.ErrNotClaimed)
	})
}

// A worker stopped while it processes, one at a time, the events its batch
// left leased gives up the leases of the rest: another worker applies them at
// once, not a lease later.
func TestStoppedWorkerGivesUpItsLeases(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		clk := newClock()
		s := scenario.Generate(scenario.Config{Customers: 1, Prefix: "unlease"})
		created := find(t, s, "customer.created")
		insert(t, db, created, clk.Now())
		setup, err := reconcile.NewWorker(reconcile.Config{Now: clk.Now}, db, zerologNop())
		require.NoError(t, err)
		n, err := setup.RunOnce(ctx, "setup")
		require.NoError(t, err)
		require.Equal(t, 1, n)

		// One batch: finalized fails and takes it down; paid, processed alone
		// next, is where the worker is stopped; succeeded is left leased.
		finalized, paid, succeeded := find(t, s, "invoice.finalized"), find(t, s, "invoice.paid"), find(t, s, "invoice.payment_succeeded")
		for i, ev := range []scenario.Event{finalized, paid, succeeded} {
			insert(t, db, ev, clk.Now().Add(time.Duration(i-3)*time.Millisecond))
		}
		entered, proceed := make(chan struct{}), make(chan struct{})
		calls := 0
		w, err := reconcile.NewWorker(reconcile.Config{
			Workers: 1, Now: clk.Now,
			Handlers: map[string]reconcile.HandlerFunc{
				"invoice.finalized": func(context.Context, *sqlx.Tx, reconcile.Event) error { return errors.New("downstream down") },
				"invoice.paid": func(context.Context, *sqlx.Tx, reconcile.Event) error {
					if calls++; calls == 1 {
						close(entered)
						<-proceed
					}
					return nil
				},
			},
		}, db, zerologNop())
		require.NoError(t, err)
		runCtx, stop := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- w.Run(runCtx) }()
		<-entered
		stop()
		close(proceed)
		require.NoError(t, <-done)

		require.Equal(t, []string{"applied"}, attemptOutcomes(t, db, paid.ID), "the transaction in flight finished")
		left := event(t, db, succeeded.ID)
		require.Equal(t, store.StatusPending, left.Status)
		require.Empty(t, left.LeaseOwner, "the lease is given up")

		heir, err := reconcile.NewWorker(reconcile.Config{Now: clk.Now}, db, zerologNop())
		require.NoError(t, err)
		n, err = heir.RunOnce(ctx, "heir")
		require.NoError(t, err)
		require.Equal(t, 1, n, "due at once, on the same clock")
		require.Equal(t, []string{"applied"}, attemptOutcomes(t, db, succeeded.ID))
		require.Equal(t, []string{"failed"}, attemptOutcomes(t, db, finalized.ID), "the failure waits for its backoff")
	})
}
