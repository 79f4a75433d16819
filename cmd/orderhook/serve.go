package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/rs/zerolog"
	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/orderhook/orderhook/internal/admin"
	"github.com/orderhook/orderhook/internal/metrics"
	"github.com/orderhook/orderhook/internal/trace"
	"github.com/orderhook/orderhook/reconcile"
	"github.com/orderhook/orderhook/store"
	"github.com/orderhook/orderhook/webhook"
)

// Roles a serve process can take.
const (
	roleAll      = "all"
	roleReceiver = "receiver"
	roleWorker   = "worker"
)

// serveFlags are the values of serve's flags.
type serveFlags struct {
	addr              string
	secrets           []string
	tolerance         time.Duration
	mode              string
	maxBody           string
	workers           int
	batchSize         string
	maxAttempts       int
	dependencyTimeout time.Duration
	customerEvents    []string
	role              string
	adminToken        string
	ingestYield       string
	ingestLoops       string
	ingestMaxLag      time.Duration
}

func serveBindings() []envBinding {
	return []envBinding{
		{"addr", []string{"ORDERHOOK_ADDR"}},
		{"secret", []string{"ORDERHOOK_STRIPE_SECRETS"}},
		{"tolerance", []string{"ORDERHOOK_TOLERANCE"}},
		{"mode", []string{"ORDERHOOK_MODE"}},
		{"max-body", []string{"ORDERHOOK_MAX_BODY"}},
		{"workers", []string{"ORDERHOOK_WORKERS"}},
		{"batch-size", []string{"ORDERHOOK_BATCH_SIZE"}},
		{"max-attempts", []string{"ORDERHOOK_MAX_ATTEMPTS"}},
		{"dependency-timeout", []string{"ORDERHOOK_DEPENDENCY_TIMEOUT"}},
		{"customer-events", []string{"ORDERHOOK_CUSTOMER_EVENTS"}},
		{"role", []string{"ORDERHOOK_ROLE"}},
		{"admin-token", []string{"ORDERHOOK_ADMIN_TOKEN"}},
		{"ingest-yield", []string{"ORDERHOOK_INGEST_YIELD"}},
		{"ingest-loops", []string{"ORDERHOOK_INGEST_LOOPS"}},
		{"ingest-max-lag", []string{"ORDERHOOK_INGEST_MAX_LAG"}},
	}
}

func (a *app) serveCmd() *cobra.Command {
	var f serveFlags
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Receive webhooks on POST /webhooks/stripe and apply them",
		Long: `Serve the webhook endpoint and run the reconciler. Without --db it keeps its
state in ./orderhook.db (SQLite) and needs nothing installed. Without --secret it
generates an ephemeral whsec_ secret and prints it with a ready-to-paste
'orderhook send' line.`,
		Example: `  orderhook serve
  orderhook serve --db postgres://postgres@127.0.0.1:5432/orderhook --secret whsec_…
  stripe listen --forward-to localhost:8080/webhooks/stripe   # then --secret <the whsec_ it prints>`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := a.bindEnv(cmd.Flags(), serveBindings()); err != nil {
				return err
			}
			return a.serve(cmd, f)
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&f.addr, "addr", "127.0.0.1:8080", "address to listen on")
	fs.StringArrayVar(&f.secrets, "secret", nil, "Stripe signing secret whsec_… (repeatable or comma-separated: any one verifies)")
	fs.DurationVar(&f.tolerance, "tolerance", 5*time.Minute, "accepted age of a signature timestamp, either way")
	fs.StringVar(&f.mode, "mode", string(webhook.ModeDefer), "defer: answer 200 once stored; reject: answer 409 while the event's dependency is missing")
	fs.StringVar(&f.maxBody, "max-body", "1MiB", "largest accepted body")
	fs.IntVar(&f.workers, "workers", 4, "concurrent reconciler loops")
	fs.StringVar(&f.batchSize, "batch-size", ingestAuto, "due events a reconciler loop claims and applies in one transaction: auto ("+
		strconv.Itoa(postgresBatchSize)+" on PostgreSQL; on SQLite, where a batch holds back every insert, "+strconv.Itoa(sqliteIngestBatchSize)+
		" while deliveries are being stored and "+strconv.Itoa(sqliteBatchSize)+" otherwise) or a number")
	fs.IntVar(&f.maxAttempts, "max-attempts", 12, "failed attempts before an event is dead")
	fs.DurationVar(&f.dependencyTimeout, "dependency-timeout", 72*time.Hour, "how long an event may wait for its dependency before it is dead")
	fs.StringSliceVar(&f.customerEvents, "customer-events", reconcile.DefaultCustomerEvents, "event types that create the customer other events wait for")
	fs.StringVar(&f.role, "role", roleAll, "all, receiver (HTTP only) or worker (reconciler only)")
	fs.StringVar(&f.adminToken, "admin-token", "", "bearer token of the admin API and page under /admin/ (disabled when empty)")
	fs.StringVar(&f.ingestYield, "ingest-yield", ingestAuto, "how long the reconciler lets deliveries being stored go first, before each batch: auto ("+
		sqliteIngestYield.String()+" on SQLite, where a batch blocks every insert; on PostgreSQL the whole burst, up to --ingest-max-lag), 0 (never) or a duration")
	fs.StringVar(&f.ingestLoops, "ingest-loops", ingestAuto, "how many reconciler loops may apply at once while deliveries are being stored: auto (a quarter of --workers, at least one, on PostgreSQL; "+
		"on SQLite the --ingest-yield turns, one loop), 0 (all of them) or a number")
	fs.DurationVar(&f.ingestMaxLag, "ingest-max-lag", reconcile.DefaultIngestMaxLag, "how long the oldest due event may wait before the reconciler stops letting deliveries go first, until it has caught up")
	envHelp(fs, serveBindings())
	return cmd
}

