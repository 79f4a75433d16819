package store

import (
	"context"
	"net"
	"sync"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
)

// notifyChannel is the PostgreSQL channel on which every replica announces
// new due work (an inserted or released event).
const notifyChannel = "orderhook_work"

// Subscribe returns a channel that receives a value, coalesced, whenever an
// event may have become due: inserted or released by this process or, on
// PostgreSQL, by any process (LISTEN/NOTIFY). Wake-ups are hints; callers
// still poll. The returned func unsubscribes.
func (db *DB) Subscribe() (<-chan struct{}, func()) {
	if db.dialect == Postgres {
		db.wake.listenOnce(db.dsn)
	}
	return db.wake.subscribe()
}

// notify wakes local subscribers at once and, on PostgreSQL, every other
// replica soon after. It never blocks.
func (db *DB) notify() {
	db.wake.signal()
	db.others.signal()
}

// notifier sends the NOTIFY that wakes the other replicas, from its own
// goroutine, after the commit of what it announces. Signals that arrive
// while one is sent, or within notifyGap of it, coalesce into the next.
// The NOTIFY is kept out of the inserting transaction, so that the group
// commit neither takes the database-wide lock a notifying commit holds
// through its WAL flush nor wakes every listener once per batch.
//
// A nil notifier (SQLite: one process) does nothing.
type notifier struct {
	db      *sqlx.DB
	timeout time.Duration // of one NOTIFY: notifyTimeout but in tests
	pending chan struct{} // buffered: one NOTIFY owed at most
	stop    chan struct{}
	done    chan struct{}
	once    sync.Once
	closeBy time.Time // set by close before stop is closed: when the NOTIFY it flushes must end
}

// notifyTimeout bounds one NOTIFY, so that a hung database cannot keep
// close waiting: close waits for the NOTIFY under way and the one it owes
// no longer than this in all.
const notifyTimeout = 5 * time.Second

// notifyGap is the least time between two NOTIFYs. The first after a pause
// goes at once; during a burst the other replicas hear of new events ten
// times a second instead of once per batch. Each NOTIFY wakes the LISTEN
// backend and the listener of every replica, this one included; without one
// per batch the receiver stored about 8 % more on the machine of the time
// (BENCHMARKS.md, "Wake-ups after the commit").
const notifyGap = 100 * time.Millisecond

func newNotifier(db *sqlx.DB) *notifier {
	n := &notifier{db: db, timeout: notifyTimeout, pending: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	go n.run()
	return n
}

// signal asks for a NOTIFY after the one under way, if any.
func (n *notifier) signal() {
	if n == nil {
		return
	}
	select {
	case n.pending <- struct{}{}:
	default:
	}
}

// close sends the NOTIFY still owed, so that a process that stops right
// after an insert or a replay still wakes the others, and stops.
func (n *notifier) close() {
	if n == nil {
		return
	}
	n.once.Do(func() {
		n.closeBy = time.Now().Add(n.timeout)
		close(n.stop)
	})
	<-n.done
}

func (n *notifier) run() {
	defer close(n.done)
	for {
		select {
		case <-n.pending:
			n.send(time.Time{})
			if !n.wait(notifyGap) {
				n.flush()
				return
			}
		case <-n.stop:
			n.flush()
			return
		}
	}
}

// wait returns true after d, or false at once when the notifier is stopped.
// A stop during the gap is taken here, not by run's select, where a
// pending signal would race it.
func (n *notifier) wait(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-n.stop:
		return false
	}
}

// flush sends the NOTIFY still owed, if any, by the time close allows. It
// runs only once stop is closed.
func (n *notifier) flush() {
	select {
	case <-n.pending:
		n.send(n.closeBy)
	default:
	}
}

// send is best effort: subscribers also poll, so a lost notification only
// costs latency. A transaction that only notifies commits without waiting
// for a WAL flush. It gives up at deadline, or after n.timeout when
// deadline is zero.
func (n *notifier) send(deadline time.Time) {
	if deadline.IsZero() {
		deadline = time.Now().Add(n.timeout)
	}
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	_, _ = n.db.ExecContext(ctx, `SELECT pg_notify($1, '')`, notifyChannel)
}

// broadcaster fans wake-ups out to subscribers without ever blocking.
type broadcaster struct {
	mu       sync.Mutex
	subs     map[chan struct{}]struct{}
	listener *pq.Listener
	dialer   *listenDialer
	closed   bool
}

func newBroadcaster() *broadcaster {
	return &broadcaster{subs: make(map[chan struct{}]struct{})}
}

func (b *broadcaster) subscribe() (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	b.mu.Lock()
	b.subs[ch] = struct{}{}
	b.mu.Unlock()
	return ch, func() {
		b.mu.Lock()
		delete(b.subs, ch)
		b.mu.Unlock()
	}
}

func (b *broadcaster) signal() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for ch := range b.subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// listenOnce starts one LISTEN connection for the process. Once it is
// listening, and after every reconnect, it signals: notifications sent before
// are lost, so subscribers look for due work themselves.
//
// The listener connects, and reconnects, by itself, and its Listen waits
// until it is connected: for as long as the database refuses it one more
// connection, say. Listen therefore runs on its own, without b.mu, which
// every signal takes, the group commit's included.
func (b *broadcaster) listenOnce(dsn string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.listener != nil || b.closed {
		return
	}
	d := newListenDialer()
	l := pq.NewDialListener(d, dsn, 100*time.Millisecond, 5*time.Second, func(ev pq.ListenerEventType, _ error) {
		if ev == pq.ListenerEventConnected || ev == pq.ListenerEventReconnected {
			b.signal()
		}
	})
	b.listener, b.dialer = l, d
	go func() {
		// Listen fails only when the channel is already listened on or the
		// listener is closed.
		if l.Listen(notifyChannel) == nil {
			b.signal()
		}
	}()
	go func() {
		for range l.Notify {
			b.signal()
		}
	}()
}

// close stops the listener. It first closes the listener's socket: lib/pq
// connects holding the lock its Close takes, and bounds neither the dial nor
// the startup, so a database that stopped answering would hold it for ever.
func (b *broadcaster) close() {
	b.mu.Lock()
	l, d := b.listener, b.dialer
	b.closed = true
	b.mu.Unlock()
	if l != nil {
		d.close()
		_ = l.Close()
	}
}

// listenDialer dials the listener's connections, as lib/pq's own dialer does,
// until close, which ends the dial under way and closes the last socket.
type listenDialer struct {
	closing context.Context // done once close is called
	stop    context.CancelFunc
	mu      sync.Mutex
	last    net.Conn // the last dialled: the listener holds one at a time
}

func newListenDialer() *listenDialer {
	closing, stop := context.WithCancel(context.Background())
	return &listenDialer{closing: closing, stop: stop}
}

func (d *listenDialer) close() {
	d.stop()
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.last != nil {
		_ = d.last.Close()
	}
}

// Dial dials until close.
func (d *listenDialer) Dial(network, address string) (net.Conn, error) {
	return d.DialContext(context.Background(), network, address)
}

// DialTimeout dials within timeout, until close.
func (d *listenDialer) DialTimeout(network, address string, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return d.DialContext(ctx, network, address)
}

// DialContext dials within ctx, until close.
func (d *listenDialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(d.closing, cancel)()
	var nd net.Dialer
	nc, err := nd.DialContext(ctx, network, address)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closing.Err() != nil {
		_ = nc.Close()
		return nil, net.ErrClosed
	}
	d.last = nc
	return nc, nil
}
