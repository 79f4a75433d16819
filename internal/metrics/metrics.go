// Package metrics exposes orderhook's Prometheus metrics: the receiver's
// requests, the reconciler's transitions and the inbox gauges, plus the Go
// runtime and process collectors, on a registry of its own. The webhook and
// reconcile packages stay free of Prometheus: they report through plain
// hooks (webhook.Config.Observe, reconcile.Config.OnTransition) that
// Metrics.ObserveDelivery and Metrics.ObserveTransition satisfy.
package metrics

import (
	"cmp"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"

	"github.com/orderhook/orderhook/reconcile"
	"github.com/orderhook/orderhook/store"
	"github.com/orderhook/orderhook/webhook"
)

// namespace prefixes every metric of orderhook.
const namespace = "orderhook"

// OtherType is the type label of an event whose type is not in
// Config.EventTypes, so that a label never takes unbounded values.
const OtherType = "other"

// DefaultEventTypes are the event types that get a label of their own: those
// the reconciler applies out of the box. Every other type is counted as
// OtherType.
var DefaultEventTypes = []string{
	"customer.created", "customer.updated", "customer.deleted",
	"customer.subscription.created", "customer.subscription.updated", "customer.subscription.deleted",
	"customer.subscription.paused", "customer.subscription.resumed", "customer.subscription.trial_will_end",
	"invoice.created", "invoice.finalized", "invoice.paid", "invoice.payment_succeeded",
	"invoice.payment_failed", "invoice.voided", "invoice.marked_uncollectible", "invoice.updated",
	"invoice.deleted", "invoice.upcoming",
}

// knownOutcomes are the receiver outcomes that get a label of their own
// (webhook.Outcomes); any other outcome is counted as "other".
var knownOutcomes = func() map[string]bool {
	known := make(map[string]bool)
	for _, o := range webhook.Outcomes() {
		known[o] = true
	}
	return known
}()

// Config configures Metrics. Zero values take the documented defaults.
type Config struct {
	// EventTypes are the event types labelled by name; default
	// DefaultEventTypes plus the reconciler's customer events.
	EventTypes []string
	// InboxTTL is how long the inbox gauges are served from cache before the
	// next scrape queries the database again; default 15s.
	InboxTTL time.Duration
	// InboxTimeout bounds one inbox query; default 3s.
	InboxTimeout time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Metrics holds orderhook's collectors. Its methods are safe for concurrent
// use.
type Metrics struct {
	reg   *prometheus.Registry
	types map[string]bool
	now   func() time.Time

	requests        *prometheus.CounterVec
	requestDuration *prometheus.HistogramVec
	events          *prometheus.CounterVec
	applyDuration   *prometheus.HistogramVec
	releaseLatency  prometheus.Histogram
	endToEnd        *prometheus.HistogramVec
}

// New returns Metrics registered on a fresh registry with the Go runtime
// and process collectors. inbox, when not nil, feeds the inbox gauges. It
// returns an error when a collector cannot be registered.
func New(cfg Config, inbox InboxStats, logger zerolog.Logger) (*Metrics, error) {
	if cfg.InboxTTL < 0 || cfg.InboxTimeout < 0 {
		return nil, errors.New("metrics: durations must not be negative")
	}
	cfg.InboxTTL = cmp.Or(cfg.InboxTTL, 15*time.Second)
	cfg.InboxTimeout = cmp.Or(cfg.InboxTimeout, 3*time.Second)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.EventTypes == nil {
		cfg.EventTypes = slices.Concat(DefaultEventTypes, reconcile.DefaultCustomerEvents)
	}
	m := &Metrics{reg: prometheus.NewRegistry(), types: make(map[string]bool), now: cfg.Now}
	for _, t := range cfg.EventTypes {
		m.types[t] = true
	}
	m.newCollectors()
	cs := []prometheus.Collector{
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.requests, m.requestDuration, m.events, m.applyDuration, m.releaseLatency, m.endToEnd,
	}
	if inbox != nil {
		cs = append(cs, newInboxCollector(inbox, cfg.InboxTTL, cfg.InboxTimeout, cfg.Now, logger))
	}
	for _, c := range cs {
		if err := m.reg.Register(c); err != nil {
			return nil, fmt.Errorf("register metrics: %w", err)
		}
	}
	m.preset()
	return m, nil
}

// latencyBuckets span a fast local apply to a long wait, in seconds.
var latencyBuckets = []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 3600}

