package deliver

import (
	"bytes"
	"context"
	"encoding/hex"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"

	stripewebhook "github.com/stripe/stripe-go/v76/webhook"
)

// stripeHeaders returns the headers Stripe sends with every webhook besides
// the signature. Requests share the returned slices read-only.
func stripeHeaders() http.Header {
	return http.Header{
		"Content-Type":  {"application/json; charset=utf-8"},
		"User-Agent":    {"Stripe/1.0 (+https://stripe.com/docs/webhooks)"},
		"Accept":        {"*/*; q=0.5, application/xml"},
		"Cache-Control": {"no-cache"},
	}
}

const (
	maxDetail = 300     // bytes of a failed answer kept for the report
	maxDrain  = 1 << 20 // bytes of an answer read so that its connection is reused
)

// state is where a delivery ended.
type state uint8

const (
	unsent state = iota
	delivered
	failed
)

// outcome is the result of one delivery.
type outcome struct {
	state    state
	status   int    // final HTTP status; 0 for a transport error
	attempts int    // HTTP requests answered or failed, not those cut short by the context
	detail   string // failures only: the error or the start of the answer
}

func (o outcome) failure(ev *Event) Failure {
	return Failure{EventID: ev.ID, Name: ev.Name, Status: o.status, Error: o.detail, Attempts: o.attempts}
}

// worker makes deliveries one at a time and keeps its own counters.
type worker struct {
	s         *Sender
	buf       []byte // signature header being built
	latencies []time.Duration
	requests  int
	retries   int
}

// deliver makes one attempt of ev, whose earlier attempts are counted in
// out, and returns the outcome. With Until2xx and retries left, a failed
// attempt is not final: retry is set, with the wait before the next
// attempt, and the worker is free for other deliveries meanwhile — as
// Stripe retries each event on its own schedule, never holding the others
// back behind it.
func (w *worker) deliver(ctx context.Context, ev *Event, out outcome) (_ outcome, wait time.Duration, retry bool) {
	cfg := &w.s.cfg
	out.attempts++
	final := !cfg.Until2xx || out.attempts > cfg.MaxRetries
	status, detail, err := w.attempt(ctx, ev, final)
	if err != nil && ctx.Err() != nil {
		out.attempts-- // cut short: not an attempt that got an answer
		return interrupted(out, ctx.Err()), 0, false
	}
	out.status, out.detail = status, detail
	if err != nil {
		out.detail = err.Error()
	}
	switch {
	case err == nil && status/100 == 2:
		out.state, out.detail = delivered, ""
	case final:
		out.state = failed
	default:
		return out, retryDelay(cfg.BackoffMin, cfg.BackoffMax, out.attempts), true
	}
	return out, 0, false
}

// interrupted ends a delivery cut short by its context: unsent when no
// attempt was answered yet, failed with the last answer otherwise.
func interrupted(out outcome, err error) outcome {
	if out.attempts == 0 {
		return outcome{}
	}
	out.state = failed
	out.detail = "retry interrupted: " + err.Error()
	return out
}

// attempt makes one signed request. It returns the status and, when
// keepDetail is set and the status is not 2xx, the start of the answer; or
// the transport error.
func (w *worker) attempt(ctx context.Context, ev *Event, keepDetail bool) (int, string, error) {
	ctx, cancel := context.WithTimeout(ctx, w.s.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.s.url, bytes.NewReader(ev.Body))
	if err != nil {
		return 0, "", err
	}
	w.buf = appendSignature(w.buf[:0], w.s.now(), ev.Body, w.s.cfg.Secrets)
	for k, v := range w.s.headers {
		req.Header[k] = v
	}
	req.Header["Stripe-Signature"] = []string{string(w.buf)}

	w.requests++
	start := time.Now()
	resp, err := w.s.client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	var detail string
	if keepDetail && resp.StatusCode/100 != 2 {
		detail = readDetail(resp.Body)
	}
	// The status is the answer; the rest of the body is read only so that
	// the connection can be reused, and an error reading it changes nothing.
	_, _ = io.CopyN(io.Discard, resp.Body, maxDrain)
	w.latencies = append(w.latencies, time.Since(start))
	return resp.StatusCode, detail, nil
}

// readDetail returns the start of an answer on one line.
func readDetail(r io.Reader) string {
	b, _ := io.ReadAll(io.LimitReader(r, maxDetail))
	return strings.Join(strings.Fields(string(b)), " ")
}

// retryDelay returns the wait before retry n (1-based), like Stripe's:
// exponential from minDelay, capped at limit, with jitter over the upper
// half.
func retryDelay(minDelay, limit time.Duration, n int) time.Duration {
	d := backoffDelay(minDelay, limit, n)
	if d > 1 {
		d = d/2 + rand.N(d/2)
	}
	return d
}

// backoffDelay returns min·2^(n-1), capped at limit.
func backoffDelay(minDelay, limit time.Duration, n int) time.Duration {
	d := minDelay
	for i := 1; i < n && d < limit; i++ {
		d *= 2
	}
	return min(d, limit)
}

// Signature returns the Stripe-Signature header value for payload signed at
// t: "t=<unix>,v1=<hex>" with one v1 per secret, in order, as Stripe sends
// during secret rolling.
func Signature(t time.Time, payload []byte, secrets ...string) string {
	return string(appendSignature(nil, t, payload, secrets))
}

func appendSignature(dst []byte, t time.Time, payload []byte, secrets []string) []byte {
	dst = append(dst, "t="...)
	dst = strconv.AppendInt(dst, t.Unix(), 10)
	for _, s := range secrets {
		dst = append(dst, ",v1="...)
		dst = hex.AppendEncode(dst, stripewebhook.ComputeSignature(t, payload, s))
	}
	return dst
}
