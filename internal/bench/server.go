package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"
)

// ServerConfig configures a server the bench starts itself.
type ServerConfig struct {
	Executable string   // the orderhook binary; default os.Executable()
	DB         string   // the database URL it serves
	Secret     string   // the signing secret it verifies
	Args       []string // more `serve` flags, e.g. --workers=8
	Log        io.Writer
	// Env is the child's environment; nil inherits this process's.
	Env []string
}

// Server is an `orderhook serve` child process on a free port.
type Server struct {
	URL  string // its webhook endpoint
	PID  int
	cmd  *exec.Cmd
	done chan error
}

// serverStartTimeout bounds the wait for a started server to listen
// (migrations included).
const serverStartTimeout = time.Minute

// StartServer starts `orderhook serve` on a free port of 127.0.0.1 against
// cfg.DB and returns once it listens. Stop it with Stop. It returns an error,
// with the end of the server's output, when the server exits or does not
// listen within a minute.
func StartServer(ctx context.Context, cfg ServerConfig) (*Server, error) {
	exe := cfg.Executable
	if exe == "" {
		var err error
		if exe, err = os.Executable(); err != nil {
			return nil, fmt.Errorf("start server: find the orderhook binary: %w", err)
		}
	}
	log := cfg.Log
	if log == nil {
		log = io.Discard
	}
	args := append([]string{"serve", "--addr", "127.0.0.1:0", "--db", cfg.DB, "--secret", cfg.Secret}, cfg.Args...)
	cmd := exec.Command(exe, args...)
	cmd.Env = cfg.Env
	cmd.Stderr = log
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("start server: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start server %s: %w", exe, err)
	}
	s := &Server{PID: cmd.Process.Pid, cmd: cmd, done: make(chan error, 1)}
	listening := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			fmt.Fprintln(log, sc.Text())
			if url, ok := strings.CutPrefix(sc.Text(), "orderhook listening on "); ok {
				listening <- strings.Fields(url)[0]
			}
		}
		_, _ = io.Copy(log, stdout)
		s.done <- cmd.Wait()
	}()
	return s, s.awaitListening(ctx, listening)
}

// awaitListening waits for the server's banner.
func (s *Server) awaitListening(ctx context.Context, listening <-chan string) error {
	timer := time.NewTimer(serverStartTimeout)
	defer timer.Stop()
	select {
	case s.URL = <-listening:
		return nil
	case err := <-s.done:
		s.done <- err
		return fmt.Errorf("server exited before listening (%v): see its log", err)
	case <-timer.C:
		_ = s.Stop()
		return fmt.Errorf("server did not listen within %s", serverStartTimeout)
	case <-ctx.Done():
		_ = s.Stop()
		return ctx.Err()
	}
}

// serverStopTimeout bounds a graceful shutdown before the server is killed.
const serverStopTimeout = 20 * time.Second

// Stop interrupts the server and waits for it to exit, killing it after 20
// seconds. It returns an error when the server did not exit cleanly.
func (s *Server) Stop() error {
	if err := s.cmd.Process.Signal(os.Interrupt); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("stop server: %w", err)
	}
	select {
	case err := <-s.done:
		s.done <- err
		if err != nil {
			return fmt.Errorf("server exited: %w", err)
		}
		return nil
	case <-time.After(serverStopTimeout):
		_ = s.cmd.Process.Kill()
		return fmt.Errorf("server did not stop within %s: killed", serverStopTimeout)
	}
}
