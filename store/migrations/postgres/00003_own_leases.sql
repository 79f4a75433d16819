-- +goose Up
-- A worker claims again the rows still leased to its own name (a claim whose
-- answer was lost); this index finds them.
CREATE INDEX webhook_events_leased ON webhook_events (lease_owner) WHERE status = 'pending' AND lease_owner IS NOT NULL;

-- +goose Down
DROP INDEX webhook_events_leased;
