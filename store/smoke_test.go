package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orderhook/orderhook/store"
	"github.com/orderhook/orderhook/store/storetest"
)

func TestSmoke(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		now := time.Now().UTC().Truncate(time.Microsecond)
		ins, err := db.InsertEvent(ctx, store.Event{ID: "evt_1", Type: "invoice.paid", Created: now.Truncate(time.Second), CustomerID: "cus_1", Payload: []byte(`{"a":1}`), ReceivedAt: now})
		require.NoError(t, err)
		require.True(t, ins)
		ins, err = db.InsertEvent(ctx, store.Event{ID: "evt_1", Type: "invoice.paid", Created: now, Payload: []byte(`{}`), ReceivedAt: now})
		require.NoError(t, err)
		require.False(t, ins)
		ev, err := db.Event(ctx, "evt_1")
		require.NoError(t, err)
		require.Equal(t, "cus_1", ev.CustomerID)
		require.Equal(t, now, ev.ReceivedAt)
		require.Equal(t, `{"a":1}`, string(ev.Payload))
		t.Logf("%+v", ev)
	})
}
