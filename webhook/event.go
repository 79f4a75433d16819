package webhook

import (
	"time"

	"github.com/orderhook/orderhook/internal/stripeevent"
	"github.com/orderhook/orderhook/store"
)

// ErrMalformedEvent is returned, wrapped with the reason, by ParseEvent for
// a payload that is not a Stripe event.
var ErrMalformedEvent = stripeevent.ErrMalformed

// ParseEvent returns the inbox row of a Stripe event's payload, received at
// receivedAt: its id, type, API version, mode, creation time, customer and
// object, with the payload kept byte-exact, for store.DB.InsertEvent. It
// verifies nothing: it is for events that reach a program by another
// authenticated way (Stripe's Events API, say); webhooks go through
// NewHandler, which verifies the signature first. It returns an error
// wrapping ErrMalformedEvent when payload is not UTF-8 JSON, not an event
// object, or lacks the id, type, created time or data.object that every
// Stripe event has.
func ParseEvent(payload []byte, receivedAt time.Time) (store.Event, error) {
	env, err := stripeevent.Parse(payload)
	if err != nil {
		return store.Event{}, err
	}
	return inboxRow(env, payload, receivedAt, 0), nil
}

// inboxRow is the row of a parsed event whose signature matched the
// configured secret at secretIndex.
func inboxRow(env stripeevent.Envelope, payload []byte, receivedAt time.Time, secretIndex int) store.Event {
	return store.Event{
		ID:          env.ID,
		Type:        env.Type,
		APIVersion:  env.APIVersion,
		Livemode:    env.Livemode,
		Created:     env.Created,
		CustomerID:  env.CustomerID,
		ObjectID:    env.ObjectID,
		Payload:     payload,
		ReceivedAt:  receivedAt,
		SecretIndex: secretIndex,
	}
}
