package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/jmoiron/sqlx"
)

// ErrClosed is returned by InsertEvent once the DB is closing.
var ErrClosed = errors.New("store closed")

// Group commit tuning. A batch is whatever queued while the previous batch
// committed; no caller ever waits for a timer or for a batch to fill.
const (
	// maxBatch bounds the rows of one INSERT: 256 rows of 12 parameters stay
	// far below both engines' parameter limits, and 256 × a few KB is one
	// modest statement.
	maxBatch = 256
	// batchTimeout bounds one batch, so that a hung database answers the
	// waiting deliveries with an error (and the sender retries) instead of
	// holding them until the sender gives up.
	batchTimeout = 10 * time.Second
	// preparedRows bounds the batches whose INSERT is prepared. Each batch
	// size is a statement of its own, kept prepared on every connection
	// that runs it; parsing and planning one costs PostgreSQL more than
	// the insert of a few rows (BENCHMARKS.md), but a batch of more rows
	// than this is rare and pays it over all of them.
	preparedRows = 64
)

// groupCommitter coalesces concurrent InsertEvent calls into one multi-row
// INSERT per transaction. N concurrent deliveries then cost one commit and
// one WAL flush instead of N, and, on PostgreSQL, at most one NOTIFY sent
// after the commit by the notifier. Each caller still returns only after
// the statement holding its row has committed.
//
// One batch commits at a time, and the next is everything that queued
// meanwhile. A second committer taking requests while the first commits
// halves the batches and doubles the statements and commits: on PostgreSQL
// that cost 20-30 % more CPU per stored event, server and database together
// (BENCHMARKS.md), for no faster answer under load.
type groupCommitter struct {
	db       *DB
	timeout  time.Duration      // of one batch: batchTimeout but in tests
	queue    chan insertRequest // unbuffered: a request is taken only by the running committer
	stop     chan struct{}
	once     sync.Once
	wg       sync.WaitGroup
	inFlight *inFlight
}

// insertRequest is one InsertEvent call waiting for its batch.
type insertRequest struct {
	ev   Event
	done chan<- insertResult // buffered: the committer never blocks on it
}

// insertResult answers one insertRequest.
type insertResult struct {
	inserted bool
	err      error
}

func newGroupCommitter(db *DB) *groupCommitter {
	g := &groupCommitter{db: db, timeout: batchTimeout, queue: make(chan insertRequest), stop: make(chan struct{}), inFlight: newInFlight(ingestQuiet)}
	g.wg.Add(1)
	go g.run()
	return g
}

// close stops the committer once the batch in flight has committed.
// Callers that have not handed over their request get ErrClosed.
func (g *groupCommitter) close() {
	g.once.Do(func() { close(g.stop) })
	g.wg.Wait()
}

// errNotCommitted is the cause of an insert that waited a batch's timeout,
// queued and committing together, without its batch committing.
var errNotCommitted = fmt.Errorf("%w: not committed within the batch timeout", ErrUnavailable)

// insert hands ev to the committer and waits for the commit of its batch. When
// ctx ends first it returns ctx's error: the row may or may not be committed,
// which is safe because a redelivery is a duplicate.
//
// It waits no longer than one batch's timeout in all, queueing included, and
// then returns an error wrapping ErrUnavailable. Behind a batch that the
// database does not answer, a burst of deliveries would otherwise be answered
// one batch timeout after another: past the server's write timeout, and the
// sender's patience, for all but the first maxBatch.
func (g *groupCommitter) insert(ctx context.Context, ev Event) (bool, error) {
	if err := ctx.Err(); err != nil {
		// Not handed over: once it is, the commit may answer at the same
		// moment as ctx, and select picks either.
		return false, fmt.Errorf("insert event %s: %w", ev.ID, err)
	}
	ctx, cancel := context.WithTimeoutCause(ctx, g.timeout, errNotCommitted)
	defer cancel()
	g.inFlight.add()
	defer g.inFlight.done()
	done := make(chan insertResult, 1)
	select {
	case g.queue <- insertRequest{ev: ev, done: done}:
	case <-g.stop:
		return false, fmt.Errorf("insert event %s: %w", ev.ID, ErrClosed)
	case <-ctx.Done():
		return false, fmt.Errorf("insert event %s: %w", ev.ID, context.Cause(ctx))
	}
	select {
	case res := <-done:
		return res.inserted, res.err
	case <-ctx.Done():
		return false, fmt.Errorf("insert event %s: %w", ev.ID, context.Cause(ctx))
	}
}

// ingestQuiet is how long no InsertEvent may have been under way before
// the store counts as idle. Senders keep deliveries back to back: between
// one batch's answers and the next requests the count drops to zero for
// well under a millisecond, and a reconciler that took that for the end of
// the burst would run its batch ahead of them.
const ingestQuiet = 5 * time.Millisecond

// inFlight counts the InsertEvent calls under way and tells when none has
// been for quiet.
type inFlight struct {
	mu    sync.Mutex
	n     int
	quiet time.Duration
	gen   uint64        // calls started so far: a settle timer of an older one is stale
	none  chan struct{} // closed once n has been 0 for quiet
}

