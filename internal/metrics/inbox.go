package metrics

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/orderhook/orderhook/store"
)

// InboxStats summarizes the inbox; *store.DB satisfies it.
type InboxStats interface {
	// Stats returns the inbox counts and oldest rows at now, with at most
	// top waiting groups.
	Stats(ctx context.Context, now time.Time, top int) (store.Stats, error)
}

// inboxCollector serves the inbox gauges from a snapshot that is refreshed
// at most once per ttl, whoever scrapes, so that many replicas scraped
// often stay cheap for the database. Concurrent scrapes share one query.
type inboxCollector struct {
	inbox   InboxStats
	ttl     time.Duration
	timeout time.Duration
	now     func() time.Time
	logger  zerolog.Logger

	mu      sync.Mutex
	stats   store.Stats
	fetched time.Time // zero until a query succeeds
	tried   time.Time

	rows, oldestPending, oldestDeferred, deferred, dead, up *prometheus.Desc
}

func newInboxCollector(inbox InboxStats, ttl, timeout time.Duration, now func() time.Time, logger zerolog.Logger) *inboxCollector {
	desc := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(namespace, "inbox", name), help, labels, nil)
	}
	return &inboxCollector{
		inbox: inbox, ttl: ttl, timeout: timeout, now: now,
		logger:         logger.With().Str("component", "metrics").Logger(),
		rows:           desc("rows", "Inbox rows by status.", "status"),
		oldestPending:  desc("oldest_pending_age_seconds", "Age of the oldest pending row; 0 when there is none."),
		oldestDeferred: desc("oldest_deferred_age_seconds", "Age of the oldest deferred row; 0 when there is none."),
		deferred:       desc("deferred_rows", "Rows waiting for a dependency."),
		dead:           desc("dead_rows", "Rows that gave up and wait for an operator."),
		up:             desc("stats_up", "1 when the last inbox query succeeded, 0 when the gauges are stale or missing."),
	}
}

// Describe implements prometheus.Collector.
func (c *inboxCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.rows, c.oldestPending, c.oldestDeferred, c.deferred, c.dead, c.up} {
		ch <- d
	}
}

// Collect implements prometheus.Collector. When the database does not
// answer it serves the last snapshot, if any, with stats_up 0.
func (c *inboxCollector) Collect(ch chan<- prometheus.Metric) {
	s, ok, fresh := c.snapshot()
	up := 0.0
	if fresh {
		up = 1
	}
	ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, up)
	if !ok {
		return
	}
	for _, st := range store.Statuses {
		ch <- prometheus.MustNewConstMetric(c.rows, prometheus.GaugeValue, float64(s.Counts[st]), string(st))
	}
	ch <- prometheus.MustNewConstMetric(c.oldestPending, prometheus.GaugeValue, age(s.OldestPending))
	ch <- prometheus.MustNewConstMetric(c.oldestDeferred, prometheus.GaugeValue, age(s.OldestDeferred))
	ch <- prometheus.MustNewConstMetric(c.deferred, prometheus.GaugeValue, float64(s.Counts[store.StatusDeferred]))
	ch <- prometheus.MustNewConstMetric(c.dead, prometheus.GaugeValue, float64(s.Counts[store.StatusDead]))
}

func age(o *store.OldestEvent) float64 {
	if o == nil {
		return 0
	}
	return o.Age().Seconds()
}

// snapshot returns the cached stats, refreshing them when older than ttl.
// ok says whether any stats are known; fresh whether the last query worked.
// A failed query is not retried before ttl either, so a database outage
// costs one timed-out query per ttl.
func (c *inboxCollector) snapshot() (s store.Stats, ok, fresh bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if c.tried.IsZero() || now.Sub(c.tried) >= c.ttl {
		c.tried = now
		// Collect gets no context from the registry: the timeout bounds the
		// query instead.
		ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
		stats, err := c.inbox.Stats(ctx, now, 1)
		cancel()
		if err != nil {
			c.logger.Warn().Err(err).Msg("inbox stats for metrics")
		} else {
			c.stats, c.fetched = stats, now
		}
	}
	return c.stats, !c.fetched.IsZero(), !c.fetched.IsZero() && c.fetched.Equal(c.tried)
}
