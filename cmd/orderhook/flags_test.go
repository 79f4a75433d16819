package main

import (
	"bytes"
	"context"
	"io"
	"path/filepath"
	"strings"
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
	got, err := secretList([]string{"whsec_a, whsec_b", "whsec_c"})
	require.NoError(t, err)
	require.Equal(t, []string{"whsec_a", "whsec_b", "whsec_c"}, got)
	_, err = secretList([]string{"whsec_a", "whsec_c,"})
	require.ErrorContains(t, err, "--secret has a blank secret")
	require.Equal(t, exitUsage, exitCode(err))
	got, err = secretList(nil)
	require.NoError(t, err)
	require.Nil(t, got)
}

// The log flags are global: every command refuses a bad value before it
// does anything, as serve does.
func TestEveryCommandChecksTheLogFlags(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		args []string
		env  map[string]string
		want string
	}{
		"level flag":  {[]string{"--log-level", "loud"}, nil, `--log-level "loud"`},
		"format flag": {[]string{"--log-format", "xml"}, nil, `--log-format "xml"`},
		"level env":   {nil, map[string]string{"ORDERHOOK_LOG_LEVEL": "loud"}, `--log-level "loud"`},
	} {
		path := filepath.Join(t.TempDir(), "orderhook.db")
		args := append(append([]string{}, tc.args...), "migrate", "--db", "sqlite:"+path)
		err := run(context.Background(), args, env(tc.env), strings.NewReader(""), io.Discard, io.Discard)
		require.ErrorContains(t, err, tc.want, name)
		require.Equal(t, exitUsage, exitCode(err), name)
		require.NoFileExists(t, path, name)
	}
}
