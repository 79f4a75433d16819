package main

import (
	"runtime/debug"
	"strconv"
)

// setGCPercent applies serve's choice of GOGC. Tests that serve in their own
// process replace it, so that one test's choice does not change the others'.
var setGCPercent = func(percent int) { debug.SetGCPercent(percent) }

// serveGCPercent is the GOGC serve runs with unless the environment sets
// one. serve's live heap is small (about 1 MB while it receives), and each
// delivery churns through about 25 KB that is garbage once its batch has
// committed, half of it lib/pq's buffer for the batch's INSERT, which it
// grows by appending. With Go's default of 100 the heap goal stays at its
// 4 MB floor: the collector ran 188 times in one 12k bench run, on the core
// the receiver shares with its group committer. With 200 the floor is 8 MB
// and it ran 66 times, for 5-8 MiB more peak RSS, and on PostgreSQL the
// receiver stored more in every alternating pair (BENCHMARKS.md).
const serveGCPercent = 200

// serveGOGC returns the GOGC serve runs with and whether serve sets it: it
// keeps GOGC when the environment sets it, and otherwise sets
// serveGCPercent.
func serveGOGC(getenv func(string) string) (gogc string, set bool) {
	if v := getenv("GOGC"); v != "" {
		return v, false
	}
	return strconv.Itoa(serveGCPercent), true
}