// serveConfig is serve's validated configuration.
type serveConfig struct {
	serveFlags
	maxBodyBytes int64
	generated    bool           // the secret was generated for this run
	ingestYield  *time.Duration // nil: auto, by the database
	ingestLoops  *int           // nil: auto, by the database
	batchSize    *int           // nil: auto, by the database
	procs        int            // GOMAXPROCS serve runs with
	procsBasis   string         // why
	gogc         string         // GOGC serve runs with
}

// ingestAuto is the default of --ingest-yield, --ingest-loops and
// --batch-size. During a burst the deliveries go first, for at most
// --ingest-max-lag: on SQLite one connection serializes every transaction,
// so each apply batch holds back every acknowledgement, and the loops take
// turns one at a time, after sqliteIngestYield, with small batches
// (sqliteIngestBatchSize: a larger one holds the acknowledgements back for
// longer and applies no sooner); once the deliveries pause, batches of
// sqliteBatchSize apply the backlog with fewer commits (a worker drained
// 10,873 stored events in 5.0–7.4 s instead of 7.1–11.1 s with batches of
// 16, BENCHMARKS.md). On the AMD EPYC machine a 5 ms turn still stored
// 2,344–3,338 deliveries/s and applied a billing run within 1.22–1.35× of
// its ingest time; 100 ms stored 4,066–4,520/s but applied it within
// 1.84–2.13×, past the 1.5× bound (BENCHMARKS.md). On PostgreSQL the two only share the CPU, but a
// batch applied during a burst cost the receiver more than it saved after
// it: a quarter of the loops (at least one) take turns, each waiting for
// the burst to end or --ingest-max-lag, whichever is first, then apply
// postgresBatchSize events at a time, which leaves the receiver the CPU
// during a billing run and applies it all within 1.5× of its ingest time
// (BENCHMARKS.md).
const (
	ingestAuto            = "auto"
	sqliteIngestYield     = 5 * time.Millisecond
	sqliteIngestBatchSize = 16
	sqliteBatchSize       = reconcile.DefaultBatchSize
	postgresBatchSize     = 256
)

// reconcileIngestYield returns the reconciler's IngestYield on dialect.
func (c serveConfig) reconcileIngestYield(dialect store.Dialect) time.Duration {
	switch {
	case c.ingestYield != nil:
		return *c.ingestYield
	case dialect == store.SQLite:
		return sqliteIngestYield
	}
	return c.ingestMaxLag
}

// reconcileBatchSize returns the reconciler's BatchSize on dialect.
func (c serveConfig) reconcileBatchSize(dialect store.Dialect) int {
	switch {
	case c.batchSize != nil:
		return *c.batchSize
	case dialect == store.SQLite:
		return sqliteBatchSize
	}
	return postgresBatchSize
}

