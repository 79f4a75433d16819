package webhook

import (
	"bytes"
	"errors"
	"net/http"
)

// readBody returns the raw body, byte-exact, reading at most the body limit.
// It returns a payload-too-large problem past the limit (the server then
// closes the connection) and a malformed-event problem when the body cannot
// be read to its end, e.g. because the client went away.
func (h *Handler) readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	var buf bytes.Buffer
	if r.ContentLength > 0 { // at most maxBody, checked before
		buf.Grow(int(r.ContentLength) + bytes.MinRead)
	}
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
