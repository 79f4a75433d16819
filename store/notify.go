package store

import (
	"context"
	"sync"
	"time"

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

// notify wakes local subscribers and, on PostgreSQL, every other replica.
func (db *DB) notify(ctx context.Context) {
	db.wake.signal()
	if db.dialect == Postgres {
		// Best effort: subscribers also poll, so a lost notification only
		// costs latency.
		_, _ = db.db.ExecContext(ctx, `SELECT pg_notify($1, '')`, notifyChannel)
	}
}

// broadcaster fans wake-ups out to subscribers without ever blocking.
type broadcaster struct {
	mu       sync.Mutex
	subs     map[chan struct{}]struct{}
	listener *pq.Listener
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
func (b *broadcaster) listenOnce(dsn string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.listener != nil || b.closed {
		return
	}
	l := pq.NewListener(dsn, 100*time.Millisecond, 5*time.Second, func(ev pq.ListenerEventType, _ error) {
		if ev == pq.ListenerEventConnected || ev == pq.ListenerEventReconnected {
			b.signal()
		}
	})
	// Listen only fails when the channel is already listened on or the
	// listener is closed; the listener connects (and reconnects) by itself.
	_ = l.Listen(notifyChannel)
	b.listener = l
	go func() {
		for range l.Notify {
			b.signal()
		}
	}()
}

func (b *broadcaster) close() {
	b.mu.Lock()
	l := b.listener
	b.closed = true
	b.mu.Unlock()
	if l != nil {
		_ = l.Close()
	}
}