// reconcileIngestBatchSize returns the reconciler's IngestBatchSize on
// dialect: sqliteIngestBatchSize on SQLite unless --batch-size is set, and
// otherwise the batch size.
func (c serveConfig) reconcileIngestBatchSize(dialect store.Dialect) int {
	if c.batchSize == nil && dialect == store.SQLite {
		return sqliteIngestBatchSize
	}
	return c.reconcileBatchSize(dialect)
}

// reconcileIngestLoops returns the reconciler's IngestLoops on dialect.
func (c serveConfig) reconcileIngestLoops(dialect store.Dialect) int {
	switch {
	case c.ingestLoops != nil:
		return *c.ingestLoops
	case dialect == store.Postgres:
		return max(1, c.workers/4)
	}
	return 0
}

func (f serveFlags) validate() (serveConfig, error) {
	c := serveConfig{serveFlags: f}
	var err error
	if c.secrets, err = secretList(f.secrets); err != nil {
		return c, err
	}
	for _, s := range c.secrets {
		if !strings.HasPrefix(s, "whsec_") || len(s) == len("whsec_") {
			return c, usagef("--secret: a Stripe signing secret starts with whsec_ (find it in the Dashboard under the endpoint, or in the output of 'stripe listen')")
		}
	}
	if _, port, err := net.SplitHostPort(f.addr); err != nil {
		return c, usagef("--addr %q: use HOST:PORT, e.g. 127.0.0.1:8080 or :8080", f.addr)
	} else if _, err := net.LookupPort("tcp", port); err != nil {
		return c, usagef("--addr %q: the port must be 0 to 65535 (0 picks a free one)", f.addr)
	}
	if f.tolerance <= 0 {
		return c, usagef("--tolerance %s: must be positive, e.g. 5m", f.tolerance)
	}
	if f.mode != string(webhook.ModeDefer) && f.mode != string(webhook.ModeReject) {
		return c, usagef("--mode %q: use defer or reject", f.mode)
	}
	if f.role != roleAll && f.role != roleReceiver && f.role != roleWorker {
		return c, usagef("--role %q: use all, receiver or worker", f.role)
	}
	n, err := humanize.ParseBytes(f.maxBody)
	if err != nil || n == 0 || n > 1<<30 {
		return c, usagef("--max-body %q: use a size between 1B and 1GiB, e.g. 1MiB", f.maxBody)
	}
	c.maxBodyBytes = int64(n)
	if f.workers < 1 || f.maxAttempts < 1 {
		return c, usagef("--workers and --max-attempts must be at least 1")
	}
	if f.ingestMaxLag <= 0 {
		return c, usagef("--ingest-max-lag %s: must be positive, e.g. 10s", f.ingestMaxLag)
	}
	if f.dependencyTimeout <= 0 {
		return c, usagef("--dependency-timeout %s: must be positive, e.g. 72h", f.dependencyTimeout)
	}
	if len(f.customerEvents) == 0 {
		return c, usagef("--customer-events: name at least one event type")
	}
	if f.adminToken != "" && strings.TrimSpace(f.adminToken) == "" {
		return c, usagef("--admin-token is blank: give a token, or none to disable the admin API")
	}
	if f.ingestYield != ingestAuto {
		d, err := time.ParseDuration(f.ingestYield)
		if err != nil || d < 0 {
			return c, usagef("--ingest-yield %q: use auto, 0 or a duration such as 100ms", f.ingestYield)
		}
		c.ingestYield = &d
	}
	if f.batchSize != ingestAuto {
		n, err := strconv.Atoi(f.batchSize)
		if err != nil || n < 1 {
			return c, usagef("--batch-size %q: use auto or a number of events such as 64", f.batchSize)
		}
		c.batchSize = &n
	}
	if f.ingestLoops != ingestAuto {
		n, err := strconv.Atoi(f.ingestLoops)
		if err != nil || n < 0 {
			return c, usagef("--ingest-loops %q: use auto, 0 or a number of loops such as 2", f.ingestLoops)
		}
		c.ingestLoops = &n
	}
	return c, nil
}

