package main

import (
	"net"
	"net/url"
	"runtime"
	"strings"
)

// setGOMAXPROCS applies serve's and bench's choice of GOMAXPROCS. Tests
// that serve or bench in their own process replace it, so that one test's
// choice does not slow the others.
var setGOMAXPROCS = runtime.GOMAXPROCS

// serveProcs returns how many cores serve's Go runtime uses, and why. It
// keeps GOMAXPROCS when the environment sets it. For PostgreSQL on this
// machine — a loopback address or a Unix socket — it takes half of Go's
// default, at least one, and leaves the rest to the database: its backends
// need about as much CPU as orderhook does, and a Go runtime that counts on
// every core wakes threads for them to preempt. On two cores shared with
// PostgreSQL the receiver then stored 3,918–4,540 deliveries/s instead of
// 3,235–3,452, and 6,839–6,874 instead of 4,851–5,655 on the Xeon
// (BENCHMARKS.md). Otherwise it is Go's default.
func serveProcs(getenv func(string) string, dbURL string, goDefault int) (int, string) {
	switch {
	case getenv("GOMAXPROCS") != "":
		return goDefault, "GOMAXPROCS"
	case localPostgres(dbURL, getenv("PGHOST")):
		return max(1, goDefault/2), "half, for PostgreSQL on this machine"
	}
	return goDefault, "Go's default"
}

// localPostgres reports whether dbURL is a PostgreSQL URL whose host is on
// this machine: localhost, a loopback address, or a Unix socket directory.
// Without a host in the URL, lib/pq connects to pgHost (PGHOST) or, without
// one, localhost.
func localPostgres(dbURL, pgHost string) bool {
	u, err := url.Parse(dbURL)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return false
	}
	host := u.Hostname()
	if h := u.Query().Get("host"); h != "" {
		host = h
	}
	if host == "" {
		host = pgHost
	}
	return localHost(host)
}

// localHost reports whether host names this machine: empty, localhost, a
// loopback address, or a Unix socket directory.
func localHost(host string) bool {
	if ip := net.ParseIP(host); ip != nil {
		return ip.IsLoopback()
	}
	return host == "" || host == "localhost" || strings.HasPrefix(host, "/")
}

// benchProcs returns how many cores bench's Go runtime uses, and why. The
// load generator stands in for Stripe, whose senders do not share the
// server's cores. When the server it measures is on this machine (the one
// bench starts, for an empty target, or one at a loopback address), it takes
// half of Go's default, at least one, as serve does beside a local database,
// and leaves the rest to the server and its database; the engine limit's
// INSERTs come from the same runtime. It keeps GOMAXPROCS when the
// environment sets it. On two cores, with the limit measured in each run,
// the ingest was higher in nine of ten alternating pairs and the limit in
// nine of ten too (BENCHMARKS.md). Otherwise it is Go's default.
func benchProcs(getenv func(string) string, target string, goDefault int) (int, string) {
	switch {
	case getenv("GOMAXPROCS") != "":
		return goDefault, "GOMAXPROCS"
	case target == "":
		return max(1, goDefault/2), "half, for the server it starts on this machine"
	}
	if u, err := url.Parse(target); err == nil && u.Hostname() != "" && localHost(u.Hostname()) {
		return max(1, goDefault/2), "half, for a server on this machine"
	}
	return goDefault, "Go's default"
}
