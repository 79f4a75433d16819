// Package store keeps orderhook's state: the inbox of webhook events, the
// history of attempts, and the Stripe mirror. It owns every SQL statement and
// speaks two dialects: PostgreSQL (production; many replicas share one
// database) and SQLite (the embedded default; one process).
//
// Exported methods own their transactions. Driver errors are translated once,
// here: callers branch on ErrNotFound, ErrUnavailable and friends.
package store

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
	_ "modernc.org/sqlite" // registers the "sqlite" driver (pure Go)
)

// Dialect names a supported database engine.
type Dialect string

// The supported dialects.
const (
	Postgres Dialect = "postgres"
	SQLite   Dialect = "sqlite"
)

// DB is a handle on an orderhook database. It is safe for concurrent use.
type DB struct {
	db        *sqlx.DB
	connector *socketConnector // nil on SQLite
	dialect   Dialect
	dsn       string
	wake      *broadcaster
	ingest    *groupCommitter
	others    *notifier // nil on SQLite
	prepared  *preparedCache
	file      *sqliteFile // nil on PostgreSQL
}

// Open connects to the database named by rawURL: "sqlite:PATH" (relative or
// absolute; the file is created if missing) or "postgres://…". It does not
// migrate; call Migrate. It returns an error naming the accepted forms when
// rawURL is neither.
func Open(ctx context.Context, rawURL string) (*DB, error) {
	dialect, dsn, err := parseURL(rawURL)
	if err != nil {
		return nil, err
	}
	sqldb, connector, err := openPool(dialect, dsn)
	if err != nil {
		// Only the URL's parameters can fail it: nothing is connected yet.
		return nil, fmt.Errorf("%w: %s: %w", ErrBadURL, Redact(rawURL), err)
	}
	if dialect == SQLite {
		// One writer at a time is SQLite's model; one connection makes it
		// explicit and serializes every transaction in this process.
		sqldb.SetMaxOpenConns(1)
	} else {
		sqldb.SetMaxOpenConns(32)
		sqldb.SetMaxIdleConns(32)
		sqldb.SetConnMaxIdleTime(5 * time.Minute)
	}
	db := &DB{db: sqldb, connector: connector, dialect: dialect, dsn: dsn, wake: newBroadcaster(), prepared: newPreparedCache(sqldb)}
	if err := db.Ping(ctx); err != nil {
		_ = sqldb.Close()
		return nil, fmt.Errorf("connect %s: %w", Redact(rawURL), err)
	}
	if dialect == SQLite {
		path, _ := SQLitePath(rawURL)
		checkpoint := func() error {
			_, err := sqldb.Exec(`PRAGMA wal_checkpoint(FULL)`)
			return err
		}
		if db.file, err = openedFile(path, checkpoint); err != nil {
			_ = sqldb.Close()
			return nil, err
		}
	}
	if dialect == Postgres {
		db.others = newNotifier(sqldb)
	}
	db.ingest = newGroupCommitter(db)
	return db, nil
}

// openPool returns the connection pool of dsn and, on PostgreSQL, its
// connector, whose connections honour their calls' contexts on the socket
// (socket.go).
func openPool(dialect Dialect, dsn string) (*sqlx.DB, *socketConnector, error) {
	if dialect != Postgres {
		db, err := sqlx.Open(string(dialect), dsn)
		return db, nil, err
	}
	c, err := newPostgresConnector(dsn)
	if err != nil {
		return nil, nil, err
	}
	return sqlx.NewDb(sql.OpenDB(c), string(dialect)), c, nil
}

// parseURL maps an orderhook database URL to a driver name and DSN.
func parseURL(rawURL string) (Dialect, string, error) {
	switch {
	case strings.HasPrefix(rawURL, "postgres://"), strings.HasPrefix(rawURL, "postgresql://"):
		u, err := url.Parse(rawURL)
		if err != nil {
			// err quotes the URL, and its cause a piece of it: most often
			// of a password with a character that is not percent-encoded.
			return "", "", fmt.Errorf("%w: %s does not parse: percent-encode the special characters of its user and password (%% as %%25, @ as %%40, / as %%2F, : as %%3A)", ErrBadURL, Redact(rawURL))
		}
		if u.Host == "" && strings.Trim(u.Path, "/") == "" && u.Query().Get("host") == "" {
			return "", "", fmt.Errorf("%w: %s names no host and no database: use postgres://USER@HOST:PORT/DB", ErrBadURL, Redact(rawURL))
		}
		// Times come back in UTC whatever the server's default zone, and
		// binary parameters let lib/pq run each statement in one round trip
		// instead of two (and send bytea payloads as raw bytes).
		q := u.Query()
		for k, v := range map[string]string{"timezone": "UTC", "binary_parameters": "yes"} {
			if q.Get(k) == "" {
				q.Set(k, v)
			}
		}
		u.RawQuery = q.Encode()
		return Postgres, u.String(), nil
	case strings.HasPrefix(rawURL, "sqlite:"):
		path, _ := SQLitePath(rawURL)
		if path == "" {
			return "", "", fmt.Errorf(`%w: "sqlite:" has no path: use sqlite:orderhook.db or sqlite:/abs/path.db`, ErrBadURL)
		}
		return SQLite, sqliteDSN(path), nil
	default:
		return "", "", fmt.Errorf("%w: %q is not supported: use sqlite:PATH or postgres://USER@HOST:PORT/DB", ErrBadURL, Redact(rawURL))
	}
}

