package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/orderhook/orderhook/internal/bench"
	"github.com/orderhook/orderhook/internal/deliver"
	"github.com/orderhook/orderhook/reconcile"
	"github.com/orderhook/orderhook/store"
)

// benchBindings are the variables behind bench's flags.
func benchBindings() []envBinding {
	return []envBinding{
		{"url", []string{"ORDERHOOK_BENCH_URL"}},
		{"secret", []string{"ORDERHOOK_STRIPE_SECRETS"}},
	}
}

// benchFlags are the values of bench's flags.
type benchFlags struct {
	cfg        bench.Config
	serveFlags []string
	asJSON     bool
}

func (f *benchFlags) register(flags *pflag.FlagSet) {
	w := &f.cfg.Workload
	flags.StringVar(&f.cfg.URL, "url", "", "webhook endpoint of a running server (default: start orderhook serve on a free port against --db)")
	flags.StringArrayVar(&f.cfg.Secrets, "secret", nil, "signing secret of the server at --url (a started server gets a generated one)")
	flags.IntVar(&w.Customers, "customers", bench.DefaultCustomers, "customers in the billing run, about 10 events each")
	flags.Float64Var(&w.Duplicates, "duplicates", bench.DefaultDuplicates, "extra deliveries of random events, as a fraction of the distinct events")
	flags.IntVar(&w.PayloadBytes, "payload-bytes", bench.DefaultPayloadBytes, "approximate size of each event")
	flags.IntVar(&w.Interleave, "interleave", bench.DefaultInterleave, "customers whose reversed lifecycles are delivered interleaved")
	flags.BoolVar(&w.LateCustomers, "late-customers", false, "hold back the events that create a customer ("+strings.Join(reconcile.DefaultCustomerEvents, ", ")+
		") until every other event is applied or deferred, then deliver them: every event that needs its customer is released (the wait, in which the server applies or defers the events delivered before it, counts in neither ingest nor applied)")
	flags.Uint64Var(&w.Seed, "seed", 0, "workload seed, to repeat a run's order (0: random; the report prints it)")
	flags.IntVar(&f.cfg.Concurrency, "concurrency", bench.DefaultConcurrency, "deliveries in flight, and INSERTs in flight for the engine limit")
	flags.DurationVar(&f.cfg.Timeout, "timeout", bench.DefaultTimeout, "how long to wait, after the last answer, for everything to be applied")
	flags.BoolVar(&f.cfg.SkipLimit, "skip-limit", false, "do not measure the engine limit (plain single-row INSERTs)")
	flags.IntVar(&f.cfg.PID, "pid", 0, "with --url: pid of the server, to read its peak RSS (VmHWM) from /proc")
	flags.StringVar(&f.cfg.MetricsURL, "metrics-url", "", "with --url and no --pid: Prometheus endpoint sampled for the peak RSS (default: /metrics on the host of --url)")
	flags.StringArrayVar(&f.serveFlags, "serve-flag", nil, "without --url: one more flag for the started server, e.g. --serve-flag=--workers=8 (repeatable)")
	flags.BoolVar(&f.asJSON, "json", false, "print the report as JSON")
	envHelp(flags, benchBindings())
}

// validate rejects what the bench would silently default.
func (f *benchFlags) validate() error {
	w := f.cfg.Workload
	external := f.cfg.URL != ""
	switch {
	case external && len(f.cfg.Secrets) == 0:
		return usagef("--url needs the server's signing secret: pass --secret whsec_… or set ORDERHOOK_STRIPE_SECRETS")
	case !external && (f.cfg.PID != 0 || f.cfg.MetricsURL != "" || len(f.cfg.Secrets) > 0):
		return usagef("--pid, --metrics-url and --secret describe a server at --url; without --url bench starts its own")
	case external && len(f.serveFlags) > 0:
		return usagef("--serve-flag configures the server bench starts: drop it, or drop --url")
	case w.Customers < 1:
		return usagef("--customers %d: use 1 or more", w.Customers)
	case !(w.Duplicates >= 0 && w.Duplicates <= 1): // NaN too
		return usagef("--duplicates %g: use a fraction between 0 and 1, e.g. 0.1", w.Duplicates)
	case w.PayloadBytes < 1 || w.Interleave < 1:
		return usagef("--payload-bytes and --interleave must be at least 1")
	case f.cfg.Concurrency < 1:
		return usagef("--concurrency %d: use 1 or more", f.cfg.Concurrency)
	case f.cfg.Timeout <= 0:
		return usagef("--timeout %s: must be positive, e.g. 5m", f.cfg.Timeout)
	case f.cfg.PID < 0:
		return usagef("--pid %d: use the server's process id", f.cfg.PID)
	}
	return nil
}

