// Package jsonfield holds Field, the field of a decoded JSON object that
// tells "left out" from "sent", null included: an admin API filter sent
// null is refused rather than taken as no filter, and a Stripe deletion
// that sends a name as null removes it where one cut down to its id keeps
// it.
package jsonfield

import "encoding/json"

// Field is a field of a JSON object: left out (Sent false), sent as null
// (Null), or sent with Value. Left out or null, Value is T's zero value.
type Field[T any] struct {
	Sent  bool
	Null  bool
	Value T
}

// UnmarshalJSON records that the field was sent, and whether as null.
func (f *Field[T]) UnmarshalJSON(b []byte) error {
	f.Sent, f.Null = true, string(b) == "null"
	if f.Null {
		return nil
	}
	return json.Unmarshal(b, &f.Value)
}
