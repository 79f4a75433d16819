//go:build reliability

package reliability

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/orderhook/orderhook/internal/deliver"
)

// rawResult is how a request written on a raw connection ended: the
// answer's status, or 0 when the server closed the connection without one.
type rawResult struct {
	status  int
	elapsed time.Duration // from the first byte sent to the answer or the close
	err     error         // why there is no answer
}

// rawExchange writes a request on its own connection with write — the head
// first, then the body at whatever pace write likes — while it reads the
// answer, and stops writing as soon as the answer or the close arrives. The
// server can thus answer a body it refuses to read (413) without the client
// pushing all of it. write must return when stop is closed.
func rawExchange(ctx context.Context, addr string, limit time.Duration, write func(w io.Writer, stop <-chan struct{}) error) rawResult {
	conn, err := (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return rawResult{err: fmt.Errorf("dial: %w", err)}
	}
	defer conn.Close()
	start := time.Now()
	_ = conn.SetReadDeadline(start.Add(limit))
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { _ = write(conn, stop) })
	r := rawResult{}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	r.elapsed = time.Since(start)
	if err != nil {
		r.err = err
	} else {
		r.status = resp.StatusCode
		_ = resp.Body.Close()
	}
	close(stop)
	_ = conn.Close() // unblocks a write the server no longer reads
	wg.Wait()
	return r
}

// requestHead returns a POST to the webhook path with the given extra
// headers, ended by the blank line.
func requestHead(addr string, headers ...string) string {
	var b strings.Builder
	b.WriteString("POST /webhooks/stripe HTTP/1.1\r\nHost: " + addr + "\r\nContent-Type: application/json\r\n")
	for _, h := range headers {
		b.WriteString(h + "\r\n")
	}
	b.WriteString("\r\n")
	return b.String()
}

// wellFormedSignature is a Stripe-Signature that parses (so the body is
// read) but cannot match the body.
func wellFormedSignature() string {
	return "Stripe-Signature: " + deliver.Signature(time.Now(), []byte("another body"), secret)
}

// hugeBody streams size bytes of JSON-looking filler after head: with a
// Content-Length, or chunked when chunked is set. It never holds more than
// one 64 KiB chunk.
func hugeBody(addr string, size int64, chunked bool) func(io.Writer, <-chan struct{}) error {
	framing := fmt.Sprintf("Content-Length: %d", size)
	if chunked {
		framing = "Transfer-Encoding: chunked"
	}
	head := requestHead(addr, wellFormedSignature(), framing)
	chunk := []byte("{" + strings.Repeat(" ", 64<<10-1))
	return func(w io.Writer, stop <-chan struct{}) error {
		if _, err := io.WriteString(w, head); err != nil {
			return err
		}
		for sent := int64(0); sent < size; sent += int64(len(chunk)) {
			select {
			case <-stop:
				return nil
			default:
			}
			if err := writeChunk(w, chunk, chunked); err != nil {
				return err
			}
		}
		if chunked {
			_, err := io.WriteString(w, "0\r\n\r\n")
			return err
		}
		return nil
	}
}

func writeChunk(w io.Writer, b []byte, chunked bool) error {
	if chunked {
		if _, err := fmt.Fprintf(w, "%x\r\n", len(b)); err != nil {
			return err
		}
	}
	if _, err := w.Write(b); err != nil {
		return err
	}
	if chunked {
		_, err := io.WriteString(w, "\r\n")
		return err
	}
	return nil
}

// dripBody sends a complete head announcing a body, then one byte of it
// every interval, until stopped: a slow client holding the connection.
func dripBody(addr string, interval time.Duration) func(io.Writer, <-chan struct{}) error {
	head := requestHead(addr, wellFormedSignature(), "Content-Length: 100000")
	return drip(head, "{", interval)
}

// dripHeaders sends the request line, then one header byte every interval,
// never finishing the head.
func dripHeaders(addr string, interval time.Duration) func(io.Writer, <-chan struct{}) error {
	return drip("POST /webhooks/stripe HTTP/1.1\r\nHost: "+addr+"\r\n", "X", interval)
}

func drip(head, unit string, interval time.Duration) func(io.Writer, <-chan struct{}) error {
	return func(w io.Writer, stop <-chan struct{}) error {
		if _, err := io.WriteString(w, head); err != nil {
			return err
		}
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return nil
			case <-t.C:
			}
			if _, err := io.WriteString(w, unit); err != nil {
				return err
			}
		}
	}
}
