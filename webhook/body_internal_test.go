package webhook

import (
	"bytes"
	"crypto/rand"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestPresize(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		contentLength int64
		want          int
	}{
		{-1, bytes.MinRead}, // chunked: unknown
		{0, bytes.MinRead},
		{3000, 3000 + bytes.MinRead},
		{maxPresize, maxPresize + bytes.MinRead},
		{maxPresize + 1, maxPresize + bytes.MinRead},
		{DefaultMaxBody, maxPresize + bytes.MinRead},
	} {
		require.Equal(t, tc.want, presize(tc.contentLength), "Content-Length %d", tc.contentLength)
	}
}

// A Content-Length is a claim, not bytes: a body that claims the whole
// limit and brings one byte is read into a buffer of at most maxPresize
// (rounded up by the allocator), not into one of the size claimed.
func TestReadBodyMemoryFollowsTheBytesReceived(t *testing.T) {
	t.Parallel()
	h := &Handler{maxBody: DefaultMaxBody}
	r := httptest.NewRequest(http.MethodPost, "/webhooks/stripe", bytes.NewReader([]byte("{")))
	r.ContentLength = DefaultMaxBody

	body, err := h.readBody(httptest.NewRecorder(), r)

	require.NoError(t, err)
	require.Equal(t, []byte("{"), body)
	require.Less(t, cap(body), 2*maxPresize, "the buffer follows the bytes received, not the Content-Length claimed")
}

// A body larger than the presize, with a Content-Length or chunked, grows
// the buffer and is kept byte-exact.
func TestReadBodyGrowsPastThePresize(t *testing.T) {
	t.Parallel()
	payload := make([]byte, 3*maxPresize+7)
	_, _ = rand.Read(payload)
	h := &Handler{maxBody: DefaultMaxBody}
	for _, contentLength := range []int64{int64(len(payload)), -1} {
		r := httptest.NewRequest(http.MethodPost, "/webhooks/stripe", bytes.NewReader(payload))
		r.ContentLength = contentLength

		body, err := h.readBody(httptest.NewRecorder(), r)

		require.NoError(t, err)
		require.Equal(t, payload, body, "Content-Length %d", contentLength)
	}
}
