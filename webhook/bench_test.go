package webhook_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/orderhook/orderhook/webhook"
)

// BenchmarkReceive measures the receiver's own work on one delivery of a
// real invoice.paid: body read, signature check, envelope parse, answer and
// log line, with an in-memory inbox (BenchmarkInsertEvent in store measures
// the commit). "rolled" is signed with the second configured secret, so the
// first is tried and fails first: the cost of a secret roll.
func BenchmarkReceive(b *testing.B) {
	payload, err := os.ReadFile("../testdata/events/05_invoice.paid.json")
	require.NoError(b, err)
	for name, secret := range map[string]string{"current": secret0, "rolled": secret1} {
		b.Run(name, func(b *testing.B) {
			h, err := webhook.NewHandler(webhook.Config{
				Secrets: []string{secret0, secret1}, Tolerance: tolerance, Now: func() time.Time { return now },
			}, &fakeInbox{}, nil, zerolog.Nop())
			require.NoError(b, err)
			signature := sign(payload, secret, now)
			b.SetBytes(int64(len(payload)))
			b.ReportAllocs()
			for b.Loop() {
				req := httptest.NewRequest(http.MethodPost, "/webhooks/stripe", bytes.NewReader(payload))
				req.Header.Set("Stripe-Signature", signature)
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				if rec.Code != http.StatusOK {
					b.Fatalf("status %d: %s", rec.Code, rec.Body)
				}
			}
		})
	}
}
