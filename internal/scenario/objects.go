package scenario

import (
	"fmt"
	"maps"
	"time"
)

// The wire types follow Stripe's field names and order; they carry the fields
// orderhook reads plus enough of the rest to weigh what real events weigh.

type wireRequest struct {
	ID             *string `json:"id"`
	IdempotencyKey string  `json:"idempotency_key"`
}

type wireEvent struct {
	ID         string `json:"id"`
	Object     string `json:"object"`
	APIVersion string `json:"api_version"`
	Created    int64  `json:"created"`
	Data       struct {
		Object any `json:"object"`
	} `json:"data"`
	Livemode        bool        `json:"livemode"`
	PendingWebhooks int         `json:"pending_webhooks"`
	Request         wireRequest `json:"request"`
	Type            string      `json:"type"`
}

// customerState is what the generator knows of one customer.
type customerState struct {
	id, email, name, api, subID string
	expand                      bool // send `customer` as an expanded object
	t0                          time.Time
	created                     int64
}

type customerObject struct {
	ID               string            `json:"id"`
	Object           string            `json:"object"`
	Address          *string           `json:"address"`
	Balance          int64             `json:"balance"`
	Created          int64             `json:"created"`
	Currency         string            `json:"currency"`
	Deleted          bool              `json:"deleted,omitempty"`
	Delinquent       bool              `json:"delinquent"`
	Description      *string           `json:"description"`
	Email            string            `json:"email"`
	InvoicePrefix    string            `json:"invoice_prefix"`
	InvoiceSettings  map[string]any    `json:"invoice_settings"`
	Livemode         bool              `json:"livemode"`
	Metadata         map[string]string `json:"metadata"`
	Name             string            `json:"name"`
	PreferredLocales []string          `json:"preferred_locales"`
	TaxExempt        string            `json:"tax_exempt"`
}

func (c customerState) customerObject(deleted bool) customerObject {
	return customerObject{
		ID: c.id, Object: "customer", Created: c.created, Currency: "usd", Deleted: deleted,
		Email: c.email, InvoicePrefix: "A1B2C3D4", Name: c.name, PreferredLocales: []string{},
		InvoiceSettings: map[string]any{"custom_fields": nil, "default_payment_method": nil, "footer": nil},
		Metadata:        map[string]string{"account": c.id + "-acct"}, TaxExempt: "none",
	}
}

// deletedCustomer is the object of customer i's customer.deleted in one of
// two shapes real deliveries carry, by i: the whole customer with
// "deleted": true, or without the key (stripe-ruby-mock's fixture). A third,
// the id alone (stripe-sync-engine's), is not generated: the tombstone it
// leaves keeps the fields as they were when it was applied, so they depend
// on the delivery order (README, "Dependencies").
func (c customerState) deletedCustomer(i int) customerObject {
	return c.customerObject(i%2 == 0)
}

// customerRef is `customer` as an id or, expanded, as the object.
func (c customerState) customerRef() any {
	if c.expand {
		return map[string]any{"id": c.id, "object": "customer", "email": c.email}
	}
	return c.id
}

type subscriptionItem struct {
	ID               string         `json:"id"`
	Object           string         `json:"object"`
	Created          int64          `json:"created"`
	CurrentPeriodEnd int64          `json:"current_period_end"`
	Price            map[string]any `json:"price"`
	Quantity         int            `json:"quantity"`
	Subscription     string         `json:"subscription"`
}

type subscriptionObject struct {
	ID                string `json:"id"`
	Object            string `json:"object"`
	CancelAtPeriodEnd bool   `json:"cancel_at_period_end"`
	CanceledAt        *int64 `json:"canceled_at"`
	CollectionMethod  string `json:"collection_method"`
	Created           int64  `json:"created"`
	CurrentPeriodEnd  *int64 `json:"current_period_end,omitempty"`
	Currency          string `json:"currency"`
	Customer          any    `json:"customer"`
	Items             struct {
		Object string             `json:"object"`
		Data   []subscriptionItem `json:"data"`
	} `json:"items"`
	Livemode   bool              `json:"livemode"`
	Metadata   map[string]string `json:"metadata"`
	Status     string            `json:"status"`
	customerID string
}

func (c customerState) subscriptionObject(status string, cancelAtPeriodEnd bool) subscriptionObject {
	periodEnd := c.created + 30*24*3600
	s := subscriptionObject{
		ID: c.subID, Object: "subscription", CancelAtPeriodEnd: cancelAtPeriodEnd, CollectionMethod: "charge_automatically",
		Created: c.created, Currency: "usd", Customer: c.customerRef(), Metadata: map[string]string{},
		Status: status, customerID: c.id,
	}
	if status == "canceled" {
		at := c.created + 6
		s.CanceledAt = &at
	}
	s.Items.Object = "list"
	s.Items.Data = []subscriptionItem{{
		ID: "si_" + c.subID[4:], Object: "subscription_item", Created: c.created, CurrentPeriodEnd: periodEnd,
		Price:    map[string]any{"id": "price_basic", "object": "price", "currency": "usd", "unit_amount": 2000, "recurring": map[string]any{"interval": "month"}},
		Quantity: 1, Subscription: c.subID,
	}}
	if c.api != apiVersions[2] {
		s.CurrentPeriodEnd = &periodEnd // moved to the items from 2025-03-31 on
	}
	return s
}

