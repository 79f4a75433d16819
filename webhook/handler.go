// Package webhook is orderhook's HTTP receiver for Stripe webhooks. A Handler
// caps the body, verifies the Stripe-Signature over the raw bytes against
// every configured secret, reads the event envelope of any API version, and
// answers 2xx only once the event is committed to the inbox. Every other
// answer is an RFC 7807 problem, decided and logged in one place. The package
// also serves the health endpoints, Healthz and Readyz, and the problem
// answers of a server's other paths, NotFound and MethodNotAllowed.
package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"time"

	"github.com/rs/zerolog"

	"github.com/orderhook/orderhook/internal/stripeevent"
	"github.com/orderhook/orderhook/store"
)

// Inbox stores verified events; *store.DB satisfies it.
type Inbox interface {
	// InsertEvent commits ev unless an event with its id is stored, and
	// reports whether it inserted it.
	InsertEvent(ctx context.Context, ev store.Event) (inserted bool, err error)
}

// DependencyChecker is consulted in reject mode only, after the event is
// stored: it returns the dependency the event still waits for, such as
// "customer:cus_123", or "" when nothing is missing.
type DependencyChecker interface {
	MissingDependency(ctx context.Context, ev store.Event) (string, error)
}

// Handler receives Stripe deliveries on POST /webhooks/stripe. It is safe for
// concurrent use.
type Handler struct {
	secrets   []string
	tolerance time.Duration
	maxBody   int64
	mode      Mode
	now       func() time.Time
	inbox     Inbox
	deps      DependencyChecker
	observe   func(outcome string, status int, d time.Duration)
	logger    zerolog.Logger
}

// NewHandler returns a Handler that stores verified events in inbox. deps is
// needed in reject mode and never called in defer mode. It returns an error
// listing every setting to fix when cfg cannot work (no secret, a secret
// without the whsec_ prefix, a tolerance or body limit that is not positive,
// an unknown mode) or when a needed dependency is nil.
func NewHandler(cfg Config, inbox Inbox, deps DependencyChecker, logger zerolog.Logger) (*Handler, error) {
	cfg = cfg.withDefaults()
	err := cfg.validate()
	if inbox == nil {
		err = errors.Join(err, errors.New("no inbox: pass the store the events go to"))
	}
	if cfg.Mode == ModeReject && deps == nil {
		err = errors.Join(err, errors.New("reject mode needs a DependencyChecker: pass one or use defer mode"))
	}
	if err != nil {
		return nil, errors.Join(errors.New("webhook: invalid configuration"), err)
	}
	return &Handler{
		secrets:   slices.Clone(cfg.Secrets),
		tolerance: cfg.Tolerance,
		maxBody:   cfg.MaxBody,
		mode:      cfg.Mode,
		now:       cfg.Now,
		inbox:     inbox,
		deps:      deps,
		observe:   cfg.Observe,
		logger:    logger.With().Str("component", "webhook").Logger(),
	}, nil
}

// delivery is what one request has revealed so far: what its answer and its
// log line can say.
type delivery struct {
	start       time.Time
	env         stripeevent.Envelope // zero until the body is parsed
	secretIndex int                  // -1 until a secret verifies the body
	inserted    bool                 // false for a duplicate
}

// ServeHTTP receives one delivery. It answers 200 {"status":"accepted"} or
// {"status":"duplicate"} only after the event is committed; otherwise a
// problem: 405 method-not-allowed, 413 payload-too-large, 400
// invalid-signature, stale-signature, malformed-event or unreadable-body,
// 408 body-timeout, 409 dependency-missing (reject mode; the event is
// stored) or 503 store-unavailable with Retry-After. A client that goes away
// before its answer gets none; the delivery is logged and observed as
// abandoned with nginx's 499. The signature timestamp must be within the
// tolerance of now in the past and in the future alike: a timestamp too far
// ahead is answered stale-signature too.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	d := delivery{start: time.Now(), secretIndex: -1}
	if err := h.receive(w, r, &d); err != nil {
		h.fail(w, r, d, err)
		return
	}
	h.succeed(w, r, d)
}

// receive runs the checks of a delivery in order and stores the event. It
// returns a *problemError for every answer but 200, and fills d as it learns.
func (h *Handler) receive(w http.ResponseWriter, r *http.Request, d *delivery) error {
	if r.Method != http.MethodPost {
		return problemf(kindMethodNotAllowed, nil, "%s is not accepted: Stripe events are POSTed to this endpoint", r.Method)
	}
	if r.ContentLength > h.maxBody {
		return h.tooLarge()
	}
	sig, err := readSignature(r.Header.Values(signatureHeaderName))
	if err != nil {
		return err
	}
	body, err := h.readBody(w, r)
	if err != nil {
		return err
	}
	if d.secretIndex, err = h.verify(body, sig); err != nil {
		return err
	}
	if d.env, err = stripeevent.Parse(body); err != nil {
		return problemf(kindMalformedEvent, nil, "%s: post the event exactly as Stripe sends it", err.Error())
	}
	return h.commit(r.Context(), inboxRow(d.env, body, h.now(), d.secretIndex), d)
}

