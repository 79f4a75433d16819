package bench

import (
	"cmp"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	mathrand "math/rand/v2"
	"slices"

	"github.com/orderhook/orderhook/internal/deliver"
	"github.com/orderhook/orderhook/internal/scenario"
	"github.com/orderhook/orderhook/reconcile"
)

// Workload defaults.
const (
	DefaultCustomers    = 1091 // about 10 events each: ~12,000 deliveries with 10% duplicates
	DefaultDuplicates   = 0.1
	DefaultPayloadBytes = 3000
	DefaultInterleave   = 64
)

// WorkloadConfig shapes a billing run. Zero values take the defaults above,
// except Duplicates, where 0 means none.
type WorkloadConfig struct {
	Customers    int     // customers taken through the full lifecycle
	Duplicates   float64 // extra deliveries, as a fraction of the distinct events
	PayloadBytes int     // approximate size of every event
	Interleave   int     // customers whose reversed lifecycles are interleaved with each other
	Seed         uint64  // same seed, same workload (ids aside); 0 picks one
	Prefix       string  // makes the ids unique to this run; "" picks one
	// LateCustomers moves the deliveries of the events that create a
	// customer (reconcile.DefaultCustomerEvents) after all others, to be
	// held back until the others are applied or deferred: every event that
	// needs its customer is then released by it.
	LateCustomers bool
}

// Workload is a billing run in delivery order.
type Workload struct {
	Deliveries   []deliver.Event // adversarial order, duplicates included
	Late         int             // the last Late deliveries are held back (LateCustomers)
	Distinct     int             // distinct events
	Customers    int
	PayloadBytes int    // mean payload size
	Seed         uint64 // the seed used
	Prefix       string // every event id starts with IDPrefix()
}

// IDPrefix is what every event id of the workload starts with.
func (w Workload) IDPrefix() string { return "evt_" + w.Prefix }

// Duplicates is the number of deliveries beyond the first of each event.
func (w Workload) Duplicates() int { return len(w.Deliveries) - w.Distinct }

// NewWorkload generates cfg.Customers lifecycles in Stripe's real shape
// (internal/scenario) and orders them adversarially: each customer's events
// newest first, so that invoices and subscription changes arrive before the
// customer exists; Interleave customers at a time taken in turn;
// Duplicates × the events delivered once more at random places; and, with
// LateCustomers, the events that create a customer after all others. It returns
// an error for a negative size or a duplicate fraction outside [0, 1].
func NewWorkload(cfg WorkloadConfig) (Workload, error) {
	if cfg.Customers < 0 || cfg.PayloadBytes < 0 || cfg.Interleave < 0 || cfg.Duplicates < 0 || cfg.Duplicates > 1 {
		return Workload{}, fmt.Errorf("workload: customers, payload bytes and interleave must not be negative, duplicates must be in [0, 1]")
	}
	cfg.Customers = cmp.Or(cfg.Customers, DefaultCustomers)
	cfg.PayloadBytes = cmp.Or(cfg.PayloadBytes, DefaultPayloadBytes)
	cfg.Interleave = cmp.Or(cfg.Interleave, DefaultInterleave)
	for cfg.Seed == 0 {
		cfg.Seed = mathrand.Uint64()
	}
	if cfg.Prefix == "" {
		cfg.Prefix = randomPrefix()
	}
	sc := scenario.Generate(scenario.Config{Customers: cfg.Customers, Seed: cfg.Seed, Prefix: cfg.Prefix, PayloadBytes: cfg.PayloadBytes})
	order := adversarial(sc.Events, cfg.Interleave)
	rng := mathrand.New(mathrand.NewPCG(cfg.Seed, 0x62656e6368))
	order = withDuplicates(order, int(cfg.Duplicates*float64(len(order))+0.5), rng)

	w := Workload{Distinct: len(sc.Events), Customers: cfg.Customers, Seed: cfg.Seed, Prefix: cfg.Prefix}
	if cfg.LateCustomers {
		order, w.Late = customersLast(order)
	}
	w.Deliveries = make([]deliver.Event, len(order))
	total := 0
	for i, ev := range order {
		d, err := deliver.NewEvent(ev.Type, ev.Payload)
		if err != nil {
			return Workload{}, fmt.Errorf("workload: generated event %s: %w", ev.ID, err)
		}
		w.Deliveries[i] = d
		total += len(ev.Payload)
	}
	w.PayloadBytes = total / max(len(order), 1)
	return w, nil
}

// adversarial returns events (each customer's in causal order, customers one
// after the other) with each customer's events reversed and, window by
// window of n customers, the customers taken in turn.
func adversarial(events []scenario.Event, n int) []scenario.Event {
	var customers [][]scenario.Event
	for i := 0; i < len(events); {
		j := i + 1
		for j < len(events) && events[j].CustomerID == events[i].CustomerID {
			j++
		}
		lifecycle := slices.Clone(events[i:j])
		slices.Reverse(lifecycle)
		customers = append(customers, lifecycle)
		i = j
	}
	out := make([]scenario.Event, 0, len(events))
	for window := range slices.Chunk(customers, n) {
		for k := 0; ; k++ {
			took := false
			for _, c := range window {
				if k < len(c) {
					out, took = append(out, c[k]), true
				}
			}
			if !took {
				break
			}
		}
	}
	return out
}

// customersLast returns order with the events that create a customer moved
// to the end, each part in its own order, and how many were moved.
func customersLast(order []scenario.Event) ([]scenario.Event, int) {
	out := make([]scenario.Event, 0, len(order))
	var late []scenario.Event
	for _, ev := range order {
		if slices.Contains(reconcile.DefaultCustomerEvents, ev.Type) {
			late = append(late, ev)
		} else {
			out = append(out, ev)
		}
	}
	return append(out, late...), len(late)
}

// withDuplicates returns order with n more deliveries of events picked at
// random, each inserted at a random place.
func withDuplicates(order []scenario.Event, n int, rng *mathrand.Rand) []scenario.Event {
	type extra struct{ at, event int }
	extras := make([]extra, n)
	for i := range extras {
		extras[i] = extra{at: rng.IntN(len(order) + 1), event: rng.IntN(len(order))}
	}
	slices.SortFunc(extras, func(a, b extra) int { return cmp.Compare(a.at, b.at) })
	out := make([]scenario.Event, 0, len(order)+n)
	for i := 0; i <= len(order); i++ {
		for len(extras) > 0 && extras[0].at == i {
			out = append(out, order[extras[0].event])
			extras = extras[1:]
		}
		if i < len(order) {
			out = append(out, order[i])
		}
	}
	return out
}

// randomPrefix returns "b" and 8 random hex digits.
func randomPrefix() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on supported platforms
	return "b" + hex.EncodeToString(b)
}
