-- +goose Up
-- SQLite twin of migrations/postgres/00001_inbox.sql: same tables and names.
-- Times are TIMESTAMP text in UTC, which sorts in time order.
-- The inbox: every verified event, byte-exact, with its processing state.
CREATE TABLE webhook_events (
    event_id         text PRIMARY KEY,
    type             text        NOT NULL,
    api_version      text        NOT NULL DEFAULT '',
    livemode         boolean     NOT NULL DEFAULT false,
    created          TIMESTAMP NOT NULL,
    customer_id      text,
    object_id        text,
    payload          blob        NOT NULL,
    received_at      TIMESTAMP NOT NULL,
    status           text        NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'deferred', 'applied', 'ignored', 'dead', 'discarded')),
    attempts         integer     NOT NULL DEFAULT 0,
    next_attempt_at  TIMESTAMP NOT NULL,
    waiting_for      text,
    last_error       text,
    applied_at       TIMESTAMP,
    lease_owner      text,
    lease_expires_at TIMESTAMP,
    secret_index     integer     NOT NULL DEFAULT 0
);

-- Claiming scans only due pending rows.
CREATE INDEX webhook_events_due ON webhook_events (next_attempt_at) WHERE status = 'pending';
-- Releasing finds the rows waiting for what was just applied; expiry scans deadlines.
CREATE INDEX webhook_events_waiting ON webhook_events (waiting_for) WHERE status = 'deferred';
CREATE INDEX webhook_events_deferred_deadline ON webhook_events (next_attempt_at) WHERE status = 'deferred';
-- Operator listings.
CREATE INDEX webhook_events_status_received ON webhook_events (status, received_at);
CREATE INDEX webhook_events_customer ON webhook_events (customer_id, created);

-- One row per attempt or transition, with who did it.
CREATE TABLE event_attempts (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id text        NOT NULL REFERENCES webhook_events (event_id) ON DELETE CASCADE,
    at       TIMESTAMP NOT NULL,
    outcome  text        NOT NULL
        CHECK (outcome IN ('applied', 'deferred', 'released', 'failed', 'dead', 'ignored', 'replayed', 'discarded')),
    attempt  integer     NOT NULL DEFAULT 0,
    worker   text,
    actor    text,
    error    text,
    detail   text
);
CREATE INDEX event_attempts_event ON event_attempts (event_id, id);

-- +goose Down
DROP TABLE event_attempts;
DROP TABLE webhook_events;
