package stripeevent_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
	"github.com/stripe/stripe-go/v76"

	"github.com/orderhook/orderhook/internal/stripeevent"
)

// fixtures returns every event file of testdata and of the shared real
// fixtures, when present.
func fixtures(t testing.TB) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for _, dir := range []string{"../../testdata/events", "../../../shared/fixtures/stripe-events"} {
		err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(path, ".json") {
				return err
			}
			b, err := os.ReadFile(path)
			out[path] = b
			return err
		})
		if errors.Is(err, os.ErrNotExist) && strings.Contains(dir, "shared") {
			continue
		}
		require.NoError(t, err)
	}
	return out
}

func TestParseEveryFixture(t *testing.T) {
	t.Parallel()
	files := fixtures(t)
	require.NotEmpty(t, files)
	for path, payload := range files {
		env, err := stripeevent.Parse(payload)
		require.NoError(t, err, path)
		require.NotEmpty(t, env.ID, path)
		require.NotEmpty(t, env.Type, path)
		require.False(t, env.Created.IsZero(), path)
	}
}

func TestParseReadsTheEnvelope(t *testing.T) {
	t.Parallel()
	shared := "../../../shared/fixtures/stripe-events/"
	if _, err := os.Stat(shared); err != nil {
		t.Skip("shared fixtures not present")
	}
	for _, tc := range []struct {
		file string
		want stripeevent.Envelope
	}{
		{"stripe-ruby-mock/invoice.paid.json", stripeevent.Envelope{ID: "evt_000000000000000000000000", Type: "invoice.paid", APIVersion: "2020-08-27", ObjectType: "invoice", CustomerID: "cus_00000000000000"}},
		{"stripe-ruby-mock/customer.created.json", stripeevent.Envelope{ID: "evt_000000000000000000000000", Type: "customer.created", APIVersion: "2020-08-27", ObjectType: "customer", CustomerID: "cus_00000000000000", ObjectID: "cus_00000000000000"}},
		{"stripe-ruby-mock/coupon.created.json", stripeevent.Envelope{ID: "evt_00000000000000", Type: "coupon.created", ObjectType: "coupon"}},
		{"stripe-sync-engine/customer_deleted.json", stripeevent.Envelope{ID: "evt_1IlZRsJDPojXS6LN2AbFmnR4", Type: "customer.deleted", APIVersion: "2020-03-02", ObjectType: "customer", CustomerID: "cus_IhGfebO16cMIGN", ObjectID: "cus_IhGfebO16cMIGN"}},
		{"stripe-sync-engine/checkout_session_completed.json", stripeevent.Envelope{ID: "evt_T8nSaZqtPudigUMqnnbY4D4v", Type: "checkout.session.completed", APIVersion: "2020-03-02", Livemode: true, ObjectType: "checkout.session", CustomerID: "cus_IhGfebO16cMIGN"}},
		{"zulip/invoice_finalized.json", stripeevent.Envelope{ID: "invoice.finalized_00000000000000", Type: "invoice.finalized", APIVersion: "2018-11-08", ObjectType: "invoice", CustomerID: "cus_00000000000000"}},
	} {
		payload, err := os.ReadFile(shared + tc.file)
		require.NoError(t, err)
		env, err := stripeevent.Parse(payload)
		require.NoError(t, err)
		tc.want.Created = env.Created
		if tc.want.ObjectID == "" {
			tc.want.ObjectID = env.ObjectID
		}
		require.Equal(t, tc.want, env, tc.file)
	}
}

func TestParseExpandedCustomer(t *testing.T) {
	t.Parallel()
	env, err := stripeevent.Parse([]byte(`{"id":"evt_1","type":"invoice.paid","created":1700000000,"data":{"object":{"id":"in_1","object":"invoice","customer":{"id":"cus_9","object":"customer"}}}}`))
	require.NoError(t, err)
	require.Equal(t, "cus_9", env.CustomerID)
	require.Equal(t, "", env.APIVersion)
	require.Equal(t, time.Unix(1700000000, 0).UTC(), env.Created)
}