// sqliteDSN sets the pragmas orderhook relies on: WAL with full fsync (an
// acknowledged event survives power loss), foreign keys, a busy timeout, and
// UTC time text that sorts in time order.
func sqliteDSN(path string) string {
	q := url.Values{}
	for _, p := range []string{"journal_mode(WAL)", "synchronous(FULL)", "foreign_keys(1)", "busy_timeout(10000)"} {
		q.Add("_pragma", p)
	}
	q.Set("_time_format", "sqlite")
	q.Set("_timezone", "UTC")
	q.Set("_texttotime", "1")
	q.Set("_txlock", "immediate")
	// The path is a URI's (SQLite opens "file:" names as URIs): escaped, a
	// "?", "#" or "%" in it names the file rather than starting the query.
	return "file:" + (&url.URL{Path: path}).EscapedPath() + "?" + q.Encode()
}

// SQLitePath returns the file path of a "sqlite:PATH" URL, as given, and
// whether rawURL is one: the file Open opens, for a caller to check first.
func SQLitePath(rawURL string) (path string, ok bool) {
	path, ok = strings.CutPrefix(rawURL, "sqlite:")
	return strings.TrimPrefix(path, "//"), ok
}

// secretParams are the URL parameters lib/pq takes secrets from.
var secretParams = []string{"password", "sslpassword"}

// Redact hides the secrets of a database URL so that it can be logged: the
// user's password and the password parameters. A URL that does not parse
// is shown as its scheme alone, since what does not parse is most often a
// password.
func Redact(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		scheme, _, _ := strings.Cut(rawURL, ":")
		if _, err := url.Parse(scheme + ":"); err != nil {
			scheme = "database"
		}
		return scheme + ":(not shown: it does not parse)"
	}
	if u.User != nil {
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
		}
	}
	if q := u.Query(); slices.ContainsFunc(secretParams, q.Has) {
		for _, k := range secretParams {
			if q.Has(k) {
				q.Set(k, "xxxxx")
			}
		}
		u.RawQuery = q.Encode()
	}
	return u.String()
}

// Dialect reports which engine db talks to.
func (db *DB) Dialect() Dialect { return db.dialect }

// Ping checks that the database answers. It returns an error wrapping
// ErrUnavailable when it does not.
func (db *DB) Ping(ctx context.Context) error {
	return translate(db.db.PingContext(ctx))
}

// Close waits for the inserts in flight to commit and for the NOTIFY they
// owe the other replicas, then closes every connection and stops the
// notification listener. A database that stops answering holds each of
// these steps no longer than its timeout: a batch's, a NOTIFY's, and two
// seconds for closing the statements and connections.
func (db *DB) Close() error {
	db.ingest.close()
	db.file.close()
	db.others.close()
	db.wake.close()
	db.connector.closeAll()
	db.prepared.close()
	return db.db.Close()
}

// SQLX returns the underlying connection pool, for programs that run their
// own SQL next to orderhook's: creating their tables, reading what handlers
// wrote. A handler must use the transaction it is given, never the pool: on
// SQLite the pool has one connection, which the handler's transaction
// holds, and on PostgreSQL a write through the pool would not commit or
// roll back with the event.
func (db *DB) SQLX() *sqlx.DB { return db.db }

// withTx runs fn in a transaction, committing when fn returns nil and rolling
// back otherwise.
func (db *DB) withTx(ctx context.Context, fn func(tx *sqlx.Tx) error) error {
	tx, err := db.db.BeginTxx(ctx, nil)
	if err != nil {
		return translate(err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	return translate(tx.Commit())
}

// rebind turns $n placeholders into the dialect's form.
func (db *DB) rebind(query string) string {
	if db.dialect == SQLite {
		return sqlx.Rebind(sqlx.QUESTION, query)
	}
	return query
}

// placeholders returns n numbered placeholders from $first, comma-separated;
// both engines take the $n form.
func placeholders(first, n int) string {
	out := make([]string, n)
	for i := range out {
		out[i] = "$" + strconv.Itoa(first+i)
	}
	return strings.Join(out, ", ")
}

// ts normalizes a time for storage: UTC, whole microseconds (PostgreSQL's
// precision), so that both engines store and compare the same values.
func ts(t time.Time) time.Time {
	return t.UTC().Truncate(time.Microsecond)
}

// nullable turns "" into SQL NULL.
func nullable(s string) sql.NullString {
	return sql.NullString{String: s, Valid: s != ""}
}
