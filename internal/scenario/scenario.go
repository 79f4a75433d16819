// Package scenario generates Stripe billing workloads in Stripe's real event
// shape: N customers through the full lifecycle (customer, subscription,
// invoices, same-second updates, cancellations, deletions), with the mirror
// that applying them in order must produce. Tests deliver them shuffled and
// duplicated and compare; benchmarks and the reliability suite use them as
// load.
package scenario

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"time"
)

// Event is one generated Stripe event.
type Event struct {
	ID         string
	Type       string
	CustomerID string
	Created    time.Time
	Payload    []byte
}

// Config shapes a scenario. Zero values take the documented defaults.
type Config struct {
	Customers int       // default 20
	Seed      uint64    // same seed, same scenario
	Prefix    string    // makes ids unique across scenarios in one database
	Start     time.Time // time of the first event; default 2026-01-01 UTC
	// PayloadBytes pads every event to about this many bytes, as real Stripe
	// events weigh more than the fields orderhook reads: invoices get more
	// (zero-amount usage) line items, other objects more metadata. 0 or a
	// size below an event's natural size leaves it as it is.
	PayloadBytes int
}

// Customer, Subscription and Invoice are the final states a correct mirror
// holds, field for field.
type (
	Customer struct {
		Email, Name string
		Deleted     bool
	}
	Subscription struct {
		CustomerID, Status string
		CancelAtPeriodEnd  bool
	}
	Invoice struct {
		CustomerID, SubscriptionID, Status string
		AmountDue, AmountPaid              int64
	}
)

// Want is the mirror that applying the events in order produces.
type Want struct {
	Customers     map[string]Customer
	Subscriptions map[string]Subscription
	Invoices      map[string]Invoice
}

// Scenario is a generated workload: its events in causal order and the mirror
// they lead to.
type Scenario struct {
	Events []Event
	Want   Want
}

