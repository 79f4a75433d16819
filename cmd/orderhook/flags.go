package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/orderhook/orderhook/store"
)

// defaultDB is the embedded default: a SQLite file in the working directory.
const defaultDB = "sqlite:orderhook.db"

// globalBindings are the variables behind the flags every command has.
func globalBindings() []envBinding {
	return []envBinding{
		{"db", []string{"ORDERHOOK_DB", "DATABASE_URL"}},
		{"log-format", []string{"ORDERHOOK_LOG_FORMAT"}},
		{"log-level", []string{"ORDERHOOK_LOG_LEVEL"}},
	}
}

// globalFlags are the values of the persistent flags.
type globalFlags struct {
	db        string
	logFormat string
	logLevel  string
}

func (g *globalFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&g.db, "db", defaultDB, "database: sqlite:PATH (embedded) or postgres://USER@HOST:PORT/DB")
	fs.StringVar(&g.logFormat, "log-format", "json", "log format: json or console")
	fs.StringVar(&g.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	envHelp(fs, globalBindings())
}

// logger builds the process logger, writing to w.
func (g *globalFlags) logger(w io.Writer) (zerolog.Logger, error) {
	level, err := zerolog.ParseLevel(g.logLevel)
	if err != nil || g.logLevel == "" {
		return zerolog.Logger{}, usagef("--log-level %q: use debug, info, warn or error", g.logLevel)
	}
	switch g.logFormat {
	case "json":
	case "console":
		// Colours only for a terminal: in a file or a pipe the escape
		// codes would be noise (NO_COLOR is honoured by zerolog itself).
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: "15:04:05.000", NoColor: !isTerminal(w)}
	default:
		return zerolog.Logger{}, usagef("--log-format %q: use json or console", g.logFormat)
	}
	return zerolog.New(w).Level(level).With().Timestamp().Logger(), nil
}

// secretList splits each --secret value on commas, as ORDERHOOK_STRIPE_SECRETS
// is split: no Stripe signing secret holds a comma, and two taken as one would
// verify no signature. Entries are trimmed; a blank one is a usage error,
// not dropped.
func secretList(values []string) ([]string, error) {
	var out []string
	for _, v := range values {
		for _, s := range strings.Split(v, ",") {
			if s = strings.TrimSpace(s); s == "" {
				return nil, usagef("--secret has a blank secret (a stray comma?): give each whsec_…")
			}
			out = append(out, s)
		}
	}
	return out, nil
}

// openTimeout bounds connecting to the database at start: a server that
// accepts the connection and never answers would otherwise hold a command,
// serve included, for ever and without a word.
const openTimeout = 10 * time.Second

// openStore opens the configured database within openTimeout; a URL of an
// unknown form, or one that does not parse, is a usage error.
func (g *globalFlags) openStore(cmd *cobra.Command) (*store.DB, error) {
	if !strings.HasPrefix(g.db, "sqlite:") && !strings.HasPrefix(g.db, "postgres://") && !strings.HasPrefix(g.db, "postgresql://") {
		return nil, usagef("--db %q: use sqlite:PATH or postgres://USER@HOST:PORT/DB", store.Redact(g.db))
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), openTimeout)
	defer cancel()
	deadline, _ := ctx.Deadline()
	db, err := store.Open(ctx, g.db)
	switch {
	case errors.Is(err, store.ErrBadURL):
		return nil, usagef("--db: %w", err)
	// The socket's deadline is the context's, and may fail a read a moment
	// before the context itself ends: the clock says which ran out.
	case err != nil && cmd.Context().Err() == nil && !time.Now().Before(deadline):
		return nil, fmt.Errorf("open database: no answer within %s: %w", openTimeout, err)
	case err != nil:
		return nil, fmt.Errorf("open database: %w", err)
	}
	return db, nil
}

// openExisting opens the configured database without creating it: a
// SQLite file that is not there is a usage error, not created, since a
// mistyped --db would otherwise leave an empty database behind and report
// a missing table. serve and migrate create it.
func (g *globalFlags) openExisting(cmd *cobra.Command) (*store.DB, error) {
	if path, ok := store.SQLitePath(g.db); ok {
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			return nil, usagef("--db %s: no such file (serve and migrate create it)", g.db)
		}
	}
	return g.openStore(cmd)
}

// openInbox opens the configured database for a command that reads or
// changes an existing inbox (status, events, dead), as openExisting does,
// and refuses one whose migrations are not all applied, naming the first
// pending one, instead of a query failing on a table or column it lacks.
func (g *globalFlags) openInbox(cmd *cobra.Command) (*store.DB, error) {
	db, err := g.openExisting(cmd)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), openTimeout)
	defer cancel()
	if err := db.Ready(ctx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("database %s: %w", store.Redact(g.db), err)
	}
	return db, nil
}
