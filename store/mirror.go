package store

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// LastEvent records which event last wrote a mirror row. A zero Created marks
// a stub customer row: created as a dependency, it has no version yet.
type LastEvent struct {
	EventID string     `db:"last_event_id" json:"last_event_id,omitempty"`
	Type    string     `db:"last_event_type" json:"last_event_type,omitempty"`
	Created *time.Time `db:"last_event_created" json:"last_event_created,omitempty"`
}

// Customer is a row of stripe_customers.
type Customer struct {
	ID       string `db:"id" json:"id"`
	Email    string `db:"email" json:"email,omitempty"`
	Name     string `db:"name" json:"name,omitempty"`
	Deleted  bool   `db:"deleted" json:"deleted"`
	Livemode bool   `db:"livemode" json:"livemode"`
	LastEvent
}

// Subscription is a row of stripe_subscriptions.
type Subscription struct {
	ID                string     `db:"id" json:"id"`
	CustomerID        string     `db:"customer_id" json:"customer_id"`
	Status            string     `db:"status" json:"status"`
	CancelAtPeriodEnd bool       `db:"cancel_at_period_end" json:"cancel_at_period_end"`
	CurrentPeriodEnd  *time.Time `db:"current_period_end" json:"current_period_end,omitempty"`
	CanceledAt        *time.Time `db:"canceled_at" json:"canceled_at,omitempty"`
	Livemode          bool       `db:"livemode" json:"livemode"`
	LastEvent
}

// Invoice is a row of stripe_invoices.
type Invoice struct {
	ID             string `db:"id" json:"id"`
	CustomerID     string `db:"customer_id" json:"customer_id"`
	SubscriptionID string `db:"subscription_id" json:"subscription_id,omitempty"`
	Status         string `db:"status" json:"status"`
	AmountDue      int64  `db:"amount_due" json:"amount_due"`
	AmountPaid     int64  `db:"amount_paid" json:"amount_paid"`
	Currency       string `db:"currency" json:"currency"`
	Livemode       bool   `db:"livemode" json:"livemode"`
	LastEvent
}

const (
	customerColumns = `id, COALESCE(email, '') AS email, COALESCE(name, '') AS name, deleted, livemode,
		COALESCE(last_event_id, '') AS last_event_id, COALESCE(last_event_type, '') AS last_event_type, last_event_created`
	subscriptionColumns = `id, customer_id, status, cancel_at_period_end, current_period_end, canceled_at, livemode,
		last_event_id, last_event_type, last_event_created`
	invoiceColumns = `id, customer_id, COALESCE(subscription_id, '') AS subscription_id, status, amount_due,
		amount_paid, currency, livemode, last_event_id, last_event_type, last_event_created`
)

// CustomerExists reports whether a row, stub or tombstone included, exists
// for the customer id.
func (db *DB) CustomerExists(ctx context.Context, id string) (bool, error) {
	var n int
	if err := db.db.GetContext(ctx, &n, db.rebind(customerExistsQuery), id); err != nil {
		return false, fmt.Errorf("check customer %s: %w", id, translate(err))
	}
	return n > 0, nil
}

// CustomerExists is CustomerExists inside the transaction.
func (tx *Tx) CustomerExists(ctx context.Context, id string) (bool, error) {
	_, err := tx.Customer(ctx, id)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, ErrNotFound):
		return false, nil
	default:
		return false, fmt.Errorf("check customer %s: %w", id, err)
	}
}

const customerExistsQuery = `SELECT count(*) FROM stripe_customers WHERE id = $1`

// Customer returns the mirror row of a customer, or an error wrapping
// ErrNotFound. Like Subscription and Invoice, it reads the transaction's
// cache of the mirror: the rows the batch read, with its own writes.
func (tx *Tx) Customer(ctx context.Context, id string) (Customer, error) {
	return cachedRow(ctx, tx, tx.mirror.customers, `SELECT `+customerColumns+` FROM stripe_customers WHERE id = $1`, id)
}

// Subscription returns the mirror row of a subscription, or an error wrapping
// ErrNotFound.
func (tx *Tx) Subscription(ctx context.Context, id string) (Subscription, error) {
	return cachedRow(ctx, tx, tx.mirror.subscriptions, `SELECT `+subscriptionColumns+` FROM stripe_subscriptions WHERE id = $1`, id)
}

// Invoice returns the mirror row of an invoice, or an error wrapping
// ErrNotFound.
func (tx *Tx) Invoice(ctx context.Context, id string) (Invoice, error) {
	return cachedRow(ctx, tx, tx.mirror.invoices, `SELECT `+invoiceColumns+` FROM stripe_invoices WHERE id = $1`, id)
}

// get reads one row by id.
func (tx *Tx) get(ctx context.Context, dest any, query string, id string) error {
	if err := tx.db.txGet(ctx, tx.tx, dest, query, id); err != nil {
		return fmt.Errorf("read mirror %s: %w", id, translate(err))
	}
	return nil
}

// EnsureCustomer creates a stub row for the customer id unless one exists.
func (tx *Tx) EnsureCustomer(ctx context.Context, id string) error {
	if exists, err := tx.CustomerExists(ctx, id); err != nil || exists {
		return err
	}
	if tx.held != nil {
		hold(tx.mirror, tx.mirror.customers, kindCustomer, id, &Customer{ID: id})
		return nil
	}
	if err := tx.exec(ctx, "customer stub "+id, `
		INSERT INTO stripe_customers (id, updated_at) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING`, id, tx.now); err != nil {
		return err
	}
	tx.mirror.customers[id] = &Customer{ID: id}
	return nil
}

