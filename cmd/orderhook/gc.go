package main

import (
	"runtime/debug"
	"strconv"

	"github.com/orderhook/orderhook/store"
)

// setGCPercent applies serve's choice of GOGC. Tests that serve in their own
// process replace it, so that one test's choice does not change the others'.
var setGCPercent = func(percent int) { debug.SetGCPercent(percent) }

// serveGCPercent is the GOGC serve runs with on PostgreSQL unless the
// environment sets one. serve's live heap is small (about 1 MB while it
// receives), and each delivery churns through about 25 KB that is garbage
// once its batch has committed, half of it lib/pq's buffer for the batch's
// INSERT, which it grows by appending. With Go's default of 100 the heap
// goal stays at its 4 MB floor: the collector ran 188 times in one 12k bench
// run, on the core the receiver shares with its group committer. With 200
// the floor is 8 MB and it ran 66 times, for 5-8 MiB more peak RSS, and on
// PostgreSQL the receiver stored more in 13 of 14 alternating pairs
// (BENCHMARKS.md). On SQLite the heap is larger: 200 cost 15-24 MiB of peak
// RSS there and the receiver stored no more, so it keeps Go's default.
const serveGCPercent = 200

// serveGOGC returns the GOGC serve runs with and whether serve sets it: it
// keeps GOGC when the environment sets it, sets serveGCPercent on
// PostgreSQL, and otherwise keeps Go's default.
func serveGOGC(getenv func(string) string, dialect store.Dialect) (gogc string, set bool) {
	switch {
	case getenv("GOGC") != "":
		return getenv("GOGC"), false
	case dialect == store.Postgres:
		return strconv.Itoa(serveGCPercent), true
	}
	return "100", false
}
