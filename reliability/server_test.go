//go:build reliability

package reliability

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// secret signs every delivery of the suite.
const secret = "whsec_reliability_suite_secret"

// readyTimeout bounds how long a starting server may take to answer /readyz.
const readyTimeout = 30 * time.Second

// server is one `orderhook serve` process, restartable on the same port.
// Its methods other than startServer may be called from any goroutine: they
// return errors instead of failing the test.
type server struct {
	name  string
	dbURL string
	addr  string
	log   string // path of the processes' stdout and stderr, appended across restarts
	extra []string

	mu    sync.Mutex
	cmd   *exec.Cmd
	kills int
}

// startServer starts `orderhook serve` on a free port against dbURL, with
// the extra flags, and waits until /readyz answers 200. The process is
// stopped when t ends, and its log is printed when t failed.
func startServer(t *testing.T, name, dbURL string, extra ...string) *server {
	t.Helper()
	s := &server{name: name, dbURL: dbURL, addr: freeAddr(t), extra: extra}
	s.log = filepath.Join(t.TempDir(), name+".log")
	require.NoError(t, s.start(context.Background()))
	t.Cleanup(func() {
		s.stop()
		if t.Failed() {
			b, _ := os.ReadFile(s.log)
			t.Logf("log of %s (last 6000 bytes):\n%s", s.name, tail(b, 6000))
		}
	})
	return s
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return addr
}

// url is the webhook endpoint.
func (s *server) url() string { return "http://" + s.addr + "/webhooks/stripe" }

// start runs a new process and waits until it is ready.
func (s *server) start(ctx context.Context) error {
	logf, err := os.OpenFile(s.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("open log: %w", err)
	}
	defer logf.Close()
	args := append([]string{"serve", "--addr", s.addr, "--db", s.dbURL, "--secret", secret, "--log-format", "json"}, s.extra...)
	cmd := exec.Command(binary, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", s.name, err)
	}
	s.mu.Lock()
	s.cmd = cmd
	s.mu.Unlock()
	return s.waitReady(ctx, readyTimeout)
}

// waitReady polls /readyz until it answers 200, for at most within.
func (s *server) waitReady(ctx context.Context, within time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	err := poll(ctx, 20*time.Millisecond, func() (bool, error) {
		return s.probe(ctx, "/readyz") == nil, nil
	})
	if err != nil {
		b, _ := os.ReadFile(s.log)
		return fmt.Errorf("%s on %s not ready within %s: %w; log:\n%s", s.name, s.addr, within, err, tail(b, 3000))
	}
	return nil
}

// probe GETs path and returns an error unless it answers 200.
func (s *server) probe(ctx context.Context, path string) error {
	status, err := s.status(ctx, path)
	if err != nil {
		return err
	}
	if status != http.StatusOK {
		return fmt.Errorf("%s: %d", path, status)
	}
	return nil
}

// status GETs path on a fresh connection and returns the answer's status.
func (s *server) status(ctx context.Context, path string) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+s.addr+path, nil)
	if err != nil {
		return 0, err
	}
	resp, err := probeClient.Do(req)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// probeClient never reuses a connection, so a probe measures a fresh one.
var probeClient = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}

// kill SIGKILLs the process and reaps it.
func (s *server) kill() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGKILL)
	_ = s.cmd.Wait()
	s.cmd = nil
	s.kills++
}

// restart SIGKILLs the process and starts a new one on the same port.
func (s *server) restart(ctx context.Context) error {
	s.kill()
	return s.start(ctx)
}

// stop ends the process gracefully: SIGTERM, then SIGKILL after 20 s.
func (s *server) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		_ = s.cmd.Process.Signal(syscall.SIGKILL)
		<-done
	}
	s.cmd = nil
}

// memory returns the current and the peak resident set size of the process,
// in KiB, from /proc.
func (s *server) memory() (rss, peak int, err error) {
	s.mu.Lock()
	if s.cmd == nil {
		s.mu.Unlock()
		return 0, 0, errors.New("not running")
	}
	pid := s.cmd.Process.Pid
	s.mu.Unlock()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, fmt.Errorf("read status of %d: %w", pid, err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		_, _ = fmt.Sscanf(line, "VmRSS: %d kB", &rss)
		_, _ = fmt.Sscanf(line, "VmHWM: %d kB", &peak)
	}
	return rss, peak, nil
}

// poll calls cond every interval until it reports true, returns an error, or
// ctx ends.
func poll(ctx context.Context, interval time.Duration, cond func() (bool, error)) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		ok, err := cond()
		if err != nil || ok {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}
