package metrics_test

import (
	"context"
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/orderhook/orderhook/internal/metrics"
	"github.com/orderhook/orderhook/reconcile"
	"github.com/orderhook/orderhook/store"
)

// emptyInbox answers stats of an empty inbox.
type emptyInbox struct{}

func (emptyInbox) Stats(_ context.Context, now time.Time, _ int) (store.Stats, error) {
	return store.Stats{Now: now, Counts: map[store.Status]int{}}, nil
}

// exposedNames returns every metric name orderhook exposes, with the
// _bucket, _sum and _count series of its histograms, once each collector
// has observed something.
func exposedNames(t *testing.T) map[string]bool {
	t.Helper()
	m, err := metrics.New(metrics.Config{}, emptyInbox{}, zerolog.Nop())
	require.NoError(t, err)
	now := time.Now()
	m.ObserveDelivery("accepted", 200, time.Millisecond)
	m.ObserveTransition(reconcile.Transition{Type: "customer.created", CustomerID: "cus_1", Outcome: store.OutcomeApplied,
		Released: 1, Received: now, At: now, Duration: time.Millisecond})
	m.ObserveTransition(reconcile.Transition{Type: "invoice.paid", CustomerID: "cus_1", Outcome: store.OutcomeApplied,
		Received: now.Add(-time.Second), At: now, Duration: time.Millisecond})
	families, err := m.Registry().Gather()
	require.NoError(t, err)
	names := map[string]bool{}
	for _, f := range families {
		names[f.GetName()] = true
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			names[f.GetName()+suffix] = true
		}
	}
	require.True(t, names["orderhook_reconciler_release_latency_seconds"])
	return names
}

// metricRef finds the orderhook metric names an expression uses.
var metricRef = regexp.MustCompile(`\borderhook_[a-z_]+`)

func requireKnownMetrics(t *testing.T, names map[string]bool, expr string) {
	t.Helper()
	for _, ref := range metricRef.FindAllString(expr, -1) {
		require.True(t, names[ref], "expression %q uses %s, which orderhook does not expose", expr, ref)
	}
}

// The alert rules are validated structurally — the shape Prometheus loads
// and metric names that exist — rather than with Prometheus' rule parser
// (github.com/prometheus/prometheus/model/rulefmt), a dependency far too
// heavy for this module.
func TestMetricsAlertRules(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("../../deploy/prometheus/orderhook.rules.yml")
	require.NoError(t, err)
	var file struct {
		Groups []struct {
			Name  string `yaml:"name"`
			Rules []struct {
				Alert       string            `yaml:"alert"`
				Record      string            `yaml:"record"`
				Expr        string            `yaml:"expr"`
				For         string            `yaml:"for"`
				Labels      map[string]string `yaml:"labels"`
				Annotations map[string]string `yaml:"annotations"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	dec := yaml.NewDecoder(strings.NewReader(string(raw)))
	dec.KnownFields(true)
	require.NoError(t, dec.Decode(&file))
	require.NotEmpty(t, file.Groups)

	names := exposedNames(t)
	alerts := map[string]string{}
	for _, g := range file.Groups {
		require.NotEmpty(t, g.Name)
		require.NotEmpty(t, g.Rules)
		for _, r := range g.Rules {
			require.NotEmpty(t, r.Alert, "every rule is an alert")
			require.Empty(t, r.Record)
			require.NotContains(t, alerts, r.Alert, "alert names are unique")
			require.NotEmpty(t, strings.TrimSpace(r.Expr), r.Alert)
			require.Equal(t, strings.Count(r.Expr, "("), strings.Count(r.Expr, ")"), "%s: unbalanced parentheses", r.Alert)
			if r.For != "" {
				_, err := model.ParseDuration(r.For)
				require.NoError(t, err, r.Alert)
			}
			require.Contains(t, []string{"page", "warn"}, r.Labels["severity"], r.Alert)
			require.NotEmpty(t, r.Annotations["summary"], r.Alert)
			require.NotEmpty(t, r.Annotations["description"], r.Alert)
			requireKnownMetrics(t, names, r.Expr)
			alerts[r.Alert] = r.Expr
		}
	}
	require.Contains(t, alerts["OrderhookDeadEvents"], "orderhook_inbox_dead_rows")
	require.Contains(t, alerts["OrderhookOldestPendingTooOld"], "orderhook_inbox_oldest_pending_age_seconds")
	require.Contains(t, alerts["OrderhookDeferredGrowing"], "orderhook_inbox_deferred_rows")
	require.Contains(t, alerts["OrderhookReceiver5xx"], `code=~"5.."`)
}

func TestMetricsDashboard(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("../../deploy/grafana/orderhook-dashboard.json")
	require.NoError(t, err)
	var dashboard struct {
		UID    string `json:"uid"`
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	require.NoError(t, json.Unmarshal(raw, &dashboard))
	require.Equal(t, "orderhook", dashboard.UID)
	require.NotEmpty(t, dashboard.Panels)
	names := exposedNames(t)
	for _, p := range dashboard.Panels {
		require.NotEmpty(t, p.Targets, p.Title)
		for _, target := range p.Targets {
			requireKnownMetrics(t, names, target.Expr)
		}
	}
}