func TestParseRejectsWhatIsNotAnEvent(t *testing.T) {
	t.Parallel()
	for name, body := range map[string]string{
		"not JSON":          `{"id":`,
		"array":             `[{"id":"evt_1"}]`,
		"no id":             `{"type":"x.y","created":1,"data":{"object":{}}}`,
		"no type":           `{"id":"evt_1","created":1,"data":{"object":{}}}`,
		"no created":        `{"id":"evt_1","type":"x.y","data":{"object":{}}}`,
		"no data":           `{"id":"evt_1","type":"x.y","created":1}`,
		"object not object": `{"id":"evt_1","type":"x.y","created":1,"data":{"object":"in_1"}}`,
		"not an event":      `{"id":"cus_1","object":"customer","type":"x.y","created":1,"data":{"object":{}}}`,
		"customer a number": `{"id":"evt_1","type":"x.y","created":1,"data":{"object":{"customer":5}}}`,
		"empty":             ``,
		"NUL in id":         `{"id":"evt_\u0000","type":"x.y","created":1,"data":{"object":{}}}`,
		"newline in type":   `{"id":"evt_1","type":"x.y\n","created":1,"data":{"object":{}}}`,
		// The operator tools trim the ids they are given: " evt_1" and
		// "evt_1" would be two events, and the first out of their reach.
		"space after id":          `{"id":"evt_1 ","type":"x.y","created":1,"data":{"object":{}}}`,
		"space before id":         `{"id":"  evt_1","type":"x.y","created":1,"data":{"object":{}}}`,
		"blank id":                `{"id":"   ","type":"x.y","created":1,"data":{"object":{}}}`,
		"DEL in id":               `{"id":"evt_\u007f","type":"x.y","created":1,"data":{"object":{}}}`,
		"no-break space in id":    `{"id":"evt\u00a01","type":"x.y","created":1,"data":{"object":{}}}`,
		"space in customer":       `{"id":"evt_1","type":"x.y","created":1,"data":{"object":{"customer":"cus_1 "}}}`,
		"space in data.object.id": `{"id":"evt_1","type":"x.y","created":1,"data":{"object":{"id":" in_1"}}}`,
		"created too late":        `{"id":"evt_1","type":"x.y","created":999999999999999,"data":{"object":{}}}`,
		"created negative":        `{"id":"evt_1","type":"x.y","created":-5,"data":{"object":{}}}`,
		"customer too long":       `{"id":"evt_1","type":"x.y","created":1,"data":{"object":{"customer":"` + strings.Repeat("c", 300) + `"}}}`,
		// encoding/json would turn these bytes into U+FFFD: two ids that
		// differ only in them would be one event, and the second lost.
		"invalid UTF-8 in id":       "{\"id\":\"evt_\xff\xfe\",\"type\":\"x.y\",\"created\":1,\"data\":{\"object\":{}}}",
		"invalid UTF-8 in metadata": "{\"id\":\"evt_1\",\"type\":\"x.y\",\"created\":1,\"data\":{\"object\":{\"metadata\":{\"k\":\"\xc3\"}}}}",
	} {
		env, err := stripeevent.Parse([]byte(body))
		require.ErrorIs(t, err, stripeevent.ErrMalformed, name)
		require.Equal(t, stripeevent.Envelope{ID: env.ID}, env, "%s: the id alone, if any", name)
	}
}

