package admin

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/orderhook/orderhook/internal/jsonfield"
	"github.com/orderhook/orderhook/store"
)

// maxBody bounds request bodies.
const maxBody = 1 << 20

// status answers GET status[?top=N]: store.Stats.
func (h *handler) status(w http.ResponseWriter, r *http.Request) {
	top, err := intParam(r.URL.Query(), "top")
	if err != nil {
		h.fail(w, r, err, "")
		return
	}
	s, err := h.store.Stats(r.Context(), h.now(), top)
	if err != nil {
		h.fail(w, r, err, "")
		return
	}
	writeJSON(w, s)
}

// listEvents answers GET events and GET dead (fixed to dead rows) with a
// store.EventPage; the query holds the filter and the cursor.
func (h *handler) listEvents(fixed []store.Status) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		f, err := parseFilter(q, h.now())
		if err == nil && fixed != nil {
			if len(f.Statuses) > 0 {
				err = badRequest{errors.New("status: this listing is fixed to dead events; use /admin/api/events?status=… for others")}
			}
			f.Statuses = fixed
		}
		if err == nil {
			f.Limit, err = limitParam(q)
		}
		if err != nil {
			h.fail(w, r, err, "")
			return
		}
		f.Cursor = q.Get("cursor")
		page, err := h.store.ListEvents(r.Context(), f)
		if err != nil {
			h.fail(w, r, err, "")
			return
		}
		writeJSON(w, page)
	}
}

// showEvent answers GET events/{id}: store.EventDetail.
func (h *handler) showEvent(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	d, err := h.store.EventDetail(r.Context(), id)
	if err != nil {
		h.fail(w, r, err, id)
		return
	}
	writeJSON(w, d)
}

// payload answers GET events/{id}/payload with the raw body Stripe sent.
func (h *handler) payload(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	d, err := h.store.EventDetail(r.Context(), id)
	if err != nil {
		h.fail(w, r, err, id)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(d.Event.Payload) // the client went away: nothing left to tell it
}

// replayRequest is the optional body of POST events/{id}/replay.
type replayRequest struct {
	Force  bool   `json:"force"`
	DryRun bool   `json:"dry_run"`
	Reason string `json:"reason"`
}

// replayEvent answers POST events/{id}/replay[?force=true] with a
// store.ReplayResult, or with the problem that refused it.
func (h *handler) replayEvent(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	var req replayRequest
	err := decode(r, &req, true)
	if err == nil && r.URL.Query().Has("force") {
		req.Force, err = strconv.ParseBool(r.URL.Query().Get("force"))
		if err != nil {
			err = badRequest{fmt.Errorf("force=%q: use true or false", r.URL.Query().Get("force"))}
		}
	}
	if err != nil {
		h.fail(w, r, err, id)
		return
	}
	res, err := h.store.Replay(r.Context(), store.ReplayParams{
		IDs: []string{id}, Force: req.Force, DryRun: req.DryRun, Actor: Actor, Reason: req.Reason, Now: h.now(),
	})
	if err == nil && len(res.Refused) > 0 {
		err = res.Refused[0].Err
	}
	if err != nil {
		h.fail(w, r, err, id)
		return
	}
	h.audit("replay", res.Replayed, req.DryRun, req.Reason).Str("event_id", id).Bool("force", req.Force).Msg("replayed event")
	writeJSON(w, res)
}

// deadReplayRequest is the body of POST dead/replay: ids, or all with an
// optional filter.
type deadReplayRequest struct {
	IDs        []string                  `json:"ids"`
	All        bool                      `json:"all"`
	Types      jsonfield.Field[[]string] `json:"types"`
	CustomerID jsonfield.Field[string]   `json:"customer_id"`
	Since      jsonfield.Field[string]   `json:"since"`
	Until      jsonfield.Field[string]   `json:"until"`
	DryRun     bool                      `json:"dry_run"`
	Reason     string                    `json:"reason"`
}

// filter returns the request's filter as query values, the keys parseFilter
// reads, with only the fields that were sent. A field sent null or blank is
// an error: taken as no filter, it would widen "all" to every dead event.
func (req *deadReplayRequest) filter() (url.Values, error) {
	q := url.Values{}
	if t := req.Types; t.Sent {
		if t.Null || len(t.Value) == 0 || slices.ContainsFunc(t.Value, func(t string) bool { return strings.Trim(t, " ,") == "" }) {
			return nil, badRequest{errors.New(`"types" is null, empty or has a blank entry: name each type, or leave "types" out to replay every dead event`)}
		}
		q["type"] = t.Value
	}
	for _, f := range []struct {
		field, key string
		value      jsonfield.Field[string]
	}{{"customer_id", "customer", req.CustomerID}, {"since", "since", req.Since}, {"until", "until", req.Until}} {
		if !f.value.Sent {
			continue
		}
		if f.value.Null || strings.TrimSpace(f.value.Value) == "" {
			return nil, badRequest{fmt.Errorf("%q is null or blank: give a value, or leave %q out to replay every dead event", f.field, f.field)}
		}
		q.Set(f.key, f.value.Value)
	}
	return q, nil
}

// replayDead answers POST dead/replay with a store.ReplayResult; named
// events that were refused are listed in it.
func (h *handler) replayDead(w http.ResponseWriter, r *http.Request) {
	var req deadReplayRequest
	p, err := h.deadReplayParams(r, &req)
	if err != nil {
		h.fail(w, r, err, "")
		return
	}
	res, err := h.store.Replay(r.Context(), p)
	if err != nil {
		h.fail(w, r, err, "")
		return
	}
	h.audit("replay", res.Replayed, req.DryRun, req.Reason).Strs("event_ids", req.IDs).Int("matched", res.Matched).Int("refused", len(res.Refused)).Msg("replayed dead events")
	writeJSON(w, res)
}

func (h *handler) deadReplayParams(r *http.Request, req *deadReplayRequest) (store.ReplayParams, error) {
	if err := decode(r, req, false); err != nil {
		return store.ReplayParams{}, err
	}
	q, err := req.filter()
	switch {
	case err != nil:
		return store.ReplayParams{}, err
	case len(req.IDs) > 0 && req.All:
		return store.ReplayParams{}, badRequest{errors.New(`send "ids" or "all": true, not both`)}
	case len(req.IDs) == 0 && !req.All:
		return store.ReplayParams{}, badRequest{errors.New(`send "ids" to replay named events, or "all": true (with optional filters) to replay every matching dead event`)}
	case len(req.IDs) > 0 && len(q) > 0:
		return store.ReplayParams{}, badRequest{errors.New(`filters apply to "all": true only`)}
	}
	f, err := parseFilter(q, h.now())
	if err != nil {
		return store.ReplayParams{}, err
	}
	f.Statuses = []store.Status{store.StatusDead}
	return store.ReplayParams{IDs: req.IDs, Filter: f, DryRun: req.DryRun, Actor: Actor, Reason: req.Reason, Now: h.now()}, nil
}

// discardRequest is the body of POST dead/discard.
type discardRequest struct {
	IDs    []string `json:"ids"`
	Reason string   `json:"reason"`
}

// discard answers POST dead/discard with a store.DiscardResult.
func (h *handler) discard(w http.ResponseWriter, r *http.Request) {
	var req discardRequest
	err := decode(r, &req, false)
	if err == nil && (len(req.IDs) == 0 || strings.TrimSpace(req.Reason) == "") {
		err = badRequest{errors.New(`send "ids" and a "reason": the reason is kept in the event's history`)}
	}
	if err != nil {
		h.fail(w, r, err, "")
		return
	}
	res, err := h.store.Discard(r.Context(), store.DiscardParams{IDs: req.IDs, Reason: req.Reason, Actor: Actor, Now: h.now()})
	if err != nil {
		h.fail(w, r, err, "")
		return
	}
	h.audit("discard", len(res.Discarded), false, req.Reason).Strs("event_ids", res.Discarded).Int("refused", len(res.Refused)).Msg("discarded events")
	writeJSON(w, res)
}

// audit starts the log line that records an operator action.
func (h *handler) audit(action string, n int, dryRun bool, reason string) *zerolog.Event {
	return h.logger.Info().Str("actor", Actor).Str("action", action).Int("events", n).Bool("dry_run", dryRun).Str("reason", reason)
}

// decode reads a JSON body into v; unknown fields are an error, so that a
// typo never silently widens a bulk operation.
func decode(r *http.Request, v any, optional bool) error {
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if optional && errors.Is(err, io.EOF) {
			return nil
		}
		return badRequest{fmt.Errorf("request body: %w", err)}
	}
	// One object and nothing after it: a second, or garbage, would be
	// silently dropped.
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return badRequest{errors.New("request body: one JSON object, with nothing after it")}
	}
	return nil
}