func (a *app) benchCmd() *cobra.Command {
	var f benchFlags
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure ingest, ack, apply and release latency, and RSS under a billing run, against the engine's limit",
		Long: `Generate a billing run — N customers through the full lifecycle, in Stripe's real
shape, ~3 KB per event — and deliver it signed, in an adversarial order (each
customer's invoices and subscription changes before the customer; customers
interleaved) with duplicates, at concurrency C. Report the ingest rate, the
ack latency, the time until everything is applied, the release latency
(dependency applied → dependent applied), and the server's peak RSS.

In the same run it measures the engine's limit: plain durable single-row
INSERT … ON CONFLICT DO NOTHING of the same payloads, in the same order, into
a scratch copy of webhook_events, at the same concurrency, through the same
driver and connection settings — connections opened and the statement
prepared before the clock starts, as the server's are — and prints the
ingest rate as a ratio of it.

A server that applies a customer's events together applies most of them
without deferring anything, so the default run may release few events. With
--late-customers the events that create a customer are held back until every
other event is applied or deferred, as when Stripe retries a failed
customer.created: every event that needs its customer is deferred, and the
release latency covers all of them.

Without --url it starts ` + "`orderhook serve`" + ` itself on a free port against --db and
reads its peak RSS from /proc. Without --db that is a temporary SQLite file in
$TMPDIR, deleted after: where $TMPDIR is a tmpfs, fsync costs nothing, so pass
--db sqlite:PATH on the disk you would serve from. With --url it measures that
server; --db must be its database.

When the server is on this machine (one it starts, or a --url on a loopback
address), bench runs Go on half the cores, at least one, unless GOMAXPROCS is
set: it stands in for Stripe, whose senders do not share the server's cores.

Exits 0 when every delivery was acknowledged and every event applied, 1
otherwise, 2 on usage errors.`,
		Example: `  orderhook bench
  orderhook bench --db postgres://postgres@127.0.0.1:5432/orderhook?sslmode=disable
  orderhook bench --late-customers --skip-limit
  orderhook bench --url http://127.0.0.1:8080/webhooks/stripe --secret whsec_… --db sqlite:orderhook.db --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := a.bindEnv(cmd.Flags(), benchBindings()); err != nil {
				return err
			}
			if err := f.validate(); err != nil {
				return err
			}
			return a.bench(cmd, &f)
		},
	}
	f.register(cmd.Flags())
	return cmd
}

// bench runs the benchmark against the server at --url, or against one it
// starts, and prints the report.
func (a *app) bench(cmd *cobra.Command, f *benchFlags) (err error) {
	ctx := cmd.Context()
	procs, why := benchProcs(a.getenv, f.cfg.URL, runtime.GOMAXPROCS(0))
	if procs != runtime.GOMAXPROCS(0) {
		setGOMAXPROCS(procs)
	}
	fmt.Fprintf(a.stderr, "bench: load generator on %d of %d cores (%s)\n", procs, runtime.NumCPU(), why)
	target := "server at " + redactURL(f.cfg.URL)
	if f.cfg.URL == "" {
		stop, desc, err := a.startBenchServer(cmd, f)
		if err != nil {
			return err
		}
		defer func() {
			if serr := stop(); serr != nil && err == nil {
				err = serr
			}
		}()
		target = desc
	}
	// The server's database: migrated by it, whether bench started it or not.
	db, err := a.globals.openInbox(cmd)
	if err != nil {
		return err
	}
	defer db.Close()
	f.cfg.Progress = func(stage string, total int) (func(), func()) { return a.sendProgress(total, stage) }
	res, err := bench.Run(ctx, f.cfg, db)
	if err != nil {
		return err
	}
	if f.asJSON {
		err = printJSON(a.stdout, newBenchJSON(target, db.Dialect(), res))
	} else {
		err = printBenchReport(a.stdout, target, db.Dialect(), res)
	}
	if err != nil {
		return err
	}
	return res.Err()
}

// startBenchServer starts `orderhook serve` against --db, or a temporary
// SQLite file when --db was not given, and points the bench at it. It
// returns the function that stops it and a description of it.
func (a *app) startBenchServer(cmd *cobra.Command, f *benchFlags) (stop func() error, desc string, err error) {
	var cleanup []func()
	undo := func() {
		for i := len(cleanup) - 1; i >= 0; i-- {
			cleanup[i]()
		}
	}
	defer func() {
		if err != nil {
			undo()
		}
	}()
	if !cmd.Flags().Changed("db") && a.getenv("ORDERHOOK_DB") == "" && a.getenv("DATABASE_URL") == "" {
		dir, err := os.MkdirTemp("", "orderhook-bench-")
		if err != nil {
			return nil, "", fmt.Errorf("create a temporary database: %w", err)
		}
		cleanup = append(cleanup, func() { _ = os.RemoveAll(dir) })
		a.globals.db = "sqlite:" + filepath.Join(dir, "orderhook.db")
	}
	db, err := a.globals.openStore(cmd) // a bad --db fails here, before a server starts
	if err != nil {
		return nil, "", err
	}
	_ = db.Close()
	secrets, err := ephemeralSecret()
	if err != nil {
		return nil, "", err
	}
	logFile, err := os.CreateTemp("", "orderhook-bench-serve-*.log")
	if err != nil {
		return nil, "", fmt.Errorf("create the server log: %w", err)
	}
	cleanup = append(cleanup, func() { _ = logFile.Close() })
	srv, err := bench.StartServer(cmd.Context(), bench.ServerConfig{DB: a.globals.db, Secret: secrets[0], Args: f.serveFlags, Log: logFile})
	if err != nil {
		return nil, "", fmt.Errorf("%w (server log: %s)", err, logFile.Name())
	}
	f.cfg.URL, f.cfg.Secrets, f.cfg.PID = srv.URL, secrets, srv.PID
	fmt.Fprintf(a.stderr, "bench: started orderhook serve (pid %d) on %s, log %s\n", srv.PID, store.Redact(a.globals.db), logFile.Name())
	stop = func() error {
		defer undo()
		if err := srv.Stop(); err != nil {
			return fmt.Errorf("%w (server log: %s)", err, logFile.Name())
		}
		return os.Remove(logFile.Name())
	}
	return stop, fmt.Sprintf("started server, pid %d", srv.PID), nil
}

// printBenchReport writes the report for people.
func printBenchReport(w io.Writer, target string, dialect store.Dialect, r bench.Result) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	wl := r.Workload
	fmt.Fprintf(tw, "target\t%s, %s (%s)\n", target, dialect, r.Durability)
	fmt.Fprintf(tw, "events\t%s (%s distinct, %s duplicates) · %s customers · concurrency %d · payload ~%s · seed %d\n",
		humanize.Comma(int64(len(wl.Deliveries))), humanize.Comma(int64(wl.Distinct)), humanize.Comma(int64(wl.Duplicates())),
		humanize.Comma(int64(wl.Customers)), r.Concurrency, humanize.Bytes(uint64(wl.PayloadBytes)), wl.Seed)
	if wl.Late > 0 {
		fmt.Fprintf(tw, "held back\t%s deliveries that create a customer, for %s, until the others were applied or deferred\n",
			humanize.Comma(int64(wl.Late)), secs(r.HeldBack))
	}
	fmt.Fprintf(tw, "ingest\t%s ev/s in %s\tack %s\n", rate(r.Ingest.Rate()), secs(r.Ingest.Duration), percentiles(r.Ingest.Latency))
	if failed := r.Ingest.Planned - r.Ingest.Delivered; failed > 0 {
		fmt.Fprintf(tw, "not acked\t%s deliveries, answers %v\n", humanize.Comma(int64(failed)), r.Ingest.Status)
	}
	if r.Limit != nil {
		fmt.Fprintf(tw, "engine limit\t%s ev/s in %s\tINSERT %s · prepared single-row INSERT, same driver, C=%d\n",
			rate(r.Limit.Rate()), secs(r.Limit.Duration), percentiles(r.Limit.Latency), r.Concurrency)
		fmt.Fprintf(tw, "ratio\t%.2f× the engine limit\n", r.Ratio())
	}
	fmt.Fprintf(tw, "applied\t%s\n", appliedLine(r))
	if n := r.Outcome.Release.Count; n > 0 {
		fmt.Fprintf(tw, "release\t%s (n=%s, dependency applied → dependent applied; %s applied in the transaction that released them)\n",
			percentiles(r.Outcome.Release), humanize.Comma(int64(n)), humanize.Comma(int64(r.Outcome.ReleasedAndApplied)))
	} else {
		fmt.Fprintln(tw, "release\tnone: no event was released")
	}
	if r.RSS.PeakBytes > 0 {
		fmt.Fprintf(tw, "server RSS\tpeak %s (%s)\n", humanize.IBytes(uint64(r.RSS.PeakBytes)), r.RSS.Basis)
	} else {
		fmt.Fprintf(tw, "server RSS\t%s\n", r.RSS.Basis)
	}
	return tw.Flush()
}

// appliedLine says whether and when everything was applied.
func appliedLine(r bench.Result) string {
	if r.Applied > 0 {
		return fmt.Sprintf("all %s in %s after the first send (%.2f× the ingest time)",
			humanize.Comma(int64(r.Outcome.Stored)), secs(r.Applied), r.AppliedRatio())
	}
	return fmt.Sprintf("NOT ALL: %s of %s events stored, by status %v",
		humanize.Comma(int64(r.Outcome.Stored)), humanize.Comma(int64(r.Workload.Distinct)), r.Outcome.Counts)
}

// percentiles prints p50, p99 and max.
func percentiles(l deliver.Latency) string {
	return fmt.Sprintf("p50 %s  p99 %s  max %s", ms(l.P50), ms(l.P99), ms(l.Max))
}

// ms prints a duration in milliseconds, to a tenth.
func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)) }

// secs prints a duration in seconds, to a hundredth.
func secs(d time.Duration) string { return fmt.Sprintf("%.2f s", d.Seconds()) }

// rate prints events per second without decimals.
func rate(r float64) string { return humanize.Comma(int64(r + 0.5)) }

// benchJSON is the report of `bench --json`; times are in milliseconds.
type benchJSON struct {
	OK                 bool                 `json:"ok"`
	Target             string               `json:"target"`
	Dialect            store.Dialect        `json:"dialect"`
	Durability         string               `json:"durability"`
	Seed               uint64               `json:"seed"`
	IDPrefix           string               `json:"id_prefix"` // every event id of the run starts with it
	Customers          int                  `json:"customers"`
	Deliveries         int                  `json:"deliveries"`
	Distinct           int                  `json:"distinct"`
	Duplicates         int                  `json:"duplicates"`
	Late               int                  `json:"late_deliveries"` // held back until the others were applied or deferred
	HeldBackMS         float64              `json:"held_back_ms"`
	PayloadBytes       int                  `json:"payload_bytes"`
	Concurrency        int                  `json:"concurrency"`
	Ingest             benchRateJSON        `json:"ingest"`
	Acked              int                  `json:"acked"`
	Status             map[int]int          `json:"status"`
	Limit              *benchRateJSON       `json:"engine_limit"`
	Ratio              float64              `json:"ratio"`
	AppliedAll         bool                 `json:"applied_all"`
	AppliedMS          float64              `json:"applied_ms"`
	AppliedRatio       float64              `json:"applied_ratio"`
	Counts             map[store.Status]int `json:"counts"`
	Release            latencyJSON          `json:"release_ms"`
	ReleasedAndApplied int                  `json:"released_and_applied"` // released events applied by the transaction that released them
	PeakRSSBytes       int64                `json:"peak_rss_bytes"`
	PeakRSSBasis       string               `json:"peak_rss_basis"`
}

// benchRateJSON is a rate with its latencies.
type benchRateJSON struct {
	EventsPerSecond float64     `json:"events_per_second"`
	DurationMS      float64     `json:"duration_ms"`
	Latency         latencyJSON `json:"latency_ms"`
}

func newBenchJSON(target string, dialect store.Dialect, r bench.Result) benchJSON {
	wl := r.Workload
	j := benchJSON{
		OK: r.Err() == nil, Target: target, Dialect: dialect, Durability: r.Durability, Seed: wl.Seed, IDPrefix: wl.IDPrefix(), Customers: wl.Customers,
		Deliveries: len(wl.Deliveries), Distinct: wl.Distinct, Duplicates: wl.Duplicates(), PayloadBytes: wl.PayloadBytes,
		Late: wl.Late, HeldBackMS: msf(r.HeldBack),
		Concurrency: r.Concurrency,
		Ingest:      rateJSON(r.Ingest.Rate(), r.Ingest.Duration, "request", r.Ingest.Latency),
		Acked:       r.Ingest.Delivered, Status: r.Ingest.Status, Ratio: r.Ratio(),
		AppliedAll: r.Applied > 0, AppliedMS: msf(r.Applied), AppliedRatio: r.AppliedRatio(), Counts: r.Outcome.Counts,
		Release:            latencyOf("applied_at - released_at", r.Outcome.Release),
		ReleasedAndApplied: r.Outcome.ReleasedAndApplied,
		PeakRSSBytes:       r.RSS.PeakBytes, PeakRSSBasis: r.RSS.Basis,
	}
	if r.Limit != nil {
		l := rateJSON(r.Limit.Rate(), r.Limit.Duration, "insert", r.Limit.Latency)
		j.Limit = &l
	}
	return j
}

func rateJSON(rate float64, d time.Duration, basis string, l deliver.Latency) benchRateJSON {
	return benchRateJSON{EventsPerSecond: rate, DurationMS: msf(d), Latency: latencyOf(basis, l)}
}

func latencyOf(basis string, l deliver.Latency) latencyJSON {
	return latencyJSON{Basis: basis, Count: l.Count, P50: msf(l.P50), P95: msf(l.P95), P99: msf(l.P99), Max: msf(l.Max)}
}

// msf returns d in milliseconds.
func msf(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
