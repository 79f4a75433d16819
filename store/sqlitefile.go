package store

import (
	"fmt"
	"os"
)

// sqliteFile is the SQLite database file a DB opened. A process keeps
// writing to the file it opened even after the path is removed or replaced
// (a cleanup script, a restore copied over it): the events it then
// acknowledges live in a file nothing can open again. The DB checks the
// path still names that file before it acknowledges a stored event and when
// asked whether it is ready.
type sqliteFile struct {
	path string
	info os.FileInfo
}

// openedFile records the file at path, which Open has just opened.
func openedFile(path string) (*sqliteFile, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("open sqlite:%s: %w", path, err)
	}
	return &sqliteFile{path: path, info: info}, nil
}

// check returns an error wrapping ErrUnavailable when path no longer names
// the opened file; nil on PostgreSQL (f is nil).
func (f *sqliteFile) check() error {
	if f == nil {
		return nil
	}
	info, err := os.Stat(f.path)
	if err == nil && os.SameFile(info, f.info) {
		return nil
	}
	return fmt.Errorf("%w: the SQLite file %s is no longer the one this process opened (removed or replaced): restart orderhook on the file to use", ErrUnavailable, f.path)
}
