package webhook

import (
	"bytes"
	"errors"
	"net/http"
)

// maxPresize bounds what readBody allocates for a body before its bytes
// arrive. A Content-Length is only a claim: 1,000 connections that each
// claimed 1 MiB and sent one byte held 1 GiB when the buffer took the claim
// at its word. Stripe's events are a few KB; a larger body grows the buffer
// as its bytes arrive.
const maxPresize = 64 << 10

// presize returns the capacity readBody starts with for a body whose
// Content-Length is contentLength (-1 when unknown): the body and the read
// that finds its end, up to maxPresize and that read.
func presize(contentLength int64) int {
	return int(min(max(contentLength, 0), maxPresize)) + bytes.MinRead
}

// readBody returns the raw body, byte-exact, reading at most the body limit.
// Its memory grows with the bytes received, not with the Content-Length
// claimed. It returns a payload-too-large problem past the limit (the server
// then closes the connection) and a malformed-event problem when the body
// cannot be read to its end, e.g. because the client went away.
func (h *Handler) readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	var buf bytes.Buffer
	buf.Grow(presize(r.ContentLength))
	_, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, h.maxBody))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		return nil, h.tooLarge()
	case err != nil:
		return nil, problemf(kindMalformedEvent, err, "the body could not be read to its end: send the event again")
	}
	return buf.Bytes(), nil
}

// tooLarge is the problem of a body over the limit.
func (h *Handler) tooLarge() error {
	return problemf(kindPayloadTooLarge, nil,
		"the body is larger than the limit of %d bytes: raise --max-body (ORDERHOOK_MAX_BODY) if your Stripe events are this large", h.maxBody)
}
