package main

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestServeGOGCDoublesTheDefaultUnlessTheEnvironmentSetsIt(t *testing.T) {
	t.Parallel()
	for env, want := range map[string]struct {
		gogc string
		set  bool
	}{
		"":    {"200", true},
		"off": {"off", false},
		"50":  {"50", false},
	} {
		getenv := func(k string) string { return map[string]string{"GOGC": env}[k] }
		gogc, set := serveGOGC(getenv)
		require.Equal(t, want.gogc, gogc, "GOGC=%q", env)
		require.Equal(t, want.set, set, "GOGC=%q", env)
	}
}
