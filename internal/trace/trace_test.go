package trace_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"
	stripewebhook "github.com/stripe/stripe-go/v76/webhook"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/orderhook/orderhook/internal/trace"
	"github.com/orderhook/orderhook/reconcile"
	"github.com/orderhook/orderhook/store/storetest"
	"github.com/orderhook/orderhook/webhook"
)

const secret = "whsec_trace_test"

func attr(s sdktrace.ReadOnlySpan, key attribute.Key) string {
	for _, kv := range s.Attributes() {
		if kv.Key == key {
			return kv.Value.String()
		}
	}
	return ""
}

func TestTraceReceiptInsertApply(t *testing.T) {
	t.Parallel()
	exporter := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exporter))
	t.Cleanup(func() { require.NoError(t, tp.Shutdown(context.Background())) })
	tr := trace.NewWithProvider(tp)
	require.True(t, tr.On())

	db := storetest.SQLite(t)
	h, err := webhook.NewHandler(webhook.Config{Secrets: []string{secret}, Tolerance: 5 * time.Minute}, tr.Inbox(db), nil, zerolog.Nop())
	require.NoError(t, err)
	srv := httptest.NewServer(webhook.RequestLog(tr.Handler(h), zerolog.Nop()))
	t.Cleanup(srv.Close)

	payload := []byte(fmt.Sprintf(`{"id":"evt_trace","object":"event","type":"customer.created","created":%d,
		"data":{"object":{"id":"cus_1","object":"customer","email":"jenny@example.com"}}}`, time.Now().Unix()))
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL, bytes.NewReader(payload))
	require.NoError(t, err)
	req.Header.Set("Stripe-Signature", stripewebhook.GenerateTestSignedPayload(&stripewebhook.UnsignedPayload{
		Payload: payload, Secret: secret, Timestamp: time.Now()}).Header)
	req.Header.Set("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	resp, err := srv.Client().Do(req)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	require.Equal(t, http.StatusOK, resp.StatusCode)

	w, err := reconcile.NewWorker(reconcile.Config{}, tr.Store(db), zerolog.Nop())
	require.NoError(t, err)
	n, err := w.RunOnce(t.Context(), "test")
	require.NoError(t, err)
	require.Equal(t, 1, n)

	spans := map[string]sdktrace.ReadOnlySpan{}
	for _, s := range exporter.GetSpans().Snapshots() {
		spans[s.Name()] = s
	}
	receipt, insert, apply := spans["HTTP POST"], spans["inbox insert"], spans["reconcile apply"]
	require.NotNil(t, receipt)
	require.NotNil(t, insert)
	require.NotNil(t, apply)
	require.Equal(t, "4bf92f3577b34da6a3ce929d0e0e4736", receipt.SpanContext().TraceID().String(), "the caller's trace is continued")
	require.Equal(t, receipt.SpanContext().SpanID(), insert.Parent().SpanID(), "the insert is part of the receipt")
	for _, s := range []sdktrace.ReadOnlySpan{receipt, insert, apply} {
		require.Equal(t, "evt_trace", attr(s, trace.AttrEventID), s.Name())
	}
	require.Equal(t, "200", attr(receipt, "http.response.status_code"))
	require.NotEmpty(t, attr(receipt, "orderhook.request_id"))
	require.Equal(t, "true", attr(insert, trace.AttrInserted))
	require.Equal(t, "test", attr(apply, trace.AttrWorker))
	require.Equal(t, "customer.created", attr(apply, trace.AttrEventType))
}

func TestTraceEnabledByOTELVariables(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		env  map[string]string
		want bool
	}{
		{nil, false},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, true},
		{map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, true},
		{map[string]string{"OTEL_TRACES_EXPORTER": "otlp"}, true},
		{map[string]string{"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, false},
		{map[string]string{"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, false},
	} {
		require.Equal(t, c.want, trace.Enabled(func(k string) string { return c.env[k] }), "%v", c.env)
	}
}

func TestTraceOffByDefault(t *testing.T) {
	t.Parallel()
	tr, err := trace.New(t.Context(), func(string) string { return "" }, zerolog.Nop())
	require.NoError(t, err)
	require.False(t, tr.On())
	require.NoError(t, tr.Shutdown(t.Context()))

	_, err = trace.New(t.Context(), func(k string) string {
		return map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}[k]
	}, zerolog.Nop())
	require.ErrorContains(t, err, "only http/protobuf")
}

func TestTraceOnThroughOTELVariables(t *testing.T) {
	t.Parallel()
	tr, err := trace.New(t.Context(), func(k string) string {
		return map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_SERVICE_NAME": "orderhook-test"}[k]
	}, zerolog.Nop())
	require.NoError(t, err)
	require.True(t, tr.On())
	require.NoError(t, tr.Shutdown(t.Context()))
}

// OpenTelemetry's own errors are orderhook's log lines, JSON at warn, not
// plain text on stderr through the standard log package. Not parallel: the
// error handler is OpenTelemetry's global one.
func TestTraceErrorsAreLogged(t *testing.T) {
	var logs bytes.Buffer
	tr, err := trace.New(t.Context(), func(k string) string {
		return map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1"}[k]
	}, zerolog.New(&logs))
	require.NoError(t, err)
	defer func() { _ = tr.Shutdown(t.Context()) }()

	otel.Handle(errors.New("traces export: connection refused"))
	require.JSONEq(t, `{"level":"warn","component":"tracing","error":"traces export: connection refused","message":"tracing failed"}`, logs.String())
}
