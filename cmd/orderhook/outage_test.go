package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	stripewebhook "github.com/stripe/stripe-go/v76/webhook"

	"github.com/orderhook/orderhook/store/storetest"
)

// cutProxy forwards TCP to a database and can cut every connection and
// refuse new ones, as a database that stops or a network that drops would.
type cutProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	up     bool
	conns  map[net.Conn]struct{}
	wg     sync.WaitGroup
}

func newCutProxy(t *testing.T, target string) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &cutProxy{ln: ln, target: target, up: true, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(func() {
		_ = ln.Close()
		p.cut()
		p.wg.Wait()
	})
	return p
}

func (p *cutProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		up := p.up
		if up {
			p.conns[c] = struct{}{}
		}
		p.mu.Unlock()
		if !up {
			_ = c.Close()
			continue
		}
		p.wg.Add(1)
		go p.pipe(c)
	}
}

func (p *cutProxy) pipe(c net.Conn) {
	defer p.wg.Done()
	s, err := net.Dial("tcp", p.target)
	if err != nil {
		_ = c.Close()
		return
	}
	p.mu.Lock()
	p.conns[s] = struct{}{}
	p.mu.Unlock()
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(s, c); done <- struct{}{} }()
	go func() { _, _ = io.Copy(c, s); done <- struct{}{} }()
	<-done
	_ = c.Close()
	_ = s.Close()
	<-done
}

// cut drops every connection and refuses new ones until restore.
func (p *cutProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.up = false
	for c := range p.conns {
		_ = c.Close()
		delete(p.conns, c)
	}
}

func (p *cutProxy) restore() {
	p.mu.Lock()
	p.up = true
	p.mu.Unlock()
}

// post signs payload and posts it, returning the status and Retry-After.
func post(t *testing.T, endpoint, secret string, payload []byte) (int, string) {
	t.Helper()
	sp := stripewebhook.GenerateTestSignedPayload(&stripewebhook.UnsignedPayload{Payload: payload, Secret: secret})
	req, err := http.NewRequest(http.MethodPost, endpoint, bytes.NewReader(payload))
	require.NoError(t, err)
	req.Header.Set("Stripe-Signature", sp.Header)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, resp.Header.Get("Retry-After")
}

// While the database is unreachable the receiver answers 503 with
// Retry-After and never 2xx; when it returns, the receiver recovers by itself
// and the retried event is stored once and applied.
func TestDatabaseOutageIsNeverAcknowledged(t *testing.T) {
	t.Parallel()
	dbURL := storetest.PostgresURL(t)
	u, err := url.Parse(dbURL)
	require.NoError(t, err)
	proxy := newCutProxy(t, u.Host)
	u.Host = proxy.ln.Addr().String()

	const secret = "whsec_outage"
	srv := startServe(t, env(nil), "--db", u.String(), "--secret", secret)
	event := func(id string) []byte {
		return []byte(`{"id":"` + id + `","object":"event","type":"customer.created","created":1772366400,` +
			`"data":{"object":{"id":"cus_` + id + `","object":"customer","email":"a@example.com"}}}`)
	}
	status, _ := post(t, srv.url, secret, event("evt_before"))
	require.Equal(t, 200, status)

	proxy.cut()
	for i := range 5 {
		status, retryAfter := post(t, srv.url, secret, event("evt_during"))
		require.Equal(t, 503, status, "delivery %d during the outage", i)
		require.NotEmpty(t, retryAfter)
	}

	proxy.restore()
	file := filepath.Join(t.TempDir(), "during.json")
	require.NoError(t, os.WriteFile(file, event("evt_during"), 0o600))
	var out bytes.Buffer
	err = run(context.Background(), []string{"send", "--url", srv.url, "--secret", secret, "--until-2xx", "--backoff", "50ms", "--deadline", "30s", file},
		env(nil), strings.NewReader(""), &out, io.Discard)
	require.NoError(t, err, "recovered after the database came back: %s", out.String())

	db := storetest.Open(t, dbURL)
	waitSettled(t, db)
	var rows []struct {
		ID     string `db:"event_id"`
		Status string `db:"status"`
	}
	require.NoError(t, db.SQLX().Select(&rows, `SELECT event_id, status FROM webhook_events ORDER BY event_id`))
	require.Len(t, rows, 2)
	for _, r := range rows {
		require.Equal(t, "applied", r.Status, r.ID)
	}
	require.NoError(t, srv.stop())
}