// invoiceState identifies one invoice of a customer.
type invoiceState struct {
	id     string
	amount int64
}

func (c customerState) invoice(n int, amount int64) invoiceState {
	return invoiceState{id: fmt.Sprintf("in_%s_%d", c.id[4:], n), amount: amount}
}

type invoiceLine struct {
	ID          string      `json:"id"`
	Object      string      `json:"object"`
	Amount      int64       `json:"amount"`
	Currency    string      `json:"currency"`
	Description string      `json:"description"`
	Period      *linePeriod `json:"period,omitempty"`    // padding lines only
	Price       *linePrice  `json:"price,omitempty"`     // padding lines only
	Proration   *bool       `json:"proration,omitempty"` // padding lines only
	Quantity    *int        `json:"quantity,omitempty"`  // padding lines only
	Type        string      `json:"type,omitempty"`      // padding lines only
}

type linePeriod struct {
	End   int64 `json:"end"`
	Start int64 `json:"start"`
}

type linePrice struct {
	ID            string            `json:"id"`
	Object        string            `json:"object"`
	BillingScheme string            `json:"billing_scheme"`
	Currency      string            `json:"currency"`
	Metadata      map[string]string `json:"metadata"`
	Nickname      *string           `json:"nickname"`
	Product       string            `json:"product"`
	Recurring     map[string]any    `json:"recurring"`
	TaxBehavior   string            `json:"tax_behavior"`
	Type          string            `json:"type"`
	UnitAmount    int64             `json:"unit_amount"`
}

type invoiceObject struct {
	ID           string `json:"id"`
	Object       string `json:"object"`
	AmountDue    int64  `json:"amount_due"`
	AmountPaid   int64  `json:"amount_paid"`
	AttemptCount int    `json:"attempt_count"`
	Currency     string `json:"currency"`
	Customer     any    `json:"customer"`
	Lines        struct {
		Object string        `json:"object"`
		Data   []invoiceLine `json:"data"`
	} `json:"lines"`
	Livemode       bool           `json:"livemode"`
	Parent         map[string]any `json:"parent,omitempty"`
	Status         string         `json:"status"`
	Subscription   *string        `json:"subscription,omitempty"`
	customerID     string
	subscriptionID string
}

func (c customerState) invoiceObject(inv invoiceState, status string) invoiceObject {
	o := invoiceObject{
		ID: inv.id, Object: "invoice", AmountDue: inv.amount, Currency: "usd", Customer: c.customerRef(),
		Status: status, customerID: c.id, subscriptionID: c.subID,
	}
	if status == "paid" {
		o.AmountPaid, o.AttemptCount = inv.amount, 1
	}
	o.Lines.Object = "list"
	for i := range 3 {
		o.Lines.Data = append(o.Lines.Data, invoiceLine{
			ID: fmt.Sprintf("il_%s_%d", inv.id[3:], i), Object: "line_item", Amount: inv.amount / 3,
			Currency: "usd", Description: fmt.Sprintf("1 × Basic plan (at $%d.00 / month), line %d", inv.amount/100, i),
		})
	}
	if c.api == apiVersions[2] {
		o.Parent = map[string]any{"type": "subscription_details", "subscription_details": map[string]any{"subscription": c.subID}}
	} else {
		sub := c.subID
		o.Subscription = &sub
	}
	return o
}

// withPadding returns object with n padding units in Stripe's shape: n more
// zero-amount usage line items for an invoice, n more metadata entries for
// any other object. The fields a mirror keeps do not change.
func withPadding(object any, n int) any {
	switch o := object.(type) {
	case invoiceObject:
		lines := append([]invoiceLine(nil), o.Lines.Data...)
		for i := range n {
			lines = append(lines, usageLine(o.ID, len(o.Lines.Data)+i))
		}
		o.Lines.Data = lines
		return o
	case customerObject:
		o.Metadata = paddedMetadata(o.Metadata, n)
		return o
	case subscriptionObject:
		o.Metadata = paddedMetadata(o.Metadata, n)
		return o
	}
	return object
}

// usageLine is the i-th line of invoice id for metered usage that cost
// nothing this period.
func usageLine(id string, i int) invoiceLine {
	proration, quantity := false, 0
	return invoiceLine{
		ID: fmt.Sprintf("il_%s_%d", id[3:], i), Object: "line_item", Currency: "usd",
		Description: fmt.Sprintf("0 × API calls, tier %d (at $0.00 per call)", i),
		Period:      &linePeriod{Start: 1767225600, End: 1769904000},
		Price: &linePrice{
			ID: fmt.Sprintf("price_usage_tier_%03d", i), Object: "price", BillingScheme: "per_unit", Currency: "usd",
			Metadata: map[string]string{}, Product: "prod_api_calls",
			Recurring:   map[string]any{"aggregate_usage": "sum", "interval": "month", "interval_count": 1, "usage_type": "metered"},
			TaxBehavior: "unspecified", Type: "recurring",
		},
		Proration: &proration, Quantity: &quantity, Type: "subscription",
	}
}

// paddedMetadata returns a copy of m with n more entries of equal size.
func paddedMetadata(m map[string]string, n int) map[string]string {
	out := make(map[string]string, len(m)+n)
	maps.Copy(out, m)
	for i := range n {
		out[fmt.Sprintf("crm_field_%04d", i)] = "synced from the CRM export of the monthly billing run"
	}
	return out
}
