package jsonfield_test

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/orderhook/orderhook/internal/jsonfield"
)

func TestFieldTellsLeftOutFromNullFromAValue(t *testing.T) {
	t.Parallel()
	type object struct {
		Name jsonfield.Field[string]   `json:"name"`
		Tags jsonfield.Field[[]string] `json:"tags"`
	}
	for body, want := range map[string]object{
		`{}`:                          {},
		`{"name": null}`:              {Name: jsonfield.Field[string]{Sent: true, Null: true}},
		`{"name": "", "tags": ["a"]}`: {Name: jsonfield.Field[string]{Sent: true}, Tags: jsonfield.Field[[]string]{Sent: true, Value: []string{"a"}}},
	} {
		var got object
		require.NoError(t, json.Unmarshal([]byte(body), &got), body)
		require.Equal(t, want, got, body)
	}
	var bad object
	require.Error(t, json.Unmarshal([]byte(`{"name": 5}`), &bad), "a value of another type")
}
