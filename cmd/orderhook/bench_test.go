package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/require"

	"github.com/orderhook/orderhook/reconcile"
	"github.com/orderhook/orderhook/store"
	"github.com/orderhook/orderhook/store/storetest"
)

// actAsOrderhook makes the test binary run as orderhook itself, so that
// `bench` without --url can start `orderhook serve` from os.Executable().
const actAsOrderhook = "ORDERHOOK_TEST_ACT_AS_ORDERHOOK"

func TestMain(m *testing.M) {
	if os.Getenv(actAsOrderhook) == "1" {
		main()
	}
	if err := os.Setenv(actAsOrderhook, "1"); err != nil { // inherited by the servers bench starts
		panic(err)
	}
	// The servers the tests run in this process keep its GOMAXPROCS and GOGC.
	setGOMAXPROCS = func(int) int { return runtime.GOMAXPROCS(0) }
	setGCPercent = func(int) {}
	os.Exit(m.Run())
}

// benchReport is the part of `bench --json` the tests check.
type benchReport struct {
	OK         bool    `json:"ok"`
	Target     string  `json:"target"`
	Dialect    string  `json:"dialect"`
	Durability string  `json:"durability"`
	IDPrefix   string  `json:"id_prefix"`
	Customers  int     `json:"customers"`
	Deliveries int     `json:"deliveries"`
	Distinct   int     `json:"distinct"`
	Duplicates int     `json:"duplicates"`
	Payload    int     `json:"payload_bytes"`
	Late       int     `json:"late_deliveries"`
	HeldBackMS float64 `json:"held_back_ms"`
	Ingest     struct {
		Rate    float64     `json:"events_per_second"`
		Latency latencyJSON `json:"latency_ms"`
	} `json:"ingest"`
	Acked  int            `json:"acked"`
	Status map[string]int `json:"status"`
	Limit  *struct {
		Rate    float64     `json:"events_per_second"`
		Latency latencyJSON `json:"latency_ms"`
	} `json:"engine_limit"`
	Ratio              float64        `json:"ratio"`
	AppliedAll         bool           `json:"applied_all"`
	AppliedMS          float64        `json:"applied_ms"`
	AppliedRatio       float64        `json:"applied_ratio"`
	Counts             map[string]int `json:"counts"`
	Release            latencyJSON    `json:"release_ms"`
	ReleasedAndApplied int            `json:"released_and_applied"`
	PeakRSS            int64          `json:"peak_rss_bytes"`
	PeakRSSBasis       string         `json:"peak_rss_basis"`
}

func runBench(t *testing.T, getenv func(string) string, args ...string) (benchReport, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := run(context.Background(), append([]string{"bench", "--json"}, args...), getenv, strings.NewReader(""), &out, &errOut)
	require.NoError(t, err, "bench: %s %s", out.String(), errOut.String())
	var rep benchReport
	require.NoError(t, json.Unmarshal(out.Bytes(), &rep), out.String())
	return rep, errOut.String()
}

// requireConsistent checks what every complete run with --late-customers
// reports.
func requireConsistent(t *testing.T, rep benchReport, customers int) {
	t.Helper()
	require.True(t, rep.OK)
	require.Equal(t, customers, rep.Customers)
	require.GreaterOrEqual(t, rep.Distinct, 8*customers, "every lifecycle has at least 8 events")
	require.Equal(t, rep.Distinct+rep.Duplicates, rep.Deliveries)
	require.InDelta(t, 0.1*float64(rep.Distinct), rep.Duplicates, 1)
	require.Equal(t, rep.Deliveries, rep.Acked)
	require.Equal(t, map[string]int{"200": rep.Deliveries}, rep.Status)
	require.InDelta(t, 3000, rep.Payload, 300)
	require.Positive(t, rep.Ingest.Rate)
	require.Equal(t, rep.Deliveries, rep.Ingest.Latency.Count, "both parts of the delivery")
	require.True(t, rep.AppliedAll)
	require.Positive(t, rep.AppliedMS)
	require.Positive(t, rep.AppliedRatio)
	require.Equal(t, rep.Distinct, rep.Counts["applied"]+rep.Counts["ignored"])
	require.Positive(t, rep.Counts["applied"])

	require.GreaterOrEqual(t, rep.Late, 2*customers, "customer.created and customer.subscription.created at least")
	require.Positive(t, rep.HeldBackMS)
	require.Positive(t, rep.Release.Count)
	require.LessOrEqual(t, rep.Release.P50, rep.Release.P99)
	require.Positive(t, rep.ReleasedAndApplied, "released events are applied by the transaction that releases them")
	require.LessOrEqual(t, rep.ReleasedAndApplied, rep.Release.Count)
}

