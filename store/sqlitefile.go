package store

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
)

// sqliteFile is the SQLite database file a DB opened. A process keeps
// writing to the file it opened even after the path is removed or replaced
// (a cleanup script, a restore copied over it): the events it then
// acknowledges live in a file nothing can open again. The same holds for
// the write-ahead log beside it, where committed transactions wait to be
// copied into the file: removed, what it holds is lost when the process
// dies. The DB checks both before it acknowledges a stored event, when
// asked whether it is ready, and every watchInterval.
type sqliteFile struct {
	path       string
	wal        string // the write-ahead log's path, absolute, links resolved
	info       os.FileInfo
	checkpoint func() error                // copies the write-ahead log into the file
	walInfo    atomic.Pointer[os.FileInfo] // the log last seen to be this process's
	stop       chan struct{}
	stopOnce   sync.Once
	done       chan struct{}
}

// watchInterval is how often the DB checks its SQLite files when nothing
// else does: a log removed while no delivery comes is copied into the file
// within it.
const watchInterval = time.Second

// openedFile records the file at path, which Open has just opened;
// checkpoint copies its write-ahead log into it. It checks the files every
// watchInterval until close.
func openedFile(path string, checkpoint func() error) (*sqliteFile, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("open sqlite:%s: %w", path, err)
	}
	// SQLite keeps the log beside the file a link leads to.
	abs, err := filepath.Abs(path)
	if err == nil {
		abs, err = filepath.EvalSymlinks(abs)
	}
	if err != nil {
		return nil, fmt.Errorf("open sqlite:%s: %w", path, err)
	}
	f := &sqliteFile{path: path, wal: abs + "-wal", info: info, checkpoint: checkpoint,
		stop: make(chan struct{}), done: make(chan struct{})}
	go f.watch()
	return f, nil
}

// watch checks the files every watchInterval until close.
func (f *sqliteFile) watch() {
	defer close(f.done)
	t := time.NewTicker(watchInterval)
	defer t.Stop()
	for {
		select {
		case <-f.stop:
			return
		case <-t.C:
			_ = f.check() // what it finds, the next delivery and /readyz say
		}
	}
}

// close stops the watch; more calls do nothing, as on PostgreSQL (f is
// nil).
func (f *sqliteFile) close() {
	if f == nil {
		return
	}
	f.stopOnce.Do(func() { close(f.stop) })
	<-f.done
}

// check returns an error wrapping ErrUnavailable when path no longer names
// the opened file, or when the write-ahead log this process writes to was
// removed, even if another process has since created a new one. The log
// removed, check first copies it, through the process's handle, into the
// file: what was acknowledged survives the process. It returns nil on
// PostgreSQL (f is nil).
func (f *sqliteFile) check() error {
	if f == nil {
		return nil
	}
	info, err := os.Stat(f.path)
	if err != nil || !os.SameFile(info, f.info) {
		return fmt.Errorf("%w: the SQLite file %s is no longer the one this process opened (removed or replaced): restart orderhook on the file to use", ErrUnavailable, f.path)
	}
	info, err = os.Stat(f.wal)
	seen := f.walInfo.Load()
	switch {
	case err == nil && seen != nil && os.SameFile(info, *seen):
		return nil // the common case: one stat
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		return nil // cannot tell
	case err != nil && seen == nil:
		return nil // SQLite creates the log with the first transaction
	}
	// The log is new to this process, gone, or another file under its
	// name: the connection may have been opened again (SQLite then
	// removes and creates the log itself), or the log it writes to removed.
	if !f.walRemoved(err != nil) {
		if err == nil {
			f.walInfo.Store(&info)
		}
		return nil
	}
	saved := "what it held is copied into " + f.path
	if err := f.checkpoint(); err != nil {
		saved = fmt.Sprintf("copying what it held into %s failed (%v)", f.path, err)
	}
	return fmt.Errorf("%w: the SQLite write-ahead log %s was removed while this process had it open; %s: restart orderhook", ErrUnavailable, f.wal, saved)
}

// walRemoved reports whether this process has the write-ahead log open as
// a removed file, which Linux shows in /proc/self/fd. Where that cannot be
// read, it answers missing: the log is gone though a connection is open —
// or was closed and opened again, when SQLite removes the log itself, a
// false alarm there.
func (f *sqliteFile) walRemoved(missing bool) bool {
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return missing
	}
	for _, fd := range fds {
		if target, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name())); err == nil && target == f.wal+" (deleted)" {
			return true
		}
	}
	return false
}