// commit stores ev and, in reject mode, asks whether it has to wait. It
// returns a store-unavailable problem when either fails, a
// client-closed-request problem when either gave up because the client went
// away, and a dependency-missing problem when the event waits.
func (h *Handler) commit(ctx context.Context, ev store.Event, d *delivery) error {
	inserted, err := h.inbox.InsertEvent(ctx, ev)
	switch {
	case clientLeft(ctx, err):
		return problemf(kindAbandoned, err,
			"event %s is not acknowledged: the client went away while it was being stored, and it may or may not be stored; a redelivery is stored once", ev.ID)
	case err != nil:
		return problemf(kindStoreUnavailable, err,
			"event %s is not acknowledged: the store failed (%s), and it may or may not be stored; retry in a few seconds, a duplicate is stored once (Stripe retries by itself)", ev.ID, storeFailure(err))
	}
	d.inserted = inserted
	if h.mode != ModeReject {
		return nil
	}
	dep, err := h.deps.MissingDependency(ctx, ev)
	switch {
	case clientLeft(ctx, err):
		return problemf(kindAbandoned, err,
			"event %s is stored, but the client went away before it could be told whether the event waits for a dependency", ev.ID)
	case err != nil:
		return problemf(kindStoreUnavailable, err,
			"event %s is stored, but whether it waits for a dependency could not be checked: retry in a few seconds", ev.ID)
	case dep != "":
		return problemf(kindDependencyMissing, nil,
			"event %s is stored and waits for %s, which has not arrived yet; it will be applied when %s arrives: retry later", ev.ID, dep, dep)
	}
	return nil
}

// clientLeft reports whether err is a store call giving up because the
// request's client went away: net/http cancels the request's context when
// its connection closes. A store failure of its own stays one, even when
// the client has gone too.
func clientLeft(ctx context.Context, err error) bool {
	return errors.Is(err, context.Canceled) && errors.Is(ctx.Err(), context.Canceled)
}

// storeFailure says why the store failed without the driver's words, which
// are logged instead.
func storeFailure(err error) string {
	if errors.Is(err, store.ErrUnavailable) {
		return "the database is unavailable"
	}
	return "the cause is in the server log"
}

// accepted is the body of a 200 answer.
type accepted struct {
	Status  string `json:"status"` // accepted or duplicate
	EventID string `json:"event_id"`
}

// succeed answers 200 for a committed event and logs it.
func (h *Handler) succeed(w http.ResponseWriter, r *http.Request, d delivery) {
	outcome := OutcomeAccepted
	if !d.inserted {
		outcome = OutcomeDuplicate
	}
	writeJSON(w, http.StatusOK, accepted{Status: outcome, EventID: d.env.ID})
	h.log(r, zerolog.InfoLevel, d, outcome, http.StatusOK, nil)
}

// fail is the one place that turns an error from receive into an answer and
// a log line. An error that is not a *problemError cannot prove the event
// was stored, so it is answered 503 like a store failure.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, d delivery, err error) {
	var pe *problemError
	if !errors.As(err, &pe) {
		pe = problemf(kindStoreUnavailable, err, "the event was not acknowledged: retry in a few seconds")
	}
	spec := pe.kind.spec()
	switch pe.kind {
	case kindMethodNotAllowed:
		w.Header().Set("Allow", http.MethodPost)
	case kindStoreUnavailable:
		w.Header().Set("Retry-After", retryAfterSeconds)
	}
	WriteProblem(w, Problem{
		Type:    ProblemTypePrefix + spec.name,
		Title:   spec.title,
		Status:  spec.status,
		Detail:  pe.detail,
		EventID: d.env.ID,
	})
	h.log(r, spec.level, d, spec.outcome, spec.status, pe)
}

// retryAfterSeconds is the Retry-After of a 503: long enough for a database
// failover to progress, short enough for a quick recovery.
const retryAfterSeconds = "5"

// log writes the one line of a delivery, with the request id RequestLog
// gave it, and reports the delivery to Config.Observe. It never logs the
// payload, the signature header or a secret.
func (h *Handler) log(r *http.Request, level zerolog.Level, d delivery, outcome string, status int, err error) {
	elapsed := time.Since(d.start)
	if h.observe != nil {
		h.observe(outcome, status, elapsed)
	}
	e := h.logger.WithLevel(level)
	if id := RequestID(r.Context()); id != "" {
		e = e.Str("request_id", id)
		loggedByHandler(r.Context())
	}
	if d.env.ID != "" {
		e = e.Str("event_id", d.env.ID)
	}
	if d.env.Type != "" {
		e = e.Str("type", d.env.Type)
	}
	if d.env.CustomerID != "" {
		e = e.Str("customer_id", d.env.CustomerID)
	}
	if d.secretIndex >= 0 {
		e = e.Int("secret_index", d.secretIndex)
	}
	if err != nil {
		e = e.Err(err)
	}
	e.Str("outcome", outcome).Int("status", status).Dur("duration", elapsed).Msg("webhook delivery " + outcome)
}

// writeJSON writes v as a JSON answer with the given status. A failed write
// is not reported: the client has gone.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}
