package webhook

import (
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/rs/zerolog"
)

// ProblemTypePrefix starts the type URI of every orderhook problem; the
// problem's name follows, e.g. urn:orderhook:problem:invalid-signature.
const ProblemTypePrefix = "urn:orderhook:problem:"

// Problem is an RFC 7807 error body, served as application/problem+json.
type Problem struct {
	Type    string `json:"type"`               // ProblemTypePrefix + name
	Title   string `json:"title"`              // short, the same for every instance of the type
	Status  int    `json:"status"`             // the HTTP status
	Detail  string `json:"detail,omitempty"`   // what went wrong and what to do
	EventID string `json:"event_id,omitempty"` // the event concerned, when known
}

// WriteProblem writes p as an application/problem+json answer with status
// p.Status (500 when zero). Headers such as Allow or Retry-After must be set
// before. A failed write is not reported: the client has gone.
func WriteProblem(w http.ResponseWriter, p Problem) {
	if p.Status == 0 {
		p.Status = http.StatusInternalServerError
	}
	if p.Type == "" {
		p.Type = "about:blank"
	}
	if p.Title == "" {
		p.Title = http.StatusText(p.Status)
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(p.Status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false) // details are read in terminals, not HTML
	_ = enc.Encode(p)
}

// kind is a class of failed delivery: it fixes the status, the problem type
// and the outcome that is logged.
type kind int

const (
	kindMethodNotAllowed kind = iota + 1
	kindPayloadTooLarge
	kindInvalidSignature
	kindStaleSignature
	kindMalformedEvent
	kindDependencyMissing
	kindStoreUnavailable
	kindAbandoned
	kindBodyTimeout
	kindUnreadableBody
	kindEnd // after the last kind
)

// Outcomes of a delivery that the handler logs and passes to
// Config.Observe when it answers 200.
const (
	OutcomeAccepted  = "accepted"
	OutcomeDuplicate = "duplicate"
)

// Outcomes lists every outcome a delivery is logged and observed with:
// OutcomeAccepted, OutcomeDuplicate and one per problem the handler
// answers (malformed, store_unavailable, …).
func Outcomes() []string {
	out := []string{OutcomeAccepted, OutcomeDuplicate}
	for k := kindMethodNotAllowed; k < kindEnd; k++ {
		out = append(out, k.spec().outcome)
	}
	return out
}

// statusClientClosedRequest is nginx's status for a request whose client
// went away before its answer: no answer reaches anyone, and the status is
// for the log and the metrics, which keep it apart from the 5xx of a
// failing store.
const statusClientClosedRequest = 499

// kindSpec is what a kind answers and logs.
type kindSpec struct {
	name    string // problem name, the end of the type URI
	title   string
	status  int
	outcome string // the outcome field of the log line
	level   zerolog.Level
}

func (k kind) spec() kindSpec {
	switch k {
	case kindMethodNotAllowed:
		return kindSpec{"method-not-allowed", "Method not allowed", http.StatusMethodNotAllowed, "method_not_allowed", zerolog.InfoLevel}
	case kindPayloadTooLarge:
		return kindSpec{"payload-too-large", "Payload too large", http.StatusRequestEntityTooLarge, "too_large", zerolog.WarnLevel}
	case kindInvalidSignature:
		return kindSpec{"invalid-signature", "Invalid signature", http.StatusBadRequest, "invalid_signature", zerolog.WarnLevel}
	case kindStaleSignature:
		return kindSpec{"stale-signature", "Signature timestamp outside the tolerance", http.StatusBadRequest, "stale_signature", zerolog.WarnLevel}
	case kindMalformedEvent:
		return kindSpec{"malformed-event", "Malformed event", http.StatusBadRequest, "malformed", zerolog.WarnLevel}
	case kindDependencyMissing:
		return kindSpec{"dependency-missing", "Dependency missing", http.StatusConflict, "dependency_missing", zerolog.InfoLevel}
	case kindAbandoned:
		return kindSpec{"client-closed-request", "Client closed the request", statusClientClosedRequest, "abandoned", zerolog.WarnLevel}
	case kindBodyTimeout:
		return kindSpec{"body-timeout", "Body not received in time", http.StatusRequestTimeout, "body_timeout", zerolog.WarnLevel}
	case kindUnreadableBody:
		return kindSpec{"unreadable-body", "Unreadable body", http.StatusBadRequest, "unreadable_body", zerolog.WarnLevel}
	default:
		return kindSpec{"store-unavailable", "Store unavailable", http.StatusServiceUnavailable, "store_unavailable", zerolog.ErrorLevel}
	}
}

// problemError is a failed delivery: its kind decides the answer, detail is
// shown to the client, and the cause is only logged.
type problemError struct {
	kind   kind
	detail string
	cause  error
}

// problemf returns a problemError of kind k with a formatted detail. cause
// may be nil.
func problemf(k kind, cause error, format string, args ...any) *problemError {
	return &problemError{kind: k, detail: fmt.Sprintf(format, args...), cause: cause}
}

func (e *problemError) Error() string {
	if e.cause == nil {
		return e.kind.spec().name + ": " + e.detail
	}
	return e.kind.spec().name + ": " + e.detail + ": " + e.cause.Error()
}

func (e *problemError) Unwrap() error { return e.cause }
