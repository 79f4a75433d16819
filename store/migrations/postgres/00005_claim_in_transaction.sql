-- +goose Up
-- Workers claim due rows inside the transaction that applies them, and no
-- longer claim back rows leased to their own name: nothing reads this index.
DROP INDEX webhook_events_leased;

-- +goose Down
CREATE INDEX webhook_events_leased ON webhook_events (lease_owner) WHERE status = 'pending' AND lease_owner IS NOT NULL;
