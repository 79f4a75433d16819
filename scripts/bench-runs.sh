#!/usr/bin/env bash
# bench-runs.sh: BENCHMARKS.md's runs, one per seed. For each seed it
# recreates the PostgreSQL database (or removes the SQLite file), migrates
# it, starts `orderhook serve` apart with its log in a file, waits for
# /healthz, runs `orderhook bench --url … --pid …` against it (the engine
# limit in the same run), and stops the server.
#
#   scripts/bench-runs.sh [SEED…]                       # default seeds 1 2 3
#   BENCH_FLAGS=--late-customers scripts/bench-runs.sh 61 62 63
#   BENCH_DB=sqlite:/var/tmp/ohbench.db BENCH_FLAGS=--skip-limit scripts/bench-runs.sh 64
#
# Environment: BIN (default bin/orderhook, built first when missing),
# BENCH_DB (default postgres://postgres@127.0.0.1:5432/ohbench?sslmode=disable;
# its database is dropped and created), BENCH_FLAGS and SERVE_FLAGS (more
# flags), BENCH_PORT (default 18080), BENCH_OUT (directory for each run's
# report and server log, default a new temporary one). Exits 1 when a run
# failed (bench exits 1 when a delivery was refused or an event not
# applied), after the others.
set -euo pipefail

BIN=${BIN:-bin/orderhook}
DB=${BENCH_DB:-postgres://postgres@127.0.0.1:5432/ohbench?sslmode=disable}
PORT=${BENCH_PORT:-18080}
OUT=${BENCH_OUT:-$(mktemp -d -t orderhook-bench-runs-XXXXXX)}
read -r -a bench_flags <<<"${BENCH_FLAGS:-}"
read -r -a serve_flags <<<"${SERVE_FLAGS:-}"
(($# > 0)) || set -- 1 2 3

if [[ ! -x $BIN ]]; then
	go build -o "$BIN" ./cmd/orderhook
fi
if curl -s -o /dev/null "http://127.0.0.1:$PORT/healthz"; then
	echo "bench-runs: port $PORT is in use; set BENCH_PORT" >&2
	exit 2
fi
mkdir -p "$OUT"

fresh_db() {
	case $DB in
	postgres://* | postgresql://*)
		local name=${DB##*/}
		name=${name%%\?*}
		local admin=${DB%/*}/postgres
		[[ $DB == *\?* ]] && admin+="?${DB#*\?}"
		PGOPTIONS="-c client_min_messages=warning" psql -qX "$admin" -c "DROP DATABASE IF EXISTS \"$name\" WITH (FORCE)" -c "CREATE DATABASE \"$name\"" >/dev/null
		;;
	sqlite:*)
		local path=${DB#sqlite:}
		rm -f "$path" "$path-wal" "$path-shm"
		;;
	*)
		echo "bench-runs: BENCH_DB must be postgres://… or sqlite:PATH" >&2
		exit 2
		;;
	esac
	"$BIN" migrate --db "$DB" >/dev/null
}

# shellcheck source=scripts/server.sh
source "$(dirname "$0")/server.sh"

export ORDERHOOK_STRIPE_SECRETS=whsec_bench_runs_only_not_a_real_secret
failed=()
for seed in "$@"; do
	fresh_db
	"$BIN" serve --db "$DB" --addr "127.0.0.1:$PORT" "${serve_flags[@]}" >"$OUT/serve.$seed.log" 2>&1 &
	server=$!
	for _ in $(seq 100); do
		curl -sf -o /dev/null "http://127.0.0.1:$PORT/healthz" && break
		kill -0 "$server" 2>/dev/null || { echo "bench-runs: serve exited; see $OUT/serve.$seed.log" >&2; exit 1; }
		sleep 0.1
	done
	echo "== seed $seed"
	status=0
	"$BIN" bench --url "http://127.0.0.1:$PORT/webhooks/stripe" --db "$DB" --pid "$server" --seed "$seed" "${bench_flags[@]}" 2>&1 | tee "$OUT/bench.$seed.txt" || status=$?
	stop_server
	if ((status != 0)); then
		echo "bench-runs: seed $seed exited $status" >&2
		failed+=("$seed")
	fi
done
echo "reports and server logs: $OUT"
if ((${#failed[@]} > 0)); then
	echo "bench-runs: failed: seeds ${failed[*]}" >&2
	exit 1
fi
