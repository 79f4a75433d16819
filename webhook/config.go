package webhook

import (
	"cmp"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"

	stripewebhook "github.com/stripe/stripe-go/v76/webhook"
)

// Mode says what the receiver answers for a stored event whose dependency
// (the customer it concerns) does not exist yet.
type Mode string

// The receiver modes.
const (
	// ModeDefer answers 200 once the event is stored; the reconciler defers
	// it until its dependency is applied. The default.
	ModeDefer Mode = "defer"
	// ModeReject stores the event too, then answers 409 dependency-missing
	// while its dependency is missing, so that the sender retries.
	ModeReject Mode = "reject"
)

// DefaultTolerance is the signature tolerance when Config.Tolerance is zero:
// Stripe's own, as stripe-go's webhook.ConstructEvent applies it.
const DefaultTolerance = stripewebhook.DefaultTolerance

// DefaultMaxBody is the body limit when Config.MaxBody is zero: 1 MiB, far
// above the largest Stripe event.
const DefaultMaxBody int64 = 1 << 20

// secretPrefix starts every Stripe webhook signing secret.
const secretPrefix = "whsec_"

// Config configures a Handler. Zero values take the documented defaults;
// NewHandler rejects values that cannot work.
type Config struct {
	// Secrets are the whsec_… signing secrets; at least one. A request passes
	// when any of them verifies it, and the index of that secret is stored
	// with the event, so a secret can be rolled without losing deliveries.
	Secrets []string
	// Tolerance is the largest accepted distance between the signature
	// timestamp and now, in either direction; default DefaultTolerance (5m).
	Tolerance time.Duration
	// MaxBody is the largest accepted body in bytes; default DefaultMaxBody.
	MaxBody int64
	// Mode is ModeDefer (the default) or ModeReject.
	Mode Mode
	// Now is the clock for the signature tolerance and received_at; default
	// time.Now.
	Now func() time.Time
	// Observe, when set, is called once per delivery with its outcome
	// (accepted, duplicate, invalid_signature, stale_signature, malformed,
	// too_large, dependency_missing, store_unavailable, method_not_allowed,
	// body_timeout, unreadable_body, or abandoned — with status 499 — when
	// the client went away before its answer), HTTP status and duration: the
	// hook for metrics.
	// It runs in the request's goroutine, several at once, before the
	// answer leaves: keep it safe for concurrent use and quick.
	Observe func(outcome string, status int, d time.Duration)
}

// withDefaults returns cfg with zero values replaced by the defaults.
func (cfg Config) withDefaults() Config {
	cfg.Tolerance = cmp.Or(cfg.Tolerance, DefaultTolerance)
	cfg.MaxBody = cmp.Or(cfg.MaxBody, DefaultMaxBody)
	cfg.Mode = cmp.Or(cfg.Mode, ModeDefer)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return cfg
}

// validate reports every setting that cannot work, joined, each saying what
// to fix. It never prints a secret.
func (cfg Config) validate() error {
	var errs []error
	if len(cfg.Secrets) == 0 {
		errs = append(errs, errors.New("no signing secret: configure at least one whsec_… secret (Stripe dashboard, or `stripe listen`)"))
	}
	for i, s := range cfg.Secrets {
		if err := checkSecret(s); err != nil {
			errs = append(errs, fmt.Errorf("signing secret at index %d %w", i, err))
		}
	}
	if cfg.Tolerance <= 0 {
		errs = append(errs, fmt.Errorf("tolerance is %s: set a positive duration such as 5m", cfg.Tolerance))
	}
	if cfg.MaxBody <= 0 {
		errs = append(errs, fmt.Errorf("max body is %d bytes: set a positive size such as 1MiB", cfg.MaxBody))
	}
	if cfg.Mode != ModeDefer && cfg.Mode != ModeReject {
		errs = append(errs, fmt.Errorf("mode %q is unknown: use %q or %q", cfg.Mode, ModeDefer, ModeReject))
	}
	return errors.Join(errs...)
}

// checkSecret tells what is wrong with a signing secret, without quoting it.
func checkSecret(s string) error {
	switch {
	case !strings.HasPrefix(s, secretPrefix):
		return errors.New("does not start with whsec_: copy the endpoint's signing secret, not an API key")
	case len(s) == len(secretPrefix):
		return errors.New("is only the whsec_ prefix: copy the whole signing secret")
	case strings.ContainsFunc(s, unicode.IsSpace):
		return errors.New("contains white space: remove it (a trailing newline from a file or variable?)")
	}
	return nil
}
