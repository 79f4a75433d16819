package store

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync/atomic"
)

// sqliteFile is the SQLite database file a DB opened. A process keeps
// writing to the file it opened even after the path is removed or replaced
// (a cleanup script, a restore copied over it): the events it then
// acknowledges live in a file nothing can open again. The same holds for
// the write-ahead log beside it, where committed transactions wait to be
// copied into the file: removed, what it holds is lost when the process
// dies. The DB checks both before it acknowledges a stored event and when
// asked whether it is ready.
type sqliteFile struct {
	path       string
	info       os.FileInfo
	checkpoint func() error // copies the write-ahead log into the file
	walSeen    atomic.Bool  // SQLite creates the log with the first transaction
}

// openedFile records the file at path, which Open has just opened;
// checkpoint copies its write-ahead log into it.
func openedFile(path string, checkpoint func() error) (*sqliteFile, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("open sqlite:%s: %w", path, err)
	}
	return &sqliteFile{path: path, info: info, checkpoint: checkpoint}, nil
}

// check returns an error wrapping ErrUnavailable when path no longer names
// the opened file, or when its write-ahead log, once seen, is gone while
// the process has it open (SQLite keeps it while a connection is open; f's
// DB keeps one). The log removed, check first copies it, through the
// process's handle, into the file: what was acknowledged survives the
// process. It returns nil on PostgreSQL (f is nil). A log that another
// process created again after the removal is not noticed.
func (f *sqliteFile) check() error {
	if f == nil {
		return nil
	}
	info, err := os.Stat(f.path)
	if err != nil || !os.SameFile(info, f.info) {
		return fmt.Errorf("%w: the SQLite file %s is no longer the one this process opened (removed or replaced): restart orderhook on the file to use", ErrUnavailable, f.path)
	}
	switch _, err := os.Stat(f.path + "-wal"); {
	case err == nil:
		f.walSeen.Store(true)
		return nil
	case !errors.Is(err, fs.ErrNotExist), !f.walSeen.Load():
		return nil
	}
	saved := "what it held is copied into " + f.path
	if err := f.checkpoint(); err != nil {
		saved = fmt.Sprintf("copying what it held into %s failed (%v)", f.path, err)
	}
	return fmt.Errorf("%w: the SQLite write-ahead log %s-wal was removed while this process had it open; %s: restart orderhook", ErrUnavailable, f.path, saved)
}
