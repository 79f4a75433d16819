package webhook

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/rs/zerolog"

	"github.com/orderhook/orderhook/store"
)

// Readiness tells whether the store can take events; *store.DB satisfies it.
type Readiness interface {
	// Ready returns nil when the store is reachable and migrated.
	Ready(ctx context.Context) error
}

// readyTimeout bounds a readiness check, so that a hung database answers
// 503 before the prober gives up.
const readyTimeout = 2 * time.Second

// health is the body of a 200 health answer.
type health struct {
	Status string `json:"status"`
}

// Healthz returns the liveness handler: 200 {"status":"ok"} while the process
// serves HTTP. It never consults the store.
func Healthz() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, health{Status: "ok"})
	})
}

// Readyz returns the readiness handler: 200 {"status":"ready"} when r.Ready
// succeeds within a short timeout, otherwise 503 with Retry-After and a
// store-unavailable problem whose detail says why. It logs each failed check
// to logger, at warn, with its cause; the answer names only pending
// migrations, never the driver's error.
func Readyz(r Readiness, logger zerolog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		ctx, cancel := context.WithTimeout(req.Context(), readyTimeout)
		defer cancel()
		if err := r.Ready(ctx); err != nil {
			logger.Warn().Err(err).Str("request_id", RequestID(req.Context())).Msg("not ready")
			spec := kindStoreUnavailable.spec()
			w.Header().Set("Retry-After", retryAfterSeconds)
			WriteProblem(w, Problem{Type: ProblemTypePrefix + spec.name, Title: spec.title, Status: spec.status, Detail: notReady(err)})
			return
		}
		writeJSON(w, http.StatusOK, health{Status: "ready"})
	})
}

// notReady says why the store is not ready, in words of its own: a
// public answer never carries the driver's (a user name, an address).
// Pending migrations, which an operator fixes by running one command, are
// named; any other cause is in the log.
func notReady(err error) string {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Sprintf("the database did not answer within %s", readyTimeout)
	case errors.Is(err, store.ErrUnavailable):
		return "the database cannot be reached"
	case errors.Is(err, store.ErrMigrationsPending):
		return "the store is not ready: " + err.Error()
	default:
		return "the store is not ready: the server's log has the cause"
	}
}
