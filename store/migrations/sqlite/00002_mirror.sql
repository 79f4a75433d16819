-- +goose Up
-- SQLite twin of migrations/postgres/00002_mirror.sql.
-- The Stripe mirror. last_event_* record the event that last wrote each row;
-- a customer row whose last_event_created is NULL is a stub (id only).
CREATE TABLE stripe_customers (
    id                 text PRIMARY KEY,
    email              text,
    name               text,
    deleted            boolean     NOT NULL DEFAULT false,
    livemode           boolean     NOT NULL DEFAULT false,
    last_event_id      text,
    last_event_type    text,
    last_event_created TIMESTAMP,
    updated_at         TIMESTAMP NOT NULL
);

CREATE TABLE stripe_subscriptions (
    id                   text PRIMARY KEY,
    customer_id          text        NOT NULL,
    status               text        NOT NULL,
    cancel_at_period_end boolean     NOT NULL DEFAULT false,
    current_period_end   TIMESTAMP,
    canceled_at          TIMESTAMP,
    livemode             boolean     NOT NULL DEFAULT false,
    last_event_id        text        NOT NULL,
    last_event_type      text        NOT NULL,
    last_event_created   TIMESTAMP NOT NULL,
    updated_at           TIMESTAMP NOT NULL
);
CREATE INDEX stripe_subscriptions_customer ON stripe_subscriptions (customer_id);

CREATE TABLE stripe_invoices (
    id                 text PRIMARY KEY,
    customer_id        text        NOT NULL,
    subscription_id    text,
    status             text        NOT NULL,
    amount_due         bigint      NOT NULL DEFAULT 0,
    amount_paid        bigint      NOT NULL DEFAULT 0,
    currency           text        NOT NULL DEFAULT '',
    livemode           boolean     NOT NULL DEFAULT false,
    last_event_id      text        NOT NULL,
    last_event_type    text        NOT NULL,
    last_event_created TIMESTAMP NOT NULL,
    updated_at         TIMESTAMP NOT NULL
);
CREATE INDEX stripe_invoices_customer ON stripe_invoices (customer_id);

-- +goose Down
DROP TABLE stripe_invoices;
DROP TABLE stripe_subscriptions;
DROP TABLE stripe_customers;
