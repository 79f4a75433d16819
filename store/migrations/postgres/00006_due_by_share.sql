-- +goose Up
-- Each worker loop claims the due rows of its share of the customers: the
-- hash of their customer (of the event, without one) as the index's second
-- column lets the claim's scan skip the other shares' rows inside the index,
-- instead of reading each of them from the table to hash it. The build holds
-- back the inbox INSERTs while it reads the table: deliveries wait for it,
-- and are answered 503, to be sent again, if that takes over ten seconds.
CREATE INDEX webhook_events_due_by_share ON webhook_events (next_attempt_at, hashtext(COALESCE(customer_id, event_id)))
    WHERE status = 'pending';
DROP INDEX webhook_events_due;
ALTER INDEX webhook_events_due_by_share RENAME TO webhook_events_due;

-- +goose Down
CREATE INDEX webhook_events_due_by_time ON webhook_events (next_attempt_at) WHERE status = 'pending';
DROP INDEX webhook_events_due;
ALTER INDEX webhook_events_due_by_time RENAME TO webhook_events_due;
