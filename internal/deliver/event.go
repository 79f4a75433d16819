package deliver

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/orderhook/orderhook/internal/stripeevent"
)

// ErrNoEvents is returned, wrapped, when there is nothing to send: no paths,
// a directory without *.json files, or an empty event list.
var ErrNoEvents = errors.New("no events")

// Event is one Stripe event as it will be sent: its raw bytes, never
// re-encoded, and what the report needs to name it. Build it with NewEvent or
// Load, which check that the bytes are a Stripe event.
type Event struct {
	Name string // where the event came from: a file path or a name the caller chose
	ID   string // the event id, e.g. evt_1IlZRsJDPojXS6LN2AbFmnR4
	Type string // the event type, e.g. invoice.paid
	Body []byte // the payload, byte-exact; shared read-only between deliveries
}

// NewEvent checks that body is a Stripe event and returns it as an Event
// named name. It returns an error wrapping stripeevent.ErrMalformed when body
// is not one. body is kept, not copied: do not modify it afterwards.
func NewEvent(name string, body []byte) (Event, error) {
	env, err := stripeevent.Parse(body)
	if err != nil {
		return Event{}, err
	}
	return Event{Name: name, ID: env.ID, Type: env.Type, Body: body}, nil
}

// WithID returns a copy of e whose top-level "id" is id. Only the bytes of
// the id value change: every other byte of the payload is kept as it was. It
// returns an error when id is empty or the payload has no top-level "id"
// string.
func (e Event) WithID(id string) (Event, error) {
	if id == "" {
		return Event{}, errors.New("replace event id: empty id")
	}
	quoted, err := json.Marshal(id)
	if err != nil {
		return Event{}, fmt.Errorf("replace event id: %w", err)
	}
	spans, err := idSpans(e.Body)
	if err != nil {
		return Event{}, fmt.Errorf("replace id of %s: %w", e.Name, err)
	}
	body := make([]byte, 0, len(e.Body)+len(spans)*(len(quoted)-len(e.ID)))
	last := 0
	for _, sp := range spans {
		body = append(body, e.Body[last:sp.start]...)
		body = append(body, quoted...)
		last = sp.end
	}
	body = append(body, e.Body[last:]...)
	e.ID, e.Body = id, body
	return e, nil
}

// span is a byte range [start, end) of a payload.
type span struct{ start, end int }

// idSpans finds the value of every top-level "id" key in body (Stripe sends
// one; a payload that repeats the key gets all of them replaced, so that no
// decoder can read the old id).
func idSpans(body []byte) ([]span, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, errors.New("payload is not a JSON object")
	}
	var spans []span
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("read key: %w", err)
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, fmt.Errorf("read value of %q: %w", tok, err)
		}
		if tok != "id" {
			continue
		}
		end := int(dec.InputOffset())
		sp := span{start: end - len(raw), end: end}
		if len(raw) < 2 || raw[0] != '"' || !bytes.Equal(body[sp.start:sp.end], raw) {
			return nil, errors.New(`top-level "id" is not a string`)
		}
		spans = append(spans, sp)
	}
	if len(spans) == 0 {
		return nil, errors.New(`no top-level "id"`)
	}
	return spans, nil
}

// Load reads the events at paths, in order. A file is read whatever its name;
// a directory contributes every *.json file below it, sorted by path,
// symbolic links to files included (named by the link), while the links to
// directories below it are not followed, so that no cycle can form. Every
// file must be a Stripe event: the error names the first that is not and
// wraps stripeevent.ErrMalformed, or the fs error (fs.ErrNotExist, …) of a
// path that cannot be read. It returns an error wrapping ErrNoEvents when
// paths is empty or a directory holds no *.json file.
func Load(paths ...string) ([]Event, error) {
	if len(paths) == 0 {
		return nil, fmt.Errorf("load: %w", ErrNoEvents)
	}
	var events []Event
	for _, p := range paths {
		files, err := expand(p)
		if err != nil {
			return nil, err
		}
		for _, f := range files {
			ev, err := loadFile(f)
			if err != nil {
				return nil, err
			}
			events = append(events, ev)
		}
	}
	return events, nil
}

// expand returns p itself for a file, and the sorted *.json files below p for
// a directory, as Load says.
func expand(p string) ([]string, error) {
	info, err := os.Stat(p)
	if err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	if !info.IsDir() {
		return []string{p}, nil
	}
	// A DIR named through a symbolic link is walked where the link leads
	// (WalkDir does not follow its root), under the name given.
	root, err := filepath.EvalSymlinks(p)
	if err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	var files []string
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !strings.EqualFold(filepath.Ext(path), ".json") {
			return err
		}
		ok, err := isFile(path, d)
		if ok {
			rel, _ := filepath.Rel(root, path) // path is below root
			files = append(files, filepath.Join(p, rel))
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", p, err)
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("load %s: no *.json file below it: %w", p, ErrNoEvents)
	}
	slices.Sort(files)
	return files, nil
}

// isFile reports whether the entry d at path is a regular file or a
// symbolic link to one. It returns the error of a link that leads nowhere.
func isFile(path string, d fs.DirEntry) (bool, error) {
	if d.Type()&fs.ModeSymlink == 0 {
		return d.Type().IsRegular(), nil
	}
	info, err := os.Stat(path)
	if err != nil {
		return false, err
	}
	return info.Mode().IsRegular(), nil
}

func loadFile(path string) (Event, error) {
	body, err := os.ReadFile(path)
	if err != nil {
		return Event{}, fmt.Errorf("load: %w", err)
	}
	ev, err := NewEvent(path, body)
	if err != nil {
		return Event{}, fmt.Errorf("load %s: %w", path, err)
	}
	return ev, nil
}
