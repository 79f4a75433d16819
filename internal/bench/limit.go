package bench

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/orderhook/orderhook/internal/deliver"
	"github.com/orderhook/orderhook/internal/stripeevent"
	"github.com/orderhook/orderhook/store"
)

// Limit is the engine's limit for the workload: plain autocommit
// single-row INSERTs of the same payloads, in the same order, into a scratch
// copy of webhook_events, at the same concurrency, through the same driver
// and connection settings as the server. Like the server's, its connections
// are open and its INSERT is prepared before the clock starts.
type Limit struct {
	Rows     int             // INSERT statements run (duplicates included, as ON CONFLICT DO NOTHING)
	Duration time.Duration   // wall time of all of them
	Latency  deliver.Latency // per statement
}

// Rate returns the statements per second.
func (l Limit) Rate() float64 {
	if l.Duration <= 0 {
		return 0
	}
	return float64(l.Rows) / l.Duration.Seconds()
}

// limitRow is the values orderhook's receiver stores for one delivery.
type limitRow struct {
	env     stripeevent.Envelope
	payload []byte
}

// measureLimit creates the scratch table, inserts every delivery from conc
// goroutines, and drops the table.
func measureLimit(ctx context.Context, db *store.DB, deliveries []deliver.Event, conc int, tick func()) (Limit, error) {
	rows := make([]limitRow, len(deliveries))
	for i, d := range deliveries {
		env, err := stripeevent.Parse(d.Body)
		if err != nil {
			return Limit{}, fmt.Errorf("engine limit: %w", err)
		}
		rows[i] = limitRow{env: env, payload: d.Body}
	}
	table := "bench_limit_" + randomPrefix()[1:]
	if err := createScratch(ctx, db, table); err != nil {
		return Limit{}, err
	}
	defer func() { _, _ = db.SQLX().ExecContext(context.WithoutCancel(ctx), `DROP TABLE `+table) }()

	insert, err := prepareLimit(ctx, db.SQLX(), table, conc)
	if err != nil {
		return Limit{}, err
	}
	defer func() { _ = insert.Close() }()
	var next atomic.Int64
	latencies := make([][]time.Duration, conc)
	errs := make([]error, conc)
	start := time.Now()
	var wg sync.WaitGroup
	for g := range conc {
		wg.Go(func() { latencies[g], errs[g] = insertRows(ctx, insert, rows, &next, tick) })
	}
	wg.Wait()
	lim := Limit{Rows: len(rows), Duration: time.Since(start)}
	var all []time.Duration
	for g := range conc {
		if errs[g] != nil {
			return Limit{}, fmt.Errorf("engine limit: %w", errs[g])
		}
		all = append(all, latencies[g]...)
	}
	lim.Latency = deliver.Summarize(all)
	return lim, nil
}

// prepareLimit opens the connections conc goroutines will insert through
// (as many as the pool allows) and prepares the INSERT into table, so that
// the limit's clock measures inserts, not connection setup or parsing: the
// server it is compared with has its connections open and its statements
// prepared. database/sql prepares the statement again on each connection
// that first runs it, one round trip each.
func prepareLimit(ctx context.Context, db *sqlx.DB, table string, conc int) (*sqlx.Stmt, error) {
	n := conc
	if most := db.Stats().MaxOpenConnections; most > 0 {
		n = min(n, most)
	}
	conns := make([]*sql.Conn, 0, n)
	for range n {
		c, err := db.Conn(ctx)
		if err == nil {
			err = c.PingContext(ctx)
		}
		if err != nil {
			closeAll(conns)
			return nil, fmt.Errorf("engine limit: open connection %d of %d: %w", len(conns)+1, n, err)
		}
		conns = append(conns, c)
	}
	closeAll(conns) // back to the pool, open
	stmt, err := db.PreparexContext(ctx, db.Rebind(`INSERT INTO `+table+` (event_id, type, api_version, livemode,
		created, customer_id, object_id, payload, received_at, status, next_attempt_at, secret_index)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'pending', $9, 0)
		ON CONFLICT (event_id) DO NOTHING`))
	if err != nil {
		return nil, fmt.Errorf("engine limit: prepare the INSERT: %w", err)
	}
	return stmt, nil
}

func closeAll(conns []*sql.Conn) {
	for _, c := range conns {
		_ = c.Close()
	}
}

// insertRows inserts the rows it takes from next until none is left, and
// returns the latency of each statement.
func insertRows(ctx context.Context, insert *sqlx.Stmt, rows []limitRow, next *atomic.Int64, tick func()) ([]time.Duration, error) {
	var lat []time.Duration
	for {
		i := int(next.Add(1) - 1)
		if i >= len(rows) {
			return lat, nil
		}
		r := &rows[i]
		t0 := time.Now()
		now := t0.UTC().Truncate(time.Microsecond)
		_, err := insert.ExecContext(ctx, r.env.ID, r.env.Type, r.env.APIVersion, r.env.Livemode,
			r.env.Created.UTC(), nullable(r.env.CustomerID), nullable(r.env.ObjectID), r.payload, now)
		if err != nil {
			return nil, fmt.Errorf("insert %s: %w", r.env.ID, err)
		}
		lat = append(lat, time.Since(t0))
		tick()
	}
}

// createScratch creates table with the columns, types, constraints and
// indexes of webhook_events.
func createScratch(ctx context.Context, db *store.DB, table string) error {
	var stmts []string
	if db.Dialect() == store.Postgres {
		stmts = []string{`CREATE TABLE ` + table + ` (LIKE webhook_events INCLUDING ALL)`}
	} else {
		var schema []string
		err := db.SQLX().SelectContext(ctx, &schema,
			`SELECT sql FROM sqlite_master WHERE tbl_name = 'webhook_events' AND sql IS NOT NULL ORDER BY type DESC`)
		if err != nil {
			return fmt.Errorf("engine limit: read the schema of webhook_events: %w", err)
		}
		for _, s := range schema {
			stmts = append(stmts, strings.ReplaceAll(s, "webhook_events", table))
		}
	}
	if len(stmts) == 0 {
		return fmt.Errorf("engine limit: no table webhook_events: is --db the database the server uses, and migrated?")
	}
	for _, s := range stmts {
		if _, err := db.SQLX().ExecContext(ctx, s); err != nil {
			return fmt.Errorf("engine limit: create the scratch table %s: %w", table, err)
		}
	}
	return nil
}

// nullable turns "" into SQL NULL, as the receiver stores it.
func nullable(s string) sql.NullString {
	return sql.NullString{String: s, Valid: s != ""}
}

// durability describes how this connection's commits are made durable —
// synchronous_commit and fsync on PostgreSQL; the journal mode and the
// synchronous pragma on SQLite — which the engine limit and, with the same
// database URL, the server share.
func durability(ctx context.Context, db *store.DB) (string, error) {
	q := `SELECT 'synchronous_commit=' || current_setting('synchronous_commit') || ' fsync=' || current_setting('fsync')`
	if db.Dialect() == store.SQLite {
		q = `SELECT 'journal_mode=' || (SELECT journal_mode FROM pragma_journal_mode) || ' synchronous=' ||
			(SELECT CASE synchronous WHEN 0 THEN 'OFF' WHEN 1 THEN 'NORMAL' WHEN 2 THEN 'FULL' ELSE 'EXTRA' END FROM pragma_synchronous)`
	}
	var d string
	if err := db.SQLX().GetContext(ctx, &d, q); err != nil {
		return "", fmt.Errorf("read the durability settings: %w", err)
	}
	return d, nil
}