// A malformed event whose id Parse would accept is named with its error,
// so that the answer and the log say which event was refused.
func TestParseNamesAMalformedEvent(t *testing.T) {
	t.Parallel()
	for body, want := range map[string]string{
		`{"id":"evt_1","created":1,"data":{"object":{}}}`:                          "evt_1",
		`{"id":"evt_1","type":"x.y","created":-5,"data":{"object":{}}}`:            "evt_1",
		`{"id":"evt_1","type":"x.y","created":1,"data":{"object":{"id":" in_1"}}}`: "evt_1",
		`{"id":"evt_1 ","type":"x.y","created":1,"data":{"object":{}}}`:            "",
		`{"id":"evt_1","type":"x.y","created":1,"data":{"object":{"customer":5}}}`: "",
		`{"id":"evt_1",`: "",
	} {
		env, err := stripeevent.Parse([]byte(body))
		require.ErrorIs(t, err, stripeevent.ErrMalformed, body)
		require.Equal(t, want, env.ID, body)
	}
}

// Identifiers beyond ASCII are Stripe's own business: only whitespace and
// control characters are refused.
func TestParseAcceptsNonASCIIIdentifiers(t *testing.T) {
	t.Parallel()
	env, err := stripeevent.Parse([]byte(`{"id":"evt_ü1","type":"x.y","created":1,"data":{"object":{"customer":"cus_日本"}}}`))
	require.NoError(t, err)
	require.Equal(t, "evt_ü1", env.ID)
	require.Equal(t, "cus_日本", env.CustomerID)
}

func FuzzParse(f *testing.F) {
	for _, payload := range fixtures(f) {
		f.Add(payload)
	}
	for _, s := range []string{`{}`, `[]`, `null`, `{"id":"e","type":"t","created":1,"data":{"object":{"customer":{"id":1}}}}`, strings.Repeat("[", 20000), "{\"id\":\"evt_\xfe\",\"type\":\"t\",\"created\":1,\"data\":{\"object\":{}}}"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		env, err := stripeevent.Parse(payload)
		if err != nil {
			require.ErrorIs(t, err, stripeevent.ErrMalformed)
			return
		}
		require.NotEmpty(t, env.ID)
		require.NotEmpty(t, env.Type)
		require.True(t, utf8.Valid(payload), "an accepted payload is valid UTF-8")
	})
}

// BenchmarkParse measures reading the envelope of a real invoice.paid.
func BenchmarkParse(b *testing.B) {
	payload, err := os.ReadFile("../../testdata/events/05_invoice.paid.json")
	require.NoError(b, err)
	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := stripeevent.Parse(payload); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeObject reads the fields an applier needs from data.object
// of a real invoice.paid.
func BenchmarkDecodeObject(b *testing.B) {
	payload, err := os.ReadFile("../../testdata/events/05_invoice.paid.json")
	require.NoError(b, err)
	var inv struct {
		Status     string `json:"status"`
		AmountPaid int64  `json:"amount_paid"`
	}
	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	for b.Loop() {
		if err := stripeevent.DecodeObject(payload, &inv); err != nil {
			b.Fatal(err)
		}
	}
}

// A handler may decode data.object into stripe-go's types, written for
// encoding/json: DecodeObject must give what encoding/json gives, for every
// fixture.
func TestDecodeObjectAgreesWithEncodingJSON(t *testing.T) {
	t.Parallel()
	for path, payload := range fixtures(t) {
		var wire struct {
			Data struct {
				Object json.RawMessage `json:"object"`
			} `json:"data"`
		}
		require.NoError(t, json.Unmarshal(payload, &wire), path)
		for _, newV := range []func() any{
			func() any { return new(stripe.Invoice) },
			func() any { return new(stripe.Customer) },
			func() any { return new(stripe.Subscription) },
			func() any { return new(map[string]any) },
		} {
			want, got := newV(), newV()
			wantErr := json.Unmarshal(wire.Data.Object, want)
			gotErr := stripeevent.DecodeObject(payload, got)
			require.Equal(t, wantErr == nil, gotErr == nil, "%s into %T: encoding/json says %v, DecodeObject %v", path, want, wantErr, gotErr)
			require.Equal(t, want, got, "%s into %T", path, want)
		}
	}
}
