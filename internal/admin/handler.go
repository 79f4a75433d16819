// Package admin serves orderhook's operator JSON API under /admin/api/: the
// inbox status, event listings and details, replays and discards — the same
// operations as the `orderhook status`, `events` and `dead` commands — and a
// web page at /admin/ over it, which replays and discards dead events too.
// Every API request needs the configured bearer token; there is no handler
// without one.
package admin

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/orderhook/orderhook/store"
)

// Prefix is the path under which the API is served; mount the handler there.
const Prefix = "/admin/api/"

// Actor is recorded in event_attempts for operations made through the API.
const Actor = "admin-api"

// Store is what the API needs of the inbox; *store.DB satisfies it.
type Store interface {
	Stats(ctx context.Context, now time.Time, top int) (store.Stats, error)
	ListEvents(ctx context.Context, f store.EventFilter) (store.EventPage, error)
	EventDetail(ctx context.Context, id string) (store.EventDetail, error)
	Replay(ctx context.Context, p store.ReplayParams) (store.ReplayResult, error)
	Discard(ctx context.Context, p store.DiscardParams) (store.DiscardResult, error)
}

// Config configures the API.
type Config struct {
	// Token is the bearer token every request must carry. Required.
	Token string
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// ErrNoToken is returned by NewHandler when Config.Token is empty: the API is
// never served without a token.
var ErrNoToken = errors.New("admin: a token is required to serve the admin API")

// ErrBadToken is returned by NewHandler for a token that is not printable
// ASCII: it travels in an HTTP header, and browsers send nothing else
// there (the page could not use it).
var ErrBadToken = errors.New("admin: the token must be printable ASCII without spaces")

// handler serves the API.
type handler struct {
	token  [sha256.Size]byte
	now    func() time.Time
	store  Store
	logger zerolog.Logger
}

// NewHandler returns the handler of everything under PagePrefix: the JSON
// API under Prefix, which needs the bearer token, and the page at
// PagePrefix, whose files hold no data. Mount it at PagePrefix. It returns
// ErrNoToken when cfg.Token is empty or blank, and ErrBadToken when it is
// not printable ASCII. The token is trimmed, as the one a request sends is:
// one read from a file often ends in a newline, which no header can carry.
func NewHandler(cfg Config, st Store, logger zerolog.Logger) (http.Handler, error) {
	tok := strings.TrimSpace(cfg.Token)
	if tok == "" {
		return nil, ErrNoToken
	}
	if strings.ContainsFunc(tok, func(r rune) bool { return r <= ' ' || r > '~' }) {
		return nil, ErrBadToken
	}
	h := &handler{
		token:  sha256.Sum256([]byte(tok)),
		now:    cfg.Now,
		store:  st,
		logger: logger.With().Str("component", "admin").Logger(),
	}
	if h.now == nil {
		h.now = time.Now
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+Prefix+"status", h.status)
	mux.HandleFunc("GET "+Prefix+"events", h.listEvents(nil))
	mux.HandleFunc("GET "+Prefix+"events/{id}", h.showEvent)
	mux.HandleFunc("GET "+Prefix+"events/{id}/payload", h.payload)
	mux.HandleFunc("POST "+Prefix+"events/{id}/replay", h.replayEvent)
	mux.HandleFunc("GET "+Prefix+"dead", h.listEvents([]store.Status{store.StatusDead}))
	mux.HandleFunc("POST "+Prefix+"dead/replay", h.replayDead)
	mux.HandleFunc("POST "+Prefix+"dead/discard", h.discard)
	mux.HandleFunc(Prefix, func(w http.ResponseWriter, r *http.Request) {
		h.fail(w, r, unrouted(mux, Prefix, r), "")
	})
	root := http.NewServeMux()
	root.Handle(Prefix, h.authenticate(mux))
	root.HandleFunc("GET "+PagePrefix+"{$}", servePage("index.html", "text/html; charset=utf-8"))
	root.HandleFunc("GET "+PagePrefix+"page.js", servePage("page.js", "text/javascript; charset=utf-8"))
	root.HandleFunc("GET "+PagePrefix+"page.css", servePage("page.css", "text/css; charset=utf-8"))
	root.HandleFunc(PagePrefix, func(w http.ResponseWriter, r *http.Request) {
		h.fail(w, r, unrouted(root, PagePrefix, r), "")
	})
	return root, nil
}

// unrouted explains why no route of mux but its catchAll pattern took r:
// another method's route at its path (a 405 with Allow, as net/http answers
// without a catch-all), or no route at all.
func unrouted(mux *http.ServeMux, catchAll string, r *http.Request) error {
	var allow []string
	for _, method := range []string{http.MethodGet, http.MethodPost} {
		probe := r.Clone(r.Context())
		probe.Method = method
		if _, pattern := mux.Handler(probe); pattern != "" && pattern != catchAll {
			allow = append(allow, method)
		}
	}
	if len(allow) > 0 && !slices.Contains(allow, r.Method) {
		return methodNotAllowed{allow}
	}
	return errRoute
}

// authenticate lets a request through only with the bearer token (the scheme
// is case-insensitive), compared in constant time as fixed-length digests, so
// that not even the token's length leaks.
func (h *handler) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		scheme, got, _ := strings.Cut(r.Header.Get("Authorization"), " ")
		sum := sha256.Sum256([]byte(strings.TrimSpace(got)))
		if !strings.EqualFold(scheme, "Bearer") || subtle.ConstantTimeCompare(sum[:], h.token[:]) != 1 {
			h.fail(w, r, errUnauthorized, "")
			return
		}
		next.ServeHTTP(w, r)
	})
}
