package reconcile_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/rs/zerolog"

	"github.com/orderhook/orderhook/reconcile"
	"github.com/orderhook/orderhook/store"
	"github.com/orderhook/orderhook/webhook"
)

// A handler credits an account once per paid invoice: its INSERT commits in
// the same transaction as the event's status, so a retry or a duplicate
// delivery never credits twice. Here the invoice arrives before its
// customer, waits, and is applied when the customer is.
func Example() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "orderhook-example")
	defer os.RemoveAll(dir)

	db, err := store.Open(ctx, "sqlite:"+filepath.Join(dir, "orderhook.db"))
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Migrate(ctx); err != nil {
		log.Fatal(err)
	}
	if _, err := db.SQLX().ExecContext(ctx, `CREATE TABLE credits (invoice_id TEXT PRIMARY KEY, customer_id TEXT, cents INTEGER)`); err != nil {
		log.Fatal(err)
	}

	worker, err := reconcile.NewWorker(reconcile.Config{
		Handlers: map[string]reconcile.HandlerFunc{
			"invoice.paid": func(ctx context.Context, tx *sqlx.Tx, ev reconcile.Event) error {
				var invoice struct {
					AmountPaid int64 `json:"amount_paid"`
				}
				if err := ev.DecodeObject(&invoice); err != nil {
					return err
				}
				_, err := tx.ExecContext(ctx, tx.Rebind(`INSERT INTO credits VALUES (?, ?, ?)`), ev.ObjectID, ev.CustomerID, invoice.AmountPaid)
				return err
			},
		},
	}, db, zerolog.Nop())
	if err != nil {
		log.Fatal(err)
	}

	// Webhooks reach the inbox through webhook.NewHandler, which verifies
	// their signature; here the events are stored as they are.
	receive := func(payload string) {
		ev, err := webhook.ParseEvent([]byte(payload), time.Now())
		if err != nil {
			log.Fatal(err)
		}
		if _, err := db.InsertEvent(ctx, ev); err != nil {
			log.Fatal(err)
		}
		if _, err := worker.RunOnce(ctx, "example"); err != nil {
			log.Fatal(err)
		}
	}
	receive(`{"id":"evt_2","object":"event","type":"invoice.paid","created":1700000001,
		"data":{"object":{"id":"in_1","object":"invoice","customer":"cus_1","status":"paid","amount_paid":2000}}}`)
	receive(`{"id":"evt_2","object":"event","type":"invoice.paid","created":1700000001,
		"data":{"object":{"id":"in_1","object":"invoice","customer":"cus_1","status":"paid","amount_paid":2000}}}`)
	// The customer's transaction releases the waiting invoice and applies
	// it too.
	receive(`{"id":"evt_1","object":"event","type":"customer.created","created":1700000000,
		"data":{"object":{"id":"cus_1","object":"customer","email":"jenny@example.com"}}}`)

	var credits []struct {
		InvoiceID  string `db:"invoice_id"`
		CustomerID string `db:"customer_id"`
		Cents      int64  `db:"cents"`
	}
	if err := db.SQLX().SelectContext(ctx, &credits, `SELECT * FROM credits`); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%+v\n", credits)
	// Output: [{InvoiceID:in_1 CustomerID:cus_1 Cents:2000}]
}