// Generate builds a scenario from cfg.
func Generate(cfg Config) Scenario {
	if cfg.Customers == 0 {
		cfg.Customers = 20
	}
	if cfg.Start.IsZero() {
		cfg.Start = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	g := &generator{
		cfg: cfg,
		rng: rand.New(rand.NewPCG(cfg.Seed, 0x6f72646572686f6f)),
		want: Want{
			Customers:     map[string]Customer{},
			Subscriptions: map[string]Subscription{},
			Invoices:      map[string]Invoice{},
		},
	}
	for i := range cfg.Customers {
		g.customerLifecycle(i)
	}
	return Scenario{Events: g.events, Want: g.want}
}

// Shuffled returns the events in a random order, each one followed at a
// random place by up to extra duplicates with probability dupRate.
func (s Scenario) Shuffled(rng *rand.Rand, dupRate float64, extra int) []Event {
	out := make([]Event, 0, len(s.Events)*2)
	for _, ev := range s.Events {
		out = append(out, ev)
		if rng.Float64() < dupRate {
			for range 1 + rng.IntN(max(extra, 1)) {
				out = append(out, ev)
			}
		}
	}
	rng.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

type generator struct {
	cfg    Config
	rng    *rand.Rand
	events []Event
	want   Want
	seq    int
}

// apiVersions are the versions a generated customer's events carry; the last
// one uses the invoice shape of 2025-03-31 and later.
var apiVersions = [...]string{"2020-08-27", "2024-06-20", "2025-03-31.basil"}

func (g *generator) customerLifecycle(i int) {
	c := customerState{
		id:      fmt.Sprintf("cus_%s%04d", g.cfg.Prefix, i),
		email:   fmt.Sprintf("jenny.%s%d@example.com", g.cfg.Prefix, i),
		name:    fmt.Sprintf("Jenny Rosen %d", i),
		api:     apiVersions[g.rng.IntN(len(apiVersions))],
		expand:  g.rng.IntN(4) == 0,
		t0:      g.cfg.Start.Add(time.Duration(i*10) * time.Second),
		subID:   fmt.Sprintf("sub_%s%04d", g.cfg.Prefix, i),
		created: g.cfg.Start.Add(time.Duration(i*10) * time.Second).Unix(),
	}
	g.emit(c, 0, "customer.created", c.customerObject(false))
	sub := c.subscriptionObject("incomplete", false)
	g.emit(c, 0, "customer.subscription.created", sub)
	inv := c.invoice(1, 2000+int64(i))
	g.emit(c, 0, "invoice.created", c.invoiceObject(inv, "draft"))
	g.emit(c, 1, "invoice.finalized", c.invoiceObject(inv, "open"))
	g.emit(c, 1, "invoice.paid", c.invoiceObject(inv, "paid"))
	g.emit(c, 1, "invoice.payment_succeeded", c.invoiceObject(inv, "paid"))
	// Stripe activates the subscription in the second it created it, or the next.
	g.emit(c, g.rng.IntN(2), "customer.subscription.updated", c.subscriptionObject("active", false))
	c.email = fmt.Sprintf("jenny.rosen.%s%d@example.com", g.cfg.Prefix, i)
	// One customer in four is updated in the second it was created, as
	// Stripe often does: only the event types then tell the order.
	g.emit(c, sameSecondAs(i, 0, 0, 2), "customer.updated", c.customerObject(false))
	if g.rng.IntN(3) == 0 {
		inv2 := c.invoice(2, 2000+int64(i))
		// One in four is finalized in the second it was created: only the
		// lifecycle rank (draft < open) then tells the order.
		g.emit(c, sameSecondAs(i, 1, 4, 3), "invoice.created", c.invoiceObject(inv2, "draft"))
		g.emit(c, 4, "invoice.finalized", c.invoiceObject(inv2, "open"))
		g.emit(c, 4, "invoice.payment_failed", c.invoiceObject(inv2, "open"))
	}
	switch g.rng.IntN(4) {
	case 0: // canceled at period end, then deleted, in one second
		g.emit(c, 5, "customer.subscription.updated", c.subscriptionObject("active", true))
		g.emit(c, 5, "customer.subscription.deleted", c.subscriptionObject("canceled", true))
	case 1: // the customer is deleted, which cancels the subscription
		g.emit(c, 6, "customer.subscription.deleted", c.subscriptionObject("canceled", false))
		g.emit(c, 6, "customer.deleted", c.deletedCustomer(i))
	}
}

// sameSecondAs returns dt for the customers i of one in four (those with
// i%4 == which), and otherwise. It takes nothing from the random stream, so
// that a seed keeps the rest of its scenario.
func sameSecondAs(i, which, dt, otherwise int) int {
	if i%4 == which {
		return dt
	}
	return otherwise
}

// emit records an event dt seconds after the customer's start and folds its
// object into the wanted mirror (in order, every event supersedes).
func (g *generator) emit(c customerState, dt int, eventType string, object any) {
	g.seq++
	created := c.t0.Add(time.Duration(dt) * time.Second)
	ev := wireEvent{
		ID: fmt.Sprintf("evt_%s%08d", g.cfg.Prefix, g.seq), Object: "event", APIVersion: c.api,
		Created: created.Unix(), Livemode: false, PendingWebhooks: 1, Type: eventType,
		Request: wireRequest{IdempotencyKey: fmt.Sprintf("idem-%s-%d", g.cfg.Prefix, g.seq)},
	}
	ev.Data.Object = object
	payload := mustMarshal(ev)
	if g.cfg.PayloadBytes > len(payload) {
		payload = padded(ev, object, len(payload), g.cfg.PayloadBytes)
	}
	g.events = append(g.events, Event{ID: ev.ID, Type: eventType, CustomerID: c.id, Created: created, Payload: payload})
	g.fold(eventType, object)
}

func mustMarshal(ev wireEvent) []byte {
	payload, err := json.Marshal(ev)
	if err != nil {
		panic(err) // the generator's own types always marshal
	}
	return payload
}

// padded returns ev, which marshals to base bytes, marshaled with enough
// padding units added to its object to weigh at least size bytes: one unit
// is measured, then the number needed is added at once.
func padded(ev wireEvent, object any, base, size int) []byte {
	ev.Data.Object = withPadding(object, 1)
	unit := max(len(mustMarshal(ev))-base, 1)
	ev.Data.Object = withPadding(object, (size-base+unit-1)/unit)
	return mustMarshal(ev)
}

func (g *generator) fold(eventType string, object any) {
	switch o := object.(type) {
	case customerObject:
		g.want.Customers[o.ID] = Customer{Email: o.Email, Name: o.Name, Deleted: o.Deleted || eventType == "customer.deleted"}
	case subscriptionObject:
		g.want.Subscriptions[o.ID] = Subscription{CustomerID: o.customerID, Status: o.Status, CancelAtPeriodEnd: o.CancelAtPeriodEnd}
	case invoiceObject:
		g.want.Invoices[o.ID] = Invoice{CustomerID: o.customerID, SubscriptionID: o.subscriptionID, Status: o.Status, AmountDue: o.AmountDue, AmountPaid: o.AmountPaid}
	}
}
