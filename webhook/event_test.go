package webhook_test

import (
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orderhook/orderhook/webhook"
)

// ParseEvent gives a library the inbox row of an event that reached it
// without a webhook: the envelope's fields, the payload byte-exact (an
// expanded customer object included), and the receipt time it was given.
func TestParseEventReturnsTheInboxRow(t *testing.T) {
	payload, err := os.ReadFile("../testdata/events/05_invoice.paid.json")
	require.NoError(t, err)
	at := time.Date(2026, 12, 4, 23, 0, 0, 0, time.UTC)

	ev, err := webhook.ParseEvent(payload, at)
	require.NoError(t, err)
	require.Equal(t, "evt_Q7fx00000005", ev.ID)
	require.Equal(t, "invoice.paid", ev.Type)
	require.Equal(t, "2025-03-31.basil", ev.APIVersion)
	require.False(t, ev.Livemode)
	require.True(t, ev.Created.Equal(time.Unix(1789378201, 0)), ev.Created)
	require.Equal(t, "cus_Q7fx0000", ev.CustomerID, "the id of the expanded customer")
	require.Equal(t, "in_Q7fx0000_1", ev.ObjectID)
	require.Equal(t, payload, ev.Payload)
	require.True(t, ev.ReceivedAt.Equal(at))
	require.Zero(t, ev.SecretIndex)
}

func TestParseEventRefusesWhatIsNotAStripeEvent(t *testing.T) {
	for name, payload := range map[string]string{
		"not JSON":       `evt_1`,
		"not an event":   `{"id":"cus_1","object":"customer"}`,
		"no data.object": `{"id":"evt_1","object":"event","type":"invoice.paid","created":1700000000}`,
	} {
		t.Run(name, func(t *testing.T) {
			_, err := webhook.ParseEvent([]byte(payload), time.Now())
			require.ErrorIs(t, err, webhook.ErrMalformedEvent)
		})
	}
}
