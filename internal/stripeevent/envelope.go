// Package stripeevent reads Stripe event envelopes and the objects inside them
// tolerantly, across every API version: fields that moved between versions are
// looked up in each of their places, expandable references are accepted as an
// id or as an expanded object, and unknown fields are ignored.
package stripeevent

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

// decodeOptions keep encoding/json's leniency with the encoding/json/v2
// engine, which reads an event in one pass at about three times the speed
// (BenchmarkParse): names match case-insensitively, an exact match first,
// and a repeated name is accepted, the last value winning. Stripe sends
// neither, but a user's handler types were written for encoding/json, and a
// signed body is not refused for them.
var decodeOptions = json.JoinOptions(json.MatchCaseInsensitiveNames(true), jsontext.AllowDuplicateNames(true))

// ErrMalformed is returned, wrapped with the reason, for a body that is not
// JSON or not a Stripe event.
var ErrMalformed = errors.New("malformed event")

// Envelope is what orderhook reads from every event before storing it: enough to
// deduplicate, order and route it. The payload itself is kept byte-exact
// elsewhere.
type Envelope struct {
	ID         string    // event id, e.g. evt_1Ilz…; old sample events use other forms
	Type       string    // e.g. invoice.paid
	APIVersion string    // "" when the event carries none (very old events)
	Livemode   bool      // true for live-mode events
	Created    time.Time // event time, one-second granularity, UTC
	ObjectID   string    // data.object.id, "" when the object has none
	ObjectType string    // data.object.object, e.g. invoice
	CustomerID string    // the customer the event concerns, "" when none
}

type wireEnvelope struct {
	ID         string  `json:"id"`
	Object     *string `json:"object"`
	Type       string  `json:"type"`
	APIVersion *string `json:"api_version"`
	Created    *int64  `json:"created"`
	Livemode   bool    `json:"livemode"`
	Data       *struct {
		Object *objectHead `json:"object"`
	} `json:"data"`
}

// objectHead is the part of any Stripe object the envelope needs.
type objectHead struct {
	ID       string `json:"id"`
	Object   string `json:"object"`
	Customer Ref    `json:"customer"`
}

