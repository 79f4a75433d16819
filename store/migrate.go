package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"

	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

//go:embed migrations
var migrations embed.FS

// migrationTable records which migrations ran.
const migrationTable = "orderhook_migrations"

// Migration is one schema migration and whether it has been applied.
type Migration struct {
	Version int64  `json:"version"`
	Name    string `json:"name"`
	Applied bool   `json:"applied"`
}

// Migrate applies every pending migration and returns the ones it applied. On
// PostgreSQL it holds an advisory lock scoped to the current schema, so
// replicas that start together apply each migration once.
func (db *DB) Migrate(ctx context.Context) ([]Migration, error) {
	p, err := db.provider(ctx)
	if err != nil {
		return nil, err
	}
	results, err := p.Up(ctx)
	if err != nil {
		return nil, fmt.Errorf("migrate: %w", translate(err))
	}
	applied := make([]Migration, 0, len(results))
	for _, r := range results {
		applied = append(applied, Migration{Version: r.Source.Version, Name: r.Source.Path, Applied: true})
	}
	return applied, nil
}

// MigrationStatus lists every known migration and whether it is applied.
func (db *DB) MigrationStatus(ctx context.Context) ([]Migration, error) {
	p, err := db.provider(ctx)
	if err != nil {
		return nil, err
	}
	statuses, err := p.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("migration status: %w", translate(err))
	}
	out := make([]Migration, 0, len(statuses))
	for _, s := range statuses {
		out = append(out, Migration{
			Version: s.Source.Version,
			Name:    s.Source.Path,
			Applied: s.State == goose.StateApplied,
		})
	}
	return out, nil
}

// ErrMigrationsPending is returned, wrapped with the first pending
// migration's name, by Ready when the database's schema is older than this
// build's.
var ErrMigrationsPending = errors.New("migrations pending")

// Ready reports whether the database answers, is still, on SQLite, the file
// at its path, and has every migration applied.
// It returns an error wrapping ErrUnavailable, or ErrMigrationsPending and
// naming the first pending migration.
func (db *DB) Ready(ctx context.Context) error {
	if err := db.file.check(); err != nil {
		return err
	}
	if err := db.Ping(ctx); err != nil {
		return err
	}
	p, err := db.provider(ctx)
	if err != nil {
		return err
	}
	pending, err := p.HasPending(ctx)
	if err != nil {
		return fmt.Errorf("check migrations: %w", translate(err))
	}
	if pending {
		return fmt.Errorf("%w: %s: run orderhook migrate", ErrMigrationsPending, firstPending(ctx, p))
	}
	return nil
}

// firstPending names the first migration p has not applied, and after how
// many more; "some" when p cannot tell.
func firstPending(ctx context.Context, p *goose.Provider) string {
	statuses, err := p.Status(ctx)
	if err != nil {
		return "some"
	}
	for i, s := range statuses {
		if s.State == goose.StateApplied {
			continue
		}
		switch after := len(statuses) - i - 1; after {
		case 0:
			return s.Source.Path
		default:
			return fmt.Sprintf("%s and %d after it", s.Source.Path, after)
		}
	}
	return "some"
}

func (db *DB) provider(ctx context.Context) (*goose.Provider, error) {
	fsys, err := fs.Sub(migrations, "migrations/"+string(db.dialect))
	if err != nil {
		return nil, fmt.Errorf("migrations: %w", err)
	}
	opts := []goose.ProviderOption{goose.WithTableName(migrationTable), goose.WithDisableGlobalRegistry(true)}
	dialect := goose.DialectSQLite3
	if db.dialect == Postgres {
		dialect = goose.DialectPostgres
		locker, err := db.migrationLocker(ctx)
		if err != nil {
			return nil, err
		}
		opts = append(opts, goose.WithSessionLocker(locker))
	}
	p, err := goose.NewProvider(dialect, db.db.DB, fsys, opts...)
	if err != nil {
		return nil, fmt.Errorf("migrations: %w", err)
	}
	return p, nil
}

// migrationLocker returns an advisory session lock keyed by the current
// schema: replicas of one deployment serialize, separate schemas do not.
func (db *DB) migrationLocker(ctx context.Context) (lock.SessionLocker, error) {
	var at struct {
		Schema     sql.NullString `db:"schema"`
		SearchPath string         `db:"search_path"`
	}
	if err := db.db.GetContext(ctx, &at, "SELECT current_schema() AS schema, current_setting('search_path') AS search_path"); err != nil {
		return nil, fmt.Errorf("read schema: %w", translate(err))
	}
	if !at.Schema.Valid {
		// current_schema() is NULL for a schema that is missing and for one
		// the role may not use alike.
		return nil, fmt.Errorf("read schema: the search_path %q names no schema of this database that this role may use: create it (CREATE SCHEMA), grant USAGE on it, or correct search_path", at.SearchPath)
	}
	h := fnv.New64a()
	_, _ = h.Write([]byte("orderhook.migrate." + at.Schema.String))
	return lock.NewPostgresSessionLocker(lock.WithLockID(int64(h.Sum64())), lock.WithLockTimeout(1, 300))
}
