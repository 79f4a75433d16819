package webhook

import (
	"bytes"
	"errors"
	"net"
	"net/http"
	"os"
	"syscall"
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
// claimed. When the body cannot be read to its end it returns the problem
// unreadBody says.
func (h *Handler) readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	var buf bytes.Buffer
	buf.Grow(presize(r.ContentLength))
	if _, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, h.maxBody)); err != nil {
		return nil, h.unreadBody(err)
	}
	return buf.Bytes(), nil
}

// unreadBody returns the problem of a body that err kept from being read to
// its end: payload-too-large past the limit (the server then closes the
// connection); body-timeout when it did not arrive within the server's
// read timeout; client-closed-request when the connection was reset or a
// stop closed it; unreadable-body when it ended before its length (the
// client may have gone, or only stopped sending: it may read the answer)
// or its framing is broken. None of them is a malformed event: that is a
// whole, signed body that is no Stripe event.
func (h *Handler) unreadBody(err error) error {
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		return h.tooLarge()
	case errors.Is(err, os.ErrDeadlineExceeded):
		return problemf(kindBodyTimeout, err, "the body did not arrive within the server's read timeout, and nothing was stored: send the event again")
	case connectionEnded(err):
		return problemf(kindAbandoned, err, "the connection ended before the body did, and nothing was stored: send the event again")
	}
	return problemf(kindUnreadableBody, err, "the body could not be read to its end (it ended before its length, or its framing is broken; the cause is in the server log), and nothing was stored: send the event again")
}

// connectionEnded reports whether err is the end of a body's connection
// before the body's end, with no one left to answer: reset by the client,
// or closed by a stop. A body that just ends early is not: its client may
// have only stopped sending.
func connectionEnded(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, net.ErrClosed)
}

// tooLarge is the problem of a body over the limit.
func (h *Handler) tooLarge() error {
	return problemf(kindPayloadTooLarge, nil,
		"the body is larger than the limit of %d bytes: raise --max-body (ORDERHOOK_MAX_BODY) if your Stripe events are this large", h.maxBody)
}
