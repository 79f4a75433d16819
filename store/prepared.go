package store

import (
	"context"
	"database/sql"
	"sync"

	"github.com/jmoiron/sqlx"
)

// preparedCache holds the statements of the claim and apply paths, and the
// inbox INSERT of each common batch size, prepared on the pool. database/sql
// prepares each on a connection the first time a statement or transaction on
// that connection uses it and keeps it there, so the engine parses and plans
// a statement once per connection instead of once per event or batch.
//
// A transaction never prepares on the pool itself: that needs a second
// connection while it holds one, and on SQLite's single connection it would
// wait forever. It runs a statement the cache lacks unprepared and notes it;
// warm, called outside any transaction, prepares what was noted.
type preparedCache struct {
	db     *sqlx.DB
	mu     sync.Mutex
	stmts  map[string]*sqlx.Stmt
	wanted map[string]bool
}

func newPreparedCache(db *sqlx.DB) *preparedCache {
	return &preparedCache{db: db, stmts: make(map[string]*sqlx.Stmt), wanted: make(map[string]bool)}
}

// lookup returns query's prepared statement, or nil after noting it for warm.
func (c *preparedCache) lookup(query string) *sqlx.Stmt {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.stmts[query]
	if s == nil {
		c.wanted[query] = true
	}
	return s
}

// warm prepares on the pool every statement lookup missed. The caller must
// hold no connection. A statement that fails to prepare (the database is
// down) stays wanted and runs unprepared meanwhile.
func (c *preparedCache) warm(ctx context.Context) {
	c.mu.Lock()
	var queries []string
	for q := range c.wanted {
		queries = append(queries, q)
	}
	c.mu.Unlock()
	for _, q := range queries {
		s, err := c.db.PreparexContext(ctx, q)
		if err != nil {
			continue
		}
		c.mu.Lock()
		if c.stmts[q] == nil {
			c.stmts[q], s = s, nil
		}
		delete(c.wanted, q)
		c.mu.Unlock()
		if s != nil {
			_ = s.Close()
		}
	}
}

// close closes every prepared statement.
func (c *preparedCache) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for q, s := range c.stmts {
		_ = s.Close()
		delete(c.stmts, q)
	}
}

// txExec runs query (in $n form) in tx, prepared when the cache has it.
func (db *DB) txExec(ctx context.Context, tx *sqlx.Tx, query string, args ...any) (sql.Result, error) {
	query = db.rebind(query)
	if s := db.prepared.lookup(query); s != nil {
		return tx.StmtxContext(ctx, s).ExecContext(ctx, args...)
	}
	return tx.ExecContext(ctx, query, args...)
}

// txGet reads one row of query into dest, prepared when the cache has it.
func (db *DB) txGet(ctx context.Context, tx *sqlx.Tx, dest any, query string, args ...any) error {
	query = db.rebind(query)
	if s := db.prepared.lookup(query); s != nil {
		return tx.StmtxContext(ctx, s).GetContext(ctx, dest, args...)
	}
	return tx.GetContext(ctx, dest, query, args...)
}

// txSelect reads the rows of query into dest, prepared when the cache has it.
func (db *DB) txSelect(ctx context.Context, tx *sqlx.Tx, dest any, query string, args ...any) error {
	query = db.rebind(query)
	if s := db.prepared.lookup(query); s != nil {
		return tx.StmtxContext(ctx, s).SelectContext(ctx, dest, args...)
	}
	return tx.SelectContext(ctx, dest, query, args...)
}
