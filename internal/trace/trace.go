// Package trace gives orderhook OpenTelemetry tracing, off by default: spans
// for the HTTP receipt of a delivery, its insert into the inbox and its
// application by the reconciler, each carrying the event id
// (orderhook.event_id) so that the three are found together. It wraps the
// consumers' interfaces (webhook.Inbox, reconcile.Store) and the HTTP
// handler, so that webhook and reconcile need no OpenTelemetry import.
package trace

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	oteltrace "go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/orderhook/orderhook/reconcile"
	"github.com/orderhook/orderhook/store"
	"github.com/orderhook/orderhook/webhook"
)

// instrumentation names the tracer of orderhook.
const instrumentation = "github.com/orderhook/orderhook"

// Attribute keys of orderhook's spans.
const (
	AttrEventID    = attribute.Key("orderhook.event_id")
	AttrEventType  = attribute.Key("orderhook.event_type")
	AttrCustomerID = attribute.Key("orderhook.customer_id")
	AttrWorker     = attribute.Key("orderhook.worker")
	AttrInserted   = attribute.Key("orderhook.inserted")
)

// Tracing creates orderhook's spans. The zero value is not usable; use New
// or NewWithProvider.
type Tracing struct {
	tracer     oteltrace.Tracer
	propagator propagation.TextMapPropagator
	shutdown   func(context.Context) error
	enabled    bool
}

// Enabled reports whether OTEL_* configuration turned tracing on. Disabled,
// Tracing creates no-op spans and the wrappers cost next to nothing.
func Enabled(getenv func(string) string) bool {
	if getenv("OTEL_SDK_DISABLED") == "true" {
		return false
	}
	switch getenv("OTEL_TRACES_EXPORTER") {
	case "none":
		return false
	case "otlp":
		return true
	}
	return getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != ""
}

// New returns Tracing configured by the standard OTEL_* variables read
// through getenv: off unless Enabled, else an OTLP/HTTP exporter (the
// exporter reads OTEL_EXPORTER_OTLP_* itself: endpoint, headers, timeout,
// TLS), the sampler of OTEL_TRACES_SAMPLER and the resource of
// OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES (service.name defaults to
// orderhook). OpenTelemetry's own errors (an export that failed, an
// unknown OTEL_TRACES_SAMPLER) are logged to logger, at warn, instead of
// in plain text through the standard log package. It returns an error when
// the exporter cannot be configured or another protocol than http/protobuf
// is asked for.
func New(ctx context.Context, getenv func(string) string, logger zerolog.Logger) (*Tracing, error) {
	if !Enabled(getenv) {
		return &Tracing{tracer: noop.NewTracerProvider().Tracer(instrumentation), propagator: propagation.TraceContext{},
			shutdown: func(context.Context) error { return nil }}, nil
	}
	for _, v := range []string{"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"} {
		if p := getenv(v); p != "" && p != "http/protobuf" {
			return nil, fmt.Errorf("tracing: %s=%s: only http/protobuf is supported", v, p)
		}
	}
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		logger.Warn().Err(err).Str("component", "tracing").Msg("tracing failed")
	}))
	exp, err := otlptracehttp.New(ctx)
	if err != nil {
		return nil, fmt.Errorf("tracing: create the OTLP exporter: %w", err)
	}
	res, err := resource.New(ctx,
		resource.WithAttributes(attribute.String("service.name", "orderhook")),
		resource.WithFromEnv(), resource.WithTelemetrySDK())
	if err != nil && !errors.Is(err, resource.ErrPartialResource) {
		return nil, fmt.Errorf("tracing: describe the resource: %w", err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	t := NewWithProvider(tp)
	t.shutdown, t.enabled = tp.Shutdown, true
	return t, nil
}

// NewWithProvider returns Tracing that creates its spans with tp; the
// caller shuts tp down. Tests pass a provider with an in-memory exporter.
func NewWithProvider(tp oteltrace.TracerProvider) *Tracing {
	return &Tracing{tracer: tp.Tracer(instrumentation), propagator: propagation.TraceContext{},
		shutdown: func(context.Context) error { return nil }, enabled: true}
}

// On reports whether spans are recorded.
func (t *Tracing) On() bool { return t.enabled }

// Shutdown flushes the spans not yet exported and stops the exporter. It
// returns the exporter's error, if any.
func (t *Tracing) Shutdown(ctx context.Context) error {
	if err := t.shutdown(ctx); err != nil {
		return fmt.Errorf("tracing: shut down: %w", err)
	}
	return nil
}

// Handler wraps next with a server span per request ("HTTP POST", say),
// continuing a W3C traceparent sent by the caller, with the method, path,
// status and the request id of webhook.RequestLog when it runs outside.
func (t *Tracing) Handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := t.propagator.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
		ctx, span := t.tracer.Start(ctx, "HTTP "+r.Method, oteltrace.WithSpanKind(oteltrace.SpanKindServer),
			oteltrace.WithAttributes(attribute.String("http.request.method", r.Method), attribute.String("url.path", r.URL.Path)))
		defer span.End()
		if id := webhook.RequestID(ctx); id != "" {
			span.SetAttributes(attribute.String("orderhook.request_id", id))
		}
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(sw, r.WithContext(ctx))
		span.SetAttributes(attribute.Int("http.response.status_code", sw.status))
		if sw.status >= 500 {
			span.SetStatus(codes.Error, http.StatusText(sw.status))
		}
	})
}