func newInFlight(quiet time.Duration) *inFlight {
	none := make(chan struct{})
	close(none)
	return &inFlight{quiet: quiet, none: none}
}

func (f *inFlight) add() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.n == 0 && isClosed(f.none) {
		f.none = make(chan struct{})
	}
	f.n++
	f.gen++
}

func (f *inFlight) done() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n--
	if f.n > 0 {
		return
	}
	gen := f.gen
	time.AfterFunc(f.quiet, func() { f.settle(gen) })
}

// settle closes none unless a call has started since the one whose end
// scheduled it.
func (f *inFlight) settle(gen uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.gen == gen && f.n == 0 {
		close(f.none)
	}
}

// idle returns a channel that is closed once no call has been under way for
// quiet: at once when none has been.
func (f *inFlight) idle() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.none
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// run takes the first waiting request, then every other request already
// waiting (up to maxBatch), and commits them together.
func (g *groupCommitter) run() {
	defer g.wg.Done()
	batch := make([]insertRequest, 0, maxBatch)
	for {
		select {
		case <-g.stop:
			return
		case req := <-g.queue:
			batch = append(batch[:0], req)
		}
	fill:
		for len(batch) < maxBatch {
			select {
			case req := <-g.queue:
				batch = append(batch, req)
			default:
				break fill
			}
		}
		g.commit(batch)
	}
}

// commit inserts batch and answers every request in it. When the database
// refuses the batch, each row is retried alone, so that one row it refuses
// cannot fail the deliveries it happened to share a batch with.
func (g *groupCommitter) commit(batch []insertRequest) {
	ctx, cancel := context.WithTimeout(context.Background(), g.timeout)
	defer cancel()
	events := make([]Event, len(batch))
	for i, req := range batch {
		events[i] = req.ev
	}
	inserted, err := g.db.insertEvents(ctx, events)
	if err != nil && len(batch) > 1 && refused(err) {
		for _, req := range batch {
			g.commit([]insertRequest{req})
		}
		return
	}
	for i, req := range batch {
		if err != nil {
			req.done <- insertResult{err: fmt.Errorf("insert event %s: %w", req.ev.ID, err)}
			continue
		}
		req.done <- insertResult{inserted: inserted[i]}
	}
}

// refused reports whether the database answered err about the statement
// itself, rather than not answering (unreachable, or out of time): only then
// can a row be to blame, and retrying each row alone be worth it.
func refused(err error) bool {
	return !errors.Is(err, ErrUnavailable) && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled)
}

// insertEvents stores events in one statement and reports, for each, whether
// its row was inserted by it: false for an id already stored and for every
// repeat of an id earlier in events.
func (db *DB) insertEvents(ctx context.Context, events []Event) ([]bool, error) {
	first := make(map[string]int, len(events))
	var unique []Event
	for i, ev := range events {
		if _, ok := first[ev.ID]; !ok {
			first[ev.ID] = i
			unique = append(unique, ev)
		}
	}
	query, args := db.insertStatement(unique)
	var stmt *sqlx.Stmt
	if len(unique) <= preparedRows {
		db.prepared.warm(ctx)
		stmt = db.prepared.lookup(query)
	}
	var ids []string
	var err error
	if stmt != nil {
		err = stmt.SelectContext(ctx, &ids, args...)
	} else {
		err = db.db.SelectContext(ctx, &ids, query, args...)
	}
	if err != nil {
		return nil, translate(err)
	}
	// Committed, but to a file that may no longer be the inbox: then the
	// deliveries are answered as not stored, and the sender retries.
	if err := db.file.check(); err != nil {
		return nil, err
	}
	inserted := make([]bool, len(events))
	for _, id := range ids {
		inserted[first[id]] = true
	}
	if len(ids) > 0 {
		db.notify()
	}
	return inserted, nil
}

// insertColumns are the columns of an inserted row, in the order of the
// arguments insertStatement passes for each event.
const insertColumns = `event_id, type, api_version, livemode, created, customer_id, object_id,
	payload, received_at, status, next_attempt_at, secret_index`

// insertStatement returns the INSERT of events, returning the ids it
// inserted. It does not NOTIFY: insertEvents has the notifier do that after
// the commit.
func (db *DB) insertStatement(events []Event) (string, []any) {
	var b strings.Builder
	b.WriteString(`INSERT INTO webhook_events (` + insertColumns + `) VALUES `)
	var args []any
	for i, ev := range events {
		row := []any{ev.ID, ev.Type, ev.APIVersion, ev.Livemode, ts(ev.Created), nullable(ev.CustomerID),
			nullable(ev.ObjectID), ev.Payload, ts(ev.ReceivedAt), StatusPending, ts(ev.ReceivedAt), ev.SecretIndex}
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("(" + placeholders(len(args)+1, len(row)) + ")")
		args = append(args, row...)
	}
	b.WriteString(` ON CONFLICT (event_id) DO NOTHING RETURNING event_id`)
	return b.String(), args
}
