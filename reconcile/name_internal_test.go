package reconcile

import (
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// Leases are checked by worker name: two workers left to their default
// name must not share one, on one host or two.
func TestDefaultNamesAreApart(t *testing.T) {
	a, b := defaultName(), defaultName()
	require.NotEqual(t, a, b)
	host, err := os.Hostname()
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(a, host+"-"), a)
}
