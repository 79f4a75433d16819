package store

import (
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// A listener that cannot connect — the database refuses it one more
// connection, say — holds up neither the subscribers' wake-ups, which every
// inserting commit sends, nor the close.
func TestWakeUpsDoNotWaitForAListenerThatCannotConnect(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	refused := ln.Addr().String()
	require.NoError(t, ln.Close())

	b := newBroadcaster()
	wake, _ := b.subscribe()
	returns(t, "listenOnce", func() { b.listenOnce("postgres://orderhook@" + refused + "/orderhook?sslmode=disable") })
	time.Sleep(200 * time.Millisecond) // the listener has tried and failed
	returns(t, "signal", b.signal)
	select {
	case <-wake:
	default:
		t.Fatal("the subscriber was not woken")
	}
	returns(t, "close", b.close)
}

// Closing does not wait for a listener that connects to a database that
// stopped answering: lib/pq holds, while it connects, the lock its Close
// takes, and bounds neither the dial nor the startup.
func TestCloseDoesNotWaitForAListenerConnecting(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer func() { _ = ln.Close() }()
	accepted := make(chan net.Conn, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c // held open, never answered
		}
	}()

	b := newBroadcaster()
	returns(t, "listenOnce", func() { b.listenOnce("postgres://orderhook@" + ln.Addr().String() + "/orderhook?sslmode=disable") })
	select {
	case c := <-accepted:
		defer func() { _ = c.Close() }()
	case <-time.After(5 * time.Second):
		t.Fatal("the listener did not connect")
	}
	time.Sleep(50 * time.Millisecond) // its startup message is sent, its answer awaited
	returns(t, "close", b.close)
}

// returns fails t unless fn returns within two seconds.
func returns(t *testing.T, name string, fn func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn()
	}()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Fatalf("%s did not return within 2s", name)
	}
}