func (a *app) serve(cmd *cobra.Command, f serveFlags) error {
	cfg, err := f.validate()
	if err != nil {
		return err
	}
	logger, err := a.globals.logger(a.stderr)
	if err != nil {
		return err
	}
	if len(cfg.secrets) == 0 && cfg.role != roleWorker {
		if cfg.secrets, err = ephemeralSecret(); err != nil {
			return err
		}
		cfg.generated = true
	}
	ctx := cmd.Context()
	// Tracing is configured by the environment: check it before anything
	// is migrated or listened on.
	tr, err := trace.New(ctx, a.getenv, logger)
	if err != nil {
		return usageError{err}
	}
	defer func() {
		shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := tr.Shutdown(shutdownCtx); err != nil {
			logger.Warn().Err(err).Msg("flush traces")
		}
	}()
	db, err := a.globals.openStore(cmd)
	if err != nil {
		return err
	}
	defer db.Close()
	cfg.procs, cfg.procsBasis = serveProcs(a.getenv, a.globals.db, runtime.GOMAXPROCS(0))
	if cfg.procs != runtime.GOMAXPROCS(0) {
		setGOMAXPROCS(cfg.procs)
	}
	var setGC bool
	if cfg.gogc, setGC = serveGOGC(a.getenv, db.Dialect()); setGC {
		setGCPercent(serveGCPercent)
	}
	if _, err := db.Migrate(ctx); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.addr, err)
	}
	defer ln.Close() // the server closes it once it serves; this is for the returns before
	a.printBanner(cfg, ln.Addr().String())
	return a.runServer(ctx, cfg, db, ln, tr, logger)
}

// httpStopGrace is how long a stop waits for the requests under way: longer
// than a delivery's insert may take (a group-commit batch's 10 s).
const httpStopGrace = 15 * time.Second

// runServer serves HTTP on ln and runs the worker until ctx is done, then
// shuts down: stop accepting, finish in-flight requests and transactions.
func (a *app) runServer(ctx context.Context, cfg serveConfig, db *store.DB, ln net.Listener, tr *trace.Tracing, logger zerolog.Logger) error {
	wcfg := reconcile.Config{
		Workers:           cfg.workers,
		BatchSize:         cfg.reconcileBatchSize(db.Dialect()),
		IngestBatchSize:   cfg.reconcileIngestBatchSize(db.Dialect()),
		MaxAttempts:       cfg.maxAttempts,
		DependencyTimeout: cfg.dependencyTimeout,
		CustomerEvents:    cfg.customerEvents,
		IngestYield:       cfg.reconcileIngestYield(db.Dialect()),
		IngestLoops:       cfg.reconcileIngestLoops(db.Dialect()),
		IngestMaxLag:      cfg.ingestMaxLag,
	}
	m, err := metrics.New(metrics.Config{
		EventTypes: slices.Concat(metrics.DefaultEventTypes, cfg.customerEvents),
	}, db, logger)
	if err != nil {
		return err
	}
	wcfg.OnTransition = m.ObserveTransition
	srv, err := newHTTPServer(cfg, wcfg, db, observers{metrics: m, tracing: tr}, logger)
	if err != nil {
		return err
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("serve http: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		<-gctx.Done()
		if ctx.Err() != nil {
			logger.Info().Dur("grace", httpStopGrace).Msg("stopping: answering the requests under way, then ending the worker's transactions")
		}
		shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), httpStopGrace)
		defer cancel()
		err := srv.Shutdown(shutdownCtx)
		if errors.Is(err, context.DeadlineExceeded) {
			// Requests still under way after the grace are clients still
			// sending their body (the read timeout is twice as long), or
			// waiting for a database that does not answer: none of them is
			// acknowledged. Their connections are closed, and a stop is
			// not a failure because of them.
			logger.Warn().Dur("grace", httpStopGrace).Msg("closing the connections of requests still under way")
			return srv.Close()
		}
		return err
	})
	if cfg.role != roleReceiver {
		var st reconcile.Store = db
		if tr.On() {
			st = tr.Store(db)
		}
		worker, err := reconcile.NewWorker(wcfg, st, logger)
		if err != nil {
			return err
		}
		g.Go(func() error { return worker.Run(gctx) })
	}
	logger.Info().Str("addr", ln.Addr().String()).Str("role", cfg.role).Str("db", string(db.Dialect())).
		Str("mode", cfg.mode).Dur("ingest_yield", wcfg.IngestYield).Int("ingest_loops", wcfg.IngestLoops).
		Dur("ingest_max_lag", wcfg.IngestMaxLag).Int("batch_size", wcfg.BatchSize).Int("ingest_batch_size", wcfg.IngestBatchSize).
		Int("procs", cfg.procs).Str("procs_basis", cfg.procsBasis).Str("gogc", cfg.gogc).Bool("tracing", tr.On()).Int("secrets", len(cfg.secrets)).Msg("orderhook serving")
	err = g.Wait()
	logger.Info().Msg("orderhook stopped")
	return err
}

