package reconcile

import (
	"context"
	"errors"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/orderhook/orderhook/internal/stripeevent"
	"github.com/orderhook/orderhook/store"
)

// Event is what a registered handler receives: the envelope of a verified
// Stripe event and its raw payload, byte-exact as Stripe sent it.
type Event struct {
	ID         string
	Type       string
	APIVersion string
	Livemode   bool
	Created    time.Time
	CustomerID string
	ObjectID   string
	Attempt    int    // 1 for the first attempt to apply the event
	Payload    []byte // the raw body Stripe signed
}

// DecodeObject decodes the event's data.object into v, for example a
// *stripe.Invoice. It returns an error when the payload does not fit v.
func (e Event) DecodeObject(v any) error {
	return stripeevent.DecodeObject(e.Payload, v)
}

// ErrPanic is wrapped by the error of an event whose handler, or built-in
// applier, panicked: the panic is the event's failure, retried and then
// dead like any other, and the error carries the panic's value and stack.
var ErrPanic = errors.New("panic")

// ErrPermanent, wrapped by a handler's error, dead-letters the event at
// once, without the retries: for a failure no retry can mend, an event the
// handler can never apply. An operator replays it once that has changed.
var ErrPermanent = errors.New("permanent failure")

// HandlerFunc applies one event inside the transaction that also marks the
// event applied: the handler's writes through tx commit exactly once per
// application, together with the status change, or not at all (an
// operator's forced replay of an applied event applies it again: keep the
// writes idempotent). A returned error rolls everything back and the event
// is retried with backoff, then dead-lettered, whatever the error's cause,
// a network error of the handler's own included; at once when the error
// wraps ErrPermanent. Only the store's failing under it — tx's connection
// lost, or PostgreSQL answering that it is unavailable — counts no attempt:
// the event is due again.
// Handlers run after the built-in mirror is written for the event; they may
// read the mirror tables but must not write them (the worker keeps its
// batch's mirror rows in memory).
type HandlerFunc func(ctx context.Context, tx *sqlx.Tx, ev Event) error

func handlerEvent(ev store.Event) Event {
	return Event{
		ID:         ev.ID,
		Type:       ev.Type,
		APIVersion: ev.APIVersion,
		Livemode:   ev.Livemode,
		Created:    ev.Created,
		CustomerID: ev.CustomerID,
		ObjectID:   ev.ObjectID,
		Attempt:    ev.Attempts + 1,
		Payload:    ev.Payload,
	}
}
