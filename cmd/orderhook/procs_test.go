package main

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestServeProcsLeavesHalfTheCoresToALocalPostgres(t *testing.T) {
	t.Parallel()
	requireProcsOf8(t, serveProcs, map[string]int{
		"postgres://postgres@127.0.0.1:5432/orderhook?sslmode=disable": 4,
		"postgresql://postgres@localhost/orderhook":                    4,
		"postgres://postgres@[::1]:5432/orderhook":                     4,
		"postgres:///orderhook":                                        4,
		"postgres://postgres@/orderhook?host=/var/run/postgresql":      4,
		"postgres://postgres@db.internal:5432/orderhook":               8,
		"postgres://postgres@10.0.0.7:5432/orderhook":                  8,
		"postgres://postgres@db.internal/orderhook?host=127.0.0.1":     4,
		"sqlite:orderhook.db":                                          8,
	})
	pgHost := func(k string) string { return map[string]string{"PGHOST": "db.internal"}[k] }
	got, _ := serveProcs(pgHost, "postgres:///orderhook", 8)
	require.Equal(t, 8, got, "no host in the URL: PGHOST's")
	got, _ = serveProcs(pgHost, "postgres://127.0.0.1/orderhook", 8)
	require.Equal(t, 4, got, "a host in the URL wins over PGHOST")
	requireProcsBounds(t, serveProcs, "postgres://postgres@127.0.0.1/orderhook")
}

// procsRule is serveProcs or benchProcs.
type procsRule func(getenv func(string) string, target string, goDefault int) (int, string)

// requireProcsOf8 checks the cores procs gives each target out of Go's
// default of 8, with no GOMAXPROCS set.
func requireProcsOf8(t *testing.T, procs procsRule, want map[string]int) {
	t.Helper()
	for target, n := range want {
		got, _ := procs(func(string) string { return "" }, target, 8)
		require.Equal(t, n, got, target)
	}
}

// requireProcsBounds checks what serve's and bench's rules share, for a
// target that is on this machine: at least one core, and GOMAXPROCS from the
// environment kept.
func requireProcsBounds(t *testing.T, procs procsRule, local string) {
	t.Helper()
	got, _ := procs(func(string) string { return "" }, local, 1)
	require.Equal(t, 1, got, "at least one")
	got, why := procs(func(k string) string { return map[string]string{"GOMAXPROCS": "8"}[k] }, local, 8)
	require.Equal(t, 8, got, "GOMAXPROCS set: kept")
	require.Equal(t, "GOMAXPROCS", why)
}

func TestBenchProcsLeavesHalfTheCoresToALocalServer(t *testing.T) {
	t.Parallel()
	requireProcsOf8(t, benchProcs, map[string]int{
		"":                                          4, // the server bench starts
		"http://127.0.0.1:8080/webhooks/stripe":     4,
		"http://localhost:8080/webhooks/stripe":     4,
		"http://[::1]:8080/webhooks/stripe":         4,
		"https://hooks.example.com/webhooks/stripe": 8,
		"http://10.0.0.7:8080/webhooks/stripe":      8,
	})
	requireProcsBounds(t, benchProcs, "")
}
