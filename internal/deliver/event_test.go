package deliver_test

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/orderhook/orderhook/internal/deliver"
	"github.com/orderhook/orderhook/internal/stripeevent"
)

func TestLoadDirectoryIsRecursiveAndSorted(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, body string) string {
		path := filepath.Join(dir, name)
		require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o700))
		require.NoError(t, os.WriteFile(path, []byte(body), 0o600))
		return path
	}
	b := write("b.json", testEvents[1])
	sub := write("a/z.json", testEvents[2])
	a := write("a.json", testEvents[0])
	write("notes.txt", "not an event")

	events, err := deliver.Load(dir)

	require.NoError(t, err)
	var names []string
	for _, ev := range events {
		names = append(names, ev.Name)
	}
	require.Equal(t, []string{a, sub, b}, names)
	require.Equal(t, "evt_1IlZRsJDPojXS6LN2AbFmnR4", events[0].ID)
	require.Equal(t, "customer.created", events[0].Type)
	require.Equal(t, testEvents[0], string(events[0].Body))
}

// A directory's symbolic links to files are sent, named by the link,
// wherever their targets are and whatever their targets' names; its links
// to directories are not followed, so that a loop ends.
func TestLoadDirectoryFollowsSymlinkedFiles(t *testing.T) {
	t.Parallel()
	dir, elsewhere := t.TempDir(), t.TempDir()
	write := func(path, body string) {
		require.NoError(t, os.WriteFile(path, []byte(body), 0o600))
	}
	link := func(target, name string) string {
		path := filepath.Join(dir, name)
		require.NoError(t, os.Symlink(target, path))
		return path
	}
	write(filepath.Join(dir, "a.json"), testEvents[0])
	write(filepath.Join(elsewhere, "b.json"), testEvents[1])
	write(filepath.Join(elsewhere, "event.txt"), testEvents[2])
	relative, err := filepath.Rel(dir, filepath.Join(elsewhere, "b.json"))
	require.NoError(t, err)
	b := link(relative, "b.json")
	c := link(filepath.Join(elsewhere, "event.txt"), "c.json")
	link(elsewhere, "elsewhere")
	link(dir, "loop")
	link(elsewhere, "dir.json")

	events, err := deliver.Load(dir)

	require.NoError(t, err)
	var names, bodies []string
	for _, ev := range events {
		names, bodies = append(names, ev.Name), append(bodies, string(ev.Body))
	}
	require.Equal(t, []string{filepath.Join(dir, "a.json"), b, c}, names)
	require.Equal(t, testEvents[:3], bodies)

	// A directory named through a link is sent, under the name given.
	events, err = deliver.Load(filepath.Join(dir, "elsewhere"))
	require.NoError(t, err)
	require.Len(t, events, 1)
	require.Equal(t, filepath.Join(dir, "elsewhere", "b.json"), events[0].Name)
	require.Equal(t, testEvents[1], string(events[0].Body))
}

func TestLoadKeepsArgumentOrder(t *testing.T) {
	t.Parallel()
	dir := writeEvents(t)
	second, first := filepath.Join(dir, "00.json"), filepath.Join(dir, "03.json")

	events, err := deliver.Load(first, second, dir)

	require.NoError(t, err)
	require.Len(t, events, 2+len(testEvents))
	require.Equal(t, first, events[0].Name)
	require.Equal(t, second, events[1].Name)
}

func TestLoadErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.json")
	require.NoError(t, os.WriteFile(bad, []byte(`{"object":"event","id":"evt_1"}`), 0o600))
	empty := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(empty, "README.md"), []byte("x"), 0o600))
	dangling := t.TempDir()
	require.NoError(t, os.Symlink(filepath.Join(dangling, "gone.json"), filepath.Join(dangling, "link.json")))

	tests := map[string]struct {
		paths []string
		is    error
		names string
	}{
		"no paths":      {nil, deliver.ErrNoEvents, ""},
		"missing file":  {[]string{filepath.Join(dir, "missing.json")}, fs.ErrNotExist, "missing.json"},
		"malformed":     {[]string{bad}, stripeevent.ErrMalformed, bad},
		"in directory":  {[]string{dir}, stripeevent.ErrMalformed, bad},
		"no json":       {[]string{empty}, deliver.ErrNoEvents, empty},
		"dangling link": {[]string{dangling}, fs.ErrNotExist, filepath.Join(dangling, "link.json")},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := deliver.Load(tt.paths...)
			require.ErrorIs(t, err, tt.is)
			require.Contains(t, err.Error(), tt.names)
		})
	}
}

func TestWithIDChangesOnlyTheID(t *testing.T) {
	t.Parallel()
	for i, body := range testEvents {
		ev, err := deliver.NewEvent("test", []byte(body))
		require.NoError(t, err)

		got, err := ev.WithID("evt_new")

		require.NoError(t, err, "event %d", i)
		env, err := stripeevent.Parse(got.Body)
		require.NoError(t, err)
		require.Equal(t, "evt_new", env.ID)
		require.Equal(t, "evt_new", got.ID)
		require.Equal(t, body, string(bytes.Replace(got.Body, []byte(`"evt_new"`), []byte(`"`+ev.ID+`"`), 1)))
		require.Equal(t, body, string(ev.Body), "the original is untouched")
	}
}

func TestWithIDReplacesEveryTopLevelID(t *testing.T) {
	t.Parallel()
	body := `{"id":"evt_a","object":"event","created":1,"type":"x","data":{"object":{"id":"o"}},"\u0069d":"evt_b"}`
	ev, err := deliver.NewEvent("dup", []byte(body))
	require.NoError(t, err)

	got, err := ev.WithID(`evt_"q"`)

	require.NoError(t, err)
	require.Equal(t, `{"id":"evt_\"q\"","object":"event","created":1,"type":"x","data":{"object":{"id":"o"}},"\u0069d":"evt_\"q\""}`, string(got.Body))
}

func TestWithIDErrors(t *testing.T) {
	t.Parallel()
	ev, err := deliver.NewEvent("e", []byte(testEvents[0]))
	require.NoError(t, err)
	_, err = ev.WithID("")
	require.Error(t, err)

	ev.Body = []byte(`{"ID":"evt_1"}`) // only decoders that ignore case read this
	_, err = ev.WithID("evt_2")
	require.ErrorContains(t, err, `no top-level "id"`)

	ev.Body = []byte(`{"id":1}`)
	_, err = ev.WithID("evt_2")
	require.ErrorContains(t, err, "not a string")
}

// TestRepositoryFixtures checks every fixture of the repository, when
// present, against Load and WithID.
func TestRepositoryFixtures(t *testing.T) {
	t.Parallel()
	const dir = "../../testdata/events"
	if _, err := os.Stat(dir); err != nil {
		t.Skipf("no fixtures: %v", err)
	}
	events, err := deliver.Load(dir)
	require.NoError(t, err)
	for _, ev := range events {
		got, err := ev.WithID("evt_fresh")
		require.NoError(t, err, ev.Name)
		env, err := stripeevent.Parse(got.Body)
		require.NoError(t, err, ev.Name)
		require.Equal(t, "evt_fresh", env.ID, ev.Name)
		require.Equal(t, len(ev.Body)-len(ev.ID)+len("evt_fresh"), len(got.Body), ev.Name)
	}
}
