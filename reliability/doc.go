// Package reliability is the black-box reliability suite: it builds the real
// orderhook binary, runs `orderhook serve` as separate processes against the
// PostgreSQL server of ORDERHOOK_TEST_DATABASE_URL, kills them, cuts their
// database connections and sends them duplicates and garbage, then checks the
// database. The tests carry the build tag `reliability`: run them with
// `go test -race -tags reliability ./reliability/`, and with
// ORDERHOOK_RELIABILITY_SIZE=full for the full size (see RELIABILITY.md).
// This file only documents the package, so that it builds without the tag.
package reliability