// statusWriter remembers the status a handler answered.
type statusWriter struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote {
		w.status, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Inbox wraps in with an "inbox insert" span per event, and sets the event
// id on the request's span too.
func (t *Tracing) Inbox(in webhook.Inbox) webhook.Inbox { return tracedInbox{t: t, in: in} }

type tracedInbox struct {
	t  *Tracing
	in webhook.Inbox
}

// InsertEvent implements webhook.Inbox.
func (ti tracedInbox) InsertEvent(ctx context.Context, ev store.Event) (bool, error) {
	attrs := eventAttrs(ev)
	oteltrace.SpanFromContext(ctx).SetAttributes(attrs...)
	ctx, span := ti.t.tracer.Start(ctx, "inbox insert", oteltrace.WithSpanKind(oteltrace.SpanKindClient), oteltrace.WithAttributes(attrs...))
	defer span.End()
	inserted, err := ti.in.InsertEvent(ctx, ev)
	span.SetAttributes(AttrInserted.Bool(inserted))
	record(span, err)
	return inserted, err
}

// Store wraps st with a "reconcile apply" span around each event's
// processing, and a "reconcile batch" span around each transaction that
// processes a batch of them.
func (t *Tracing) Store(st reconcile.Store) reconcile.Store { return tracedStore{Store: st, t: t} }

type tracedStore struct {
	reconcile.Store
	t *Tracing
}

// ProcessDue implements reconcile.Store.
func (ts tracedStore) ProcessDue(ctx context.Context, p store.ClaimParams, fn func(ctx context.Context, tx *store.Tx) error) (store.Batch, error) {
	ctx, span := ts.t.tracer.Start(ctx, "reconcile batch", oteltrace.WithSpanKind(oteltrace.SpanKindConsumer),
		oteltrace.WithAttributes(AttrWorker.String(p.Worker)))
	defer span.End()
	batch, err := ts.Store.ProcessDue(ctx, p, ts.traced(p.Worker, fn))
	span.SetAttributes(attribute.Int("orderhook.batch_size", batch.Claimed))
	record(span, err)
	return batch, err
}

// Process implements reconcile.Store.
func (ts tracedStore) Process(ctx context.Context, ev store.Event, worker string, now time.Time, fn func(ctx context.Context, tx *store.Tx) error) error {
	return ts.Store.Process(ctx, ev, worker, now, ts.traced(worker, fn))
}

// traced wraps fn, which processes one event, in a "reconcile apply" span.
func (ts tracedStore) traced(worker string, fn func(ctx context.Context, tx *store.Tx) error) func(ctx context.Context, tx *store.Tx) error {
	return func(ctx context.Context, tx *store.Tx) error {
		ev := tx.Event()
		ctx, span := ts.t.tracer.Start(ctx, "reconcile apply", oteltrace.WithSpanKind(oteltrace.SpanKindConsumer),
			oteltrace.WithAttributes(append(eventAttrs(ev), AttrWorker.String(worker), attribute.Int("orderhook.attempt", ev.Attempts+1))...))
		defer span.End()
		err := fn(ctx, tx)
		record(span, err)
		return err
	}
}

func eventAttrs(ev store.Event) []attribute.KeyValue {
	attrs := []attribute.KeyValue{AttrEventID.String(ev.ID), AttrEventType.String(ev.Type)}
	if ev.CustomerID != "" {
		attrs = append(attrs, AttrCustomerID.String(ev.CustomerID))
	}
	return attrs
}

func record(span oteltrace.Span, err error) {
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
}