// filterKeys are the query parameters parseFilter reads.
var filterKeys = []string{"status", "type", "customer", "since", "until"}

// parseFilter reads status, type, customer, since and until from q. Lists may
// repeat or be comma-separated; times are RFC 3339, a date, or a duration
// before now ("24h"). A parameter given blank ("customer=") is an error, as
// the CLI's blank flag is: taken as no filter, it would list every event.
func parseFilter(q url.Values, now time.Time) (store.EventFilter, error) {
	var f store.EventFilter
	for _, key := range filterKeys {
		if q.Has(key) && len(list(q[key])) == 0 {
			return f, badRequest{fmt.Errorf("%s is blank: give a value, or leave %s out", key, key)}
		}
	}
	for _, s := range list(q["status"]) {
		f.Statuses = append(f.Statuses, store.Status(s))
	}
	f.Types = list(q["type"])
	f.CustomerID = strings.TrimSpace(q.Get("customer"))
	var err error
	if f.Since, err = store.ParseTimeBound(q.Get("since"), now); err != nil {
		return f, badRequest{fmt.Errorf("since: %w", err)}
	}
	if f.Until, err = store.ParseTimeBound(q.Get("until"), now); err != nil {
		return f, badRequest{fmt.Errorf("until: %w", err)}
	}
	return f, nil
}

// list splits comma-separated values and drops blanks.
func list(values []string) []string {
	var out []string
	for _, v := range values {
		for _, s := range strings.Split(v, ",") {
			if s = strings.TrimSpace(s); s != "" {
				out = append(out, s)
			}
		}
	}
	return out
}

// intParam reads a non-negative integer query parameter; absent is 0.
func intParam(q url.Values, name string) (int, error) {
	s := q.Get(name)
	if s == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, badRequest{fmt.Errorf("%s=%q: use a non-negative integer", name, s)}
	}
	return n, nil
}

// limitParam reads the page size: 1 to store.MaxListLimit, as the CLI's
// --limit; absent, the store's default. A larger one is refused, not
// silently cut: a client asking for more rows learns the bound.
func limitParam(q url.Values) (int, error) {
	if !q.Has("limit") {
		return 0, nil
	}
	n, err := strconv.Atoi(q.Get("limit"))
	if err != nil || n < 1 || n > store.MaxListLimit {
		return 0, badRequest{fmt.Errorf("limit=%q: use 1 to %d", q.Get("limit"), store.MaxListLimit)}
	}
	return n, nil
}
