package store

import (
	"context"
	"database/sql/driver"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lib/pq"
)

// lib/pq takes a statement's context only to send PostgreSQL a cancel
// request, on a connection of its own, and then goes on waiting for the
// statement's answer. A database that stops answering therefore holds the
// statement, and whoever waits for it, long past its deadline: until the
// kernel gives the connection up, about 15 minutes on Linux for a host gone
// in a failover or behind a partition, and for ever for a server that is up
// but stuck (lib/pq issues 450 and 620). The connector below puts the
// context on the socket instead, as pgx does: each call on a connection
// sets the socket's deadline to its context's, and a context that ends
// early sets one in the past. A read that would wait then fails at once,
// lib/pq marks the connection bad, and database/sql drops it. What lib/pq
// returns without context methods (the statement of a COPY … FROM STDIN)
// is handed on as it is, and runs as lib/pq runs it.

// expired is a deadline in the past: a socket given it fails every read and
// write at once.
var expired = time.Unix(1, 0)

// closeTimeout bounds what closes without a context: a prepared statement,
// which costs the server a round trip it answers at once, and a connection.
// Once DB.Close has begun, it bounds all of them together.
const closeTimeout = 2 * time.Second

// newPostgresConnector returns a lib/pq connector for dsn whose connections
// honour their calls' contexts on the socket.
func newPostgresConnector(dsn string) (*socketConnector, error) {
	c, err := pq.NewConnector(dsn)
	if err != nil {
		return nil, err
	}
	c.Dialer(socketDialer{})
	return &socketConnector{pq: c}, nil
}

// socketConnector connects through lib/pq and keeps each connection's
// socket, so that calls can put their contexts on it.
type socketConnector struct {
	pq      *pq.Connector
	closing atomic.Int64 // Unix nanoseconds by which the pool's closes end; 0 until DB.Close
}

// closeAll bounds every close from now on, together, by closeTimeout. A nil
// connector (SQLite) does nothing.
func (c *socketConnector) closeAll() {
	if c == nil {
		return
	}
	c.closing.CompareAndSwap(0, time.Now().Add(closeTimeout).UnixNano())
}

// closeOn runs close, which closes a statement or a connection on sock,
// within closeTimeout from now or what is left of closeAll's.
func (c *socketConnector) closeOn(sock *socket, close func() error) error {
	deadline := time.Now().Add(closeTimeout)
	if by := c.closing.Load(); by != 0 {
		deadline = time.Unix(0, by)
	}
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	defer sock.watch(ctx)()
	return close()
}

// socketKey marks the context of a Connect, to which the dialer hands the
// socket it opens.
type socketKey struct{}

// Connect opens a connection whose startup, too, ends with ctx: lib/pq bounds
// only the dial by it.
func (c *socketConnector) Connect(ctx context.Context) (driver.Conn, error) {
	s := &socket{}
	end := s.watch(ctx)
	cn, err := c.pq.Connect(context.WithValue(ctx, socketKey{}, s))
	end()
	if err != nil {
		return nil, err
	}
	pc, ok := cn.(pqConn)
	if !ok {
		return cn, nil // without context methods: as lib/pq runs it
	}
	return &socketConn{pqConn: pc, sock: s, pool: c}, nil
}

// Driver returns lib/pq's driver.
func (c *socketConnector) Driver() driver.Driver { return c.pq.Driver() }

// cancelTimeout bounds each cancel request lib/pq sends when a call's
// context ends: the dial, the request, and the wait for the server to close
// the connection, which a server that answers does at once. lib/pq gives it
// 10 s, and a prepared statement's call returns only once it is over.
const cancelTimeout = time.Second

// socketDialer dials as lib/pq's own dialer does, and hands the socket to
// the Connect that asked for it. Any other dial is a cancel request, bounded
// by cancelTimeout.
type socketDialer struct{}

// Dial dials without a deadline.
func (d socketDialer) Dial(network, address string) (net.Conn, error) {
	return d.DialContext(context.Background(), network, address)
}

// DialTimeout dials within timeout.
func (d socketDialer) DialTimeout(network, address string, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return d.DialContext(ctx, network, address)
}

// DialContext dials within ctx.
func (socketDialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	s, connect := ctx.Value(socketKey{}).(*socket)
	if !connect {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cancelTimeout)
		defer cancel()
	}
	var d net.Dialer
	nc, err := d.DialContext(ctx, network, address)
	if err != nil {
		return nil, err
	}
	if connect {
		s.set(nc)
		return nc, nil
	}
	deadline, _ := ctx.Deadline()
	_ = nc.SetDeadline(deadline)
	return nc, nil
}

// socket is a connection's network socket and the context of the call under
// way on it. Calls on one connection never overlap, but a context may end
// while its call returns, and a call's rows may be closed after the next
// call began: calls are numbered, and only the current one may touch the
// deadline.
type socket struct {
	mu       sync.Mutex
	nc       net.Conn  // nil until dialled
	calls    uint64    // calls watched so far
	current  uint64    // the call under way, 0 between calls
	deadline time.Time // the current call's deadline: zero for none, expired once its context ended
}

// set records the dialled socket and gives it the current call's deadline.
func (s *socket) set(nc net.Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nc = nc
	if s.current != 0 {
		_ = nc.SetDeadline(s.deadline)
	}
}

