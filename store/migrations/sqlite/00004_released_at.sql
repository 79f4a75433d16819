-- +goose Up
-- When the event's dependency released it, so that its release latency can
-- be measured wherever it is applied.
ALTER TABLE webhook_events ADD COLUMN released_at TIMESTAMP;

-- +goose Down
ALTER TABLE webhook_events DROP COLUMN released_at;
