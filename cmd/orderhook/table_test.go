package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orderhook/orderhook/store"
	"github.com/orderhook/orderhook/store/storetest"
)

func TestFmtAge(t *testing.T) {
	t.Parallel()
	for d, want := range map[time.Duration]string{
		-time.Second:                     "0s",
		59 * time.Second:                 "59s",
		time.Minute + 30*time.Second:     "1m",
		2*time.Hour + 5*time.Minute:      "2h05m",
		47*time.Hour + 59*time.Minute:    "47h59m",
		3*24*time.Hour + 4*time.Hour + 1: "3d04h",
	} {
		require.Equal(t, want, fmtAge(d), d)
	}
}

func TestClipAndTable(t *testing.T) {
	t.Parallel()
	require.Equal(t, "abc", clip("abc", 3))
	require.Equal(t, "ab…", clip("abcd", 3))
	var b bytes.Buffer
	tb := newTable(&b, "A", "LONGER")
	tb.row("x\ty", "multi\nline")
	require.NoError(t, tb.flush())
	require.Equal(t, "A    LONGER\nx y  multi line\n", b.String())
}

// opsT is the fixed time of the CLI fixtures.
var opsT = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// opsCLI runs orderhook in-process against one migrated database.
type opsCLI struct {
	url string
	db  *store.DB
}

func newOpsCLI(t *testing.T, url string) opsCLI {
	t.Helper()
	return opsCLI{url: url, db: storetest.Open(t, url)}
}

// run runs `orderhook args… --db URL` with stdin and USER=ops, and returns
// what it printed.
func (c opsCLI) run(stdin string, args ...string) (stdout, stderr string, err error) {
	var out, errOut bytes.Buffer
	getenv := func(k string) string { return map[string]string{"USER": "ops"}[k] }
	err = run(context.Background(), append(args, "--db", c.url), getenv, strings.NewReader(stdin), &out, &errOut)
	return out.String(), errOut.String(), err
}

// requireExit checks the exit code run's error maps to.
func requireExit(t *testing.T, want int, err error) {
	t.Helper()
	require.Equal(t, want, exitCode(err), "error: %v", err)
}
