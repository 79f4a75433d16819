// Package cutproxy is a TCP proxy for tests that can cut every connection and
// refuse new ones, as a database that stops or a network that drops would,
// or hold every byte while keeping the connections open, as a database that
// stops answering would, for exactly the clients configured to go through
// it.
package cutproxy

import (
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Proxy forwards TCP connections to a target until Cut.
type Proxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	up     bool
	frozen bool
	thawed chan struct{} // closed unless frozen
	conns  map[net.Conn]struct{}
	wg     sync.WaitGroup
}

// Start listens on a free local port and forwards to target (host:port)
// until t ends.
func Start(t testing.TB, target string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	thawed := make(chan struct{})
	close(thawed)
	p := &Proxy{ln: ln, target: target, up: true, thawed: thawed, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(func() {
		_ = ln.Close()
		p.Cut()
		p.wg.Wait()
	})
	return p
}

// Addr is the address to connect to instead of the target.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

func (p *Proxy) accept() {
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

func (p *Proxy) pipe(c net.Conn) {
	defer p.wg.Done()
	s, err := net.Dial("tcp", p.target)
	if err != nil {
		_ = c.Close()
		return
	}
	p.mu.Lock()
	if !p.up { // cut while dialling
		p.mu.Unlock()
		_ = c.Close()
		_ = s.Close()
		return
	}
	p.conns[s] = struct{}{}
	p.mu.Unlock()
	done := make(chan struct{}, 2)
	go func() { p.copy(s, c); done <- struct{}{} }()
	go func() { p.copy(c, s); done <- struct{}{} }()
	<-done
	_ = c.Close()
	_ = s.Close()
	<-done
	p.mu.Lock()
	delete(p.conns, c)
	delete(p.conns, s)
	p.mu.Unlock()
}

// copy forwards src to dst until either fails, holding what it read while
// the proxy is frozen.
func (p *Proxy) copy(dst io.Writer, src io.Reader) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			thawed := p.thawed
			p.mu.Unlock()
			<-thawed
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// Freeze stops forwarding bytes, in both directions, until Thaw or Cut. The
// connections stay open and new ones are accepted: the clients see a
// database that no longer answers, and what they sent is delivered on Thaw.
func (p *Proxy) Freeze() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.frozen {
		p.frozen = true
		p.thawed = make(chan struct{})
	}
}

// FreezeFor freezes the proxy until d has passed or t ends, whichever comes
// first: a client that ignores its deadline then gets its answer only after
// d, and fails its test by the time it took instead of hanging it.
func (p *Proxy) FreezeFor(t testing.TB, d time.Duration) {
	p.Freeze()
	thaw := time.AfterFunc(d, p.Thaw)
	t.Cleanup(func() {
		thaw.Stop()
		p.Thaw()
	})
}

// Thaw delivers what Freeze held and forwards again.
func (p *Proxy) Thaw() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.thaw()
}

// thaw ends a freeze; p.mu is held.
func (p *Proxy) thaw() {
	if p.frozen {
		p.frozen = false
		close(p.thawed)
	}
}

// Cut drops every connection, and what a Freeze held, and refuses new ones
// until Restore.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.up = false
	for c := range p.conns {
		_ = c.Close()
		delete(p.conns, c)
	}
	p.thaw() // the held bytes go to closed connections
}

// Restore accepts connections again.
func (p *Proxy) Restore() {
	p.mu.Lock()
	p.up = true
	p.mu.Unlock()
}
