package scenario

import (
	"math/rand/v2"
	"testing"

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
