package stripeevent_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orderhook/orderhook/internal/stripeevent"
)

// The shapes the envelope is read from, across API versions, one field at a
// time.
func TestParseShapes(t *testing.T) {
	t.Parallel()
	const head = `"object":"event","created":1700000000,"livemode":false`
	for _, tc := range []struct {
		name, body string
		want       stripeevent.Envelope
	}{
		{"customer as an id",
			`{"id":"evt_1",` + head + `,"api_version":"2020-08-27","type":"invoice.paid","data":{"object":{"id":"in_1","object":"invoice","customer":"cus_1"}}}`,
			stripeevent.Envelope{ID: "evt_1", Type: "invoice.paid", APIVersion: "2020-08-27", ObjectID: "in_1", ObjectType: "invoice", CustomerID: "cus_1"}},
		{"customer expanded",
			`{"id":"evt_1",` + head + `,"api_version":"2025-03-31.basil","type":"invoice.paid","data":{"object":{"id":"in_1","object":"invoice","customer":{"id":"cus_2","object":"customer","email":"a@example.com"}}}}`,
			stripeevent.Envelope{ID: "evt_1", Type: "invoice.paid", APIVersion: "2025-03-31.basil", ObjectID: "in_1", ObjectType: "invoice", CustomerID: "cus_2"}},
		{"customer null",
			`{"id":"evt_1",` + head + `,"type":"charge.succeeded","data":{"object":{"id":"ch_1","object":"charge","customer":null}}}`,
			stripeevent.Envelope{ID: "evt_1", Type: "charge.succeeded", ObjectID: "ch_1", ObjectType: "charge"}},
		{"customer object: its id is the customer",
			`{"id":"evt_1",` + head + `,"type":"customer.updated","data":{"object":{"id":"cus_3","object":"customer","email":null}}}`,
			stripeevent.Envelope{ID: "evt_1", Type: "customer.updated", ObjectID: "cus_3", ObjectType: "customer", CustomerID: "cus_3"}},
		{"deleted customer, cut down",
			`{"id":"evt_1",` + head + `,"type":"customer.deleted","data":{"object":{"id":"cus_4","object":"customer","deleted":true}}}`,
			stripeevent.Envelope{ID: "evt_1", Type: "customer.deleted", ObjectID: "cus_4", ObjectType: "customer", CustomerID: "cus_4"}},
		{"subscription event: the customer field",
			`{"id":"evt_1",` + head + `,"type":"customer.subscription.created","data":{"object":{"id":"sub_1","object":"subscription","customer":"cus_5"}}}`,
			stripeevent.Envelope{ID: "evt_1", Type: "customer.subscription.created", ObjectID: "sub_1", ObjectType: "subscription", CustomerID: "cus_5"}},
		{"no api_version, no object key (very old events)",
			`{"id":"evt_1","created":1700000000,"type":"coupon.created","data":{"object":{"id":"25OFF","object":"coupon"}}}`,
			stripeevent.Envelope{ID: "evt_1", Type: "coupon.created", ObjectID: "25OFF", ObjectType: "coupon"}},
		{"api_version null",
			`{"id":"evt_1",` + head + `,"api_version":null,"type":"plan.created","data":{"object":{"id":"gold","object":"plan"}}}`,
			stripeevent.Envelope{ID: "evt_1", Type: "plan.created", ObjectID: "gold", ObjectType: "plan"}},
		{"id without the evt_ prefix",
			`{"id":"invoice.finalized_00000000000000",` + head + `,"type":"invoice.finalized","data":{"object":{"id":"in_0","object":"invoice","customer":"cus_0"}}}`,
			stripeevent.Envelope{ID: "invoice.finalized_00000000000000", Type: "invoice.finalized", ObjectID: "in_0", ObjectType: "invoice", CustomerID: "cus_0"}},
		{"livemode, unknown fields",
			`{"id":"evt_1","object":"event","created":1700000000,"livemode":true,"context":"acct_1","future":{"x":[1]},"type":"checkout.session.completed","data":{"object":{"id":"cs_live_1","object":"checkout.session","customer":"cus_6"},"previous_attributes":null}}`,
			stripeevent.Envelope{ID: "evt_1", Type: "checkout.session.completed", Livemode: true, ObjectID: "cs_live_1", ObjectType: "checkout.session", CustomerID: "cus_6"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.want.Created = time.Unix(1700000000, 0).UTC()
			got, err := stripeevent.Parse([]byte(tc.body))
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

// The repository's own fixtures use the newest shapes: 2025-03-31.basil with
// the customer expanded.
func TestParseRepositoryFixtures(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("../../testdata/events/*.json")
	require.NoError(t, err)
	if len(files) == 0 {
		t.Skip("no repository fixtures")
	}
	for _, path := range files {
		payload, err := os.ReadFile(path)
		require.NoError(t, err)
		env, err := stripeevent.Parse(payload)
		require.NoError(t, err, path)
		require.True(t, strings.HasPrefix(env.ID, "evt_"), path)
		require.Contains(t, filepath.Base(path), env.Type+".json", "files are named after their type")
		require.NotEmpty(t, env.ObjectID, path)
		if strings.HasPrefix(env.Type, "customer.") || strings.HasPrefix(env.Type, "invoice.") {
			require.True(t, strings.HasPrefix(env.CustomerID, "cus_"), "%s: customer %q", path, env.CustomerID)
		}
	}
}

// A malformed body is described, never echoed.
func TestParseErrorsDoNotEchoTheBody(t *testing.T) {
	t.Parallel()
	for _, body := range []string{
		`{"id":"evt_secretive","type":`,
		`{"id":"evt_secretive","type":"x","created":"yesterday","data":{"object":{}}}`,
		`{"id":"evt_secretive","type":"x","created":1,"data":{"object":{"id":["secretive"]}}}`,
	} {
		_, err := stripeevent.Parse([]byte(body))
		require.ErrorIs(t, err, stripeevent.ErrMalformed)
		require.NotContains(t, err.Error(), "secretive", body)
	}
}

func TestDecodeObject(t *testing.T) {
	t.Parallel()
	var inv struct {
		Status   string          `json:"status"`
		Customer stripeevent.Ref `json:"customer"`
	}
	payload := []byte(`{"id":"evt_1","data":{"object":{"status":"paid","customer":{"id":"cus_1","object":"customer"}}}}`)
	require.NoError(t, stripeevent.DecodeObject(payload, &inv))
	require.Equal(t, "paid", inv.Status)
	require.Equal(t, stripeevent.Ref("cus_1"), inv.Customer)

	require.ErrorIs(t, stripeevent.DecodeObject([]byte(`{`), &inv), stripeevent.ErrMalformed)
	require.ErrorIs(t, stripeevent.DecodeObject([]byte(`{"data":{"object":{"status":5}}}`), &inv), stripeevent.ErrMalformed)
	require.Error(t, stripeevent.DecodeObject([]byte(`{"data":{"object":{}}}`), inv), "not a pointer")
}

// A malformed body is answered with what is wrong and where, in the words of
// encoding/json, whose leniency Parse keeps: names match whatever their case,
// and a repeated name is accepted, the last value winning.
func TestParseDescribesWhatIsWrong(t *testing.T) {
	t.Parallel()
	for body, want := range map[string]string{
		`{"id":"evt_1","type":`: "invalid JSON at byte 21",
		`[1]`:                   "the body is a JSON array, not an object",
		`{"id":"evt_1","type":"x","created":"yesterday","data":{"object":{}}}`:   `field "created" has the wrong type (string)`,
		`{"id":"evt_1","type":"x","created":1,"data":{"object":"in_1"}}`:         "data.object is not an object",
		`{"id":"evt_1","type":"x","created":1,"data":{"object":{"customer":5}}}`: `field "data.object.customer" is neither an id nor an object`,
		`{"id":"evt_1","type":"x","created":1,"data":{"object":{"id":[]}}}`:      `field "data.object.id" has the wrong type (array)`,
	} {
		_, err := stripeevent.Parse([]byte(body))
		require.ErrorIs(t, err, stripeevent.ErrMalformed, body)
		require.EqualError(t, err, "malformed event: "+want, body)
	}
	env, err := stripeevent.Parse([]byte(`{"ID":"evt_1","Type":"x","type":"invoice.paid","created":1,"data":{"object":{"Id":"in_1","customer":{"ID":"cus_1"}}}}`))
	require.NoError(t, err)
	require.Equal(t, "evt_1", env.ID)
	require.Equal(t, "invoice.paid", env.Type)
	require.Equal(t, "in_1", env.ObjectID)
	require.Equal(t, "cus_1", env.CustomerID)
}
