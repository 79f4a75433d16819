package reconcile

import (
	"context"
	"errors"

	"github.com/orderhook/orderhook/store"
)

// CustomerLookup tells whether the mirror has a customer row, and reads an
// inbox row; *store.DB satisfies it.
type CustomerLookup interface {
	CustomerExists(ctx context.Context, id string) (bool, error)
	Event(ctx context.Context, id string) (store.Event, error)
}

// Checker answers, at delivery time, whether an event would have to wait: the
// receiver's reject mode uses it to answer 409 so that the sender retries.
type Checker struct {
	rules  rules
	lookup CustomerLookup
}

// NewChecker returns a Checker that applies the same rules as a Worker built
// from cfg (its CustomerEvents and Handlers).
func NewChecker(cfg Config, lookup CustomerLookup) *Checker {
	return &Checker{rules: newRules(cfg.CustomerEvents, cfg.Handlers), lookup: lookup}
}

// MissingDependency returns the dependency ev, stored, still waits for,
// such as "customer:cus_123", or "" when it waits for nothing: its
// dependency is there, it has none (events that orderhook ignores
// included), or its stored row is no longer waiting — dead or discarded, it
// is the operators' to replay, and a sender told to retry would retry for
// nothing. It returns the store's error when a lookup fails.
func (c *Checker) MissingDependency(ctx context.Context, ev store.Event) (string, error) {
	if !c.rules.handles(ev) {
		return "", nil
	}
	dep := c.rules.dependency(ev)
	if dep == "" {
		return "", nil
	}
	ok, err := c.lookup.CustomerExists(ctx, ev.CustomerID)
	if err != nil || ok {
		return "", err
	}
	stored, err := c.lookup.Event(ctx, ev.ID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return dep, nil // purged since it was stored, say: as if new
	case err != nil:
		return "", err
	case stored.Status == store.StatusDead, stored.Status == store.StatusDiscarded:
		return "", nil
	}
	return dep, nil
}
