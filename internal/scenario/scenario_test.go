package scenario

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orderhook/orderhook/internal/stripeevent"
)

func TestGenerate(t *testing.T) {
	t.Parallel()
	s := Generate(Config{Customers: 30, Seed: 7, Prefix: "x"})
	require.Len(t, s.Want.Customers, 30)
	require.Len(t, s.Want.Subscriptions, 30)
	ids := map[string]bool{}
	for _, ev := range s.Events {
		env, err := stripeevent.Parse(ev.Payload)
		require.NoError(t, err)
		require.Equal(t, ev.ID, env.ID)
		require.Equal(t, ev.Type, env.Type)
		require.Equal(t, ev.CustomerID, env.CustomerID, "customer of %s", ev.Type)
		require.False(t, ids[ev.ID], "duplicate id %s", ev.ID)
		ids[ev.ID] = true
	}
	require.Equal(t, Generate(Config{Customers: 30, Seed: 7, Prefix: "x"}), s, "same seed, same scenario")

	shuffled := s.Shuffled(rand.New(rand.NewPCG(1, 2)), 0.25, 3)
	require.Greater(t, len(shuffled), len(s.Events))
	require.NotEqual(t, s.Events, shuffled[:len(s.Events)])
}

// Padding makes every event weigh about PayloadBytes in Stripe's shape and
// changes nothing else: same ids, same order, same envelopes, same mirror.
func TestGeneratePadsPayloads(t *testing.T) {
	t.Parallel()
	const size = 3000
	plain := Generate(Config{Customers: 40, Seed: 3, Prefix: "p"})
	padded := Generate(Config{Customers: 40, Seed: 3, Prefix: "p", PayloadBytes: size})
	require.Equal(t, plain.Want, padded.Want)
	require.Len(t, padded.Events, len(plain.Events))
	for i, ev := range padded.Events {
		require.GreaterOrEqual(t, len(ev.Payload), size, "%s %s", ev.ID, ev.Type)
		require.Less(t, len(ev.Payload), size+600, "%s %s is padded by one unit at most", ev.ID, ev.Type)
		want, err := stripeevent.Parse(plain.Events[i].Payload)
		require.NoError(t, err)
		got, err := stripeevent.Parse(ev.Payload)
		require.NoError(t, err)
		require.Equal(t, want, got)
		require.Equal(t, plain.Events[i].ID, ev.ID)
	}
	small := Generate(Config{Customers: 5, Seed: 3, Prefix: "p", PayloadBytes: 100})
	require.Equal(t, Generate(Config{Customers: 5, Seed: 3, Prefix: "p"}), small, "a size below the natural size pads nothing")
}

// The scenarios reach every key of the supersede rules: customers updated in
// the second they were created (only the event types tell the order),
// invoices finalized in the second they were created (only the lifecycle
// rank does), and deletions with and without the "deleted" key.
func TestGenerateCoversTheTieBreaks(t *testing.T) {
	t.Parallel()
	s := Generate(Config{Customers: 60, Seed: 5, Prefix: "tb"})
	created := map[string]time.Time{} // of each object's *.created event, by object id
	sameSecond := map[string]int{}
	shapes := map[string]int{}
	for _, ev := range s.Events {
		env, err := stripeevent.Parse(ev.Payload)
		require.NoError(t, err)
		switch ev.Type {
		case "customer.created", "invoice.created":
			created[env.ObjectID] = ev.Created
		case "customer.updated", "invoice.finalized":
			if at, ok := created[env.ObjectID]; ok && at.Equal(ev.Created) {
				sameSecond[ev.Type]++
			}
		case "customer.deleted":
			shapes[fmt.Sprint(bytes.Contains(ev.Payload, []byte(`"deleted":true`)))]++
		}
	}
	require.Positive(t, sameSecond["customer.updated"], "customer updated in its creation's second")
	require.Positive(t, sameSecond["invoice.finalized"], "invoice finalized in its creation's second")
	require.Len(t, shapes, 2, "deletions with and without the key: %v", shapes)
	for id, c := range s.Want.Customers {
		if c.Deleted {
			require.NotEmpty(t, c.Email, "%s: a tombstone keeps the email", id)
		}
	}
}
