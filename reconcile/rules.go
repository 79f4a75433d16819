package reconcile

import (
	"maps"
	"slices"

	"github.com/orderhook/orderhook/store"
)

// DefaultCustomerEvents are the event types that create the customer row
// other events wait for. customer.deleted is one: it carries the customer,
// and a customer created before orderhook was deployed, then deleted, is
// known only from it.
var DefaultCustomerEvents = []string{"customer.created", "customer.updated", "customer.deleted", "customer.subscription.created"}

// rules decide, for an event, whether orderhook handles it and what it waits
// for. They are fixed when a Worker or Checker is built.
type rules struct {
	customerEvents map[string]bool
	customerTypes  []string // the keys of customerEvents, sorted
	handlers       map[string]HandlerFunc
}

func newRules(customerEvents []string, handlers map[string]HandlerFunc) rules {
	if customerEvents == nil {
		customerEvents = DefaultCustomerEvents
	}
	// The caller's map is copied: changing it later must not race the loops.
	r := rules{customerEvents: make(map[string]bool, len(customerEvents)), handlers: maps.Clone(handlers)}
	for _, t := range customerEvents {
		r.customerEvents[t] = true
	}
	r.customerTypes = slices.Sorted(maps.Keys(r.customerEvents))
	return r
}

// handles reports whether a built-in applier or a registered handler takes
// the event; other events are ignored.
func (r rules) handles(ev store.Event) bool {
	return builtinApplier(ev) != nil || r.handlers[ev.Type] != nil
}

// createsCustomer reports whether applying ev creates its customer's row.
func (r rules) createsCustomer(ev store.Event) bool {
	return ev.CustomerID != "" && r.customerEvents[ev.Type]
}

// releases returns the dependency that applying ev may release, or "":
// its customer's, when it creates the customer.
func (r rules) releases(ev store.Event) string {
	if !r.createsCustomer(ev) {
		return ""
	}
	return customerDependency(ev.CustomerID)
}

// dependency returns what ev waits for before it can be applied, or "".
func (r rules) dependency(ev store.Event) string {
	if ev.CustomerID == "" || r.createsCustomer(ev) {
		return ""
	}
	return customerDependency(ev.CustomerID)
}

func customerDependency(id string) string { return "customer:" + id }
