package store_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/orderhook/orderhook/store"
	"github.com/orderhook/orderhook/webhook"
)

// The inbox as an operator sees it: a delivery stored twice is one row,
// and an event nobody should apply is discarded with a reason that stays
// in its history.
func Example() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "orderhook-store-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	// Or postgres://USER@HOST:PORT/DB?sslmode=disable.
	db, err := store.Open(ctx, "sqlite:"+filepath.Join(dir, "orderhook.db"))
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Migrate(ctx); err != nil {
		log.Fatal(err)
	}

	// webhook.NewHandler stores each verified delivery so; Stripe may
	// deliver the same event again.
	ev, err := webhook.ParseEvent([]byte(`{"id":"evt_1","object":"event","type":"invoice.paid","created":1700000001,
		"data":{"object":{"id":"in_1","object":"invoice","customer":"cus_test","status":"paid"}}}`), time.Now())
	if err != nil {
		log.Fatal(err)
	}
	for range 2 {
		inserted, err := db.InsertEvent(ctx, ev)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println("inserted:", inserted)
	}

	page, err := db.ListEvents(ctx, store.EventFilter{Statuses: []store.Status{store.StatusPending}, Types: []string{"invoice.*"}})
	if err != nil {
		log.Fatal(err)
	}
	for _, e := range page.Events {
		fmt.Println("pending:", e.ID, e.Type, e.CustomerID)
	}

	res, err := db.Discard(ctx, store.DiscardParams{IDs: []string{"evt_1", "evt_missing"}, Reason: "test customer", Actor: "ops@example.com"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("discarded:", res.Discarded)
	for _, r := range res.Refused {
		fmt.Println("refused:", r.EventID, r.Reason)
	}

	detail, err := db.EventDetail(ctx, "evt_1")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("status:", detail.Event.Status)
	for _, a := range detail.Attempts {
		fmt.Println("history:", a.Outcome, a.Actor, a.Detail)
	}
	// Output:
	// inserted: true
	// inserted: false
	// pending: evt_1 invoice.paid cus_test
	// discarded: [evt_1]
	// refused: evt_missing no such event in the inbox
	// status: discarded
	// history: discarded ops@example.com test customer
}
