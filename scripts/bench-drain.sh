#!/usr/bin/env bash
# bench-drain.sh: how long the reconciler alone takes to apply a stored
# billing run, and the CPU it and PostgreSQL spend on it (BENCHMARKS.md).
# It stores one run with a receiver-only server (bench-runs.sh with
# --role=receiver) into the database ohdrain_stored, then, for each TAG,
# copies it to ohdrain (both dropped first), starts `orderhook serve --role worker` on the
# copy and polls every 100 ms until no event is pending.
#
#   scripts/bench-drain.sh [TAG…]                      # default tags a b c
#   SERVE_FLAGS=--workers=2 scripts/bench-drain.sh w2.1 w2.2
#   KEEP_STORED=1 scripts/bench-drain.sh d e           # reuse the stored run
#
# Environment: BIN (default bin/orderhook, built first when missing),
# BENCH_PG (the PostgreSQL server, default postgres://postgres@127.0.0.1:5432;
# it must run on this machine: its CPU is read from /proc), STORED_SEED
# (the stored run's seed, default 5), STORED_FLAGS (more bench flags for
# the stored run, e.g. --customers 30), BENCH_DRAIN_DB (the copy's name,
# default ohdrain; the stored run's is it with _stored), SERVE_FLAGS (more flags for the
# worker), BENCH_PORT (default 18095), BENCH_OUT (directory for the
# worker's logs, default a new temporary one).
#
# One line per tag: the drain in seconds from the worker's start, the CPU
# seconds of the worker and of PostgreSQL's processes (those that exit
# during the drain are not counted) and the minor page faults of the
# latter.
set -euo pipefail

BIN=${BIN:-bin/orderhook}
PG=${BENCH_PG:-postgres://postgres@127.0.0.1:5432}
PORT=${BENCH_PORT:-18095}
OUT=${BENCH_OUT:-$(mktemp -d -t orderhook-bench-drain-XXXXXX)}
read -r -a serve_flags <<<"${SERVE_FLAGS:-}"
(($# > 0)) || set -- a b c

name=${BENCH_DRAIN_DB:-ohdrain}
admin="$PG/postgres?sslmode=disable"
stored="$PG/${name}_stored?sslmode=disable"
copy="$PG/$name?sslmode=disable"
tick=$(getconf CLK_TCK)

if [[ ! -x $BIN ]]; then
	go build -o "$BIN" ./cmd/orderhook
fi
mkdir -p "$OUT"

if [[ -z ${KEEP_STORED:-} ]]; then
	BIN=$BIN BENCH_DB=$stored BENCH_PORT=$PORT BENCH_OUT=$OUT SERVE_FLAGS=--role=receiver \
		BENCH_FLAGS="--skip-limit --timeout 1s ${STORED_FLAGS:-}" "$(dirname "$0")/bench-runs.sh" "${STORED_SEED:-5}" >"$OUT/stored.txt" 2>&1 || true
fi
pending="SELECT count(*) FROM (SELECT FROM webhook_events WHERE status = 'pending' LIMIT 1) AS one"
stored_n=$(psql -qXAt "$stored" -c "SELECT count(*) FROM webhook_events WHERE status = 'pending'")
if ((stored_n == 0)); then
	echo "bench-drain: ${name}_stored holds no pending event; see $OUT/stored.txt, or run without KEEP_STORED" >&2
	exit 1
fi
echo "stored run: $stored_n pending events (seed ${STORED_SEED:-5})"

# pg_usage prints the CPU ticks and minor faults of PostgreSQL's processes.
pg_usage() {
	local p
	for p in $(pgrep -x postgres); do
		awk '{print $14 + $15, $10}' "/proc/$p/stat" 2>/dev/null || true
	done | awk '{cpu += $1; faults += $2} END {print cpu + 0, faults + 0}'
}

# shellcheck source=scripts/server.sh
source "$(dirname "$0")/server.sh"

export ORDERHOOK_STRIPE_SECRETS=whsec_bench_drain_only_not_a_real_secret
for tag in "$@"; do
	PGOPTIONS="-c client_min_messages=warning" psql -qX "$admin" \
		-c "DROP DATABASE IF EXISTS \"$name\" WITH (FORCE)" -c "CREATE DATABASE \"$name\" TEMPLATE \"${name}_stored\"" >/dev/null
	psql -qX "$copy" -c "CHECKPOINT" -c "VACUUM ANALYZE webhook_events" >/dev/null
	read -r cpu0 faults0 < <(pg_usage)
	t0=$(date +%s.%N)
	"$BIN" serve --db "$copy" --role worker --addr "127.0.0.1:$PORT" "${serve_flags[@]}" >"$OUT/worker.$tag.log" 2>&1 &
	server=$!
	while :; do
		left=$(psql -qXAt -v ON_ERROR_STOP=1 "$copy" -c "$pending")
		((left == 0)) && break
		kill -0 "$server" 2>/dev/null || { echo "bench-drain: the worker exited; see $OUT/worker.$tag.log" >&2; exit 1; }
		sleep 0.1
	done
	t1=$(date +%s.%N)
	read -r cpu1 faults1 < <(pg_usage)
	worker_cpu=$(awk '{print $14 + $15}' "/proc/$server/stat")
	stop_server
	awk -v tag="$tag" -v d="$(echo "$t1 - $t0" | bc)" -v w="$worker_cpu" -v p=$((cpu1 - cpu0)) -v f=$((faults1 - faults0)) -v hz="$tick" \
		'BEGIN {printf "%s  drain %.2f s  worker CPU %.2f s  PostgreSQL CPU %.2f s  its minor faults %d\n", tag, d, w / hz, p / hz, f}'
done
psql -qX "$admin" -c "DROP DATABASE IF EXISTS \"$name\" WITH (FORCE)" >/dev/null
echo "worker logs: $OUT"