// requireAllReleased checks that every event of a --late-customers run that
// needs its customer was released; db is the server's database.
func requireAllReleased(t *testing.T, rep benchReport, db *store.DB) {
	t.Helper()
	var needCustomer int
	query, args, err := sqlx.In(`SELECT count(*) FROM webhook_events WHERE event_id LIKE ? AND type NOT IN (?)`,
		rep.IDPrefix+"%", reconcile.DefaultCustomerEvents)
	require.NoError(t, err)
	require.NoError(t, db.SQLX().Get(&needCustomer, db.SQLX().Rebind(query), args...))
	require.Positive(t, needCustomer)
	require.Equal(t, needCustomer, rep.Release.Count, "every event that needs its customer is deferred, then released")
}

// Against a running server, on both engines: every delivery acknowledged,
// every event applied, the engine limit measured and the ratio computed.
func TestBenchAgainstARunningServer(t *testing.T) {
	t.Parallel()
	storetest.Dialects(t, func(t *testing.T, dbURL string) {
		const secret = "whsec_bench"
		srv := startServe(t, env(nil), "--db", dbURL, "--secret", secret)
		db := storetest.Open(t, dbURL)
		rep, _ := runBench(t, env(map[string]string{"ORDERHOOK_STRIPE_SECRETS": secret, "ORDERHOOK_DB": dbURL}),
			"--url", srv.url, "--customers", "8", "--concurrency", "4", "--late-customers", "--pid", strconv.Itoa(os.Getpid()))
		requireConsistent(t, rep, 8)
		requireAllReleased(t, rep, db)
		require.Equal(t, strings.Split(dbURL, ":")[0], rep.Dialect)
		if rep.Dialect == "sqlite" {
			require.Equal(t, "journal_mode=wal synchronous=FULL", rep.Durability)
		} else {
			require.Contains(t, rep.Durability, "synchronous_commit=")
		}
		require.NotNil(t, rep.Limit)
		require.Positive(t, rep.Limit.Rate)
		require.Equal(t, rep.Deliveries, rep.Limit.Latency.Count, "one INSERT per delivery")
		require.InDelta(t, rep.Ingest.Rate/rep.Limit.Rate, rep.Ratio, 1e-9)
		require.Positive(t, rep.PeakRSS)
		require.Contains(t, rep.PeakRSSBasis, "VmHWM")

		var tables int
		// This test's schema only: other packages' tests run at the same time
		// on the same server, with scratch tables of their own.
		query := `SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema() AND table_name LIKE 'bench_limit%'`
		if strings.HasPrefix(dbURL, "sqlite:") {
			query = `SELECT count(*) FROM sqlite_master WHERE name LIKE 'bench_limit%'`
		}
		require.NoError(t, db.SQLX().Get(&tables, query))
		require.Zero(t, tables, "the scratch table is dropped")

		again, _ := runBench(t, env(map[string]string{"ORDERHOOK_STRIPE_SECRETS": secret, "ORDERHOOK_DB": dbURL}),
			"--url", srv.url, "--customers", "4", "--concurrency", "2", "--late-customers", "--skip-limit", "--metrics-url", strings.TrimSuffix(srv.url, "/webhooks/stripe")+"/metrics")
		requireConsistent(t, again, 4)
		requireAllReleased(t, again, db)
		require.Nil(t, again.Limit, "a second run in the same database counts only its own events")
		require.Zero(t, again.Ratio)
		require.Positive(t, again.PeakRSS)
		require.Contains(t, again.PeakRSSBasis, "process_resident_memory_bytes")
	})
}