// PutCustomer writes c, replacing the row with its id. The caller has decided
// that the event supersedes what the row holds. On PostgreSQL, like every
// mirror write, it is held until the transaction ends or Flush.
func (tx *Tx) PutCustomer(ctx context.Context, c Customer) error {
	if tx.held != nil {
		hold(tx.mirror, tx.mirror.customers, kindCustomer, c.ID, &c)
		return nil
	}
	err := tx.exec(ctx, "customer "+c.ID, `
		INSERT INTO stripe_customers (id, email, name, deleted, livemode, last_event_id, last_event_type, last_event_created, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
		ON CONFLICT (id) DO UPDATE SET email = excluded.email, name = excluded.name, deleted = excluded.deleted,
			livemode = excluded.livemode, last_event_id = excluded.last_event_id, last_event_type = excluded.last_event_type,
			last_event_created = excluded.last_event_created, updated_at = excluded.updated_at`,
		c.ID, nullable(c.Email), nullable(c.Name), c.Deleted, c.Livemode, c.EventID, c.Type, utc(c.Created), tx.now)
	if err == nil {
		tx.mirror.customers[c.ID] = &c
	}
	return err
}

// PutSubscription writes s, replacing the row with its id.
func (tx *Tx) PutSubscription(ctx context.Context, s Subscription) error {
	if tx.held != nil {
		hold(tx.mirror, tx.mirror.subscriptions, kindSubscription, s.ID, &s)
		return nil
	}
	err := tx.exec(ctx, "subscription "+s.ID, `
		INSERT INTO stripe_subscriptions (id, customer_id, status, cancel_at_period_end, current_period_end, canceled_at,
			livemode, last_event_id, last_event_type, last_event_created, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
		ON CONFLICT (id) DO UPDATE SET customer_id = excluded.customer_id, status = excluded.status,
			cancel_at_period_end = excluded.cancel_at_period_end, current_period_end = excluded.current_period_end,
			canceled_at = excluded.canceled_at, livemode = excluded.livemode, last_event_id = excluded.last_event_id,
			last_event_type = excluded.last_event_type, last_event_created = excluded.last_event_created,
			updated_at = excluded.updated_at`,
		s.ID, s.CustomerID, s.Status, s.CancelAtPeriodEnd, utc(s.CurrentPeriodEnd), utc(s.CanceledAt), s.Livemode,
		s.EventID, s.Type, utc(s.Created), tx.now)
	if err == nil {
		tx.mirror.subscriptions[s.ID] = &s
	}
	return err
}

// PutInvoice writes in, replacing the row with its id.
func (tx *Tx) PutInvoice(ctx context.Context, in Invoice) error {
	if tx.held != nil {
		hold(tx.mirror, tx.mirror.invoices, kindInvoice, in.ID, &in)
		return nil
	}
	err := tx.exec(ctx, "invoice "+in.ID, `
		INSERT INTO stripe_invoices (id, customer_id, subscription_id, status, amount_due, amount_paid, currency,
			livemode, last_event_id, last_event_type, last_event_created, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
		ON CONFLICT (id) DO UPDATE SET customer_id = excluded.customer_id, subscription_id = excluded.subscription_id,
			status = excluded.status, amount_due = excluded.amount_due, amount_paid = excluded.amount_paid,
			currency = excluded.currency, livemode = excluded.livemode, last_event_id = excluded.last_event_id,
			last_event_type = excluded.last_event_type, last_event_created = excluded.last_event_created,
			updated_at = excluded.updated_at`,
		in.ID, in.CustomerID, nullable(in.SubscriptionID), in.Status, in.AmountDue, in.AmountPaid, in.Currency,
		in.Livemode, in.EventID, in.Type, utc(in.Created), tx.now)
	if err == nil {
		tx.mirror.invoices[in.ID] = &in
	}
	return err
}

// exec runs a write in the transaction.
func (tx *Tx) exec(ctx context.Context, what, query string, args ...any) error {
	if _, err := tx.db.txExec(ctx, tx.tx, query, args...); err != nil {
		return fmt.Errorf("write %s: %w", what, translate(err))
	}
	return nil
}

// utc normalizes an optional time for storage.
func utc(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := ts(*t)
	return &u
}

// Mirror is a snapshot of the three mirror tables, sorted by id: what tests
// compare and operators export.
type Mirror struct {
	Customers     []Customer     `json:"customers"`
	Subscriptions []Subscription `json:"subscriptions"`
	Invoices      []Invoice      `json:"invoices"`
}

// Mirror reads the whole Stripe mirror.
func (db *DB) Mirror(ctx context.Context) (Mirror, error) {
	var m Mirror
	for _, q := range []struct {
		dest  any
		query string
	}{
		{&m.Customers, `SELECT ` + customerColumns + ` FROM stripe_customers ORDER BY id`},
		{&m.Subscriptions, `SELECT ` + subscriptionColumns + ` FROM stripe_subscriptions ORDER BY id`},
		{&m.Invoices, `SELECT ` + invoiceColumns + ` FROM stripe_invoices ORDER BY id`},
	} {
		if err := db.db.SelectContext(ctx, q.dest, q.query); err != nil {
			return Mirror{}, fmt.Errorf("read mirror: %w", translate(err))
		}
	}
	return m, nil
}
