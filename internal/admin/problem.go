package admin

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/orderhook/orderhook/store"
	"github.com/orderhook/orderhook/webhook"
)

// Errors of the API itself, before the store is asked.
var (
	errUnauthorized = errors.New("missing or wrong bearer token: send Authorization: Bearer <the --admin-token value>")
	errRoute        = errors.New("no such admin API route: see the README for the routes")
)

// methodNotAllowed is a route asked with a method it does not take.
type methodNotAllowed struct{ allow []string }

func (e methodNotAllowed) Error() string {
	return fmt.Sprintf("this route takes %s only", strings.Join(e.allow, " or "))
}

// badRequest is an error in how the API was called.
type badRequest struct{ err error }

func (e badRequest) Error() string { return e.err.Error() }
func (e badRequest) Unwrap() error { return e.err }

// fail maps err to a status and problem type, and is the one place that
// decides what is logged: only unexpected errors, with their cause.
func (h *handler) fail(w http.ResponseWriter, r *http.Request, err error, eventID string) {
	var br badRequest
	var mna methodNotAllowed
	p := webhook.Problem{Detail: err.Error(), EventID: eventID}
	switch {
	case errors.As(err, &mna):
		w.Header().Set("Allow", strings.Join(mna.allow, ", "))
		p.Status, p.Type, p.Title = http.StatusMethodNotAllowed, "method-not-allowed", "Method not allowed"
	case errors.Is(err, errUnauthorized):
		w.Header().Set("WWW-Authenticate", `Bearer realm="orderhook-admin"`)
		p.Status, p.Type, p.Title = http.StatusUnauthorized, "unauthorized", "Unauthorized"
	case errors.Is(err, errRoute):
		p.Status, p.Type, p.Title = http.StatusNotFound, "not-found", "No such route"
	case errors.As(err, &br), errors.Is(err, store.ErrInvalidInput):
		p.Status, p.Type, p.Title = http.StatusBadRequest, "invalid-request", "Invalid request"
	case errors.Is(err, store.ErrNotFound):
		p.Status, p.Type, p.Title = http.StatusNotFound, "event-not-found", "Event not found"
		if eventID != "" {
			p.Detail = fmt.Sprintf("no event %s in the inbox", eventID)
		}
	case errors.Is(err, store.ErrLeased):
		p.Status, p.Type, p.Title = http.StatusConflict, "event-leased", "Event is being processed"
	case errors.Is(err, store.ErrConflict):
		p.Status, p.Type, p.Title = http.StatusConflict, "event-state-conflict", "Event is not in a state that allows this"
	case errors.Is(err, store.ErrUnavailable):
		w.Header().Set("Retry-After", "5")
		p.Status, p.Type, p.Title = http.StatusServiceUnavailable, "store-unavailable", "Database unavailable"
		p.Detail = "the database cannot be reached; retry shortly"
		h.logger.Warn().Err(err).Str("path", r.URL.Path).Msg("store unavailable")
	default:
		p.Status, p.Type, p.Title = http.StatusInternalServerError, "internal-error", "Internal error"
		p.Detail = "the request failed unexpectedly; the cause is in the server log"
		h.logger.Error().Err(err).Str("method", r.Method).Str("path", r.URL.Path).Str("event_id", eventID).Msg("admin request failed")
	}
	p.Type = webhook.ProblemTypePrefix + p.Type
	w.Header().Set("Cache-Control", "no-store")
	webhook.WriteProblem(w, p)
}

// writeJSON writes v as a 200 JSON answer.
func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(v) // the client went away: nothing left to tell it
}
