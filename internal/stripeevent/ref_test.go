package stripeevent_test

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/orderhook/orderhook/internal/stripeevent"
)

func TestRef(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		json string
		want stripeevent.Ref
		err  bool
	}{
		{`"cus_1"`, "cus_1", false},
		{`{"id":"cus_2","object":"customer","email":"a@example.com"}`, "cus_2", false},
		{` { "id" : "cus_3" } `, "cus_3", false},
		{`null`, "", false},
		{`""`, "", false},
		{`{"object":"customer"}`, "", false},
		{`5`, "", true},
		{`true`, "", true},
		{`["cus_1"]`, "", true},
		{`{"id":5}`, "", true},
	} {
		var got struct {
			Customer stripeevent.Ref `json:"customer"`
		}
		err := json.Unmarshal([]byte(`{"customer":`+tc.json+`}`), &got)
		if tc.err {
			require.Error(t, err, tc.json)
			continue
		}
		require.NoError(t, err, tc.json)
		require.Equal(t, tc.want, got.Customer, tc.json)
	}

	var absent struct {
		Customer stripeevent.Ref `json:"customer"`
	}
	require.NoError(t, json.Unmarshal([]byte(`{}`), &absent))
	require.Empty(t, absent.Customer)
}
