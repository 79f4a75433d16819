package main

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestConsoleLogWithoutTerminalHasNoColour(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	g := globalFlags{logFormat: "console", logLevel: "info"}
	logger, err := g.logger(&buf)
	require.NoError(t, err)

	logger.Error().Str("event_id", "evt_1").Msg("apply failed")

	require.Contains(t, buf.String(), "event_id=evt_1")
	require.NotContains(t, buf.String(), "\x1b[", "ANSI escape codes in a log that is not a terminal")
}

func TestSecretList(t *testing.T) {
	t.Parallel()
	require.Equal(t, []string{"whsec_a", "whsec_b", "whsec_c", ""},
		secretList([]string{"whsec_a, whsec_b", "whsec_c,"}))
	require.Nil(t, secretList(nil))
}
