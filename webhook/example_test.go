package webhook_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"time"

	"github.com/rs/zerolog"
	stripewebhook "github.com/stripe/stripe-go/v76/webhook"

	"github.com/orderhook/orderhook/store"
	"github.com/orderhook/orderhook/webhook"
)

// A receiver over an embedded SQLite inbox, and one delivery signed as
// Stripe signs it: the first is accepted, the second is a duplicate.
func ExampleNewHandler() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "orderhook-example")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	db, err := store.Open(ctx, "sqlite:"+filepath.Join(dir, "orderhook.db"))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer db.Close()
	if _, err := db.Migrate(ctx); err != nil {
		fmt.Println(err)
		return
	}

	const secret = "whsec_example"
	h, err := webhook.NewHandler(webhook.Config{Secrets: []string{secret}, Tolerance: 5 * time.Minute}, db, nil, zerolog.Nop())
	if err != nil {
		fmt.Println(err)
		return
	}
	mux := http.NewServeMux()
	mux.Handle("POST /webhooks/stripe", h)
	mux.Handle("GET /healthz", webhook.Healthz())
	mux.Handle("GET /readyz", webhook.Readyz(db, zerolog.Nop()))
	mux.Handle("/", webhook.NotFound()) // any other path: a 404 problem
	srv := httptest.NewServer(mux)
	defer srv.Close()

	payload := []byte(`{"id":"evt_1","object":"event","type":"customer.created","created":1700000000,` +
		`"data":{"object":{"id":"cus_1","object":"customer"}}}`)
	signed := stripewebhook.GenerateTestSignedPayload(&stripewebhook.UnsignedPayload{Payload: payload, Secret: secret})
	for range 2 {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/webhooks/stripe", bytes.NewReader(payload))
		req.Header.Set("Stripe-Signature", signed.Header)
		resp, err := srv.Client().Do(req)
		if err != nil {
			fmt.Println(err)
			return
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Print(resp.StatusCode, " ", string(body))
	}
	// Output:
	// 200 {"status":"accepted","event_id":"evt_1"}
	// 200 {"status":"duplicate","event_id":"evt_1"}
}
