package store

import (
	"context"
	"net"
	"time"
)

// NotifyGap is the least time between two NOTIFYs of one DB.
const NotifyGap = notifyGap

// CommitBatch commits events as one group-commit batch, as if they were
// concurrent InsertEvent calls that queued together, and returns what each
// call would return.
func CommitBatch(db *DB, events []Event) ([]bool, []error) {
	batch := make([]insertRequest, len(events))
	answers := make([]chan insertResult, len(events))
	for i, ev := range events {
		answers[i] = make(chan insertResult, 1)
		batch[i] = insertRequest{ev: ev, done: answers[i]}
	}
	db.ingest.commit(batch)
	inserted, errs := make([]bool, len(events)), make([]error, len(events))
	for i, ch := range answers {
		res := <-ch
		inserted[i], errs[i] = res.inserted, res.err
	}
	return inserted, errs
}

// SetBatchTimeout sets how long one group-commit batch of db may take. Call
// it before the first InsertEvent.
func SetBatchTimeout(db *DB, d time.Duration) { db.ingest.timeout = d }

// MaxBatch is the most rows one group-commit batch inserts.
const MaxBatch = maxBatch

// SetNotifyTimeout sets how long one NOTIFY of db may take. Call it before
// anything is inserted.
func SetNotifyTimeout(db *DB, d time.Duration) { db.others.timeout = d }

// Notify has db wake the other replicas, as an insert does.
func Notify(db *DB) { db.notify() }

// SetIngestQuiet sets how long no InsertEvent of db must have been under way
// before its IngestIdle closes.
func SetIngestQuiet(db *DB, d time.Duration) {
	f := db.ingest.inFlight
	f.mu.Lock()
	defer f.mu.Unlock()
	f.quiet = d
}

// InsertsUnderWay returns how many InsertEvent calls of db are under way.
func InsertsUnderWay(db *DB) int {
	f := db.ingest.inFlight
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.n
}

// InsertPrepared reports whether the inbox INSERT of a batch of rows events
// is prepared.
func InsertPrepared(db *DB, rows int) bool {
	events := make([]Event, rows)
	query, _ := db.insertStatement(events)
	c := db.prepared
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stmts[query] != nil
}

// MirrorLoadQueries returns, by table, the statements with which a batch
// reads the mirror rows of its events' ids, the array $1.
func MirrorLoadQueries() map[string]string {
	return map[string]string{
		"stripe_customers":     loadQuery("stripe_customers", customerColumns),
		"stripe_subscriptions": loadQuery("stripe_subscriptions", subscriptionColumns),
		"stripe_invoices":      loadQuery("stripe_invoices", invoiceColumns),
	}
}

// ClaimDueQuery is the statement with which a batch claims due events on
// PostgreSQL.
const ClaimDueQuery = claimDueQuery

// ShareBounds returns the range of customer hashes of partition i of n.
func ShareBounds(i, n int) (lo, hi int32) { return shareBounds(i, n) }

// DialCancel dials as the connector does for each cancel request lib/pq
// sends.
func DialCancel(ctx context.Context, network, address string) (net.Conn, error) {
	return socketDialer{}.DialContext(ctx, network, address)
}
