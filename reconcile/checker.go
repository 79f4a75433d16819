package reconcile

import (
	"context"

	"github.com/orderhook/orderhook/store"
)

// CustomerLookup tells whether the mirror has a customer row; *store.DB
// satisfies it.
type CustomerLookup interface {
	CustomerExists(ctx context.Context, id string) (bool, error)
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

// MissingDependency returns the dependency ev still waits for, such as
// "customer:cus_123", or "" when it waits for nothing (including events that
// orderhook ignores). It returns the store's error when the lookup fails.
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
	return dep, nil
}