// Parse reads the envelope of a Stripe event. It returns an error wrapping
// ErrMalformed when payload is not UTF-8 JSON, not an event object, or lacks
// the id, type, created time or data.object that every Stripe event has.
// With the error, the envelope is zero but for its ID when the body is a
// JSON object with a plain one: the caller can name the event it refuses.
func Parse(payload []byte) (Envelope, error) {
	// JSON is UTF-8 (RFC 8259). Checked first to say so in words: a decoder
	// that replaced invalid bytes with U+FFFD would make two ids differing
	// only in them one.
	if !utf8.Valid(payload) {
		return Envelope{}, fmt.Errorf("%w: the body is not valid UTF-8", ErrMalformed)
	}
	// One pass: the head of data.object is decoded with the envelope.
	var w wireEnvelope
	if err := json.Unmarshal(payload, &w, decodeOptions); err != nil {
		return Envelope{}, fmt.Errorf("%w: %s", ErrMalformed, jsonProblem(err))
	}
	if err := w.validate(); err != nil {
		return named(w.ID), fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	head := *w.Data.Object
	env := Envelope{
		ID:         w.ID,
		Type:       w.Type,
		Livemode:   w.Livemode,
		Created:    time.Unix(*w.Created, 0).UTC(),
		ObjectID:   head.ID,
		ObjectType: head.Object,
		CustomerID: string(head.Customer),
	}
	if w.APIVersion != nil {
		env.APIVersion = *w.APIVersion
	}
	if head.Object == "customer" {
		env.CustomerID = head.ID
	}
	if err := env.validate(*w.Created); err != nil {
		return named(w.ID), fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return env, nil
}

// named returns the envelope of a malformed event whose id is id: its ID
// alone when the id is one Parse would accept, else nothing.
func named(id string) Envelope {
	if id == "" || len(id) > maxIDLength || !plain(id) {
		return Envelope{}
	}
	return Envelope{ID: id}
}

// MaxUnixTime is the last second of year 9999, the latest time both
// engines store.
const MaxUnixTime = 253402300799

// maxIDLength bounds every identifier; Stripe's are far shorter.
const maxIDLength = 255

// validate rejects what no Stripe event carries and a database would refuse,
// or the operator tools could not name: identifiers with whitespace or
// control characters or absurdly long, and times
// outside the years 1970 to 9999. Such an event could never be stored, so it
// is answered 400 rather than 503 forever.
func (e Envelope) validate(created int64) error {
	if created <= 0 || created > MaxUnixTime {
		return fmt.Errorf("created %d is not a Unix time between 1970 and 9999", created)
	}
	for _, f := range []struct{ name, value string }{
		{"id", e.ID}, {"type", e.Type}, {"api_version", e.APIVersion},
		{"data.object.id", e.ObjectID}, {"data.object.object", e.ObjectType}, {"customer", e.CustomerID},
	} {
		if len(f.value) > maxIDLength {
			return fmt.Errorf("%s is longer than %d bytes", f.name, maxIDLength)
		}
		// No Stripe identifier holds a space; one that did would be an
		// id the operator tools, which trim what they are given, miss.
		if !plain(f.value) {
			return fmt.Errorf("%s holds whitespace or control characters", f.name)
		}
	}
	return nil
}

// plain reports whether s holds neither whitespace nor control characters.
// ASCII, every identifier Stripe sends, is checked a byte at a time: each
// byte up to the space, and DEL, is one or the other.
func plain(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= utf8.RuneSelf {
			return strings.IndexFunc(s[i:], func(r rune) bool { return unicode.IsControl(r) || unicode.IsSpace(r) }) < 0
		}
		if c <= ' ' || c == 0x7f {
			return false
		}
	}
	return true
}

func (w *wireEnvelope) validate() error {
	switch {
	case w.Object != nil && *w.Object != "event":
		return fmt.Errorf("object is %q, not \"event\"", *w.Object)
	case w.ID == "":
		return errors.New("no id")
	case w.Type == "":
		return errors.New("no type")
	case w.Created == nil:
		return errors.New("no created time")
	case w.Data == nil || w.Data.Object == nil:
		return errNotObject
	}
	return nil
}

var errNotObject = errors.New("data.object is not an object")

// jsonProblem describes a decoding error without echoing the input: the
// byte offset of a syntax error, the field and JSON kind of a value of the
// wrong type.
func jsonProblem(err error) string {
	var syn *jsontext.SyntacticError
	var sem *json.SemanticError
	switch {
	case errors.As(err, &syn):
		return fmt.Sprintf("invalid JSON at byte %d", syn.ByteOffset)
	case !errors.As(err, &sem):
		return err.Error()
	case strings.EqualFold(string(sem.JSONPointer), "/data/object"):
		return errNotObject.Error()
	case errors.Is(sem.Err, errNotRef):
		return fmt.Sprintf("field %q %s", fieldPath(sem.JSONPointer), errNotRef)
	case sem.JSONPointer == "":
		return fmt.Sprintf("the body is a JSON %s, not an object", kindName(sem.JSONKind))
	default:
		return fmt.Sprintf("field %q has the wrong type (%s)", fieldPath(sem.JSONPointer), kindName(sem.JSONKind))
	}
}

// kindName names a JSON kind as encoding/json did: string, number, bool,
// null, object or array.
func kindName(k jsontext.Kind) string {
	switch k {
	case '"':
		return "string"
	case '0':
		return "number"
	case 't', 'f':
		return "bool"
	case 'n':
		return "null"
	case '{':
		return "object"
	case '[':
		return "array"
	default:
		return "value"
	}
}

// fieldPath turns a JSON pointer such as /data/object/id into data.object.id.
func fieldPath(p jsontext.Pointer) string {
	return strings.Join(slices.Collect(p.Tokens()), ".")
}

// DecodeObject decodes data.object of the event in payload into v. It
// returns an error wrapping ErrMalformed when the payload does not fit v.
func DecodeObject(payload []byte, v any) error {
	// One pass: data.object is decoded straight into v, the pointer the
	// interface holds.
	var w struct {
		Data struct {
			Object any `json:"object"`
		} `json:"data"`
	}
	if rv := reflect.ValueOf(v); rv.Kind() != reflect.Pointer || rv.IsNil() {
		return fmt.Errorf("stripeevent: DecodeObject needs a non-nil pointer, not %T", v)
	}
	w.Data.Object = v
	if err := json.Unmarshal(payload, &w, decodeOptions); err != nil {
		return fmt.Errorf("%w: %s", ErrMalformed, jsonProblem(err))
	}
	return nil
}