func (m *Metrics) newCollectors() {
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Subsystem: "receiver", Name: "requests_total",
		Help: "Webhook deliveries answered, by HTTP status code and outcome.",
	}, []string{"code", "outcome"})
	m.requestDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: namespace, Subsystem: "receiver", Name: "request_duration_seconds",
		Help: "Time to answer a webhook delivery, by outcome.", Buckets: prometheus.DefBuckets,
	}, []string{"outcome"})
	m.events = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Subsystem: "reconciler", Name: "events_total",
		Help: "Committed reconciler transitions, by outcome (applied, deferred, released, failed, dead, ignored) and event type (released: the released event's type).",
	}, []string{"outcome", "type"})
	m.applyDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: namespace, Subsystem: "reconciler", Name: "apply_duration_seconds",
		Help: "Time spent in one processing attempt, by outcome.", Buckets: latencyBuckets,
	}, []string{"outcome"})
	m.releaseLatency = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: namespace, Subsystem: "reconciler", Name: "release_latency_seconds",
		Help:    "From the release of an event by the application of its dependency to the event's own application.",
		Buckets: latencyBuckets,
	})
	m.endToEnd = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: namespace, Subsystem: "reconciler", Name: "end_to_end_lag_seconds",
		Help: "From receipt into the inbox to application, by event type.", Buckets: latencyBuckets,
	}, []string{"type"})
}

// preset creates the series of the expected outcomes at zero, so that rates
// and alerts see them before the first occurrence.
func (m *Metrics) preset() {
	for _, o := range []string{"accepted", "duplicate"} {
		m.requests.WithLabelValues("200", o)
	}
	for _, o := range []string{store.OutcomeApplied, store.OutcomeDeferred, store.OutcomeReleased, store.OutcomeFailed, store.OutcomeDead, store.OutcomeIgnored} {
		m.events.WithLabelValues(o, OtherType)
	}
}

// Registry returns the registry the collectors are registered on.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the metrics in the Prometheus exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// eventType returns the label of an event type: itself when known, else
// OtherType.
func (m *Metrics) eventType(t string) string {
	if m.types[t] {
		return t
	}
	return OtherType
}

// ObserveDelivery records one answered webhook delivery; it has the shape of
// webhook.Config.Observe.
func (m *Metrics) ObserveDelivery(outcome string, status int, d time.Duration) {
	if !knownOutcomes[outcome] {
		outcome = "other"
	}
	m.requests.WithLabelValues(strconv.Itoa(status), outcome).Inc()
	m.requestDuration.WithLabelValues(outcome).Observe(d.Seconds())
}

// ObserveTransition records one committed reconciler transition; it has the
// shape of reconcile.Config.OnTransition.
func (m *Metrics) ObserveTransition(tr reconcile.Transition) {
	typ := m.eventType(tr.Type)
	m.events.WithLabelValues(tr.Outcome, typ).Inc()
	if tr.Duration > 0 {
		m.applyDuration.WithLabelValues(tr.Outcome).Observe(tr.Duration.Seconds())
	}
	if tr.Outcome != store.OutcomeApplied {
		return
	}
	if !tr.Received.IsZero() {
		m.endToEnd.WithLabelValues(typ).Observe(max(tr.At.Add(tr.Duration).Sub(tr.Received), 0).Seconds())
	}
	if tr.ReleasedAt != nil {
		m.releaseLatency.Observe(max(tr.At.Add(tr.Duration).Sub(*tr.ReleasedAt), 0).Seconds())
	}
}
