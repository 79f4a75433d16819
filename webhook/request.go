package webhook

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"time"

	"github.com/rs/zerolog"
)

// RequestIDHeader carries a request's id, in the answer and, when a proxy
// set one, in the request.
const RequestIDHeader = "X-Request-Id"

type requestKey struct{}

// request is what RequestLog shares with the handler of one request.
type request struct {
	id     string
	logged bool // the handler logged the request's line itself
}

// RequestID returns the id RequestLog gave the request of ctx, or "".
func RequestID(ctx context.Context) string {
	if req, ok := ctx.Value(requestKey{}).(*request); ok {
		return req.id
	}
	return ""
}

// loggedByHandler records that the handler logged the line of the request
// of ctx, with its id, so that RequestLog logs its own at debug level only.
func loggedByHandler(ctx context.Context) {
	if req, ok := ctx.Value(requestKey{}).(*request); ok {
		req.logged = true
	}
}

// RequestLog wraps next so that every request gets an id — the caller's
// X-Request-Id when it is a short printable token, else a random one —
// returned in the X-Request-Id answer header and available to handlers
// through RequestID, and one log line with the method, path, status,
// duration and id: at info, but at debug for /healthz, /readyz and
// /metrics, which machines poll, and for a webhook delivery, which the Handler logs once, with
// the id, its outcome and any error. It never logs headers, query strings or
// bodies.
func RequestLog(next http.Handler, logger zerolog.Logger) http.Handler {
	logger = logger.With().Str("component", "http").Logger()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		id := r.Header.Get(RequestIDHeader)
		if !validRequestID(id) {
			id = newRequestID()
		}
		w.Header().Set(RequestIDHeader, id)
		sw := &statusWriter{ResponseWriter: w}
		req := &request{id: id}
		next.ServeHTTP(sw, r.WithContext(context.WithValue(r.Context(), requestKey{}, req)))
		status := sw.status
		if status == 0 {
			status = http.StatusOK
		}
		level := zerolog.InfoLevel
		if quietPath(r.URL.Path) || req.logged {
			level = zerolog.DebugLevel
		}
		logger.WithLevel(level).Str("request_id", id).Str("method", r.Method).Str("path", r.URL.Path).
			Int("status", status).Dur("duration", time.Since(start)).Msg("http request")
	})
}

// quietPath reports whether path is polled by machines, whose requests are
// logged at debug level.
func quietPath(path string) bool {
	switch path {
	case "/healthz", "/readyz", "/metrics":
		return true
	}
	return false
}

// validRequestID accepts ids of 1 to 64 characters of [A-Za-z0-9._-], so
// that a caller cannot inject anything into the logs.
func validRequestID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, c := range []byte(id) {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.'
		if !ok {
			return false
		}
	}
	return true
}

// newRequestID returns 16 random hex digits.
func newRequestID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on supported platforms
	return hex.EncodeToString(b)
}

// statusWriter remembers the status a handler answered.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
