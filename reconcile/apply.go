package reconcile

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/orderhook/orderhook/internal/jsonfield"
	"github.com/orderhook/orderhook/internal/stripeevent"
	"github.com/orderhook/orderhook/store"
)

// invoiceDeleted is the status the mirror gives a deleted draft invoice.
const invoiceDeleted = "deleted"

// applier writes one event into the Stripe mirror. It returns a note for the
// attempt history ("" or why nothing was overwritten).
type applier func(ctx context.Context, tx *store.Tx, ev store.Event) (string, error)

// builtinApplier returns the mirror applier for ev, or nil. The event type
// says what object Stripe sends: customer.created/updated/deleted carry a
// customer, customer.subscription.* a subscription, invoice.* an invoice.
func builtinApplier(ev store.Event) applier {
	if ev.ObjectID == "" || ev.CustomerID == "" {
		return nil // e.g. invoice.upcoming: nothing to key a row on
	}
	switch {
	case ev.Type == "customer.created", ev.Type == "customer.updated", ev.Type == "customer.deleted":
		return applyCustomer
	case strings.HasPrefix(ev.Type, "customer.subscription."):
		return applySubscription
	case strings.HasPrefix(ev.Type, "invoice."):
		return applyInvoice
	}
	return nil
}

// customerObject is the customer a customer.* event carries. A deletion cut
// down to {id, object, deleted} leaves its email and name out; a full one
// sends a name the customer removed as null.
type customerObject struct {
	Email    jsonfield.Field[string] `json:"email"`
	Name     jsonfield.Field[string] `json:"name"`
	Deleted  bool                    `json:"deleted"`
	Livemode bool                    `json:"livemode"`
}

func applyCustomer(ctx context.Context, tx *store.Tx, ev store.Event) (string, error) {
	var obj customerObject
	if err := decode(ev, &obj); err != nil {
		return "", err
	}
	deleted := obj.Deleted || ev.Type == "customer.deleted"
	cur, found, err := existing(tx.Customer(ctx, ev.CustomerID))
	if err != nil {
		return "", err
	}
	if found && cur.Created != nil {
		last := customerVersion(cur.Deleted, *cur.Created, cur.Type)
		if !supersedes(last, customerVersion(deleted, ev.Created, ev.Type)) {
			return staleNote(cur.LastEvent), nil
		}
	}
	c := store.Customer{
		ID: ev.CustomerID, Deleted: deleted, Livemode: obj.Livemode,
		Email: text(obj.Email.Value), Name: text(obj.Name.Value), LastEvent: lastEvent(ev),
	}
	if deleted && found {
		// A tombstone keeps what the deletion leaves out; what it sends,
		// null included, it writes.
		c.Email = keep(obj.Email, cur.Email)
		c.Name = keep(obj.Name, cur.Name)
	}
	return "", tx.PutCustomer(ctx, c)
}

type subscriptionObject struct {
	Status            string `json:"status"`
	CancelAtPeriodEnd bool   `json:"cancel_at_period_end"`
	CurrentPeriodEnd  *int64 `json:"current_period_end"`
	CanceledAt        *int64 `json:"canceled_at"`
	Livemode          bool   `json:"livemode"`
	Items             struct {
		Data []struct {
			CurrentPeriodEnd *int64 `json:"current_period_end"`
		} `json:"data"`
	} `json:"items"`
}

func applySubscription(ctx context.Context, tx *store.Tx, ev store.Event) (string, error) {
	var obj subscriptionObject
	if err := decode(ev, &obj); err != nil {
		return "", err
	}
	cur, found, err := existing(tx.Subscription(ctx, ev.ObjectID))
	if err != nil {
		return "", err
	}
	if found {
		last := subscriptionVersion(cur.Status, *cur.Created, cur.Type)
		if !supersedes(last, subscriptionVersion(obj.Status, ev.Created, ev.Type)) {
			return staleNote(cur.LastEvent), nil
		}
	}
	periodEnd := obj.CurrentPeriodEnd
	if periodEnd == nil && len(obj.Items.Data) > 0 {
		periodEnd = obj.Items.Data[0].CurrentPeriodEnd // from 2025-03-31 on
	}
	end, err := unixTime("current_period_end", periodEnd)
	if err != nil {
		return "", err
	}
	canceled, err := unixTime("canceled_at", obj.CanceledAt)
	if err != nil {
		return "", err
	}
	return "", tx.PutSubscription(ctx, store.Subscription{
		ID: ev.ObjectID, CustomerID: ev.CustomerID, Status: text(obj.Status),
		CancelAtPeriodEnd: obj.CancelAtPeriodEnd, CurrentPeriodEnd: end,
		CanceledAt: canceled, Livemode: obj.Livemode, LastEvent: lastEvent(ev),
	})
}

