package webhook_test

import (
	"bytes"
	"errors"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/orderhook/orderhook/internal/stripeevent"
	"github.com/orderhook/orderhook/store"
	"github.com/orderhook/orderhook/store/storetest"
	"github.com/orderhook/orderhook/webhook"
)

// fixtureDirs are the event fixtures of the repository and the real Stripe
// events shared next to it; a missing directory is skipped.
var fixtureDirs = []string{"../testdata/events", "../../shared/fixtures/stripe-events"}

// fixture is one event file.
type fixture struct {
	path    string
	payload []byte
}

// fixtures returns every .json event file of fixtureDirs, in a stable order.
func fixtures(t testing.TB) []fixture {
	t.Helper()
	var out []fixture
	for _, dir := range fixtureDirs {
		err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(path, ".json") {
				return err
			}
			b, err := os.ReadFile(path)
			out = append(out, fixture{path: path, payload: b})
			return err
		})
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		require.NoError(t, err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].path < out[j].path })
	return out
}

// Every fixture, really signed, is accepted and stored byte-exact on both
// dialects. Several fixture files share an event id: the first delivery of an
// id is accepted and stored, later ones are duplicates and change nothing.
func TestEveryFixtureIsAccepted(t *testing.T) {
	t.Parallel()
	files := fixtures(t)
	require.NotEmpty(t, files)
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		b := setup(t, db, options{})
		type first struct {
			payload []byte
			index   int
		}
		seen := map[string]first{}
		for i, f := range files {
			env, err := stripeevent.Parse(f.payload)
			require.NoError(t, err, f.path)
			index := i % 2
			a := b.deliver(t, f.payload, []string{secret0, secret1}[index])
			if _, dup := seen[env.ID]; dup {
				requireAccepted(t, a, "duplicate", env.ID)
				continue
			}
			requireAccepted(t, a, "accepted", env.ID)
			seen[env.ID] = first{f.payload, index}
		}
		require.Equal(t, len(seen), countEvents(t, db))
		for id, want := range seen {
			ev := storedEvent(t, db, id)
			require.True(t, bytes.Equal(want.payload, ev.Payload), "payload of %s is byte-exact", id)
			require.Equal(t, want.index, ev.SecretIndex, id)
		}
	})
}

// FuzzDelivery posts any body, correctly signed: the answer is 200 or a 400
// malformed-event, never a panic or a 5xx, and 200 means the payload was
// stored byte-exact.
func FuzzDelivery(f *testing.F) {
	for _, fx := range fixtures(f) {
		f.Add(fx.payload)
	}
	for _, s := range []string{``, `{}`, `null`, `[]`, `{"id":"evt_1","type":"x","created":1,"data":{"object":{}}}`, string(event("evt_seed"))} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		inbox := &fakeInbox{}
		h, err := webhook.NewHandler(webhook.Config{Secrets: []string{secret0}, Tolerance: tolerance, Now: func() time.Time { return now }}, inbox, nil, zerolog.Nop())
		require.NoError(t, err)
		req := httptest.NewRequest(http.MethodPost, "/webhooks/stripe", bytes.NewReader(payload))
		req.Header.Set("Stripe-Signature", sign(payload, secret0, now))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		switch rec.Code {
		case http.StatusOK:
			require.Equal(t, 1, inbox.len())
			for _, ev := range inbox.events {
				require.Equal(t, payload, ev.Payload)
				require.NotEmpty(t, ev.ID)
			}
		case http.StatusBadRequest, http.StatusRequestEntityTooLarge:
			require.Zero(t, inbox.len())
		default:
			t.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
	})
}
