-- +goose Up
-- A batch claims, with its due events, the due events that create their
-- customers (ClaimParams.Alongside), so that it applies a customer before the
-- invoices it holds instead of deferring them to a later batch: this index
-- finds a customer's pending events. It costs each delivery one more index
-- entry, and nothing once the event is applied. Its build holds back the
-- inbox INSERTs while it reads the table, as 00006's did.
CREATE INDEX webhook_events_pending_customer ON webhook_events (customer_id) WHERE status = 'pending';

-- +goose Down
DROP INDEX webhook_events_pending_customer;
