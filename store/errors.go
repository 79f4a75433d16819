package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"net"
	"syscall"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
)

var (
	// ErrNotFound is returned when the requested row does not exist.
	ErrNotFound = errors.New("not found")
	// ErrUnavailable wraps failures to reach the database: refused or dropped
	// connections, a server shutting down or not yet accepting connections.
	ErrUnavailable = errors.New("store unavailable")
	// ErrLeased is returned when an operation is refused because a worker holds
	// the row under a lease.
	ErrLeased = errors.New("event is leased by a worker")
	// ErrConflict is returned when a row is not in a state that allows the
	// operation (for example replaying an event that is not dead).
	ErrConflict = errors.New("conflicting state")
	// ErrBadURL is returned by Open for a database URL of no supported form,
	// or one that does not parse: the caller's mistake, not the database's.
	ErrBadURL = errors.New("invalid database URL")
)

// IsRefusedValue reports whether err is PostgreSQL's refusal of a value
// that a statement wrote: a data exception or an integrity violation
// (classes 22 and 23), which the same writes meet again on every retry.
func IsRefusedValue(err error) bool {
	var pqErr *pq.Error
	return errors.As(err, &pqErr) && (pqErr.Code.Class() == "22" || pqErr.Code.Class() == "23")
}

// probeTimeout bounds the statement with which fnFailed asks a connection
// whether it is alive; a live one answers in milliseconds.
const probeTimeout = 5 * time.Second

// fnFailed classifies err, returned by a processing transaction's fn in
// tx. PostgreSQL's own answers are classified as the store's statements'
// are (a full disk, a terminated backend: the store failed). Any other
// error is fn's, the event's failure, unless tx's connection is gone,
// whatever fn made of the driver's error: a network error of fn's own, an
// HTTP call's *url.Error say, is not the store's. A ctx that has ended cut
// fn short, and its error is classified as it is.
func fnFailed(ctx context.Context, tx *sqlx.Tx, err error) error {
	var pqErr *pq.Error
	switch {
	case errors.Is(err, ErrUnavailable):
		return err
	case ctx.Err() != nil, errors.As(err, &pqErr):
		return translate(err)
	case connectionLost(ctx, tx):
		return fmt.Errorf("%w: connection lost under the transaction: %w", ErrUnavailable, err)
	}
	return err
}

// connectionLost reports whether tx's connection is gone. A live one
// answers a trivial statement at once: on PostgreSQL, after a failed
// statement, with "current transaction is aborted", which is an answer.
func connectionLost(ctx context.Context, tx *sqlx.Tx) bool {
	pctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	_, err := tx.ExecContext(pctx, `SELECT 1`)
	return isUnavailable(err) || errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil
}

// translate maps driver errors to the package's sentinels, keeping the
// cause; an error already mapped is returned as it is.
func translate(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrNotFound), errors.Is(err, ErrUnavailable):
		return err // translated already
	case errors.Is(err, sql.ErrNoRows):
		return ErrNotFound // the driver's "no rows in result set" says no more
	case isUnavailable(err):
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	default:
		return err
	}
}

func isUnavailable(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var pqErr *pq.Error
	if errors.As(err, &pqErr) {
		switch {
		case pqErr.Code.Class() == "08", // connection exception
			pqErr.Code.Class() == "53", // insufficient resources
			pqErr.Code == "57P01",      // admin_shutdown
			pqErr.Code == "57P02",      // crash_shutdown
			pqErr.Code == "57P03":      // cannot_connect_now
			return true
		}
		return false
	}
	var netErr net.Error
	return errors.Is(err, driver.ErrBadConn) ||
		errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) ||
		errors.As(err, &netErr) ||
		errors.Is(err, sql.ErrConnDone)
}

// isRetryable reports whether a transaction failed only because it lost a
// race with another one (serialization failure or deadlock) and may be rerun.
func isRetryable(err error) bool {
	var pqErr *pq.Error
	return errors.As(err, &pqErr) && (pqErr.Code == "40001" || pqErr.Code == "40P01")
}