// watch puts ctx on the socket for the call about to start: its deadline, or
// none, and, should ctx end before the call does, a deadline in the past.
// The returned func ends the call: it stops watching ctx and takes its
// deadline off the socket.
func (s *socket) watch(ctx context.Context) (end func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	call := s.calls
	deadline, _ := ctx.Deadline()
	if ctx.Err() != nil {
		deadline = expired
	}
	s.setDeadline(call, deadline)
	stop := context.AfterFunc(ctx, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.current == call {
			s.setDeadline(call, expired)
		}
	})
	return func() {
		stop()
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.current == call {
			s.setDeadline(0, time.Time{})
		}
	}
}

// setDeadline makes call the current one, with deadline; s.mu is held.
func (s *socket) setDeadline(call uint64, deadline time.Time) {
	s.current, s.deadline = call, deadline
	if s.nc != nil {
		_ = s.nc.SetDeadline(deadline)
	}
}

// pqConn is what a lib/pq connection implements and database/sql uses.
type pqConn interface {
	driver.Conn
	driver.ConnBeginTx
	driver.ConnPrepareContext
	driver.ExecerContext
	driver.QueryerContext
	driver.Pinger
	driver.SessionResetter
	driver.Validator
	driver.NamedValueChecker
}

// socketConn is a lib/pq connection whose calls put their contexts on its
// socket before lib/pq runs them.
type socketConn struct {
	pqConn
	sock *socket
	pool *socketConnector
}

// Close ends the session within closeTimeout.
func (c *socketConn) Close() error { return c.pool.closeOn(c.sock, c.pqConn.Close) }

// BeginTx begins a transaction whose commit or rollback ends with ctx too.
func (c *socketConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	end := c.sock.watch(ctx)
	defer end()
	tx, err := c.pqConn.BeginTx(ctx, opts)
	if err != nil {
		return nil, err
	}
	return socketTx{tx: tx, ctx: ctx, sock: c.sock}, nil
}

// PrepareContext prepares query within ctx. The statement's runs watch their
// own contexts.
func (c *socketConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	end := c.sock.watch(ctx)
	defer end()
	st, err := c.pqConn.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	ps, ok := st.(pqStmt)
	if !ok { // COPY … FROM STDIN: as lib/pq runs it
		return st, nil
	}
	return &socketStmt{pqStmt: ps, sock: c.sock, pool: c.pool}, nil
}

// ExecContext runs query within ctx.
func (c *socketConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	defer c.sock.watch(ctx)()
	return c.pqConn.ExecContext(ctx, query, args)
}

// QueryContext runs query within ctx; its rows are read within ctx too.
func (c *socketConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	end := c.sock.watch(ctx)
	rows, err := c.pqConn.QueryContext(ctx, query, args)
	return withEnd(end, rows, err)
}

// Ping checks the connection within ctx.
func (c *socketConn) Ping(ctx context.Context) error {
	defer c.sock.watch(ctx)()
	return c.pqConn.Ping(ctx)
}

// socketTx is a lib/pq transaction whose end watches the context it began
// with: database/sql passes none to Commit and Rollback.
type socketTx struct {
	tx   driver.Tx
	ctx  context.Context // the transaction's own, as database/sql keeps it
	sock *socket
}

// Commit commits within the transaction's context.
func (t socketTx) Commit() error {
	defer t.sock.watch(t.ctx)()
	return t.tx.Commit()
}

// Rollback rolls back within the transaction's context. When database/sql
// rolls back because that context ended, the socket fails at once, and the
// connection is dropped instead of waiting for a silent server.
func (t socketTx) Rollback() error {
	defer t.sock.watch(t.ctx)()
	return t.tx.Rollback()
}

// pqStmt is what a lib/pq prepared statement implements.
type pqStmt interface {
	driver.Stmt
	driver.StmtExecContext
	driver.StmtQueryContext
}

// socketStmt is a lib/pq prepared statement whose runs put their contexts
// on the connection's socket.
type socketStmt struct {
	pqStmt
	sock *socket
	pool *socketConnector
}

// Close closes the statement on the server within closeTimeout.
func (s *socketStmt) Close() error { return s.pool.closeOn(s.sock, s.pqStmt.Close) }

// ExecContext runs the statement within ctx.
func (s *socketStmt) ExecContext(ctx context.Context, args []driver.NamedValue) (driver.Result, error) {
	defer s.sock.watch(ctx)()
	return s.pqStmt.ExecContext(ctx, args)
}

// QueryContext runs the statement within ctx; its rows are read within ctx
// too.
func (s *socketStmt) QueryContext(ctx context.Context, args []driver.NamedValue) (driver.Rows, error) {
	end := s.sock.watch(ctx)
	rows, err := s.pqStmt.QueryContext(ctx, args)
	return withEnd(end, rows, err)
}

// pqRows is what lib/pq's rows implement and database/sql uses.
type pqRows interface {
	driver.Rows
	driver.RowsNextResultSet
	driver.RowsColumnTypeScanType
	driver.RowsColumnTypeDatabaseTypeName
	driver.RowsColumnTypeLength
	driver.RowsColumnTypePrecisionScale
}

// socketRows are a query's rows; closing them ends the query's call.
type socketRows struct {
	pqRows
	end func()
}

// Close reads the rest of the rows, within the query's context, and ends
// its call.
func (r *socketRows) Close() error {
	defer r.end()
	return r.pqRows.Close()
}

// withEnd hands a query's result on, ending its call at once when it
// failed, and when its rows are closed otherwise.
func withEnd(end func(), rows driver.Rows, err error) (driver.Rows, error) {
	if err != nil {
		end()
		return nil, err
	}
	pr, ok := rows.(pqRows)
	if !ok { // without context methods: as lib/pq runs it
		end()
		return rows, nil
	}
	return &socketRows{pqRows: pr, end: end}, nil
}