// observers are what serve reports to: the metrics and the tracing.
type observers struct {
	metrics *metrics.Metrics
	tracing *trace.Tracing
}

// newHTTPServer mounts the routes of the contract, behind the request log
// that gives every request an id (and a span, when tracing is on), with
// timeouts that keep a slow client from holding a connection forever. A
// path no route serves, or a method a route does not take, is answered a
// problem like every other error, not net/http's text.
func newHTTPServer(cfg serveConfig, wcfg reconcile.Config, db *store.DB, obs observers, logger zerolog.Logger) (*http.Server, error) {
	mux := http.NewServeMux()
	mux.Handle("/", webhook.NotFound())
	handleGet(mux, "/healthz", webhook.Healthz())
	handleGet(mux, "/readyz", webhook.Readyz(db, logger.With().Str("component", "http").Logger()))
	handleGet(mux, "/metrics", obs.metrics.Handler())
	if cfg.adminToken != "" {
		h, err := admin.NewHandler(admin.Config{Token: cfg.adminToken}, db, logger)
		if err != nil {
			return nil, usageError{fmt.Errorf("--admin-token: %w", err)}
		}
		mux.Handle(admin.PagePrefix, h)
	}
	if cfg.role != roleWorker {
		var inbox webhook.Inbox = db
		if obs.tracing.On() {
			inbox = obs.tracing.Inbox(db)
		}
		var deps webhook.DependencyChecker
		if cfg.mode == string(webhook.ModeReject) {
			deps = reconcile.NewChecker(wcfg, db)
		}
		h, err := webhook.NewHandler(webhook.Config{
			Secrets:   cfg.secrets,
			Tolerance: cfg.tolerance,
			MaxBody:   cfg.maxBodyBytes,
			Mode:      webhook.Mode(cfg.mode),
			Observe:   obs.metrics.ObserveDelivery,
		}, inbox, deps, logger)
		if err != nil {
			return nil, usageError{err}
		}
		mux.Handle("/webhooks/stripe", h)
	}
	var handler http.Handler = mux
	if obs.tracing.On() {
		handler = obs.tracing.Handler(mux)
	}
	return &http.Server{
		Handler:           webhook.RequestLog(handler, logger),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       httpReadTimeout,
		WriteTimeout:      httpWriteTimeout,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
	}, nil
}

// httpReadTimeout bounds the reading of a request, body included. The
// write deadline starts with the request too, so httpWriteTimeout leaves
// room after it: for the 408 of a body that did not arrive in time, and
// for the store's commit (at most 10 s) of one that arrived just in time.
const (
	httpReadTimeout  = 30 * time.Second
	httpWriteTimeout = httpReadTimeout + 15*time.Second
)

// handleGet mounts h on GET (and HEAD) path, and a 405 problem on path's
// other methods: the catch-all "/" would otherwise take them, as a 404.
func handleGet(mux *http.ServeMux, path string, h http.Handler) {
	mux.Handle(http.MethodGet+" "+path, h)
	mux.Handle(path, webhook.MethodNotAllowed(http.MethodGet, http.MethodHead))
}

// printBanner tells a person where the endpoint is and, for a generated
// secret, how to send to it. A worker has no webhook endpoint: its banner
// names the server's root, where /healthz, /readyz and /metrics are.
func (a *app) printBanner(cfg serveConfig, addr string) {
	url := "http://" + addr
	if cfg.role == roleWorker {
		fmt.Fprintf(a.stdout, "orderhook listening on %s (role worker: no webhook endpoint, it applies the inbox; database %s)\n", url, store.Redact(a.globals.db))
		return
	}
	url += "/webhooks/stripe"
	if cfg.generated {
		fmt.Fprintf(a.stdout, "No --secret given: generated an ephemeral signing secret for local use:\n  %s\n", cfg.secrets[0])
		fmt.Fprintf(a.stdout, "Send the sample events:\n  go run ./cmd/orderhook send --url %s --secret %s testdata/events\n", url, cfg.secrets[0])
	}
	fmt.Fprintf(a.stdout, "orderhook listening on %s (role %s, database %s)\n", url, cfg.role, store.Redact(a.globals.db))
}

func ephemeralSecret() ([]string, error) {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("generate secret: %w", err)
	}
	return []string{"whsec_" + hex.EncodeToString(b)}, nil
}