// Without --url, bench starts `orderhook serve` on a temporary SQLite file,
// reads its peak RSS from /proc and stops it.
func TestBenchStartsItsOwnServer(t *testing.T) {
	t.Parallel()
	rep, stderr := runBench(t, env(nil), "--customers", "6", "--concurrency", "4", "--late-customers", "--serve-flag=--workers=2")
	requireConsistent(t, rep, 6)
	require.Contains(t, rep.Target, "started server")
	require.Equal(t, "sqlite", rep.Dialect)
	require.Contains(t, stderr, "bench: started orderhook serve")
	require.Positive(t, rep.PeakRSS)
	require.Contains(t, rep.PeakRSSBasis, "VmHWM")
}

// The report for people names every measurement.
func TestBenchPrintsAReport(t *testing.T) {
	t.Parallel()
	dbURL := storetest.SQLiteURL(t)
	srv := startServe(t, env(nil), "--db", dbURL, "--secret", "whsec_report")
	var out, errOut bytes.Buffer
	err := run(context.Background(), []string{"bench", "--url", srv.url, "--secret", "whsec_report", "--db", dbURL,
		"--customers", "4", "--concurrency", "2", "--duplicates", "0.5", "--pid", strconv.Itoa(os.Getpid())},
		env(nil), strings.NewReader(""), &out, &errOut)
	require.NoError(t, err, "%s %s", out.String(), errOut.String())
	for _, want := range []string{"target ", "synchronous=FULL", "events ", "distinct", "ingest ", "ev/s", "ack p50", "engine limit ", "ratio ",
		"× the engine limit", "applied ", "all ", "× the ingest time", "release ", "server RSS ", "VmHWM"} {
		require.Contains(t, out.String(), want)
	}
}

// A run that is not acknowledged and applied in full still prints its
// report, and exits 1.
func TestBenchFailsWhenEventsAreRejected(t *testing.T) {
	t.Parallel()
	dbURL := storetest.SQLiteURL(t)
	srv := startServe(t, env(nil), "--db", dbURL, "--secret", "whsec_right")
	var out, errOut bytes.Buffer
	err := run(context.Background(), []string{"bench", "--json", "--url", srv.url, "--secret", "whsec_wrong", "--db", dbURL, "--customers", "2", "--skip-limit"},
		env(nil), strings.NewReader(""), &out, &errOut)
	require.ErrorContains(t, err, "bench run incomplete")
	require.Equal(t, exitProblems, exitCode(err))
	var rep benchReport
	require.NoError(t, json.Unmarshal(out.Bytes(), &rep), out.String())
	require.False(t, rep.OK)
	require.Zero(t, rep.Acked)
	require.Equal(t, map[string]int{"400": rep.Deliveries}, rep.Status)
	require.False(t, rep.AppliedAll)
}

func TestBenchRejectsBadUsage(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--url", "http://127.0.0.1:1/webhooks/stripe"}, "needs the server's signing secret"},
		{[]string{"--pid", "1"}, "without --url bench starts its own"},
		{[]string{"--url", "http://127.0.0.1:1/webhooks/stripe", "--secret", "whsec_x", "--serve-flag=--workers=2"}, "--serve-flag configures the server bench starts"},
		{[]string{"--duplicates", "2"}, "--duplicates 2"},
		{[]string{"--duplicates", "NaN"}, "--duplicates NaN"},
		{[]string{"--concurrency", "0"}, "--concurrency 0"},
		{[]string{"--customers", "0"}, "--customers 0"},
		{[]string{"--timeout", "0s"}, "--timeout 0s"},
		{[]string{"--db", "mysql://x"}, "use sqlite:PATH or postgres://"},
		{[]string{"--url", "http://127.0.0.1:1/webhooks/stripe", "--secret", "whsec_x", "--db", "sqlite:/nonexistent-orderhook-dir/typo.db"}, "typo.db: no such file"},
		{[]string{"extra"}, "unknown command"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			t.Parallel()
			err := run(context.Background(), append([]string{"bench"}, tc.args...), env(nil), strings.NewReader(""), &bytes.Buffer{}, &bytes.Buffer{})
			require.ErrorContains(t, err, tc.want)
			require.Equal(t, exitUsage, exitCode(err))
		})
	}
}
