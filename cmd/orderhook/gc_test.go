package main

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/orderhook/orderhook/store"
)

func TestServeGOGCDoublesTheDefaultOnPostgresUnlessTheEnvironmentSetsIt(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		env     string
		dialect store.Dialect
		gogc    string
		set     bool
	}{
		{"", store.Postgres, "200", true},
		{"", store.SQLite, "100", false},
		{"off", store.Postgres, "off", false},
		{"50", store.SQLite, "50", false},
	} {
		getenv := func(k string) string { return map[string]string{"GOGC": c.env}[k] }
		gogc, set := serveGOGC(getenv, c.dialect)
		require.Equal(t, c.gogc, gogc, "GOGC=%q on %s", c.env, c.dialect)
		require.Equal(t, c.set, set, "GOGC=%q on %s", c.env, c.dialect)
	}
}