type invoiceObject struct {
	Status       string          `json:"status"`
	Subscription stripeevent.Ref `json:"subscription"`
	Parent       *struct {
		SubscriptionDetails *struct {
			Subscription stripeevent.Ref `json:"subscription"`
		} `json:"subscription_details"`
	} `json:"parent"`
	AmountDue  int64  `json:"amount_due"`
	AmountPaid int64  `json:"amount_paid"`
	Currency   string `json:"currency"`
	Livemode   bool   `json:"livemode"`
}

// subscriptionID reads the invoice's subscription where each API version
// puts it: `subscription` before 2025-03-31, the parent's details after.
func (o invoiceObject) subscriptionID() string {
	if o.Parent != nil && o.Parent.SubscriptionDetails != nil && o.Parent.SubscriptionDetails.Subscription != "" {
		return string(o.Parent.SubscriptionDetails.Subscription)
	}
	return string(o.Subscription)
}

func applyInvoice(ctx context.Context, tx *store.Tx, ev store.Event) (string, error) {
	var obj invoiceObject
	if err := decode(ev, &obj); err != nil {
		return "", err
	}
	if ev.Type == "invoice.deleted" {
		obj.Status = invoiceDeleted
	}
	cur, found, err := existing(tx.Invoice(ctx, ev.ObjectID))
	if err != nil {
		return "", err
	}
	if found {
		last := invoiceVersion(cur.Status, *cur.Created, cur.Type)
		if !supersedes(last, invoiceVersion(obj.Status, ev.Created, ev.Type)) {
			return staleNote(cur.LastEvent), nil
		}
	}
	return "", tx.PutInvoice(ctx, store.Invoice{
		ID: ev.ObjectID, CustomerID: ev.CustomerID, SubscriptionID: text(obj.subscriptionID()), Status: text(obj.Status),
		AmountDue: obj.AmountDue, AmountPaid: obj.AmountPaid, Currency: text(obj.Currency), Livemode: obj.Livemode,
		LastEvent: lastEvent(ev),
	})
}

// existing turns a mirror read into (row, found, error).
func existing[T any](row T, err error) (T, bool, error) {
	switch {
	case err == nil:
		return row, true, nil
	case errors.Is(err, store.ErrNotFound):
		return row, false, nil
	default:
		return row, false, err
	}
}

// staleNote says, for the attempt history, why an event did not overwrite.
func staleNote(cur store.LastEvent) string {
	return fmt.Sprintf("not written: the row holds %s (%s), which supersedes this event", cur.EventID, cur.Type)
}

func lastEvent(ev store.Event) store.LastEvent {
	created := ev.Created
	return store.LastEvent{EventID: ev.ID, Type: ev.Type, Created: &created}
}

// unixTime returns the time of the object's field, nil when it is absent or
// null. A time before 1970 or after 9999 fails the event for good: no
// Stripe object carries one, and PostgreSQL's mirror would refuse it.
func unixTime(field string, sec *int64) (*time.Time, error) {
	if sec == nil {
		return nil, nil
	}
	if *sec < 0 || *sec > stripeevent.MaxUnixTime {
		return nil, fmt.Errorf("%w: %w: data.object.%s %d is not a Unix time between 1970 and 9999", ErrPermanent, stripeevent.ErrMalformed, field, *sec)
	}
	t := time.Unix(*sec, 0).UTC()
	return &t, nil
}

// decode decodes ev's data.object into obj. An object that does not fit
// fails the event for good: a retry reads the same bytes.
func decode(ev store.Event, obj any) error {
	if err := stripeevent.DecodeObject(ev.Payload, obj); err != nil {
		return fmt.Errorf("%w: %w", ErrPermanent, err)
	}
	return nil
}

// text is s as the mirror holds it on both engines: PostgreSQL's text
// holds no NUL, so each becomes U+FFFD, the replacement character. The
// inbox keeps the payload as Stripe sent it.
func text(s string) string { return strings.ReplaceAll(s, "\x00", "\uFFFD") }

// keep returns the field's value when it was sent (null as ""), or old
// when it was left out.
func keep(f jsonfield.Field[string], old string) string {
	if !f.Sent {
		return old
	}
	return text(f.Value)
}
