package stripeevent

import (
	"bytes"
	"errors"

	"github.com/go-json-experiment/json"
)

// Ref is an expandable Stripe reference: the API sends either the id as a
// string or, when expanded, the whole object. Ref keeps the id in both cases
// and is "" for null or absent.
type Ref string

// errNotRef is the error of a reference that is neither an id nor an object.
var errNotRef = errors.New("is neither an id nor an object")

// UnmarshalJSON accepts null, an id string, or an object with an "id" field.
func (r *Ref) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case bytes.Equal(b, []byte("null")):
		*r = ""
		return nil
	case len(b) > 0 && b[0] == '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*r = Ref(s)
		return nil
	case len(b) > 0 && b[0] == '{':
		var obj struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal(b, &obj, decodeOptions); err != nil {
			return err
		}
		*r = Ref(obj.ID)
		return nil
	default:
		return errNotRef
	}
}
