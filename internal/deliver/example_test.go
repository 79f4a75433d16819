package deliver_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"

	stripewebhook "github.com/stripe/stripe-go/v76/webhook"

	"github.com/orderhook/orderhook/internal/deliver"
)

func ExampleSender_Run() {
	const secret = "whsec_example"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := stripewebhook.ValidatePayload(body, r.Header.Get("Stripe-Signature"), secret); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		fmt.Fprint(w, `{"status":"accepted"}`)
	}))
	defer srv.Close()

	ev, err := deliver.NewEvent("customer.created", []byte(`{"id":"evt_1","object":"event","type":"customer.created",`+
		`"created":1700000000,"data":{"object":{"id":"cus_1","object":"customer"}}}`))
	if err != nil {
		fmt.Println(err)
		return
	}
	s, err := deliver.New(deliver.Config{URL: srv.URL, Secrets: []string{secret}, Repeat: 2})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.CloseIdleConnections()

	rep, err := s.Run(context.Background(), []deliver.Event{ev}, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%d of %d delivered, status %v, err %v\n", rep.Delivered, rep.Planned, rep.Status, rep.Err())
	// Output: 2 of 2 delivered, status map[200:2], err <nil>
}

func ExampleEvent_WithID() {
	ev, err := deliver.NewEvent("sample", []byte(`{"id": "evt_0", "object": "event", "type": "invoice.paid", "created": 1, "data": {"object": {"id": "in_1"}}}`))
	if err != nil {
		fmt.Println(err)
		return
	}
	fresh, err := ev.WithID("evt_1NewId")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(string(fresh.Body))
	// Output: {"id": "evt_1NewId", "object": "event", "type": "invoice.paid", "created": 1, "data": {"object": {"id": "in_1"}}}
}
